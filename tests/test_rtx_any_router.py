"""The router's promises against what other RTX routers print and hold, over real SSH.

Each case is a router the project's first simulator did not look like: lines of exactly the
console's wrap width, console settings refused at ``>``, a tunnel the router says is down, an
exception anywhere in the commit path, tunnel 1 already in use (MAP-E, IPsec, a route), an
embedded Lua file. Each ends with the running and the saved config as the run reports them,
and a re-run that sends no config line.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab.pyinfra_cli import DeployRun, run_pyinfra
from rtxsim import Simulator
from tests.simulators import CONFIGS
from tests.test_rtx_deploy import OURS, REPO, VPS, host_key_line, owned_lines, router, writes

pytestmark = pytest.mark.sim

TUNNEL_OP = "Router: ipip6 tunnel and default route"
SAVE_OP = "Router: verify by traffic from the VPS, then save"
FACTORY = (CONFIGS / "factory.txt").read_text()


def deploy(tmp: Path, hosts: list[tuple[str, dict]], sim: Simulator, prefix: str = "") -> DeployRun:
    """The project's deploy.py (after ``prefix``, e.g. a fault injected into this process)."""
    known_hosts = tmp / "known_hosts"
    known_hosts.write_text(host_key_line(sim))
    hosts = [(name, {"ssh_known_hosts_file": str(known_hosts), **data}) for name, data in hosts]
    (tmp / "inventory.py").write_text(f"rtx = {hosts!r}\n")
    (tmp / "deploy.py").write_text(prefix + (REPO / "deploy.py").read_text())
    return run_pyinfra("inventory.py", cwd=tmp, env={"PYTHONPATH": str(REPO)}, timeout=180)


def text_of(run: DeployRun) -> str:
    return "\n".join(line for line in run.output.splitlines() if "@rtx/home" in line)


def converge(sim: Simulator, tmp: Path, hosts) -> None:
    """After a failed run (fault gone): the next run applies and saves the change."""
    run = deploy(tmp, hosts, sim)
    assert run.returncode == 0, text_of(run)
    assert owned_lines(sim) == OURS


def assert_settled(sim: Simulator, tmp: Path, hosts) -> None:
    """Running == saved, nothing dirty, and a re-run sends no config line. (The session's own
    console width may change for a second read of a config with a line that fills the
    console; it is put back and never saved.)"""
    assert sim.running_config_text == sim.saved_config_text
    assert not sim.dirty
    since = len(sim.command_log)
    again = deploy(tmp, hosts, sim)
    assert again.returncode == 0, text_of(again)
    sent = [line for line in writes(sim, since) if not re.match(r"(no )?console ", line)]
    assert sent == [], text_of(again)
    assert sim.running_config_text == sim.saved_config_text
    assert not sim.dirty


# -- lines of exactly the wrap width ---------------------------------------------------------


def description(length: int, lan: int, fill: str = "x") -> str:
    head = f"description lan{lan} "
    return head + fill * (length - len(head))


# 79 and 158 fill an 80-column console once and twice, 199 a 200-column one; 80 and 250 cross.
LONG_LINES = [description(79, 1), description(80, 2), description(158, 3)]
LONG_LINES.append(f"dns host {'a' * 190}")  # 199 characters (the RTX1200 has three LANs)


def busy_config() -> str:
    lines = [description(199, 1), description(250, 2), description(158, 3)]
    # 198 columns of ASCII, then a full-width character that no longer fits: the router
    # breaks before it, one column short of the edge.
    lines.append("schedule at 1 */* 00:00 * " + "a" * (198 - 26) + "テスト")
    lines.append(f"syslog host {' '.join(['192.0.2.1'] * 8)}")
    return FACTORY + "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "options",
    [{}, {"console_needs_admin": True}],
    ids=["console-at-user-level", "console-only-at-administrator"],
)
@pytest.mark.parametrize("extra", [busy_config(), FACTORY + "\n".join(LONG_LINES) + "\n"])
def test_lines_of_exactly_the_wrap_width_are_read_as_they_are(sims, tmp_path, options, extra):
    sim = sims(extra, **options)
    before = sim.running_config_text
    hosts = [router("home", sim)]
    run = deploy(tmp_path, hosts, sim)
    assert run.returncode == 0, text_of(run)
    assert owned_lines(sim) == OURS
    # Every other line as it was: nothing glued, nothing split, nothing saved twice.
    others = [line for line in sim.running_config_text.splitlines() if line not in OURS]
    assert others == [line for line in before.splitlines() if line not in OURS]
    assert sim.saved_config_text == sim.running_config_text
    assert "console columns" not in sim.saved_config_text  # the session's own, never saved
    assert_settled(sim, tmp_path, hosts)


