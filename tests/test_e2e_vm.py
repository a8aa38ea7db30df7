"""The whole tunnel, end to end: the deploy against both ends, then IPv4 traffic through it.

The lab VM is the VPS; the RTX simulator on 127.0.0.1 is the router's control plane; network
namespaces in the VM are the router's data plane (following the simulator's running config as
it changes), a home LAN host and an internet host (see ``lab.homenet``). The project's own
``deploy.py`` runs through the real pyinfra CLI against both ends, as a user would run it.

The tests run in file order and build on each other: preview, a first deploy whose router change
carries no traffic (rolled back), apply, traffic, a no-op second run, the EncapsulationLimit trap
of the blog post, and a reboot of both ends.
"""

from __future__ import annotations

import pytest

from lab.e2e import NETDEV, ROUTER_HOST, TUNNEL_NAME, VPS_HOST, E2ELab
from lab.homenet import ROUTER_FACTORY_CONFIG, VPS_UPLINK

pytestmark = pytest.mark.vm

SAVE_OP = "Router: verify by traffic from the VPS, then save"
TUNNEL_OP = "Router: ipip6 tunnel and default route"
# The router's LAN address (ROUTER_FACTORY_CONFIG): rtx_verify_ping's default picks it.
PING = "ping 198.51.100.1 from lab-vps through tun-home"

# The IPv6 path loses protocol 4 (IPv4 in IPv6) from the VPS, as a WAN filter without a pass
# for it would: the router's change is fine on paper and carries nothing. A table of its own,
# beside the ones iptables-nft makes for the deploy's rules.
BLOCK_TUNNEL = (
    "nft -f - <<'NFT'\n"
    "table ip6 lab_block {\n"
    "  chain output { type filter hook output priority 0; meta l4proto 4 counter drop; }\n"
    "}\n"
    "NFT"
)
UNBLOCK_TUNNEL = "nft delete table ip6 lab_block"

ROUTER_LINES = [
    "ip route default gateway tunnel 1",
    "tunnel select 1",
    " tunnel encapsulation ipip",
    " tunnel endpoint address 2001:db8:1::1",
    " ip tunnel mtu 1460",
    " ip tunnel tcp mss limit auto",
    " tunnel enable 1",
]


@pytest.fixture(scope="module")
def lab(lab_vm, tmp_path_factory):
    """The lab, from a clean VPS (whatever earlier modules deployed on the shared VM) and a
    router with a factory-like config; cleaned up again at the end."""
    e2e = E2ELab(lab_vm, tmp_path_factory.mktemp("e2e"))
    e2e.undeploy_vps()
    e2e.start_router()
    try:
        e2e.net.build(ROUTER_FACTORY_CONFIG)
        yield e2e
    finally:
        e2e.stop()
        e2e.undeploy_vps()


def assert_passes(check) -> None:
    assert check.problems() == [], "\n".join(check.problems())


def test_home_cannot_reach_the_internet_before_the_deploy(lab):
    ping = lab.net.ping(count=1, wait=1)
    assert ping.received == 0
    assert "Unreachable" in ping.output  # the router has no IPv4 default route yet


def test_preview_shows_both_ends_and_changes_nothing(lab):
    saved, mark = lab.sim.saved_config_text, lab.router_log_mark()
    run = lab.deploy("--dry", "--diff")
    assert run.ok, run
    assert set(run.planned()) >= {"VPS: tunnel tun-home", TUNNEL_OP, SAVE_OP}
    assert f"Before saving: {PING}" in run.output
    assert "+ EncapsulationLimit=none" in run.output
    assert f"-o {VPS_UPLINK} -j MASQUERADE" in run.output
    assert "+  tunnel endpoint address 2001:db8:1::1" in run.output  # pyinfra's diff layout
    assert lab.router_config_commands(mark) == []
    assert lab.sim.running_config_text == lab.sim.saved_config_text == saved
    assert lab.vps_sh(f"ip link show dev {TUNNEL_NAME} 2>&1 || true").startswith("Device")


