"""The router's check by traffic across both ends, through the real pyinfra CLI and the
project's deploy.py: the router is the RTX simulator over real SSH, the VPS pyinfra's ``@fake``
connector, whose ``ping`` answers as scripted (real packets: ``tests/test_e2e_vm.py``).

What is proven here is the wiring: the order of the operations across the two hosts, which VPS
pings which address, and what the router does with the answer.
"""

from __future__ import annotations

import pytest

from lab.pyinfra_cli import DeployRun, run_pyinfra, write_inventory
from rtxsim import Simulator
from tests.simulators import CONFIGS
from tests.test_rtx_deploy import (
    OURS,
    ROUTER,
    VPS,
    host_key_line,
    owned_lines,
    router,
    writes,
)
from tests.test_rtx_faults import SAVE_OP, TUNNEL_ONLY, TUNNEL_OP
from tests.test_rtx_faults import deploy as router_only_deploy
from tests.test_vps_packages import ALL_INSTALLED

pytestmark = pytest.mark.sim

VPS_HOST = "@fake/vps"
# factory.txt's `ip lan1 address 192.168.100.1/24`: what rtx_verify_ping's "auto" picks
PING = f"ping 192.168.100.1 from {VPS_HOST} through tun-home"

REPLIES = [
    "64 bytes from 192.168.100.1: icmp_seq=1 ttl=64 time=1.10 ms",
    "3 packets transmitted, 3 received, 0% packet loss, time 1002ms",
]
NO_REPLY = ["3 packets transmitted, 0 received, 100% packet loss, time 2040ms"]


def deploy(tmp_path, sim: Simulator, ping: list[str], *args: str, vps=None, **router_data):
    vps_data = {
        "fake_delay": 0,
        "fake_delay_jitter": 0,
        "fake_responses": {"dpkg-query": ALL_INSTALLED, "ping -n": ping},
        "vps_ipv6": VPS,
        "router_ipv6": ROUTER,
        "home_networks": ["192.168.100.0/24"],
        "tunnel_inner_network": False,  # as the router's (tests/test_rtx_deploy.py)
        **(vps or {}),
    }
    known = tmp_path / "known_hosts"
    known.write_text(host_key_line(sim))
    router_data.setdefault("rtx_vps_managed_elsewhere", False)  # the VPS is right here
    name, data = router("home", sim, ssh_known_hosts_file=str(known), **router_data)
    inventory = write_inventory(tmp_path, {"vps": [(VPS_HOST, vps_data)], "rtx": [(name, data)]})
    return run_pyinfra(inventory, "-vv", *args, timeout=180)


def pings(run: DeployRun) -> list[str]:
    """The ping commands the VPS ran (pyinfra's ``-vv`` echo)."""
    return [line for line in run.output.splitlines() if ">>> ping " in line]


def test_saved_only_after_the_vps_pinged_home_through_the_tunnel(sims, tmp_path):
    sim = sims("factory.txt")
    run = deploy(tmp_path, sim, REPLIES)

    assert run.ok, run
    # The VPS end first, then the router: applied, verified, saved.
    assert run.operations()[-4:] == [
        "VPS: firewall (iptables)",
        "VPS end deployed",
        TUNNEL_OP,
        SAVE_OP,
    ]
    assert f"verified by traffic: {PING}: 3/3 replies" in run.output
    assert [line.split(">>> ")[1] for line in pings(run)] == [
        "ping -n -c 3 -i 0.5 -W 2 -I tun-home 192.168.100.1"
    ]
    assert owned_lines(sim) == OURS
    assert sim.saved_config_text == sim.running_config_text and not sim.dirty

    again = deploy(tmp_path, sim, REPLIES)
    assert again.ok, again
    assert again.op(SAVE_OP)["no_change"] == ["@rtx/home"]
    assert pings(again) == []  # nothing to save, nothing to verify


def test_no_reply_rolls_the_router_back_and_saves_nothing(sims, tmp_path):
    sim = sims("factory.txt")
    before = sim.saved_config_text
    run = deploy(tmp_path, sim, NO_REPLY)

    assert not run.ok
    assert run.failed_hosts == ["@rtx/home"]
    assert len(pings(run)) == 3  # three tries
    assert f"verification by traffic failed: {PING}: 0/3 replies (3 tries); not saved" in run.output
    assert "rolled back: the owned lines are as they were before this run" in run.output
    assert sim.running_config_text == sim.saved_config_text == before
    assert "save" not in sim.commands

    fixed = deploy(tmp_path, sim, REPLIES)  # e.g. the filter on the path fixed
    assert fixed.ok, fixed
    assert owned_lines(sim) == OURS and not sim.dirty


def test_a_vps_that_failed_in_the_run_means_no_change_on_the_router(sims, tmp_path):
    sim = sims("factory.txt")
    before = sim.saved_config_text
    # The VPS's tunnel never comes up with encaplimit none: that host fails.
    broken = {
        "fake_responses": {"dpkg-query": ALL_INSTALLED, "encaplimit none": {"success": False}}
    }
    run = deploy(tmp_path, sim, REPLIES, vps=broken)

    assert not run.ok  # both hosts failed: pyinfra stops with "No hosts remaining!"
    assert "tunnel tun-home is missing or lacks encaplimit none" in run.output
    assert f"{VPS_HOST} failed earlier in this run: nothing was changed on the router" in (
        run.output
    )
    assert pings(run) == []
    assert writes(sim) == []  # not even applied
    assert sim.running_config_text == sim.saved_config_text == before


