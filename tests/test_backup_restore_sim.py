"""Router backups and restore.py through the real pyinfra CLI, over real SSH, against the RTX
simulator.

A router-only inventory (the VPS managed elsewhere) with the project's own deploy.py and
restore.py copied into a temporary directory, run there as a user would: the backups land in
that directory's ``backups/``. What the router holds is looked at through the simulator's
public API only.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from ipip6.rtx.config import RouterConfig, redact_text
from lab.homenet import ROUTER_FACTORY_CONFIG, ROUTER_WAN_IPV6
from lab.pyinfra_cli import REPO, run_pyinfra
from tests.simulators import ADMIN, PASSWORD, USER

pytestmark = pytest.mark.sim

VPS = "2001:db8:100::10"
SESSION = {"console lines infinity", "console columns 200", "administrator", "exit"}
# The lab router's PPPoE password (pp auth myname): kept on the router, hidden in a backup.
SECRET = "lab-pppoe-password"
MTU = " ip tunnel mtu {}"


class Run:
    """A pyinfra run and what the router was sent meanwhile."""

    def __init__(self, result, sent: list[str]):
        self.result, self.sent = result, sent
        self.ok, self.output = result.ok, result.output
        self.writes = [c for c in sent if not c.startswith("show ") and c not in SESSION]

    def __repr__(self) -> str:
        return repr(self.result)


class Router:
    """The simulator, the working directory and the runs of the user's pyinfra commands."""

    def __init__(self, sim, tmp: Path):
        self.sim, self.tmp = sim, tmp

    def run(self, target: str = "deploy.py", *args: str):
        mark = len(self.sim.command_log)
        result = run_pyinfra(
            "inventory.py", *args, target=target, cwd=self.tmp, env={"PYTHONPATH": str(REPO)}
        )
        return Run(result, [e.command for e in self.sim.command_log[mark:]])

    def backups(self) -> list[Path]:
        folder = self.tmp / "backups" / "home"
        return sorted(folder.iterdir()) if folder.exists() else []

    def owned(self) -> list[str]:
        lines = self.sim.running_config_text.splitlines()
        return [x for x in lines if x.startswith(("ip route default", "tunnel select 1", " "))]


@pytest.fixture
def router(sims, tmp_path) -> Router:
    sim = sims(ROUTER_FACTORY_CONFIG)
    key = sim.host_key
    (tmp_path / "known_hosts").write_text(
        f"[127.0.0.1]:{sim.port} {key.get_name()} {key.get_base64()}\n"
    )
    data = {
        "ssh_hostname": "127.0.0.1",
        "ssh_port": sim.port,
        "ssh_user": USER,
        "ssh_password": PASSWORD,
        "rtx_admin_password": ADMIN,
        "rtx_legacy_ssh": True,
        "ssh_known_hosts_file": str(tmp_path / "known_hosts"),
        "vps_ipv6": VPS,
        "router_ipv6": ROUTER_WAN_IPV6,
        "home_networks": ["198.51.100.0/24"],
        "rtx_vps_managed_elsewhere": True,
        "tunnel_inner_network": False,
    }
    (tmp_path / "inventory.py").write_text(f"rtx = [('@rtx/home', {data!r})]\n")
    for name in ("deploy.py", "restore.py"):
        shutil.copy(REPO / name, tmp_path / name)
    return Router(sim, tmp_path)


def test_a_backup_before_each_changing_run_and_none_on_a_no_op_or_a_dry_run(router):
    factory = router.sim.running_config_text
    first = router.run()
    assert first.ok, first
    files = router.backups()
    assert [f.name.split("-", 2)[2] for f in files] == ["running.txt", "saved.txt"]
    assert f"backed up the router's config to {files[0]}" in first.output
    running, saved = (f.read_text() for f in files)
    # As the router printed it, header included: the factory config before the deploy.
    assert running.startswith("# RTX1200 Rev.10.01.78")
    assert RouterConfig.parse(running).lines == RouterConfig.parse(redact_text(factory)).lines
    for text in (running, saved):
        assert SECRET not in text and "\n pp auth <hidden>\n" in text
        assert "tunnel select 1" not in text
    assert (router.tmp / "backups" / ".gitignore").read_text() == "*\n"
    assert oct(files[0].stat().st_mode & 0o777) == "0o600"

    # A no-op and a dry run of a change write nothing.
    assert router.run().ok and len(router.backups()) == 2
    dry = router.run("deploy.py", "--dry", "--data", "tunnel_mtu=1400")
    assert dry.ok and dry.writes == [] and len(router.backups()) == 2

    # A change: one more backup, of the config before it (MTU 1460), taken once per run.
    change = router.run("deploy.py", "--data", "tunnel_mtu=1400")
    assert change.ok, change
    files = router.backups()
    assert len(files) == 4
    assert change.output.count("backed up the router's config") == 1
    assert MTU.format(1460) in files[2].read_text() and MTU.format(1400) in router.owned()
    assert MTU.format(1460) in files[3].read_text()  # the saved one, before this run's save