def test_console_settings_refused_at_user_level_are_set_and_put_back_at_administrator(
    sims, tmp_path
):
    sim = sims(busy_config(), console_needs_admin=True)
    hosts = [router("home", sim)]
    run = deploy(tmp_path, hosts, sim)
    assert run.returncode == 0, text_of(run)
    admin_console = [e.command for e in sim.command_log if e.command.startswith("console ")]
    assert "console columns 200" in admin_console
    # Put back before save (and after, before leaving): never in the saved config.
    assert "console" not in sim.saved_config_text
    assert "console" not in sim.running_config_text
    assert_settled(sim, tmp_path, hosts)


# -- the router's own view of the tunnel ------------------------------------------------------


def test_tunnel_the_router_says_is_down_is_not_saved(sims, tmp_path):
    sim = sims("busy.txt", tunnel_down=True)
    before_running, before_saved = sim.running_config_text, sim.saved_config_text
    hosts = [router("home", sim)]
    run = deploy(tmp_path, hosts, sim)
    assert run.returncode != 0
    lines = text_of(run)
    assert "router check failed: show status tunnel 1" in lines
    assert "rolled back: the owned lines are as they were before this run; nothing saved" in lines
    assert "save" not in sim.commands
    assert sim.running_config_text == before_running
    assert sim.saved_config_text == before_saved

    sim.device.tunnel_down = False
    run = deploy(tmp_path, hosts, sim)
    assert run.returncode == 0, text_of(run)
    assert "checked on the router: show status tunnel 1 (IPIP)" in text_of(run)
    assert owned_lines(sim) == OURS
    assert_settled(sim, tmp_path, hosts)


# -- any exception in the commit path ----------------------------------------------------------

# Raises ValueError when the Nth command matching PATTERN is about to be sent by this process
# (the deploy's own pyinfra process: the fault is inside the driver, not on the router). pyinfra
# loads deploy.py after it has connected: the login's own commands are not counted.
INJECT = """\
import re as _re

from ipip6.rtx import session as _session

_original_run = _session.RTXSession.run
_seen = {{"n": 0}}


def _faulty_run(self, command, **kwargs):
    if _re.search({pattern!r}, command):
        _seen["n"] += 1
        if _seen["n"] == {nth}:
            raise ValueError("injected fault before " + command)
    return _original_run(self, command, **kwargs)


_session.RTXSession.run = _faulty_run

"""


@pytest.mark.parametrize(
    ("pattern", "nth", "saved_after"),
    [
        (r"^tunnel encapsulation ipip$", 1, False),  # the first line of the delta
        (r"^ip tunnel mtu", 1, False),  # half-way through the delta
        (r"^ip route default gateway tunnel", 1, False),  # the last line of the delta
        # reading the change back (the login's reads come before deploy.py is loaded)
        (r"^show config$", 1, False),
        (r"^show status tunnel", 1, False),  # the router's own check before saving
        (r"^save$", 1, False),  # saving itself (raised before it is sent)
        (r"^show config 0$", 2, True),  # reading the saved config back after save
    ],
    ids=[
        "first-line",
        "half-way",
        "last-line",
        "read-back",
        "status",
        "save",
        "after-save",
    ],
)
def test_an_exception_in_each_commit_step_leaves_the_router_as_reported(
    sims, tmp_path, pattern, nth, saved_after
):
    sim = sims("busy.txt")
    before = sim.running_config_text
    hosts = [router("home", sim)]
    run = deploy(tmp_path, hosts, sim, prefix=INJECT.format(pattern=pattern, nth=nth))
    lines = text_of(run)
    assert "injected fault before" in lines
    if saved_after:
        # save went through: the run says so, and running == saved == the change.
        assert run.returncode == 0, lines
        assert "the saved config holds the change all the same" in lines
        assert owned_lines(sim) == OURS
    else:
        assert run.returncode != 0
        assert "nothing saved" in lines or "not saved" in lines
        assert sim.running_config_text == before
        assert sim.saved_config_text == before
        converge(sim, tmp_path, hosts)
    assert_settled(sim, tmp_path, hosts)


def test_an_exception_while_preparing_the_save_rolls_the_change_back(sims, tmp_path):
    # Between the commit and the save: the change is running, unsaved, unverified.
    sim = sims("busy.txt")
    before = sim.running_config_text
    hosts = [router("home", sim)]
    prefix = (
        "from ipip6.rtx import decide as _decide\n\n\n"
        "def _fault(*args, **kwargs):\n"
        "    raise ValueError('injected fault before the save step')\n\n\n"
        "_decide.save_step = _fault\n\n"
    )
    run = deploy(tmp_path, hosts, sim, prefix=prefix)
    lines = text_of(run)
    assert run.returncode != 0
    assert "applied 8 commands and checked them on the router (not saved yet)" in lines
    assert "could not prepare the save (ValueError: injected fault before the save step)" in lines
    assert "rolled back: the owned lines are as they were before this run" in lines
    assert "save" not in sim.commands
    assert sim.running_config_text == sim.saved_config_text == before
    converge(sim, tmp_path, hosts)
    assert_settled(sim, tmp_path, hosts)


# -- tunnel numbers in use ---------------------------------------------------------------------