def test_an_unsaved_change_left_by_an_earlier_run_is_verified_before_it_is_saved(sims, tmp_path):
    sim = sims("factory.txt")
    first = deploy(tmp_path, sim, NO_REPLY, rtx_verify_ping=False)  # no check: saved
    assert first.ok, first
    saved = sim.saved_config_text
    # An earlier run applied an MTU the path cannot carry, say, and died before its save.
    (tmp_path / "earlier").mkdir()
    earlier = router_only_deploy(
        tmp_path / "earlier", [router("home", sim, tunnel_mtu=1400)], known=[sim],
        deploy_text=TUNNEL_ONLY,
    )  # fmt: skip
    assert earlier.ok and sim.dirty and " ip tunnel mtu 1400" in sim.running_config_text

    # This run finds the lines as wanted (nothing to commit) but unsaved; the VPS is left out.
    run = deploy(
        tmp_path, sim, NO_REPLY, "--limit", "@rtx/home", vps={"tunnel_mtu": 1400}, tunnel_mtu=1400
    )

    assert not run.ok
    assert f"verification by traffic failed: {PING}: 0/3 replies" in run.output
    assert "the unsaved owned lines go back to the saved config's" in run.output
    assert sim.running_config_text == sim.saved_config_text == saved  # (still "changed":
    # the router keeps its unsaved flag after a line is set back, as a real RTX does)
    assert len(pings(run)) == 3  # the VPS, left out with --limit, was connected for the ping


def test_rtx_verify_ping_false_saves_without_a_check(sims, tmp_path):
    sim = sims("factory.txt")
    run = deploy(tmp_path, sim, NO_REPLY, rtx_verify_ping=False)
    assert run.ok, run
    assert pings(run) == [] and "verified by traffic" not in run.output
    assert owned_lines(sim) == OURS and not sim.dirty


def test_an_address_from_data_is_pinged(sims, tmp_path):
    sim = sims("factory.txt")
    run = deploy(tmp_path, sim, REPLIES, rtx_verify_ping="192.168.100.20")
    assert run.ok, run
    assert pings(run)[0].endswith("-I tun-home 192.168.100.20")


def test_without_a_lan_address_at_home_nothing_is_saved(sims, tmp_path):
    """Nothing to ping and the check not turned off in data: the change is rolled back, not
    saved without a check."""
    sim = sims("factory.txt")
    factory = sim.saved_config_text
    home = ["192.168.200.0/24"]
    run = deploy(tmp_path, sim, NO_REPLY, vps={"home_networks": home}, home_networks=home)
    assert not run.ok
    assert "the router has no LAN address inside home_networks (192.168.200.0/24)" in run.output
    assert "cannot be verified by traffic: not saved" in run.output
    assert pings(run) == []
    assert "save" not in writes(sim)
    assert sim.running_config_text == sim.saved_config_text == factory

    # Turned off explicitly: saved without a check, as the data says.
    run = deploy(
        tmp_path,
        sim,
        NO_REPLY,
        vps={"home_networks": home},
        home_networks=home,
        rtx_verify_ping=False,
    )
    assert run.ok, run
    assert pings(run) == []
    assert sim.running_config_text == sim.saved_config_text != factory


@pytest.mark.parametrize(
    ("lan_lines", "address"),
    [
        # the LAN as a bridge of lan1 and lan2
        (
            "bridge member bridge1 lan1 lan2\nip bridge1 address 192.168.100.254/24",
            "192.168.100.254",
        ),
        # the LAN on a VLAN of lan1 (newer models), another VLAN outside home_networks first
        ("ip lan1.2 address 192.0.2.1/24\nip lan1.1 address 192.168.100.1/24", "192.168.100.1"),
    ],
    ids=["bridge", "vlan"],
)
def test_the_ping_target_is_found_on_a_bridge_or_a_vlan(sims, tmp_path, lan_lines, address):
    factory = (CONFIGS / "factory.txt").read_text()
    sim = sims(factory.replace("ip lan1 address 192.168.100.1/24", lan_lines))
    run = deploy(tmp_path, sim, REPLIES)
    assert run.ok, run
    assert pings(run) and pings(run)[0].endswith(f"-I tun-home {address}")
    assert f"verified by traffic: ping {address} from {VPS_HOST} through tun-home" in run.output
    assert owned_lines(sim) == OURS
    assert sim.running_config_text == sim.saved_config_text


def test_a_tunnel_status_in_unknown_words_leaves_the_decision_to_the_ping(sims, tmp_path):
    sim = sims("factory.txt")
    sim.device.tunnel_status_text = ["TUNNEL[1]:", "  Zustand: verbunden"]
    run = deploy(tmp_path, sim, REPLIES)
    assert run.ok, run
    assert "did not say whether the tunnel is connected" in run.output
    assert "the check by traffic decides" in run.output
    assert owned_lines(sim) == OURS and sim.running_config_text == sim.saved_config_text


def test_a_tunnel_status_in_unknown_words_is_no_proof_on_its_own(sims, tmp_path):
    sim = sims("factory.txt")
    factory = sim.saved_config_text
    sim.device.tunnel_status_text = ["TUNNEL[1]:", "  Zustand: verbunden"]
    run = deploy(tmp_path, sim, REPLIES, rtx_verify_ping=False)
    assert not run.ok
    assert "router check failed: show status tunnel 1 did not say" in run.output
    assert "save" not in writes(sim)
    assert sim.running_config_text == sim.saved_config_text == factory
