"""Run the real pyinfra CLI on the project's deploy.py, as a user would, and read its results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYINFRA = str(Path(sys.executable).parent / "pyinfra")


@dataclass
class DeployRun:
    returncode: int
    stdout: str
    stderr: str
    results: dict = field(default_factory=dict)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def changed_ops(self) -> list[str]:
        """Names of operations that changed something on any host."""
        ops = self.results.get("results", {}).get("operations", [])
        return [op["name"] for op in ops if op["success"]]

    def failed_hosts(self) -> list[str]:
        return self.results.get("results", {}).get("failed_hosts", [])


def write_inventory(directory: Path, groups: dict[str, list[tuple[str, dict]]]) -> Path:
    """An inventory file like the user's: module-level lists of (name, data) per group."""
    lines = [f"{group} = {hosts!r}" for group, hosts in groups.items()]
    path = directory / "inventory.py"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_deploy(
    inventory: Path, *args: str, deploy: str = "deploy.py", timeout: int = 600
) -> DeployRun:
    """``pyinfra INVENTORY deploy.py [-y] --json ARGS`` from the repository, like a user."""
    # -y skips pyinfra's change detection, which is where diffs are printed: a dry run needs
    # no confirmation anyway.
    confirm = [] if "--dry" in args else ["-y"]
    cmd = [PYINFRA, str(inventory), deploy, *confirm, "--json", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    proc = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    results: dict = {}
    try:
        results = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except json.JSONDecodeError:
        pass
    run = DeployRun(proc.returncode, proc.stdout, proc.stderr, results)
    # Shown on failure by pytest: what pyinfra said.
    print(f"$ {' '.join(cmd)}\n--- exit {proc.returncode}\n{proc.stderr[-6000:]}")
    return run
