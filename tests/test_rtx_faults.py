"""Router faults on purpose, through the real pyinfra CLI and the project's deploy.py.

Confirm or roll back: a connection cut in the middle of the delta, a command the router rejects
half-way, a failed verification, a router that restarts (or a connection that drops) just
before ``save``, a rollback that cannot be sent. Each ends with nothing saved that should not
be, the running config as it was (restored, or reverted by the restart), a clear error for that
host, and a re-run that converges and then has nothing left to do. Also: the half-applied and
unsaved states earlier runs may leave behind, and unsaved changes the deploy does not own.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab.pyinfra_cli import DeployRun, run_pyinfra
from rtxsim import Simulator
from tests.simulators import CONFIGS
from tests.test_rtx_deploy import (
    OURS,
    REPO,
    deploy_commands,
    host_key_line,
    owned_lines,
    router,
    writes,
)

pytestmark = pytest.mark.sim

TUNNEL_OP = "Router: ipip6 tunnel and default route"
SAVE_OP = "Router: verify by traffic from the VPS, then save"

# A deploy that only applies (no save): leaves the owned lines unsaved, like a run cut short.
TUNNEL_ONLY = """\
from pyinfra import host

from ipip6.settings import load_router_settings
from operations import rtx

rtx.tunnel(name="Tunnel only", settings=load_router_settings(host.name, host.data.dict()))
"""

# Sends CLI lines as they are: to set up states by hand.
RAW = """\
from pyinfra import host
from pyinfra.api import operation


@operation()
def lines(commands):
    yield from commands


lines(name="Raw lines", commands=host.data.get("_raw_lines", []))
"""

# The project's deploy with one more confirmation step that always fails.
FAILING_CHECK = """\
from pyinfra import host

from ipip6.rtx.commit import DEFAULT_CHECKS
from ipip6.settings import load_router_settings
from operations import rtx


def tunnel_is_up(ctx):
    return "tunnel 1 did not come up (test check)"


settings = load_router_settings(host.name, host.data.dict())
rtx.tunnel(name="Router: ipip6 tunnel and default route", settings=settings,
           checks=[*DEFAULT_CHECKS, tunnel_is_up])