def test_router_change_carrying_no_traffic_is_rolled_back_not_saved(lab):
    factory, mark = lab.sim.saved_config_text, lab.router_log_mark()
    lab.vps_sh(BLOCK_TUNNEL)
    try:
        run = lab.deploy()
    finally:
        lab.vps_sh(UNBLOCK_TUNNEL)
    assert not run.ok, run
    assert run.failed_hosts == [ROUTER_HOST]
    # The VPS end first, then the router: applied (not saved), checked across both ends.
    assert run.operations()[-3:] == ["VPS end deployed", TUNNEL_OP, SAVE_OP]
    assert f"verification by traffic failed: {PING}: 0/3 replies (3 tries)" in run.output
    assert "rolled back: the owned lines are as they were before this run" in run.output
    # The router is as it was: running = saved = factory, and its data plane followed.
    assert "tunnel enable 1" in lab.router_config_commands(mark)
    assert "save" not in lab.router_config_commands(mark)
    assert lab.sim.running_config_text == lab.sim.saved_config_text == factory
    assert lab.net.follow_errors == []
    assert lab.net.plane.active_tunnels() == []
    # The VPS end stays: its own guard confirmed it over a new SSH connection.
    assert "VPS: tunnel tun-home" in run.changed(VPS_HOST)
    assert "encaplimit none" in lab.vps_tunnel()


def test_deploy_both_ends(lab):
    run = lab.deploy()
    assert run.ok, run
    assert run.changed(VPS_HOST) == []  # deployed by the run before
    assert run.changed(ROUTER_HOST) == [TUNNEL_OP, SAVE_OP]
    assert f"verified by traffic: {PING}: " in run.output
    saved = lab.sim.saved_config_text.splitlines()
    assert [line for line in ROUTER_LINES if line in saved] == ROUTER_LINES
    assert not lab.sim.dirty
    assert "encaplimit none" in lab.vps_tunnel()
    # The router applied its config as it went: its data plane has the tunnel.
    assert lab.net.follow_errors == []
    assert [t.ifname for t in lab.net.plane.active_tunnels()] == ["tunnel1"]


def test_traffic_passes_nated_and_unfragmented(lab):
    check = lab.traffic()
    assert_passes(check)
    assert check.transfer.source_seen == "203.0.113.1"
    assert check.transfer.syn_mss == check.transfer.synack_mss == 1420  # 1460 - 40
    print(
        f"ping avg {check.ping.rtt_avg_ms} ms; "
        f"{check.transfer.size} bytes at {check.transfer.throughput_mbit:.0f} Mbit/s"
    )


def test_second_run_changes_nothing_on_either_end(lab):
    before, saved, mark = lab.vps_snapshot(), lab.sim.saved_config_text, lab.router_log_mark()
    run = lab.deploy()
    assert run.ok, run
    assert run.changed() == []
    assert lab.router_config_commands(mark) == []  # reads only: no config command, no save
    assert lab.sim.saved_config_text == saved
    assert lab.vps_snapshot() == before  # same files, rules, and the very same link


def test_trap_reproduced_then_defeated_by_the_deploy(lab):
    # The blog's first try: the same .netdev without EncapsulationLimit=none.
    link = lab.hand_made_tunnel()
    # the kernel's default, 4 (systemd before 248 wrote 0: a Destination Options header too)
    assert "encaplimit 4" in link or "encaplimit 0" in link, link
    assert "EncapsulationLimit" not in lab.vps_sh(f"grep -v '^#' {NETDEV}")
    trapped = lab.traffic(size=1 << 20, timeout=3)
    assert trapped.trap_problems() == [], "\n".join(trapped.trap_problems())

    mark = lab.router_log_mark()
    run = lab.deploy()
    assert run.ok, run
    assert run.changed(VPS_HOST) == ["VPS: tunnel tun-home"]
    assert run.changed(ROUTER_HOST) == []
    assert lab.router_config_commands(mark) == []
    assert "encaplimit none" in lab.vps_tunnel()
    assert_passes(lab.traffic())


def test_traffic_passes_after_a_reboot_without_a_deploy(lab):
    lab.vm.reboot()
    lab.restart_router()  # running config := saved config, its data plane built from it
    assert "encaplimit none" in lab.vps_tunnel()
    assert_passes(lab.traffic())
    # and the deploy agrees that nothing is missing
    run = lab.deploy("--dry")
    assert run.ok, run
    assert run.planned() == []