MAP_E = """\
ip route default gateway tunnel 1
tunnel select 1
 tunnel encapsulation map-e
 tunnel map-e type v6plus
 ip tunnel mtu 1460
 ip tunnel nat descriptor 1000
 tunnel enable 1
nat descriptor type 1000 masquerade
"""
IPSEC = """\
tunnel select 1
 tunnel encapsulation ipsec
 ipsec tunnel 101
 tunnel enable 1
"""
ROUTE = "ip route 10.0.0.0/8 gateway tunnel 1\n"


@pytest.mark.parametrize(
    ("config", "what"),
    [
        (MAP_E, "tunnel encapsulation map-e; tunnel map-e type v6plus"),
        (IPSEC, "tunnel encapsulation ipsec; ipsec tunnel 101"),
        (ROUTE, "tunnel 1 is used by ip route 10.0.0.0/8 gateway tunnel 1"),
    ],
    ids=["map-e", "ipsec", "route"],
)
def test_tunnel_1_in_use_is_refused_and_nothing_is_sent(sims, tmp_path, config, what):
    sim = sims(FACTORY + config)
    before = sim.running_config_text
    run = deploy(tmp_path, [router("home", sim, rtx_tunnel_number=1)], sim)
    assert run.returncode != 0
    lines = text_of(run)
    assert "rtx_tunnel_number 1 is not free" in lines and what in lines
    assert "Nothing was sent" in lines
    assert writes(sim) == []
    assert sim.running_config_text == sim.saved_config_text == before


@pytest.mark.parametrize("config", [MAP_E, IPSEC, ROUTE], ids=["map-e", "ipsec", "route"])
def test_without_a_number_the_lowest_free_tunnel_is_used(sims, tmp_path, config):
    sim = sims(FACTORY + config)
    hosts = [router("home", sim)]
    run = deploy(tmp_path, hosts, sim)
    assert run.returncode == 0, text_of(run)
    running = sim.running_config_text
    assert "tunnel select 2" in running.splitlines()
    assert "ip route default gateway tunnel 2" in running.splitlines()
    # What tunnel 1 holds is left as it was (the default route is this deploy's).
    for line in config.splitlines():
        if not line.startswith("ip route default"):
            assert line in running.splitlines()
    assert_settled(sim, tmp_path, hosts)


def test_taking_over_map_e_removes_its_lines_and_a_failure_puts_them_back(sims, tmp_path):
    sim = sims(FACTORY + MAP_E, tunnel_down=True)
    before = sim.running_config_text
    hosts = [router("home", sim, rtx_tunnel_number=1, rtx_tunnel_takeover=True)]
    run = deploy(tmp_path, hosts, sim)
    assert run.returncode != 0  # the router says the new tunnel is down: rolled back
    assert "rtx_tunnel_takeover: replacing tunnel 1" in text_of(run)
    assert sim.running_config_text == sim.saved_config_text == before  # MAP-E back, unsaved

    sim.device.tunnel_down = False
    run = deploy(tmp_path, hosts, sim)
    assert run.returncode == 0, text_of(run)
    assert owned_lines(sim) == OURS  # the whole block: nothing of MAP-E left in it
    assert_settled(sim, tmp_path, hosts)


def test_the_model_limit_is_checked_before_anything_is_sent(sims, tmp_path):
    sim = sims(profile="rtx830")
    run = deploy(tmp_path, [router("home", sim, rtx_tunnel_number=21)], sim)
    assert run.returncode != 0
    assert "beyond this RTX830's 20 tunnel interfaces" in text_of(run)
    assert writes(sim) == []


# -- an embedded Lua file ------------------------------------------------------------------------

LUA = """\
embedded file status.lua <<EOF
-- checks the tunnel

  local rtn, str = rt.command("show status tunnel 1")
if not rtn then
    print("down")   -- indentation and blank lines are content
end

EOF
"""


def test_an_embedded_lua_file_is_kept_byte_for_byte(sims, tmp_path):
    sim = sims(FACTORY + LUA)
    body = LUA.splitlines()[1:-1]
    assert all(line in sim.running_config_text.splitlines() for line in body if line)
    hosts = [router("home", sim)]
    run = deploy(tmp_path, hosts, sim)
    assert run.returncode == 0, text_of(run)
    running = sim.running_config_text
    assert LUA in running  # every line, blank lines and indentation included, in order
    assert LUA in sim.saved_config_text
    assert owned_lines(sim) == OURS
    assert_settled(sim, tmp_path, hosts)


def test_commands_seen_by_the_router_are_rtx_lines_only(sims, tmp_path):
    # The second width read and the console's restore are CLI lines the router knows.
    sim = sims(busy_config())
    run = deploy(tmp_path, [router("home", sim)], sim)
    assert run.returncode == 0, text_of(run)
    allowed = re.compile(r"^(show |console |administrator$|exit$|tunnel |ip |no |save$|$)")
    assert [c for c in sim.commands if not allowed.match(c)] == []
    assert f"tunnel endpoint address {VPS}" in sim.commands