def test_a_backup_that_cannot_be_written_sends_nothing(router):
    (router.tmp / "not-a-folder").write_text("a file\n")
    run = router.run("deploy.py", "--data", "rtx_backup_dir=not-a-folder/backups")
    assert not run.ok
    assert "could not create the backup folder" in run.output
    assert "nothing was sent to the router" in run.output
    assert run.writes == []
    assert "tunnel select 1" not in router.sim.running_config_text
    assert not router.sim.dirty


def test_restore_of_an_older_backup_converges_and_a_rerun_is_a_no_op(router):
    assert router.run().ok
    assert router.run("deploy.py", "--data", "tunnel_mtu=1400").ok
    before_mtu_change = router.backups()[3]  # the saved config the MTU change started from
    other_lines = [
        x for x in router.sim.running_config_text.splitlines() if x not in router.owned()
    ]

    dry = router.run(
        "restore.py", "--dry", "--diff", "--data", f"rtx_restore_from={before_mtu_change}"
    )
    assert dry.ok, dry
    assert dry.writes == [] and len(router.backups()) == 4
    diff = re.sub(r"\x1b\[[0-9;]*m", "", dry.output)
    assert re.search(r"^ *- +ip tunnel mtu 1400$", diff, re.M), diff
    assert re.search(r"^ *\+ +ip tunnel mtu 1460$", diff, re.M), diff

    run = router.run("restore.py", "--data", f"rtx_restore_from={before_mtu_change}")
    assert run.ok, run
    assert MTU.format(1460) in router.owned() and MTU.format(1400) not in router.owned()
    assert router.sim.running_config_text == router.sim.saved_config_text  # saved
    assert len(router.backups()) == 6  # the restore backed up what it changed
    assert MTU.format(1400) in router.backups()[4].read_text()
    assert [
        x for x in router.sim.running_config_text.splitlines() if x not in router.owned()
    ] == other_lines
    assert SECRET in router.sim.running_config_text  # the owner's line untouched

    again = router.run("restore.py", "--data", f"rtx_restore_from={before_mtu_change}")
    assert again.ok and again.writes == [] and len(router.backups()) == 6


def test_restore_of_the_backup_from_before_the_first_deploy_takes_the_tunnel_away(router):
    assert router.run().ok
    factory_backup = router.backups()[1]
    run = router.run("restore.py", "--data", f"rtx_restore_from={factory_backup}")
    assert run.ok, run
    assert "has no tunnel of this deploy's enabled" in run.output
    lines = router.sim.running_config_text.splitlines()
    assert not any(
        x.startswith(("ip route default gateway tunnel", " tunnel endpoint")) for x in lines
    )
    assert router.sim.running_config_text == router.sim.saved_config_text
    # And a deploy puts it back.
    assert router.run().ok
    assert "tunnel select 1" in router.sim.running_config_text


def test_a_backup_of_another_router_is_refused_with_nothing_sent(router):
    assert router.run().ok
    theirs = router.tmp / "theirs.txt"
    text = router.backups()[1].read_text()
    theirs.write_text(text.replace("00:a0:de:00:12:", "00:a0:de:00:99:"))
    run = router.run("restore.py", "--data", f"rtx_restore_from={theirs}")
    assert not run.ok
    assert "it is a backup of another router (MAC Address 00:a0:de:00:99:01" in run.output
    assert "Nothing was sent" in run.output
    assert run.writes == [] and len(router.backups()) == 2


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("ip route default gateway pp 1\n", "is not a router config backup"),
        (b"\xff\xfe# RTX1200\n", "is not a text file"),
    ],
)
def test_a_file_that_is_no_backup_stops_the_run_before_any_host_is_contacted(
    router, content, expected
):
    path = router.tmp / "wrong.txt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    run = router.run("restore.py", "--data", f"rtx_restore_from={path}")
    assert not run.ok
    assert "invalid data for host @rtx/home:" in run.output
    assert f"rtx_restore_from (value {str(path)!r}): " in run.output
    assert expected in run.output
    assert run.sent == []  # not even a login


def test_restore_without_a_backup_named_sends_nothing(router):
    assert router.run().ok
    run = router.run("restore.py")
    assert not run.ok
    assert "rtx_restore_from is not set for this router" in run.output
    assert "which backup to restore is never guessed" in run.output
    assert run.writes == [] and len(router.backups()) == 2
