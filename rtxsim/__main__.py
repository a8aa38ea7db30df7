"""``python -m rtxsim``: run a simulated RTX router over SSH on 127.0.0.1 in the foreground."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from .cli import CONFIGS_DIR
from .profiles import PROFILES
from .server import Simulator


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rtxsim", description=__doc__)
    ap.add_argument(
        "--config",
        type=Path,
        default=CONFIGS_DIR / "factory.txt",
        help="initial (and saved) config file (default: the factory sample)",
    )
    ap.add_argument("--port", type=int, default=2222, help="TCP port on 127.0.0.1 (0: any)")
    ap.add_argument("--profile", choices=sorted(PROFILES), default="rtx1200")
    ap.add_argument("--user", default="admin", help="SSH login user")
    ap.add_argument("--password", default="admin", help="SSH login password")
    ap.add_argument("--admin-password", default=None, help="password for `administrator`")
    ap.add_argument("--state-dir", type=Path, default=None, help="keep the saved config here")
    ap.add_argument("--host-key", type=Path, default=None, help="RSA host key file (created)")
    ap.add_argument("--normalise-ipv6", action="store_true", help="print IPv6 compressed")
    ap.add_argument(
        "--character",
        default="ja.sjis",
        choices=["ascii", "en.ascii", "ja.sjis", "ja.utf8"],
        help="factory console character set (default ja.sjis)",
    )
    ap.add_argument("--fail-command", default=None, help="regex: answer out-of-range")
    ap.add_argument("--drop-on", default=None, help="regex: cut the connection")
    ap.add_argument("--drop-after", default=None, help="regex: carry out, then cut the connection")
    ap.add_argument("--dirty-on-console-commands", action="store_true")
    ap.add_argument(
        "--console-needs-admin",
        action="store_true",
        help="refuse `console …` at '>' (firmware where they are administrator use only)",
    )
    ap.add_argument(
        "--config-file",
        type=int,
        default=None,
        help="booted from config file N (newer `show environment` form: Config. file: configN)",
    )
    ap.add_argument("--tunnel-down", action="store_true", help="show status tunnel: not connected")
    ap.add_argument(
        "--command-log",
        type=Path,
        default=None,
        help="append every line received here (mode, context, command; tab-separated)",
    )
    args = ap.parse_args(argv)

    sim = Simulator(
        args.config.read_text(encoding="utf-8"),
        profile=args.profile,
        user=args.user,
        password=args.password,
        admin_password=args.admin_password,
        state_dir=args.state_dir,
        host_key_path=args.host_key,
        normalise_ipv6=args.normalise_ipv6,
        default_character=args.character,
        fail_command=args.fail_command,
        drop_on=args.drop_on,
        drop_after=args.drop_after,
        dirty_on_console_commands=args.dirty_on_console_commands,
        console_needs_admin=args.console_needs_admin,
        config_file=args.config_file,
        tunnel_down=args.tunnel_down,
    )
    if args.command_log is not None:
        sim.device.log_to = args.command_log.open("a", encoding="utf-8")
    port = sim.start(port=args.port)
    print(f"rtxsim listening on 127.0.0.1:{port}", flush=True)

    done = threading.Event()

    def _stop(signum, frame):  # noqa: ARG001
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while not done.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
