"""``make demo``: the whole tunnel in a local lab, from nothing to traffic proven end to end.

1. host packages (QEMU, mmdebstrap, …) and the lab VM image (built once, then cached);
2. the lab VM boots: it is the VPS (Debian, reached over SSH on 127.0.0.1);
3. the RTX simulator starts on 127.0.0.1: the router, with a factory-like config;
4. network namespaces in the VM: the router's data plane, a home LAN host, an internet host;
   before the deploy the home reaches the internet by the router's PPPoE;
5. ``pyinfra inventory.py deploy.py --dry --diff`` against both ends, then the real run;
6. the router's data plane follows its running config, so the VPS's ping home through the
   tunnel confirms the router's change before it is saved; IPv4 from the home host reaches
   the internet host through the tunnel (ping, a TCP transfer, NAT, MSS, no fragments);
7. the VPS goes down: the router's keepalive falls back to PPPoE and returns to the tunnel
   when the VPS is back (the summary says how long the home was without IPv4);
8. a second run changes nothing; the blog's EncapsulationLimit trap is reproduced (the home
   stays online by PPPoE) and the deploy repairs it; after a reboot of both ends the traffic
   passes without a deploy;
9. the health check (``check.py``) reads both ends and finds nothing wrong;
10. a summary, ending with the health check's table; everything is torn down (also on failure
    and Ctrl-C).

Usage: ``python -m lab.demo [--suite bookworm|bullseye|trixie] [--no-reboot] [--keep-logs]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
import textwrap
import time
import traceback
from pathlib import Path

from lab.e2e import (
    NETDEV,
    ROUTER_HOST,
    TUNNEL_NAME,
    VPS_HOST,
    VPS_INNER,
    E2ELab,
    TrafficCheck,
)
from lab.homenet import (
    INTERNET_HOST,
    ROUTER_FACTORY_CONFIG,
    VPS_UPLINK,
    VPS_UPLINK_IPV4,
)
from lab.host_packages import HostPackagesError, ensure_host_packages
from lab.image import ImageError, default_suite, ensure_image
from lab.vm import DEFAULT_BOOT_TIMEOUT, LabError, LabVM

BOLD, GREEN, RED, DIM, RESET = (
    ("\033[1m", "\033[32m", "\033[31m", "\033[2m", "\033[0m")
    if sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    else ("", "", "", "", "")
)


class DemoFailure(RuntimeError):
    pass


def say(msg: str = "") -> None:
    print(msg, flush=True)


class Steps:
    def __init__(self, total: int) -> None:
        self.total = total
        self.n = 0
        self.t0 = time.monotonic()

    def __call__(self, title: str) -> None:
        self.n += 1
        say(f"\n{BOLD}[{self.n}/{self.total}] {title}{RESET}  {DIM}(+{self.elapsed()}){RESET}")

    def elapsed(self) -> str:
        s = int(time.monotonic() - self.t0)
        return f"{s // 60}m{s % 60:02d}s"


def ok(msg: str) -> None:
    say(f"    {GREEN}✓{RESET} {msg}")


def indent(line: str) -> None:
    say(f"    {DIM}│{RESET} {line}")


def check(problems: list[str], what: str, lab: E2ELab | None = None) -> None:
    if problems:
        detail = "\n".join(problems)
        if lab is not None:
            detail += "\n\nThe lab's namespaces:\n" + lab.net.describe()
        raise DemoFailure(f"{what}:\n{textwrap.indent(detail, '  ')}")


def traffic_line(c: TrafficCheck) -> str:
    t = c.transfer
    return (
        f"ping {c.ping.received}/{c.ping.sent} (avg {c.ping.rtt_avg_ms:.1f} ms), "
        f"TCP {t.size / 2**20:.0f} MiB at {t.throughput_mbit:.0f} Mbit/s"
    )


def run_demo(args: argparse.Namespace, state: dict) -> dict:
    steps = Steps(total=14 if args.reboot else 13)
    facts: dict = {}

    steps("Host packages (QEMU, qemu-utils, mmdebstrap; apt-get only when missing)")
    try:
        ensure_host_packages()
    except HostPackagesError as exc:
        raise DemoFailure(f"cannot install the lab's host packages: {exc}") from None

    steps(f"Lab VM image (Debian {args.suite}; built once in about a minute, then cached)")
    try:
        image = ensure_image(args.suite)
    except ImageError as exc:
        raise DemoFailure(f"cannot build the lab VM image: {exc}") from None

    steps("Booting the lab VM: the VPS (QEMU, no network outside this machine)")
    vm = LabVM(suite=args.suite, image=image, owner_pid=os.getpid())
    state["vm"] = vm
    try:
        vm.boot(timeout=args.boot_timeout)
    except LabError as exc:
        state["keep_run_dir"] = True
        log = vm.console_log
        where = f"Console log: {log}" if log.exists() else f"(no console log: {log} is missing)"
        raise DemoFailure(f"the lab VM did not come up: {exc}\n\n{where}") from None
    facts["vm"] = f"Debian {args.suite} VM, SSH on 127.0.0.1:{vm.ssh_port}"

    steps("Starting the router: the RTX simulator (RTX1200) on 127.0.0.1")
    lab = E2ELab(vm, state["workdir"])
    state["lab"] = lab
    sim = lab.start_router()
    ok(f"rtxsim {sim.profile.model} listening on 127.0.0.1:{sim.port}; its config:")
    for line in sim.saved_config_text.splitlines():
        indent(line)

    steps("The lab network in the VM: the router's data plane, a home host, an internet host")
    plane = lab.net.build(ROUTER_FACTORY_CONFIG)
    home = lab.net.home_host
    ok(f"home host {home} behind the router's LAN {plane.lan}")
    ok(f"internet host {INTERNET_HOST} behind the VPS's uplink {VPS_UPLINK} ({VPS_UPLINK_IPV4})")
    before = lab.traffic(size=1 << 20, by="pppoe")
    check(before.problems(), "the home's PPPoE before the deploy", lab)
    ok(
        f"before the deploy the home host reaches the internet by PPPoE: the internet host "
        f"saw {before.transfer.source_seen} (the router's PPPoE address)"
    )
    say(f"    inventory: {lab.inventory()}")

    steps("Preview: pyinfra inventory.py deploy.py --dry --diff (changes nothing)")
    mark = lab.router_log_mark()
    preview = lab.deploy("--dry", "--diff", echo=indent)
    if not preview.ok:
        raise DemoFailure(f"the preview failed:\n{preview}")
    if lab.router_config_commands(mark):
        raise DemoFailure(f"the preview sent {lab.router_config_commands(mark)} to the router")
    ok(f"would change: {', '.join(preview.planned())} ({preview.seconds:.0f} s)")

    steps("Apply: pyinfra inventory.py deploy.py")
    applied = lab.deploy(echo=indent)
    if not applied.ok:
        raise DemoFailure(f"the deploy failed:\n{applied}")
    facts["deploy_s"] = applied.seconds
    facts["vps_ops"] = applied.changed(VPS_HOST)
    facts["router_ops"] = applied.changed(ROUTER_HOST)
    factory = set(ROUTER_FACTORY_CONFIG.splitlines())
    facts["router_lines"] = [
        line for line in lab.router_config().splitlines() if line not in factory
    ]
    link = lab.vps_tunnel()
    if "encaplimit none" not in link:
        raise DemoFailure(f"the VPS's tunnel lacks encaplimit none:\n{link}")
    facts["vps_link"] = next(line.strip() for line in link.splitlines() if "ip6tnl" in line).split(
        " tclass"
    )[0]
    ok(f"deployed in {applied.seconds:.0f} s; VPS: {facts['vps_link']}")
    verified = re.search(r"verified by traffic: ([^\n\x1b]*)", applied.output)
    if verified is None:
        raise DemoFailure(f"the router saved without the VPS's check by traffic:\n{applied}")
    ok(f"the router saved only after the VPS's check: {verified[1]}")

    steps("Traffic: home host → internet host through the tunnel")
    plane = lab.net.plane
    if lab.net.follow_errors:
        raise DemoFailure(f"the router's data plane did not follow: {lab.net.follow_errors}")
    ok(
        "the router's data plane follows its running config: "
        + ", ".join(f"{t.ifname} → {t.remote} (mtu {t.mtu})" for t in plane.active_tunnels())
    )
    first = lab.traffic()
    check(first.problems(), "traffic through the tunnel", lab)
    facts["traffic"] = first
    ok(traffic_line(first))
    ok(f"the internet host saw {first.transfer.source_seen} (the VPS, through NAT)")
    ok(
        f"MSS {first.transfer.syn_mss} in the SYN, {first.transfer.synack_mss} in the SYN-ACK "
        f"(tunnel MTU - 40); no fragment created anywhere"
    )

    steps("The VPS goes down: the router falls back to PPPoE, and comes back to the tunnel")
    say("    the VPS stops sending into the tunnel; the home host pings the internet all along")
    failover = lab.failover()
    check(failover.problems(), "the failover", lab)
    facts["failover"] = failover
    ok(
        f"down: the router's keepalive switched to pp 1 after {failover.switched_after:.1f} s; "
        f"the internet host saw {failover.during.transfer.source_seen} meanwhile"
    )
    ok(
        f"back: the tunnel again {failover.back_after:.1f} s after the VPS returned; the "
        f"internet host saw {failover.after.transfer.source_seen}"
    )

    steps("Second run: pyinfra inventory.py deploy.py again")
    snapshot, saved, mark = lab.vps_snapshot(), lab.router_config(), lab.router_log_mark()
    again = lab.deploy()
    sent = lab.router_config_commands(mark)
    if not again.ok or again.changed() or sent or lab.vps_snapshot() != snapshot:
        raise DemoFailure(
            f"the second run was not a no-op: changed {again.changed()}, router commands {sent}"
            f"\n{again}"
        )
    if lab.router_config() != saved:
        raise DemoFailure("the router's saved config changed on the second run")
    facts["second_s"] = again.seconds
    ok(f"no change on the VPS or the router, no config command sent ({again.seconds:.0f} s)")

    steps("The trap: the VPS's tunnel without EncapsulationLimit=none (the blog's first try)")
    say(f"    removing EncapsulationLimit=none from {NETDEV}, re-creating {TUNNEL_NAME}")
    trap_at = lab.net.now()
    link = lab.hand_made_tunnel()
    limit = re.search(r"encaplimit (\S+)", link)
    if limit is None or limit[1] == "none":
        raise DemoFailure(f"the kernel default did not show up:\n{link}")
    ok(f"the VPS's tunnel now has the default of the kernel (or systemd): encaplimit {limit[1]}")
    lab.net.wait_keepalive("down", trap_at)
    trapped = lab.traffic(size=1 << 20, timeout=3, by="pppoe")
    check(trapped.problems(), "the home by PPPoE during the trap", lab)
    drops = lab.net.drop_counter()
    lab.net.ping(count=3, target=VPS_INNER, wait=1)
    trapped.drops = lab.net.drop_counter() - drops
    check(trapped.trap_problems(), "the trap was not reproduced", lab)
    facts["trapped"] = trapped
    ok(
        f"the tunnel carries nothing back: the router dropped {trapped.drops} of the VPS's "
        "packets with a Destination Options header (received malformed option); its "
        f"keepalive fell back, the home stays online by PPPoE ({trapped.transfer.source_seen})"
    )
    say("    re-running the deploy:")
    fixed_at = lab.net.now()
    repair = lab.deploy(echo=indent)
    if not repair.ok:
        raise DemoFailure(f"the repairing deploy failed:\n{repair}")
    lab.net.wait_keepalive("up", fixed_at)
    repaired = lab.traffic()
    check(repaired.problems(), "traffic after the repairing deploy", lab)
    facts["repair"] = (repair.changed(), repaired)
    ok(f"the deploy changed {', '.join(repair.changed())}: {traffic_line(repaired)}")

    if args.reboot:
        steps("Reboot: the VM, and the router from its saved config; no deploy")
        t0 = time.monotonic()
        vm.reboot()
        facts["reboot_s"] = time.monotonic() - t0
        lab.restart_router()  # its data plane boots from the saved config
        rebooted = lab.traffic()
        check(rebooted.problems(), "traffic after the reboot", lab)
        facts["rebooted"] = rebooted
        ok(f"after the reboot ({facts['reboot_s']:.0f} s): {traffic_line(rebooted)}")

    steps("Health check: pyinfra inventory.py check.py (reads both ends, changes nothing)")
    mark, saved = lab.router_log_mark(), lab.router_config()
    health = lab.check()
    if health.returncode != 0 or "--> Health check:" not in health.stderr:
        raise DemoFailure(f"the health check found a problem:\n{health}")
    if lab.router_config_commands(mark) or lab.router_config() != saved:
        raise DemoFailure("the health check sent the router a config line")
    facts["health"] = health.stderr[health.stderr.index("--> Health check:") :].split(
        "\n--> Results", 1
    )[0]
    ok(f"every check holds ({health.seconds:.0f} s); the table ends this demo")

    steps("Summary")
    facts["total"] = steps.elapsed()
    return facts


def summary(facts: dict) -> None:
    t: TrafficCheck = facts["traffic"]
    tr: TrafficCheck = facts["trapped"]
    changed, repaired = facts["repair"]
    rows = [
        ("VPS", f"{VPS_HOST}: {facts['vm']}"),
        ("", f"changed: {', '.join(facts['vps_ops'])}"),
        ("", f"{TUNNEL_NAME}: {facts['vps_link']}"),
        ("", f"NAT (MASQUERADE) on {VPS_UPLINK}, MSS clamped, policy DROP, SSH open"),
        ("router", f"{ROUTER_HOST}: rtxsim RTX1200; changed and saved:"),
        *(("", line) for line in facts["router_lines"]),
        ("deploy", f"{facts['deploy_s']:.0f} s; second run {facts['second_s']:.0f} s, no change"),
        ("ping", f"{t.ping.received}/{t.ping.sent} replies, avg RTT {t.ping.rtt_avg_ms:.1f} ms"),
        (
            "TCP",
            f"{t.transfer.size / 2**20:.0f} MiB in {t.transfer.seconds:.2f} s = "
            f"{t.transfer.throughput_mbit:.0f} Mbit/s, SHA-256 verified",
        ),
        ("NAT", f"the internet host saw {t.transfer.source_seen}"),
        (
            "MSS",
            f"SYN {t.transfer.syn_mss}, SYN-ACK {t.transfer.synack_mss}; fragments created: 0",
        ),
        ("drops", f"{t.drops} while the deploy's tunnel is in place"),
        ("failover", facts["failover"].summary()),
        (
            "trap",
            f"without EncapsulationLimit=none: nothing back through the tunnel, {tr.drops} "
            "packets dropped by the router; the home online by PPPoE meanwhile",
        ),
        ("", f"the deploy repaired it ({', '.join(changed)}): {traffic_line(repaired)}"),
    ]
    if "rebooted" in facts:
        rows.append(
            (
                "reboot",
                f"VM back in {facts['reboot_s']:.0f} s, router from its saved config: "
                f"{traffic_line(facts['rebooted'])}, no deploy",
            )
        )
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        say(f"    {key:<{width}}  {value}")
    say(f"\n{GREEN}{BOLD}The demo passed{RESET} in {facts['total']}.")
    # What a user runs every day: the health check's own table, as it printed it.
    say(f"\n{BOLD}pyinfra inventory.py check.py{RESET}")
    for line in facts["health"].splitlines()[1:]:
        say(f"    {line}" if line else "")


def teardown(state: dict) -> None:
    lab, vm = state.get("lab"), state.get("vm")
    say(f"\n{DIM}Tearing down…{RESET}")
    if lab is not None:
        with contextlib.suppress(Exception):
            lab.stop()
    if vm is not None:
        with contextlib.suppress(Exception):
            vm.stop()
        if not state.get("keep_run_dir"):
            shutil.rmtree(vm.run_dir, ignore_errors=True)
    if state.get("keep_logs"):
        say(f"kept: {state['workdir']}")
    else:
        shutil.rmtree(state["workdir"], ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.demo", description=__doc__.split("\n")[0])
    ap.add_argument("--suite", default=default_suite(), help="bookworm (default), bullseye, trixie")
    ap.add_argument("--no-reboot", dest="reboot", action="store_false", help="skip the reboot")
    ap.add_argument("--keep-logs", action="store_true", help="keep the inventory dir")
    ap.add_argument(
        "--boot-timeout", type=float, default=DEFAULT_BOOT_TIMEOUT, help="seconds to wait for SSH"
    )
    args = ap.parse_args(argv)

    def on_term(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.reconfigure(errors="replace")  # a terminal without UTF-8 gets "?" for "✓"
    state: dict = {
        "workdir": Path(tempfile.mkdtemp(prefix="ipip6-demo-")),
        "keep_logs": args.keep_logs,
    }
    say(f"{BOLD}pyinfra-ipip6 demo{RESET}: the VPS end in a QEMU VM, the router end in rtxsim,")
    say("IPv4 from a home host to an internet host through the RFC 2473 ipip6 tunnel.")
    try:
        facts = run_demo(args, state)
        summary(facts)
        return 0
    except KeyboardInterrupt:
        say(f"\n{RED}Interrupted.{RESET}")
        return 130
    except DemoFailure as exc:
        say(f"\n{RED}{BOLD}The demo failed:{RESET} {exc}")
        return 1
    except Exception:
        traceback.print_exc()
        say(f"\n{RED}{BOLD}The demo failed{RESET} with the unexpected error above.")
        return 1
    finally:
        with contextlib.suppress(KeyboardInterrupt):
            teardown(state)


if __name__ == "__main__":
    sys.exit(main())
