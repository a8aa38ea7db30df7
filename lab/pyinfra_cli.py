"""Run the real pyinfra CLI as a user would, and read what it reports (``--json``).

Shared by the tests and ``make demo``: one way to run a deploy and to ask which operations
changed something, planned a change, or which hosts failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYINFRA = str(Path(sys.executable).parent / "pyinfra")
_backups: list[str] = []


def lab_backup_dir() -> str:
    """Where runs from the repository put their router backups: one temporary folder per
    process, so that the lab's runs do not fill the repository's ``backups/``."""
    if not _backups:
        _backups.append(tempfile.mkdtemp(prefix="ipip6-lab-backups-"))
    return _backups[0]


@dataclass
class DeployRun:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    results: dict = field(default_factory=dict)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def _ops(self) -> list[dict]:
        return (self.results.get("results") or {}).get("operations", [])

    def operations(self) -> list[str]:
        """The operations' names, in the order pyinfra ran them."""
        return [op["name"] for op in self._ops()]

    def changed(self, host: str | None = None) -> list[str]:
        """Operations that changed something (on ``host``, or on any)."""
        return [
            op["name"] for op in self._ops() if (host in op["success"] if host else op["success"])
        ]

    def planned(self, host: str | None = None) -> list[str]:
        """In a dry run: operations that would change something."""
        return [
            op["name"]
            for op in self.results.get("plan", [])
            if (host in op["hosts_with_change"] if host else op["hosts_with_change"])
        ]

    def op(self, name: str) -> dict:
        """One operation's results by name (empty lists when it did not run)."""
        for op in self._ops():
            if op["name"] == name:
                return op
        return {"success": [], "error": [], "no_change": []}

    @property
    def failed_hosts(self) -> list[str]:
        """Hosts pyinfra gave up on (empty when pyinfra stopped before printing results)."""
        return (self.results.get("results") or {}).get("failed_hosts", [])

    def __str__(self) -> str:
        return f"$ pyinfra … {' '.join(self.args)} → exit {self.returncode}\n{self.stderr[-8000:]}"


def write_inventory(directory: Path, groups: dict[str, list[tuple[str, dict]]]) -> Path:
    """An inventory file like the user's: module-level lists of (name, data) per group."""
    lines = [f"{group} = {hosts!r}" for group, hosts in groups.items()]
    path = Path(directory) / "inventory.py"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_pyinfra(
    inventory: str | os.PathLike,
    *args: str,
    target: str = "deploy.py",
    cwd: str | os.PathLike = REPO,
    json_output: bool = True,
    echo: Callable[[str], None] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 900,
) -> DeployRun:
    """``pyinfra INVENTORY TARGET [-y] [--json] ARGS`` in ``cwd`` (the repository by default).

    ``echo`` receives pyinfra's progress lines as they come (for the demo); without it the
    whole run is printed at the end, which pytest shows when a test fails.
    """
    # -y skips pyinfra's change detection, which is where diffs are printed: a dry run asks
    # for no confirmation anyway.
    confirm = [] if "--dry" in args else ["-y"]
    as_json = ["--json"] if json_output else []
    cmd = [PYINFRA, str(inventory), *target.split(), *confirm, *as_json, *args]
    if Path(cwd).resolve() == REPO and target.split()[0] in ("deploy.py", "restore.py"):
        cmd += ["--data", f"rtx_backup_dir={lab_backup_dir()}"]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **(env or {})}
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    err_lines: list[str] = []

    def pump() -> None:
        for line in proc.stderr:
            err_lines.append(line)
            if echo is not None:
                echo(line.rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        stdout = proc.stdout.read()
        proc.wait(timeout=timeout)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        reader.join(timeout=10)
    results: dict = {}
    first = stdout.strip().splitlines()[:1]
    if json_output and first and first[0].startswith("{"):
        try:
            results = json.loads(first[0])
        except json.JSONDecodeError:
            pass
    run = DeployRun(
        args=tuple(args),
        returncode=proc.returncode,
        stdout=stdout,
        stderr="".join(err_lines),
        seconds=time.monotonic() - t0,
        results=results,
    )
    if echo is None:  # otherwise it was shown as it came
        print(f"$ {' '.join(cmd)}\n--- exit {proc.returncode}")
        print(f"{stdout[-3000:]}\n{run.stderr[-8000:]}")
    return run
