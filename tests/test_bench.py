"""The bench's short run (``python -m lab.bench --quick``), so that the bench itself cannot rot.

It asserts what was sent, never the seconds (this machine's load is not the code's): a router
no-op is the console set-up, logging in, one running and one saved config read and the config
file the router booted from, for one router as for ten (simulators as processes of their own).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lab.pyinfra_cli import REPO

pytestmark = pytest.mark.sim

# console lines, console columns, administrator, show config, show environment,
# show config 0, exit, exit
NO_OP_LINES = 8


def test_quick_bench_prints_the_table_and_writes_the_figures(tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, "-m", "lab.bench", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads((out / "bench.json").read_text())
    rows = {row["case"]: row for row in figures["cases"]}
    assert figures["runs"] == 2
    # The floor runs at least three times: it is the figure the no-op is compared with.
    assert all(row["runs"] == 2 for name, row in rows.items() if not name.startswith("floor"))

    for config in ("factory", "busy"):
        assert rows[f"no-op ({config})"]["sent"] == [NO_OP_LINES]
        # Only the changed line is sent, then it is checked and saved; first runs send the
        # whole tunnel section (the same on both configs: tunnel 1 is free on each).
        change = rows[f"one-value change ({config})"]["sent"]
        assert change == rows["one-value change (factory)"]["sent"]
        assert (
            len(change) == 1 and NO_OP_LINES < change[0] < rows[f"first run ({config})"]["sent"][0]
        )
    assert rows["no-op, 1 routers"]["sent"] == [NO_OP_LINES]
    assert rows["no-op, 10 routers"]["sent"] == [10 * NO_OP_LINES]
    assert rows["first run, 10 routers"]["sent"] == [10 * rows["first run, 1 routers"]["sent"][0]]
    floor = next(row for name, row in rows.items() if name.startswith("floor"))
    assert floor["sent"] == [6]

    assert "no-op, 10 routers / one router" in figures["ratios"]
    assert "one-router no-op (busy) / floor" in figures["ratios"]
    assert "| no-op, 10 routers" in proc.stdout  # the table
