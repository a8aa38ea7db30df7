"""Run the lab "VPS": a QEMU VM booted from the cached Debian image (see lab.image).

The VM reaches nothing outside this machine: QEMU user networking with ``restrict=on``; the only
way in is SSH forwarded from 127.0.0.1:<ssh_port>. Every boot starts from the clean base image
(a fresh qcow2 overlay).

    vm = LabVM()            # suite from env IPIP6_LAB_SUITE, default bookworm
    vm.boot()
    vm.ssh("ip -br addr").stdout
    vm.pyinfra_host_data()  # SSH data for a pyinfra inventory
    vm.stop()

CLI (state kept in a run dir, so a later call finds the running VM):
``python -m lab.vm [--run-dir DIR] [--suite S] boot|stop|status|ssh [--user U] [CMD…]|inventory``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from lab.image import ImageError, ImagePaths, cache_root, default_suite, ensure_image

GUEST_IPV6 = "2001:db8:1::1"
DEFAULT_BOOT_TIMEOUT = 180.0
CMDLINE = "root=/dev/vda rw console=ttyS0"

# The guest kernel saying one CPU has made no progress for this long: it will not recover. Seen
# once in many runs under TCG (a CPU stuck in virtio-net's receive path); a single short report
# can be the emulation being slow, so only a lasting one counts.
KERNEL_STUCK = re.compile(r"soft lockup - CPU#\d+ stuck for (\d+)s!.*")
KERNEL_STUCK_SECONDS = 60


class LabError(RuntimeError):
    pass


class SSHCommandError(subprocess.CalledProcessError):
    """A command run over SSH in the VM exited non-zero (its output is in the message)."""

    def __str__(self) -> str:
        text = super().__str__()
        for name, value in (("stdout", self.stdout), ("stderr", self.stderr)):
            if value:
                text += f"\n--- {name} ---\n{str(value).rstrip()}"
        return text


def _log(msg: str) -> None:
    print(f"[lab] {msg}", flush=True)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def accel_args() -> list[str]:
    """QEMU accelerator arguments: TCG unless env IPIP6_LAB_ACCEL says otherwise.

    IPIP6_LAB_ACCEL=kvm gives ``-accel kvm -cpu host``; any other value is passed to -accel.
    (On this project's machines /dev/kvm is a nested paravirtualised one under which the Debian
    kernel crawls, hence TCG by default.)
    """
    accel = os.environ.get("IPIP6_LAB_ACCEL", "").strip()
    if not accel or accel.startswith("tcg"):
        return ["-accel", accel or "tcg,thread=multi", "-cpu", "max,la57=off"]
    if accel.split(",")[0] == "kvm":
        return ["-accel", accel, "-cpu", "host"]
    return ["-accel", accel, "-cpu", "max"]


def tail(path: Path, lines: int = 20) -> str:
    try:
        data = path.read_bytes()[-65536:]
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    text = data.decode("utf-8", "replace").replace("\r", "")
    return "\n".join(text.splitlines()[-lines:])


def _prune_run_dirs(base: Path, max_age_s: float = 2 * 86400) -> None:
    """Remove the run dirs of earlier sessions (not the CLI's) whose VM is gone."""
    now = time.time()
    for d in base.iterdir():
        if not d.is_dir() or d.name.startswith("cli-"):
            continue
        try:
            if now - d.stat().st_mtime < max_age_s:
                continue
            pid = int((d / "qemu.pid").read_text().strip())
            if Path(f"/proc/{pid}").exists():
                continue
        except (OSError, ValueError):
            pass
        shutil.rmtree(d, ignore_errors=True)


class LabVM:
    """One QEMU VM of the lab image. All files live in ``run_dir``."""

    def __init__(
        self,
        suite: str | None = None,
        run_dir: str | os.PathLike | None = None,
        image: ImagePaths | None = None,
        ssh_port: int | None = None,
        memory_mb: int = 1024,
        smp: int = 1,
        owner_pid: int | None = None,
    ) -> None:
        """``owner_pid``: when that process dies (even by SIGKILL), qemu is killed too.

        ``smp``: one vCPU by default. With two, a guest once locked up for good in virtio-net's
        receive path (a list walk that never ended: the mark of a race between the vCPUs under
        TCG) in about 40 boots; one vCPU rules that out for about 20% more time (measured on
        the end-to-end tests: 200 s instead of 165 s, boot 29 s instead of 20 s).
        """
        self.suite = suite or (image.suite if image else default_suite())
        self.image = image
        if run_dir is None:
            base = cache_root() / "run"
            base.mkdir(parents=True, exist_ok=True)
            _prune_run_dirs(base)
            run_dir = tempfile.mkdtemp(prefix=f"{self.suite}-", dir=base)
        self.run_dir = Path(run_dir).resolve()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.ssh_port = ssh_port or 0
        self.memory_mb = memory_mb
        self.smp = smp
        self.boot_id: str | None = None
        self.owner_pid = owner_pid
        self._watchdog: subprocess.Popen | None = None

    # --- files -----------------------------------------------------------------------------
    @property
    def overlay(self) -> Path:
        return self.run_dir / "overlay.qcow2"

    @property
    def console_log(self) -> Path:
        return self.run_dir / "console.log"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / "qemu.pid"

    @property
    def known_hosts(self) -> Path:
        return self.run_dir / "known_hosts"

    @property
    def state_file(self) -> Path:
        return self.run_dir / "state.json"

    @property
    def qmp_socket(self) -> Path:
        return self.run_dir / "qmp.sock"

    @property
    def ssh_key(self) -> Path:
        return self._image().ssh_key

    def _image(self) -> ImagePaths:
        if self.image is None:
            self.image = ensure_image(self.suite)
        return self.image

    # --- state (for the CLI) -----------------------------------------------------------------
    def save_state(self) -> None:
        img = self._image()
        state = {
            "suite": self.suite,
            "image_dir": str(img.dir),
            "image_key": img.key,
            "ssh_port": self.ssh_port,
            "pid": self.pid,
            "boot_id": self.boot_id,
        }
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")

    @classmethod
    def from_run_dir(cls, run_dir: str | os.PathLike) -> LabVM:
        """The VM whose state a previous ``boot()`` saved in ``run_dir``."""
        run_dir = Path(run_dir)
        state = json.loads((run_dir / "state.json").read_text())
        image = ImagePaths.at(Path(state["image_dir"]), state["suite"], state["image_key"])
        vm = cls(suite=state["suite"], run_dir=run_dir, image=image, ssh_port=state["ssh_port"])
        vm.boot_id = state.get("boot_id")
        return vm

    # --- process -------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        if b"qemu-system" not in cmdline or str(self.run_dir).encode() not in cmdline:
            return None
        return pid

    def is_running(self) -> bool:
        return self.pid is not None

    def qemu_command(self) -> list[str]:
        img = self._image()
        netdev = f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22"
        assert "restrict=on" in netdev
        return [
            "qemu-system-x86_64",
            *accel_args(),
            "-m",
            str(self.memory_mb),
            "-smp",
            str(self.smp),
            "-display",
            "none",
            "-vga",
            "none",
            "-kernel",
            str(img.kernel),
            "-initrd",
            str(img.initrd),
            "-append",
            CMDLINE,
            "-drive",
            f"file={self.overlay},format=qcow2,if=virtio",
            "-device",
            "virtio-rng-pci",
            "-netdev",
            netdev,
            "-device",
            "virtio-net-pci,netdev=n0,addr=0x3",
            "-serial",
            f"file:{self.console_log}",
            "-monitor",
            "none",
            # QMP on a socket of the run dir: the snapshots (savevm/loadvm) go through it.
            "-qmp",
            f"unix:{self.qmp_socket},server=on,wait=off",
            "-pidfile",
            str(self.pidfile),
            "-daemonize",
        ]

    def boot(self, timeout: float = DEFAULT_BOOT_TIMEOUT) -> None:
        """Start the VM from a clean overlay and wait until SSH answers as root."""
        if self.is_running():
            raise LabError(f"a VM is already running from {self.run_dir} (pid {self.pid})")
        img = self._image()
        t0 = time.monotonic()
        for leftover in (self.overlay, self.pidfile, self.console_log, self.qmp_socket):
            leftover.unlink(missing_ok=True)
        subprocess.run(
            [
                "qemu-img",
                "create",
                "-q",
                "-f",
                "qcow2",
                "-b",
                str(img.base),
                "-F",
                "raw",
                str(self.overlay),
            ],
            check=True,
        )
        fixed_port = bool(self.ssh_port)
        for attempt in range(5):
            if not fixed_port:
                self.ssh_port = free_port()
            proc = subprocess.run(
                self.qemu_command(),
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                timeout=60,
            )
            if proc.returncode == 0:
                break
            msg = (proc.stderr or proc.stdout).strip()
            if "host forwarding" in msg and not fixed_port and attempt < 4:
                continue  # the port was taken in between: pick another
            raise LabError(f"qemu-system-x86_64 failed to start (exit {proc.returncode}): {msg}")
        self.known_hosts.write_text(img.known_hosts("127.0.0.1", self.ssh_port))
        self.save_state()
        self._start_watchdog()
        _log(
            f"booting {self.suite} VM: pid {self.pid}, ssh 127.0.0.1:{self.ssh_port}, "
            f"console {self.console_log}"
        )
        self.boot_id = self._wait_for_ssh(timeout, t0, previous_boot_id=None)
        self.save_state()
        _log(f"VM up: SSH answered after {time.monotonic() - t0:.1f} s")

    def _start_watchdog(self) -> None:
        pid = self.pid
        if self.owner_pid is None or pid is None:
            return
        script = (
            'while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 2; done; '
            'kill -0 "$1" 2>/dev/null || kill "$2" 2>/dev/null'
        )
        self._watchdog = subprocess.Popen(
            ["sh", "-c", script, "lab-vm-watchdog", str(self.owner_pid), str(pid)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _wait_for_ssh(self, timeout: float, t0: float, previous_boot_id: str | None) -> str:
        deadline = t0 + timeout
        last_report = time.monotonic()
        last_error = ""
        while True:
            now = time.monotonic()
            if not self.is_running():
                raise LabError(
                    f"the VM's qemu process ended while waiting for SSH; "
                    f"console log {self.console_log}:\n{tail(self.console_log)}"
                )
            if now >= deadline:
                raise LabError(
                    f"no SSH from the VM within {timeout:.0f} s (last error: {last_error}); "
                    f"console log {self.console_log}, last lines:\n{tail(self.console_log)}"
                )
            if now - last_report >= 5:
                _log(f"waiting for SSH … {now - t0:.0f} s")
                last_report = now
            try:
                proc = self.ssh(
                    "cat /proc/sys/kernel/random/boot_id",
                    check=False,
                    timeout=max(5.0, min(30.0, deadline - now)),
                    connect_timeout=5,
                )
            except subprocess.TimeoutExpired:
                last_error = "ssh timed out"
                continue
            boot_id = proc.stdout.strip()
            if proc.returncode == 0 and boot_id and boot_id != previous_boot_id:
                return boot_id
            last_error = (proc.stderr.strip().splitlines() or ["same boot_id"])[-1]
            time.sleep(1)

    # --- SSH -----------------------------------------------------------------------------------
    def ssh_argv(self, user: str = "root", connect_timeout: int = 10) -> list[str]:
        """OpenSSH client arguments (up to and including the destination)."""
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-p",
            str(self.ssh_port),
            "-i",
            str(self.ssh_key),
            "-a",
            "-x",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            f"ConnectTimeout={connect_timeout}",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=6",
            "-o",
            "LogLevel=ERROR",
            f"{user}@127.0.0.1",
        ]

    def ssh(
        self,
        command: str | Sequence[str],
        user: str = "root",
        check: bool = True,
        timeout: float | None = 120,
        input: str | None = None,
        connect_timeout: int = 10,
    ) -> subprocess.CompletedProcess:
        """Run ``command`` (a shell string, or argv that gets quoted) in the VM over SSH."""
        if not isinstance(command, str):
            command = shlex.join(command)
        argv = [*self.ssh_argv(user, connect_timeout), "--", command]
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise SSHCommandError(
                proc.returncode, f"ssh {user}@vm {command}", proc.stdout, proc.stderr
            )
        return proc

    def kernel_stuck(self) -> str | None:
        """The console line saying the guest kernel is stuck for good, or None."""
        try:
            text = self.console_log.read_text(errors="replace")
        except OSError:
            return None
        for m in KERNEL_STUCK.finditer(text):
            if int(m[1]) >= KERNEL_STUCK_SECONDS:
                return m[0].strip()
        return None

    def current_boot_id(self) -> str:
        return self.ssh("cat /proc/sys/kernel/random/boot_id", timeout=60).stdout.strip()

    def reboot(self, timeout: float = DEFAULT_BOOT_TIMEOUT) -> str:
        """Reboot the guest and wait for SSH with a new boot_id; return it."""
        old = self.current_boot_id()
        t0 = time.monotonic()
        _log("rebooting the VM")
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.ssh("systemctl --no-block reboot", check=False, timeout=30)
        self.boot_id = self._wait_for_ssh(timeout, t0, previous_boot_id=old)
        self.save_state()
        _log(f"VM back after reboot in {time.monotonic() - t0:.1f} s")
        return self.boot_id

    # --- snapshots ----------------------------------------------------------------------------
    def qmp(self, command: str, timeout: float = 300, **arguments: object) -> object:
        """One QMP command; its ``return`` value (LabError on an error answer)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.qmp_socket))
            stream = sock.makefile("rwb")

            def answer() -> dict:
                while True:  # events (STOP, RESUME, ...) may come before the answer
                    line = stream.readline()
                    if not line:
                        raise LabError(f"QMP: the VM closed its monitor during {command}")
                    msg = json.loads(line)
                    if "return" in msg or "error" in msg:
                        return msg

            def send(name: str, args: dict) -> object:
                stream.write(json.dumps({"execute": name, "arguments": args}).encode() + b"\n")
                stream.flush()
                msg = answer()
                if "error" in msg:
                    raise LabError(f"QMP {name}: {msg['error'].get('desc', msg['error'])}")
                return msg["return"]

            json.loads(stream.readline())  # the greeting
            send("qmp_capabilities", {})
            return send(command, arguments)

    def _hmp(self, line: str, timeout: float = 300) -> None:
        out = str(self.qmp("human-monitor-command", timeout=timeout, **{"command-line": line}))
        if out.strip():  # savevm/loadvm print nothing when they succeed
            raise LabError(f"QEMU monitor: {line}: {out.strip()}")

    def save_snapshot(self, name: str) -> None:
        """Save the running VM (memory, devices and disk) as ``name`` in its overlay.

        Taken between SSH sessions: a connection open now would be a dead one after a restore.
        """
        t0 = time.monotonic()
        self._hmp(f"savevm {name}")
        _log(f"snapshot {name!r} saved in {time.monotonic() - t0:.1f} s")

    def restore_snapshot(self, name: str, timeout: float = 60) -> None:
        """Put the VM back to snapshot ``name`` (as if nothing had happened since), its clock set
        to now (it would run on from the moment of the snapshot), and wait for SSH."""
        t0 = time.monotonic()
        self._hmp(f"loadvm {name}")
        deadline = time.monotonic() + timeout
        while True:
            try:
                proc = self.ssh(
                    f"date -s @{time.time():.3f} >/dev/null && cat /proc/sys/kernel/random/boot_id",
                    check=False,
                    timeout=30,
                    connect_timeout=5,
                )
            except subprocess.TimeoutExpired:
                proc = None
            if proc is not None and proc.returncode == 0:
                self.boot_id = proc.stdout.strip()
                break
            if time.monotonic() > deadline:
                detail = proc.stderr.strip() if proc is not None else "ssh timed out"
                raise LabError(f"no SSH after restoring snapshot {name!r}: {detail}")
            time.sleep(0.5)
        self.save_state()
        _log(f"snapshot {name!r} restored in {time.monotonic() - t0:.1f} s")

    def stop(self, timeout: float = 60) -> None:
        """Power the VM off (kill qemu if it lingers) and drop the overlay. Idempotent."""
        pid = self.pid
        if pid is not None:
            t0 = time.monotonic()
            grace = 0.0
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc = self.ssh(
                    "systemctl --no-block poweroff", check=False, timeout=20, connect_timeout=5
                )
                if proc.returncode != 255:  # 255: no SSH connection, so no poweroff either
                    grace = timeout
            while self.is_running() and time.monotonic() - t0 < grace:
                time.sleep(0.5)
            for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                if not self.is_running():
                    break
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
                t1 = time.monotonic()
                while self.is_running() and time.monotonic() - t1 < wait:
                    time.sleep(0.2)
            _log(f"VM stopped in {time.monotonic() - t0:.1f} s")
        if self._watchdog is not None:
            with contextlib.suppress(ProcessLookupError):
                self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None
        self.pidfile.unlink(missing_ok=True)
        self.overlay.unlink(missing_ok=True)
        self.qmp_socket.unlink(missing_ok=True)

    def __enter__(self) -> LabVM:
        if not self.is_running():
            self.boot()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- pyinfra -------------------------------------------------------------------------------
    def pyinfra_host_data(self, user: str = "root") -> dict:
        """pyinfra (3.10) SSH connector data reaching the VM with strict host key checking."""
        return {
            "ssh_hostname": "127.0.0.1",
            "ssh_port": self.ssh_port,
            "ssh_user": user,
            "ssh_key": str(self.ssh_key),
            "ssh_known_hosts_file": str(self.known_hosts),
            "ssh_strict_host_key_checking": "yes",
            "ssh_config_file": "/dev/null",
            "ssh_allow_agent": False,
            "ssh_look_for_keys": False,
            "ssh_forward_agent": False,
            # sshd listens on 22 behind QEMU's port forward from ssh_port: the port the firewall
            # must keep open is 22, as on a VPS reached through a provider's port forward.
            "ssh_port_allowed": 22,
        }

    def write_pyinfra_inventory(
        self, path: str | os.PathLike, user: str = "root", name: str = "vps", sudo: bool = False
    ) -> Path:
        """Write a pyinfra inventory file (Python) with the one host ``name``."""
        data = self.pyinfra_host_data(user)
        if sudo:
            data["_sudo"] = True
        path = Path(path)
        path.write_text(
            "# pyinfra inventory of the lab VM (written by lab.vm)\n"
            f"hosts = [({name!r}, {data!r})]\n"
        )
        return path


# --- CLI -------------------------------------------------------------------------------------


def default_run_dir(suite: str) -> Path:
    env = os.environ.get("IPIP6_LAB_RUN_DIR")
    return Path(env) if env else cache_root() / "run" / f"cli-{suite}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.vm", description="the lab VM")
    ap.add_argument("--suite", default=None, help="bookworm (default), bullseye or trixie")
    ap.add_argument("--run-dir", default=None, help="state directory (env IPIP6_LAB_RUN_DIR)")
    sub = ap.add_subparsers(dest="action", required=True)
    p_boot = sub.add_parser("boot", help="boot the VM (no-op when it runs)")
    p_boot.add_argument("--timeout", type=float, default=DEFAULT_BOOT_TIMEOUT)
    sub.add_parser("stop", help="power the VM off")
    sub.add_parser("status", help="print the VM's state; exit 1 when it is not running")
    p_ssh = sub.add_parser("ssh", help="run a command (or a shell) in the VM")
    p_ssh.add_argument("--user", default="root")
    p_ssh.add_argument("cmd", nargs=argparse.REMAINDER)
    p_inv = sub.add_parser("inventory", help="write a pyinfra inventory file for the VM")
    p_inv.add_argument("--user", default="root")
    p_inv.add_argument("--sudo", action="store_true")
    p_inv.add_argument("path")
    args = ap.parse_args(argv)

    suite = args.suite or default_suite()
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(suite)
    has_state = (run_dir / "state.json").is_file()
    try:
        if args.action == "boot":
            if has_state:
                vm = LabVM.from_run_dir(run_dir)
                if vm.is_running():
                    _log(f"already running: pid {vm.pid}, ssh 127.0.0.1:{vm.ssh_port}")
                    return 0
            vm = LabVM(suite=suite, run_dir=run_dir)
            try:
                vm.boot(timeout=args.timeout)
            except BaseException:
                vm.stop()
                raise
            return 0
        if not has_state:
            print(f"[lab] no VM state in {run_dir}", file=sys.stderr)
            return 0 if args.action == "stop" else 1
        vm = LabVM.from_run_dir(run_dir)
        if args.action == "stop":
            vm.stop()
            return 0
        if args.action == "status":
            running = vm.is_running()
            print(
                json.dumps(
                    {
                        "running": running,
                        "pid": vm.pid,
                        "suite": vm.suite,
                        "ssh_port": vm.ssh_port,
                        "run_dir": str(vm.run_dir),
                        "console_log": str(vm.console_log),
                        "ssh": shlex.join(vm.ssh_argv()),
                    },
                    indent=2,
                )
            )
            return 0 if running else 1
        if not vm.is_running():
            print(f"[lab] the VM of {run_dir} is not running", file=sys.stderr)
            return 1
        if args.action == "ssh":
            cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            argv_ = vm.ssh_argv(args.user)
            if cmd:
                argv_ += ["--", shlex.join(cmd) if len(cmd) > 1 else cmd[0]]
            return subprocess.call(argv_)
        if args.action == "inventory":
            path = vm.write_pyinfra_inventory(args.path, user=args.user, sudo=args.sudo)
            print(path)
            return 0
    except (LabError, ImageError) as exc:
        print(f"[lab] ERROR: {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
