"""``make bench``: what a run costs, end by end, measured the way a user runs it.

For each case: wall seconds (min/median/max of N runs), the controller's CPU seconds (pyinfra's
process, user + system) and what was sent: router lines (from each simulator's own log) or VPS
commands (pyinfra's ``-vv`` echo of every command it runs, facts included).

- router: first run, no-op and a one-value change, on the factory and a busy config;
- scaling: 1, 10 and 50 routers (each simulator a process of its own) in one no-op run and one
  first run, with the ratio to one router;
- floor: a bare paramiko session that logs in, sets the console, enters administrator mode and
  reads ``show config`` once: what a no-op cannot go below (its ratio is printed);
- VPS (``--vps``, the lab VM): first run (once: it cannot be repeated on the same VM), no-op,
  ``--dry --diff`` no-op and a one-value change.

The figures go to ``bench.json`` and the scaling plot to ``bench.png`` (matplotlib, if
installed: ``pip install -e '.[bench]'``). ``--quick`` (1 and 10 routers, 2 runs, no VM) is
what CI runs, through ``tests/test_bench.py``, which asserts the counts, never the seconds.

Only loopback: the simulators listen on 127.0.0.1, the VM is reached through QEMU's user
network.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from argparse import SUPPRESS
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lab.pyinfra_cli import REPO, run_pyinfra

CONFIGS = REPO / "rtxsim" / "configs"
USER, PASSWORD, ADMIN = "admin", "bench-login-pw", "bench-admin-pw"
# Documentation prefixes only (2001:db8::/32, 198.51.100.0/24).
VPS_IPV6 = "2001:db8:100::10"
HOME_NETWORK = "198.51.100.0/24"


def router_ipv6(i: int) -> str:
    return f"2001:db8:200:{i:x}::1"


# --------------------------------------------------------------------------------------------
# simulated routers, each a process of its own


@dataclass
class SimProcess:
    """``python -m rtxsim`` on a free loopback port, its command log in a file."""

    proc: subprocess.Popen
    port: int
    log: Path
    host_key: Path

    def lines_sent(self) -> int:
        """Non-empty lines received so far (the password and the single-key answers are no
        lines: see the simulator's command log)."""
        text = self.log.read_text(encoding="utf-8") if self.log.exists() else ""
        return sum(1 for line in text.splitlines() if line.split("\t", 2)[-1])

    def known_hosts_line(self) -> str:
        import paramiko

        key = paramiko.RSAKey.from_private_key_file(str(self.host_key))
        return f"[127.0.0.1]:{self.port} {key.get_name()} {key.get_base64()}\n"


def start_routers(count: int, config: str, workdir: Path) -> list[SimProcess]:
    """``count`` simulators (RTX830 profile: modern SSH), one host key for all: the first
    creates it before it listens, the others start side by side after it."""
    workdir.mkdir(parents=True, exist_ok=True)
    key = workdir / "host_key"
    started: list[tuple[subprocess.Popen, Path, int | None]] = []
    for i in range(count):
        log = workdir / f"commands-{i}.log"
        argv = [sys.executable, "-m", "rtxsim", "--config", str(CONFIGS / config)]
        argv += ["--port", "0", "--profile", "rtx830", "--user", USER, "--password", PASSWORD]
        argv += ["--admin-password", ADMIN, "--host-key", str(key), "--command-log", str(log)]
        proc = subprocess.Popen(
            argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        started.append((proc, log, _port_of(proc) if i == 0 else None))
    return [
        SimProcess(proc, port if port is not None else _port_of(proc), log, key)
        for proc, log, port in started
    ]


def _port_of(proc: subprocess.Popen) -> int:
    line = proc.stdout.readline()
    if "listening on 127.0.0.1:" not in line:
        proc.kill()
        raise RuntimeError(f"rtxsim did not start: {line!r}{proc.stdout.read()[-2000:]}")
    return int(line.rsplit(":", 1)[1])


def stop_routers(sims: Sequence[SimProcess]) -> None:
    for sim in sims:
        sim.proc.terminate()
    for sim in sims:
        try:
            sim.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim.proc.kill()


def write_router_inventory(workdir: Path, sims: Sequence[SimProcess], **extra) -> Path:
    """A user's directory: inventory.py (routers only, their VPS managed elsewhere), the
    project's deploy.py, a known_hosts file."""
    known = workdir / "known_hosts"
    known.write_text("".join(s.known_hosts_line() for s in sims))
    hosts = []
    for i, sim in enumerate(sims):
        data = {
            "ssh_hostname": "127.0.0.1",
            "ssh_port": sim.port,
            "ssh_user": USER,
            "ssh_password": PASSWORD,
            "ssh_known_hosts_file": str(known),
            "rtx_admin_password": ADMIN,
            "vps_ipv6": VPS_IPV6,
            "router_ipv6": router_ipv6(i + 1),
            "home_networks": [HOME_NETWORK],
            "rtx_vps_managed_elsewhere": True,
            "tunnel_inner_network": False,
            **extra,
        }
        hosts.append((f"@rtx/home{i + 1}", data))
    (workdir / "inventory.py").write_text(f"rtx = {hosts!r}\n")
    shutil.copy(REPO / "deploy.py", workdir / "deploy.py")
    return workdir / "inventory.py"


# --------------------------------------------------------------------------------------------
# one measured run


@dataclass
class Run:
    wall: float
    cpu: float
    sent: int


@dataclass
class Case:
    group: str
    name: str
    unit: str  # what `sent` counts
    runs: list[Run] = field(default_factory=list)
    hosts: int = 1

    def row(self) -> dict:
        walls = [r.wall for r in self.runs]
        return {
            "group": self.group,
            "case": self.name,
            "hosts": self.hosts,
            "runs": len(self.runs),
            "wall_min": min(walls),
            "wall_median": statistics.median(walls),
            "wall_max": max(walls),
            "cpu_median": statistics.median(r.cpu for r in self.runs),
            "sent": sorted({r.sent for r in self.runs}),
            "unit": self.unit,
        }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured(command: Callable[[], object]) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of the children reaped meanwhile, the command's result)."""
    cpu0, t0 = _children_cpu(), time.monotonic()
    result = command()
    return time.monotonic() - t0, _children_cpu() - cpu0, result


def pyinfra_run(workdir: Path, *args: str):
    run = run_pyinfra(
        "inventory.py",
        *args,
        cwd=workdir,
        json_output=False,
        echo=_quiet,
        env={"PYTHONPATH": str(REPO)},
        timeout=900,
    )
    if run.returncode != 0:
        raise RuntimeError(f"pyinfra {' '.join(args)} in {workdir} failed:\n{run.output[-4000:]}")
    return run


def _quiet(line: str) -> None:
    """pyinfra's progress, not shown (its output is in the error when a run fails)."""


def router_run(workdir: Path, sims: Sequence[SimProcess], *args: str) -> Run:
    before = sum(s.lines_sent() for s in sims)
    wall, cpu, _ = measured(lambda: pyinfra_run(workdir, *args))
    return Run(wall, cpu, sum(s.lines_sent() for s in sims) - before)


# --------------------------------------------------------------------------------------------
# the floor: a bare paramiko session


def floor_session(port: int, known_hosts: Path) -> int:
    """Log in, set the console, ``administrator``, ``show config`` once, leave. Returns the
    lines sent. Nothing of the project's: paramiko and a prompt at the end of the buffer."""
    import paramiko

    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.connect(
        "127.0.0.1",
        port=port,
        username=USER,
        password=PASSWORD,
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
    )
    try:
        channel = client.invoke_shell(term="vt100", width=200, height=24)
        buffer = b""

        def until(*ends: bytes) -> bytes:
            nonlocal buffer
            deadline = time.monotonic() + 30
            while not buffer.rstrip(b"\r\n").endswith(ends) and not buffer.endswith(ends):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no {ends!r} after {buffer[-200:]!r}")
                buffer += channel.recv(65536)
            out, buffer = buffer, b""
            return out

        until(b"> ")
        lines = ["console lines infinity", "console columns 200", "administrator"]
        for line in lines:
            channel.send(line.encode() + b"\r")
            until(b"> ", b"Password: ", "パスワード: ".encode())
        channel.send(ADMIN.encode() + b"\r")
        until(b"# ")
        channel.send(b"show config\r")
        if b"tunnel" not in until(b"# ") + b"tunnel":  # read whole: up to the prompt
            raise RuntimeError("show config read nothing")
        channel.send(b"exit\r")
        until(b"> ", b"(Y/N)")
        channel.send(b"exit\r")
        while channel.recv(65536):  # the router closes the channel: every line was taken
            pass
        return len(lines) + 3
    finally:
        client.close()


# --------------------------------------------------------------------------------------------
# the cases


def router_cases(workdir: Path, runs: int, echo: Callable[[str], None]) -> list[Case]:
    cases = []
    for config in ("factory.txt", "busy.txt"):
        label = config.removesuffix(".txt")
        first = Case("router", f"first run ({label})", "router lines")
        noop = Case("router", f"no-op ({label})", "router lines")
        change = Case("router", f"one-value change ({label})", "router lines")
        for r in range(runs):
            folder = workdir / f"router-{label}-{r}"
            sims = start_routers(1, config, folder)
            try:
                write_router_inventory(folder, sims)
                first.runs.append(router_run(folder, sims))
                noop.runs.append(router_run(folder, sims))
                # One line of the tunnel block (ip tunnel mtu), checked and saved.
                change.runs.append(router_run(folder, sims, "--data", "tunnel_mtu=1400"))
            finally:
                stop_routers(sims)
        for case in (first, noop, change):
            echo(_line(case))
        cases += [first, noop, change]
    return cases


def floor_case(workdir: Path, runs: int, echo: Callable[[str], None]) -> Case:
    folder = workdir / "floor"
    sims = start_routers(1, "busy.txt", folder)
    case = Case("router", "floor: bare paramiko session, one show config", "router lines")
    try:
        write_router_inventory(folder, sims)
        # A process of its own, like pyinfra's: Python's and paramiko's start-up count.
        argv = [sys.executable, "-m", "lab.bench", "--floor-session", str(sims[0].port)]
        argv.append(str(folder / "known_hosts"))
        for _ in range(runs):
            before = sims[0].lines_sent()
            wall, cpu, _ = measured(lambda: subprocess.run(argv, cwd=REPO, check=True))
            case.runs.append(Run(wall, cpu, sims[0].lines_sent() - before))
    finally:
        stop_routers(sims)
    echo(_line(case))
    return case


def scaling_cases(
    workdir: Path, counts: Sequence[int], runs: int, echo: Callable[[str], None]
) -> list[Case]:
    cases = []
    for count in counts:
        first = Case("scaling", f"first run, {count} routers", "router lines", hosts=count)
        noop = Case("scaling", f"no-op, {count} routers", "router lines", hosts=count)
        for r in range(runs):
            folder = workdir / f"scale-{count}-{r}"
            sims = start_routers(count, "busy.txt", folder)
            try:
                write_router_inventory(folder, sims)
                first.runs.append(router_run(folder, sims))
                noop.runs.append(router_run(folder, sims))
            finally:
                stop_routers(sims)
        echo(_line(first))
        echo(_line(noop))
        cases += [first, noop]
    return cases


def vps_cases(workdir: Path, runs: int, echo: Callable[[str], None]) -> list[Case]:
    """On the lab VM with the lab's simulated router, pyinfra limited to the VPS (the router's
    end is measured above): every command pyinfra runs there, facts included, is counted."""
    from lab.e2e import ROUTER_FACTORY_CONFIG, VPS_HOST, E2ELab
    from lab.host_packages import ensure_host_packages
    from lab.image import default_suite, ensure_image
    from lab.vm import LabVM

    ensure_host_packages()
    suite = default_suite()
    vm = LabVM(suite=suite, image=ensure_image(suite), owner_pid=os.getpid())
    vm.boot()
    lab = E2ELab(vm, workdir / "vps")
    try:
        lab.start_router()
        lab.net.build(ROUTER_FACTORY_CONFIG)

        def run(*args: str) -> Run:
            argv = [*args, "--limit", VPS_HOST, "-vv"]
            wall, cpu, result = measured(lambda: lab.deploy(*argv, echo=_quiet))
            if result.returncode != 0:
                raise RuntimeError(f"VPS run {args} failed:\n{result.output[-4000:]}")
            sent = sum(1 for line in result.output.splitlines() if ">>> " in line)
            return Run(wall, cpu, sent)

        first = Case("vps", "VPS first run (once: not repeatable on one VM)", "VPS commands")
        first.runs.append(run())
        noop = Case("vps", "VPS no-op", "VPS commands", runs=[run() for _ in range(runs)])
        dry = Case("vps", "VPS --dry --diff no-op", "VPS commands")
        dry.runs += [run("--dry", "--diff") for _ in range(runs)]
        change = Case("vps", "VPS one-value change", "VPS commands")
        for r in range(runs):  # each run changes the value back and forth
            change.runs.append(run("--data", f"tunnel_mtu={1400 if r % 2 == 0 else 1460}"))
    finally:
        with contextlib.suppress(Exception):
            lab.stop()
        vm.stop()
        shutil.rmtree(vm.run_dir, ignore_errors=True)
    cases = [first, noop, dry, change]
    for case in cases:
        echo(_line(case))
    return cases


# --------------------------------------------------------------------------------------------
# output


def _line(case: Case) -> str:
    row = case.row()
    return (
        f"  {row['case']:<52} {row['wall_min']:6.2f} {row['wall_median']:6.2f} "
        f"{row['wall_max']:6.2f}  {row['cpu_median']:6.2f}  {_sent(row)}"
    )


def _sent(row: dict) -> str:
    return f"{'/'.join(str(s) for s in row['sent'])} {row['unit']}"


def table(cases: Sequence[Case], ratios: dict[str, float]) -> str:
    head = f"| {'case':<52} | wall s min / median / max | CPU s | sent |"
    rows = [head, f"|{'-' * 54}|{'-' * 27}|{'-' * 7}|{'-' * 6}|"]
    for case in cases:
        r = case.row()
        walls = f"{r['wall_min']:.2f} / {r['wall_median']:.2f} / {r['wall_max']:.2f}"
        rows.append(f"| {r['case']:<52} | {walls:<25} | {r['cpu_median']:5.2f} | {_sent(r)} |")
    rows.append("")
    rows += [f"{name}: {value:.2f}×" for name, value in ratios.items()]
    return "\n".join(rows)


def ratio_figures(cases: Sequence[Case]) -> dict[str, float]:
    by_name = {c.name: c.row()["wall_median"] for c in cases}
    ratios = {}
    one_noop, one_first = by_name.get("no-op, 1 routers"), by_name.get("first run, 1 routers")
    for name, median in by_name.items():
        if name.startswith("no-op, ") and one_noop and not name.endswith(" 1 routers"):
            ratios[f"{name} / one router"] = median / one_noop
        if name.startswith("first run, ") and one_first and not name.endswith(" 1 routers"):
            ratios[f"{name} / one router"] = median / one_first
    floor = next((c for c in cases if c.name.startswith("floor")), None)
    noop = by_name.get("no-op (busy)")
    if floor is not None and noop:
        ratios["one-router no-op (busy) / floor"] = noop / floor.row()["wall_median"]
    return ratios


def plot(cases: Sequence[Case], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for prefix in ("no-op", "first run"):
        points = sorted(
            (c.hosts, c.row()["wall_median"])
            for c in cases
            if c.group == "scaling" and c.name.startswith(prefix)
        )
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=prefix)
    ax.set_xlabel("routers in one run (simulators, one process each)")
    ax.set_ylabel("wall seconds (median)")
    ax.set_title("pyinfra-ipip6: one run against many routers")
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def machine() -> dict:
    return {
        "date": time.strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.bench", description=__doc__)
    ap.add_argument("--runs", type=int, default=5, help="repetitions per case (default 5)")
    ap.add_argument("--routers", default="1,10,50", help="scaling: routers per run")
    ap.add_argument("--quick", action="store_true", help="1 and 10 routers, 2 runs, no VM")
    ap.add_argument("--vps", action="store_true", help="the VPS cases on the lab VM too")
    ap.add_argument(
        "--only",
        default="router,floor,scaling,vps",
        help="which groups to run, comma-separated (default: all; vps only with --vps)",
    )
    ap.add_argument("--out", type=Path, default=Path("bench"), help="folder for JSON and PNG")
    ap.add_argument("--floor-session", nargs=2, metavar=("PORT", "KNOWN_HOSTS"), help=SUPPRESS)
    args = ap.parse_args(argv)
    if args.floor_session:  # the floor, run by floor_case in a process of its own
        port, known_hosts = args.floor_session
        floor_session(int(port), Path(known_hosts))
        return 0
    runs = 2 if args.quick else args.runs
    counts = [1, 10] if args.quick else [int(n) for n in args.routers.split(",")]

    def echo(text: str) -> None:
        print(text, flush=True)

    echo(f"bench: {runs} runs per case; {machine()}")
    echo(f"  {'case':<52} {'min':>6} {'median':>6} {'max':>6}  {'CPU s':>6}  sent")
    with tempfile.TemporaryDirectory(prefix="ipip6-bench-") as tmp:
        workdir = Path(tmp)
        only = set(args.only.split(","))
        cases = router_cases(workdir, runs, echo) if "router" in only else []
        if "floor" in only:
            cases.append(floor_case(workdir, max(runs, 3), echo))
        if "scaling" in only:
            cases += scaling_cases(workdir, counts, runs, echo)
        if args.vps and "vps" in only and not args.quick:
            cases += vps_cases(workdir, runs, echo)
    ratios = ratio_figures(cases)
    echo("")
    echo(table(cases, ratios))
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "machine": machine(),
        "runs": runs,
        "cases": [c.row() for c in cases],
        "ratios": ratios,
        "raw": {c.name: [asdict(r) for r in c.runs] for c in cases},
    }
    (args.out / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    plotted = plot(cases, args.out / "bench.png")
    echo(
        f"\nwritten: {args.out / 'bench.json'}" + (f", {args.out / 'bench.png'}" if plotted else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