rtx.save(name="Router: verify by traffic from the VPS, then save", settings=settings)
"""


def deploy(
    tmp: Path,
    hosts: list[tuple[str, dict]],
    *args: str,
    known: list[Simulator],
    deploy_text: str | None = None,
) -> DeployRun:
    """``pyinfra inventory.py deploy.py -y --json`` in ``tmp`` with the project's deploy.py
    (or ``deploy_text``), as a user runs it."""
    known_hosts = tmp / "known_hosts"
    known_hosts.write_text("".join(host_key_line(sim) for sim in known))
    hosts = [(name, {"ssh_known_hosts_file": str(known_hosts), **data}) for name, data in hosts]
    (tmp / "inventory.py").write_text(f"rtx = {hosts!r}\n")
    (tmp / "deploy.py").write_text(deploy_text or (REPO / "deploy.py").read_text())
    return run_pyinfra("inventory.py", *args, cwd=tmp, env={"PYTHONPATH": str(REPO)}, timeout=120)


def host_lines(run: DeployRun, name: str = "@rtx/home") -> str:
    return "\n".join(line for line in run.output.splitlines() if name in line)


def assert_converges(sim: Simulator, tmp: Path, hosts: list[tuple[str, dict]]) -> None:
    """A re-run brings the router to the desired lines, saved; the one after that sends no
    config command and saves nothing."""
    run = deploy(tmp, hosts, known=[sim])
    assert run.returncode == 0, host_lines(run)
    assert owned_lines(sim) == OURS
    assert sim.running_config_text == sim.saved_config_text
    assert not sim.dirty

    since = len(sim.command_log)
    again = deploy(tmp, hosts, known=[sim])
    assert again.returncode == 0
    assert again.op(TUNNEL_OP)["no_change"] == ["@rtx/home"]
    assert again.op(SAVE_OP)["no_change"] == ["@rtx/home"]
    assert writes(sim, since) == []
    assert not sim.dirty


def assert_untouched(sim: Simulator, before: str, *, save_tried: bool = False) -> None:
    """Running and saved config are both what they were before the run; nothing saved (and
    unless the fault is at ``save`` itself, not even tried)."""
    assert sim.saved_config_text == before
    assert sim.running_config_text == before
    assert ("save" in sim.commands) == save_tried


# -- the delta fails ---------------------------------------------------------------------------


def test_connection_cut_in_the_middle_of_the_delta(sims, tmp_path):
    sim = sims("busy.txt", drop_on=r"^ip tunnel mtu")
    before = sim.running_config_text
    hosts = [router("home", sim)]

    run = deploy(tmp_path, hosts, known=[sim])

    assert run.returncode != 0
    lines = host_lines(run)
    assert "connection lost after 3 of 8 commands" in lines
    assert "closed the connection" in lines
    assert "connecting again to roll back" in lines
    assert "rolled back: the owned lines are as they were before this run" in lines
    assert_untouched(sim, before)
    # The rollback went over a second SSH session.
    assert sim.sessions_started == 2

    sim.device.drop_on = None  # the link is back
    assert_converges(sim, tmp_path, hosts)


@pytest.mark.parametrize(
    ("fail", "sent"),
    [(r"^ip tunnel mtu", 3), (r"^ip route default gateway tunnel", 7)],
    ids=["in-the-tunnel-block", "last-command"],
)
def test_command_rejected_half_way(sims, tmp_path, fail, sent):
    sim = sims("busy.txt", fail_command=fail)
    before = sim.running_config_text
    hosts = [router("home", sim)]

    run = deploy(tmp_path, hosts, known=[sim])

    assert run.returncode != 0
    lines = host_lines(run)
    assert re.search(r"router rejected '[^']+': (Error|エラー):", lines)
    assert "rolled back: the owned lines are as they were before this run; nothing saved" in lines
    assert_untouched(sim, before)
    assert "ip route default gateway pp 1" in sim.running_config_text.splitlines()
    # The commands up to the rejected one went out, then the rollback on the same session:
    # out of any tunnel context, the default route back first.
    sent_writes = writes(sim)
    assert re.search(fail, sent_writes[sent])
    assert sent_writes[sent + 1 : sent + 3] == [
        "tunnel select none",
        "ip route default gateway pp 1",
    ]
    assert sim.sessions_started == 1

    sim.device.fail_command = None
    assert_converges(sim, tmp_path, hosts)


def test_failed_verification_rolls_back(sims, tmp_path):
    sim = sims("factory.txt")
    before = sim.running_config_text
    hosts = [router("home", sim)]

    run = deploy(tmp_path, hosts, known=[sim], deploy_text=FAILING_CHECK)

    assert run.returncode != 0
    lines = host_lines(run)
    assert "verification failed: tunnel 1 did not come up (test check)" in lines
    assert "rolled back" in lines
    assert_untouched(sim, before)
    assert run.op(SAVE_OP)["success"] == []

    assert_converges(sim, tmp_path, hosts)


# -- saving fails ------------------------------------------------------------------------------


class RestartOn:
    """For ``drop_on``: when a matching command arrives, the router restarts before applying
    it (running config := saved config, every session dropped). Fires once."""

    def __init__(self, sim: Simulator, pattern: str):
        self.sim = sim
        self.pattern = re.compile(pattern)
        self.fired = False

    def search(self, command: str) -> bool:
        if self.fired or not self.pattern.search(command):
            return False
        self.fired = True
        self.sim.restart()
        return True


def test_router_restarting_before_save(sims, tmp_path):
    sim = sims("busy.txt")
    sim.device.drop_on = RestartOn(sim, r"^save$")
    before = sim.running_config_text
    hosts = [router("home", sim)]

    run = deploy(tmp_path, hosts, known=[sim])

    assert sim.device.drop_on.fired
    assert run.returncode != 0
    lines = host_lines(run)
    assert "applied 8 commands and checked them on the router (not saved yet)" in lines
    assert "connection lost while saving" in lines
    assert "rolled back" in lines and "not saved" in lines
    # The restart reverted the running config; the rollback found nothing left to undo.
    assert_untouched(sim, before, save_tried=True)

    assert_converges(sim, tmp_path, hosts)


def test_connection_cut_at_save(sims, tmp_path):
    sim = sims("factory.txt", drop_on=r"^save$")
    before = sim.running_config_text
    hosts = [router("home", sim)]

    run = deploy(tmp_path, hosts, known=[sim])

    assert run.returncode != 0
    lines = host_lines(run)
    assert "connection lost while saving" in lines
    assert "rolled back: the owned lines are as they were before this run" in lines
    # Rolled back on a fresh session, without a restart.
    assert_untouched(sim, before, save_tried=True)

    sim.device.drop_on = None
    assert_converges(sim, tmp_path, hosts)


def test_save_rejected(sims, tmp_path):
    sim = sims("factory.txt", fail_command=r"^save$")
    before = sim.running_config_text
    hosts = [router("home", sim)]

    run = deploy(tmp_path, hosts, known=[sim])

    assert run.returncode != 0
    assert "router rejected 'save'" in host_lines(run)
    assert_untouched(sim, before, save_tried=True)


def test_rollback_that_cannot_be_sent_says_how_to_recover(sims, tmp_path):
    # The delta fails, and the rollback's connection drops every time: the running config is
    # left half-applied, the saved one untouched, and the error says so. A restart recovers.
    sim = sims("factory.txt", fail_command=r"^ip tunnel tcp mss", drop_on=r"^no tunnel encap")
    before = sim.running_config_text
    hosts = [router("home", sim)]

    run = deploy(tmp_path, hosts, known=[sim])

    assert run.returncode != 0
    lines = host_lines(run)
    assert "router rejected 'ip tunnel tcp mss limit auto'" in lines
    assert "ROLLBACK FAILED" in lines and "`restart`" in lines
    assert sim.saved_config_text == before
    assert "save" not in sim.commands
    assert sim.running_config_text != before  # half-applied, unsaved

    sim.restart()  # what the README tells the user to do
    assert sim.running_config_text == before
    sim.device.fail_command = sim.device.drop_on = None
    assert_converges(sim, tmp_path, hosts)


# -- states earlier runs leave behind ----------------------------------------------------------


def test_applied_but_unsaved_owned_lines_are_saved_by_the_next_run(sims, tmp_path):
    sim = sims("busy.txt")
    hosts = [router("home", sim)]
    first = deploy(tmp_path, hosts, known=[sim], deploy_text=TUNNEL_ONLY)
    assert first.returncode == 0
    assert owned_lines(sim) == OURS
    assert "gateway tunnel 1" not in sim.saved_config_text  # running ≠ saved

    dry = deploy(tmp_path, hosts, "--dry", known=[sim])
    assert dry.returncode == 0
    plan = {op["name"]: op["hosts_with_change"] for op in dry.results["plan"]}
    assert plan == {"VPS end deployed": [], TUNNEL_OP: [], SAVE_OP: ["@rtx/home"]}  # a save

    since = len(sim.command_log)
    run = deploy(tmp_path, hosts, known=[sim])
    assert run.returncode == 0
    assert run.op(TUNNEL_OP)["no_change"] == ["@rtx/home"]
    assert run.op(SAVE_OP)["success"] == ["@rtx/home"]
    assert writes(sim, since) == ["save"]
    assert sim.running_config_text == sim.saved_config_text
    assert_converges(sim, tmp_path, hosts)


def test_half_applied_delta_from_a_dead_run_converges(sims, tmp_path):
    # A run killed mid-delta (no rollback): two owned lines applied, unsaved.
    sim = sims("factory.txt")
    half = ["tunnel select 1", "tunnel encapsulation ipip", f"tunnel endpoint address {VPS6}"]
    raw = deploy(
        tmp_path,
        [router("home", sim, _raw_lines=[*half, "tunnel select none"])],
        known=[sim],
        deploy_text=RAW,
    )
    assert raw.returncode == 0
    assert sim.running_config_text != sim.saved_config_text

    hosts = [router("home", sim)]
    since = len(sim.command_log)
    run = deploy(tmp_path, hosts, known=[sim])
    assert run.returncode == 0
    # Only what was missing, then the save.
    assert writes(sim, since) == [
        "tunnel select 1",
        "ip tunnel mtu 1460",
        "ip tunnel tcp mss limit auto",
        "tunnel enable 1",
        "tunnel select none",
        "ip route default gateway tunnel 1",
        "save",
    ]
    assert_converges(sim, tmp_path, hosts)


VPS6 = "2001:db8:100::10"


def test_unsaved_changes_the_deploy_does_not_own_block_it(sims, tmp_path):
    sim = sims("factory.txt")
    saved_before = sim.saved_config_text
    raw = deploy(
        tmp_path,
        [router("home", sim, _raw_lines=["dns server 192.0.2.53"])],
        known=[sim],
        deploy_text=RAW,
    )
    assert raw.returncode == 0

    hosts = [router("home", sim)]
    since = len(sim.command_log)
    run = deploy(tmp_path, hosts, known=[sim])
    assert run.returncode != 0
    lines = host_lines(run)
    assert "unsaved changes outside the lines this deploy owns" in lines
    assert "+dns server 192.0.2.53" in lines
    assert "Nothing was changed" in lines
    assert writes(sim, since) == []
    assert sim.saved_config_text == saved_before
    assert "dns server 192.0.2.53" in sim.running_config_text  # left for the user to decide
    assert [c for _, c in deploy_commands(sim, since) if c == "save"] == []

    sim.restart()  # the user drops it
    assert_converges(sim, tmp_path, hosts)


def test_router_that_cannot_show_the_saved_config(sims, tmp_path):
    # Older firmware without `show config N`: save after a change only, never every run.
    sim = sims("factory.txt", fail_command=r"^show config 0$")
    hosts = [router("home", sim)]
    run = deploy(tmp_path, hosts, known=[sim])
    assert run.returncode == 0, host_lines(run)
    assert owned_lines(sim) == OURS
    assert sim.running_config_text == sim.saved_config_text

    since = len(sim.command_log)
    again = deploy(tmp_path, hosts, known=[sim])
    assert again.returncode == 0
    assert again.op(SAVE_OP)["no_change"] == ["@rtx/home"]
    assert writes(sim, since) == []


# -- the gate on its own, against the simulator's device (no SSH) ------------------------------


class DeviceRouter:
    """:class:`ipip6.rtx.commit.Router` on an rtxsim ``Device``: the CLI without a terminal.
    ``lose_after_save``: the connection drops right after ``save`` was applied."""

    def __init__(self, config: str, *, lose_after_save: bool = False):
        from rtxsim import Device
        from rtxsim.model import NO_CONTEXT

        self.device = Device((CONFIGS / config).read_text())
        self.context = self._top = NO_CONTEXT
        self.pending_commit = None
        self.alive = True
        self.lose_after_save = lose_after_save
        self.reconnects = 0

    def cli(self, line: str):
        from ipip6.rtx.session import CommandResult, SessionClosedError
        from rtxsim import CliError

        if not self.alive:
            raise SessionClosedError("not connected")
        if line == "save":
            self.device.save()
            if self.lose_after_save:
                self.alive = False
                raise SessionClosedError("the router closed the connection")
            return CommandResult(line, "")
        if line.startswith("show config"):
            lines = self.device.show_config_lines(saved=line.endswith(" 0"))
            return CommandResult(line, "\n".join(lines))
        try:
            self.context = self.device.apply(line, self.context, admin=True).context
        except CliError as exc:
            return CommandResult(line, "", f"Error: {exc.code}")
        return CommandResult(line, "")

    def reconnect(self) -> None:
        self.alive, self.context = True, self._top
        self.reconnects += 1


def _desired():
    from ipip6.rtx.config import desired_lines
    from ipip6.settings import load_router_settings

    data = {"vps_ipv6": VPS6, "router_ipv6": "2001:db8:200::1"}
    data |= {"home_networks": ["192.168.100.0/24"], "rtx_admin_password": "x"}
    settings = load_router_settings("r", data)
    return desired_lines(settings, settings.rtx_tunnel_number or 1)


def test_gate_save_that_went_through_before_the_connection_dropped_counts():
    from ipip6.rtx import commit as gate
    from ipip6.rtx.config import RouterConfig

    fake = DeviceRouter("busy.txt", lose_after_save=True)
    running = RouterConfig.parse("\n".join(fake.device.show_config_lines()))
    plan = gate.Plan.make(running, _desired())
    assert gate.commit(fake, plan).ok
    assert fake.pending_commit is not None
    after = RouterConfig.parse("\n".join(fake.device.show_config_lines()))

    result = gate.save(fake, plan.desired, after)

    assert result.ok, result.messages
    assert result.messages == [
        (
            "warning",
            "connection lost while saving: the router closed the connection; the saved "
            "config holds the change all the same",
        )
    ]
    assert fake.reconnects == 1 and fake.pending_commit is None
    assert fake.device.saved.text() == fake.device.running.text()


def test_gate_rollback_works_from_any_half_applied_state():
    # Whatever prefix of the delta got through, the rollback restores the owned lines.
    from ipip6.rtx import commit as gate
    from ipip6.rtx.config import RouterConfig

    probe = DeviceRouter("busy.txt")
    before_text = probe.device.running.text()
    running = RouterConfig.parse("\n".join(probe.device.show_config_lines()))
    plan = gate.Plan.make(running, _desired())
    for cut in range(len(plan.delta.commands) + 1):
        fake = DeviceRouter("busy.txt")
        for line in plan.delta.commands[:cut]:
            assert fake.cli(line).ok
        fake.alive = False  # and the connection is gone
        result = gate.rollback(fake, plan, "test")
        assert result.restored, (cut, result.messages)
        assert fake.device.running.text() == before_text, cut


# -- the check by traffic before the save (the gate; end to end in tests/test_e2e_vm.py) -------


def _applied(config: str = "busy.txt"):
    """A fake router with the delta committed in this run (not saved), and the plan."""
    from ipip6.rtx import commit as gate
    from ipip6.rtx.config import RouterConfig

    fake = DeviceRouter(config)
    running = RouterConfig.parse("\n".join(fake.device.show_config_lines()))
    plan = gate.Plan.make(running, _desired())
    assert gate.commit(fake, plan).ok
    return fake, plan


def _read(fake, saved: bool = False):
    from ipip6.rtx.config import RouterConfig

    return RouterConfig.parse("\n".join(fake.device.show_config_lines(saved=saved)))


def test_gate_saves_only_after_the_check_by_traffic_passed():
    from ipip6.rtx import commit as gate

    fake, plan = _applied()
    calls = []

    def ping():
        calls.append(fake.device.dirty)  # the change is applied, not saved, when it runs
        return True, "ping 192.168.100.1 from vps through tun-home: 3/3 replies"

    result = gate.save(fake, plan.desired, _read(fake), saved=_read(fake, True), verify=ping)

    assert result.ok, result.messages
    assert calls == [True]
    assert result.messages[0] == (
        "info",
        "verified by traffic: ping 192.168.100.1 from vps through tun-home: 3/3 replies",
    )
    assert fake.device.saved.text() == fake.device.running.text()
    assert fake.pending_commit is None


@pytest.mark.parametrize("raises", [False, True])
def test_gate_check_by_traffic_failing_rolls_back_this_runs_change(raises):
    from ipip6.rtx import commit as gate

    fake, plan = _applied()
    saved_before = fake.device.saved.text()

    def ping():
        if raises:
            raise ConnectionResetError("the VPS went away")
        return False, "ping 192.168.100.1 from vps through tun-home: 0/3 replies"

    result = gate.save(fake, plan.desired, _read(fake), saved=_read(fake, True), verify=ping)

    assert not result.ok and result.restored
    reason = result.messages[0][1]
    assert reason.startswith("verification by traffic failed: ")
    assert ("ConnectionResetError: the VPS went away" in reason) == raises
    assert fake.device.saved.text() == saved_before  # never saved
    assert fake.device.running.text() == saved_before  # busy.txt as it was
    assert fake.pending_commit is None


def test_gate_check_failing_on_an_earlier_runs_unsaved_change_goes_back_to_the_saved_config():
    # A run applied the change and died before saving; this run finds the owned lines already
    # as desired (nothing pending) but the saved config behind, and the tunnel carries nothing.
    from ipip6.rtx import commit as gate

    fake, plan = _applied()
    fake.pending_commit = None  # a new run: nothing committed by it
    saved = _read(fake, True)

    result = gate.save(
        fake, plan.desired, _read(fake), saved=saved, verify=lambda: (False, "0/3 replies")
    )

    assert not result.ok and result.restored, result.messages
    assert "the unsaved owned lines go back to the saved config's" in result.messages[0][1]
    assert fake.device.running.text() == fake.device.saved.text()


# -- after save: the flash ends as before the run, or the run says precisely otherwise ----------


class AfterSave:
    """For ``fail_command`` / ``drop_on``: matches ``pattern`` once, and only after ``save`` was
    received; ``action`` runs when it fires (a restart, a flash that did not take). With
    ``fault=False`` it only runs the action and lets the command through."""

    def __init__(self, pattern: str, action=None, *, fault: bool = True):
        self.pattern = re.compile(pattern)
        self.action = action
        self.fault = fault
        self.saved = False
        self.fired = False

    def search(self, command: str) -> bool:
        if command == "save":
            self.saved = True
            return False
        if self.fired or not self.saved or not self.pattern.search(command):
            return False
        self.fired = True
        if self.action is not None:
            self.action()
        return self.fault


def test_saved_config_that_cannot_be_read_back_is_restored_to_before(sims, tmp_path):
    sim = sims("busy.txt")
    sim.device.fail_command = AfterSave(r"^show config 0$")
    before = sim.running_config_text
    hosts = [router("home", sim)]

    run = deploy(tmp_path, hosts, known=[sim])

    assert sim.device.fail_command.fired
    assert run.returncode != 0
    lines = host_lines(run)
    assert "after save, show config 0 could not be read back" in lines
    assert "it holds the config from before this run" in lines
    assert "nothing saved" not in lines  # save was sent: never said
    assert sim.saved_config_text == before
    assert sim.running_config_text == before
    sim.device.fail_command = None
    assert_converges(sim, tmp_path, hosts)


def test_saved_config_that_differs_after_save_is_restored_to_before(sims, tmp_path):
    sim = sims("busy.txt")
    old = sim.device.saved.copy()

    def flash_did_not_take() -> None:
        with sim.device.lock:
            sim.device.saved = old.copy()

    sim.device.fail_command = AfterSave(r"^show config 0$", flash_did_not_take, fault=False)
    before = sim.running_config_text
    hosts = [router("home", sim)]

    run = deploy(tmp_path, hosts, known=[sim])

    assert run.returncode != 0
    lines = host_lines(run)
    assert "after save, show config 0 differs from the running config" in lines
    assert "it holds the config from before this run" in lines
    assert "nothing saved" not in lines
    assert sim.saved_config_text == before
    assert sim.running_config_text == before
    sim.device.fail_command = None
    assert_converges(sim, tmp_path, hosts)


@pytest.mark.parametrize(
    "fault",
    ["connection-lost-at-read-back", "restart-at-read-back", "answer-to-save-lost"],
)
def test_save_that_went_through_before_a_fault_is_reported_as_saved(sims, tmp_path, fault):
    sim = sims("busy.txt")
    if fault == "connection-lost-at-read-back":
        sim.device.drop_on = AfterSave(r"^show config 0$")
    elif fault == "restart-at-read-back":
        sim.device.drop_on = AfterSave(r"^show config 0$", sim.restart)
    else:
        sim.device.drop_after = re.compile(r"^save$")
    hosts = [router("home", sim)]

    run = deploy(tmp_path, hosts, known=[sim])

    # The flash holds the checked change: the run says so, and that is what the router has.
    assert run.returncode == 0, host_lines(run)
    lines = host_lines(run)
    assert "connection lost while saving" in lines
    assert "the saved config holds the change all the same" in lines
    assert owned_lines(sim) == OURS
    assert sim.saved_config_text == sim.running_config_text
    sim.device.drop_on = sim.device.drop_after = None
    since = len(sim.command_log)
    again = deploy(tmp_path, hosts, known=[sim])
    assert again.returncode == 0
    assert writes(sim, since) == []
