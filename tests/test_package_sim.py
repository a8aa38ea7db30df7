"""The package as a user installs it: the built wheel in a fresh venv, a deploy from a directory
that holds only the user's inventory, group_data and deploy file, against the RTX simulator.

Nothing of the repository is on the path of that run: if a template, a module or the connector's
entry point were missing from the wheel, the deploy would fail here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from lab.pyinfra_cli import REPO
from tests.simulators import ADMIN, PASSWORD, USER

pytestmark = pytest.mark.sim

VPS, ROUTER = "2001:db8:100::10", "2001:db8:200::1"


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # The build runs on a copy: a build leaves build/ and *.egg-info behind.
    src = out / "src"
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__"),
    )
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(src)])
    (found,) = out.glob("pyinfra_ipip6-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel and its dependencies (from the package index, or pip's
    cache), and nothing else of this project."""
    path = tmp_path_factory.mktemp("venv") / "v"
    base = getattr(sys, "_base_executable", sys.executable)
    _run([base, "-m", "venv", str(path)])
    _run([str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)])
    return path


def test_wheel_holds_the_product_only(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.startswith("pyinfra_ipip6-")}
    assert tops == {"ipip6", "operations"}
    # Every module of the product, and every template, is in it.
    for package in ("ipip6", "operations"):
        for module in (REPO / package).rglob("*.py"):
            assert module.relative_to(REPO).as_posix() in names
    templates = sorted(p.name for p in (REPO / "files").glob("*.j2"))
    assert templates
    assert sorted(n.split("/")[-1] for n in names if n.startswith("ipip6/templates/")) == templates
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))
    )
    assert b"rtx = ipip6.rtx.connector:RTXConnector" in entry_points


def test_deploy_from_an_empty_directory(venv, sims, tmp_path):
    work = tmp_path / "mine"
    work.mkdir()
    # The user's files only: the project's deploy file and group_data, their inventory.
    shutil.copy(REPO / "deploy.py", work / "deploy.py")
    shutil.copytree(REPO / "group_data", work / "group_data")
    sim = sims()
    key = sim.host_key
    (work / "known_hosts").write_text(
        f"[127.0.0.1]:{sim.port} {key.get_name()} {key.get_base64()}\n"
    )
    router = {
        "ssh_hostname": "127.0.0.1",
        "ssh_port": sim.port,
        "ssh_user": USER,
        "ssh_password": PASSWORD,
        "rtx_admin_password": ADMIN,
        "rtx_legacy_ssh": True,
        "ssh_known_hosts_file": str(work / "known_hosts"),
        "vps_ipv6": VPS,
        "router_ipv6": ROUTER,
        "home_networks": ["192.168.100.0/24"],
        "rtx_vps_managed_elsewhere": True,
        "tunnel_inner_network": False,
    }
    (work / "inventory.py").write_text(f"rtx = [('@rtx/lab', {router!r})]\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    python = str(venv / "bin" / "python")
    # The modules come from the venv's site-packages, not from a checkout.
    where = _run(
        [python, "-c", "import ipip6.vps.render as r, operations; print(r.TEMPLATES)"],
        cwd=work,
        env=env,
    ).stdout.strip()
    assert where.startswith(str(venv)) and where.endswith("ipip6/templates"), where
    proc = subprocess.run(
        [str(venv / "bin" / "pyinfra"), "-y", "inventory.py", "deploy.py"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert f" tunnel endpoint address {VPS}" in sim.running_config_text
    assert sim.saved_config_text == sim.running_config_text  # verified, then saved
