"""`make test`: the VM tests and everything else at once, on this machine's two cores.

The VM tests run in one pytest process in file order (the modules build on each other; one VM,
booted once), at normal priority: their timings (failover, keepalive probes, transfers) are
real ones, and the emulated CPU needs a core when it asks for one. Everything else runs
beside them in a second pytest process, spread over two pytest-xdist workers at the lowest
CPU priority, so that it takes only what the VM leaves idle (the VM tests mostly wait on it).
After the Debian 12 VM run, the nftables module runs on a Debian 13 VM of its own. The
second process's report is printed when the VM runs end; the last line counts every run.

    python -m lab.run_tests [PYTEST ARGS…]   # passed to both runs
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def counts(junit: Path) -> dict[str, int]:
    """passed/failed/errors/skipped of one run's JUnit XML (all zero when it wrote none)."""
    out = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError):
        return out
    for suite in root.iter("testsuite"):
        tests = int(suite.get("tests", 0))
        failed, errors = int(suite.get("failures", 0)), int(suite.get("errors", 0))
        skipped = int(suite.get("skipped", 0))
        out["failed"] += failed
        out["errors"] += errors
        out["skipped"] += skipped
        out["passed"] += tests - failed - errors - skipped
    return out


def main(argv: list[str]) -> int:
    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="ipip6-tests-"))
    python = sys.executable
    common = ["-ra", "-p", "no:cacheprovider", *argv]
    others_log = work / "others.log"
    with others_log.open("w") as log:
        others = subprocess.Popen(
            [python, "-m", "pytest", "-n", "2", "-m", "not vm", "--durations=10"]
            + [f"--junitxml={work / 'others.xml'}", *common],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=lambda: os.nice(19),
        )
        try:
            vm = subprocess.call(
                [python, "-m", "pytest", "-v", "-m", "vm", "--durations=15"]
                + ["--ignore=tests/test_vps_vm_nftables.py"]
                + [f"--junitxml={work / 'vm.xml'}", *common],
                cwd=REPO,
                stdin=subprocess.DEVNULL,
            )
            # The nftables module on Debian 13 (its default firewall), on a VM of its own after
            # the first: on Debian 12 its boot-order test was seen to stall.
            trixie = subprocess.call(
                [python, "-m", "pytest", "-v", "--durations=5", "tests/test_vps_vm_nftables.py"]
                + [f"--junitxml={work / 'trixie.xml'}", *common],
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "IPIP6_LAB_SUITE": "trixie"},
            )
            vm = vm or trixie
        finally:
            rest = others.wait()
    print("\n===== the unit and simulator tests (run beside the VM tests) =====", flush=True)
    sys.stdout.write(others_log.read_text(errors="replace"))
    parts = [counts(work / f"{name}.xml") for name in ("vm", "trixie", "others")]
    total = {k: sum(part[k] for part in parts) for k in parts[0]}
    wall = time.monotonic() - t0
    print(f"\nmake test: {wall:.0f} s wall (the VM run's exit {vm}, the others' exit {rest})")
    # pytest's own exit 5 (no test ran) is a failure here: `make test` must prove something.
    line = f"{total['passed']} passed, {total['failed'] + total['errors']} failed"
    print(line + (f", {total['skipped']} skipped" if total["skipped"] else ""), flush=True)
    return 0 if vm == 0 and rest == 0 and total["passed"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
