"""The whole tunnel, end to end: the deploy against both ends, then IPv4 traffic through it.

The lab VM is the VPS; the RTX simulator on 127.0.0.1 is the router's control plane; network
namespaces in the VM are the router's data plane (following the simulator's running config as
it changes), a home LAN host and an internet host (see ``lab.homenet``). The project's own
``deploy.py`` runs through the real pyinfra CLI against both ends, as a user would run it.

The tests run in file order and build on each other: the home on PPPoE before the deploy,
preview, a first deploy whose router change carries no traffic (rolled back), apply, traffic, a
VPS outage the router falls back from (to PPPoE) and returns from, a no-op second run, the
EncapsulationLimit trap of the blog post, and a reboot of both ends.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ipip6.rtx.backup import router_folder
from lab.e2e import (
    BLOCK_TUNNEL,
    NETDEV,
    ROUTER_HOST,
    TUNNEL_NAME,
    UNBLOCK_TUNNEL,
    VPS_HOST,
    VPS_INNER,
    E2ELab,
)
from lab.homenet import (
    INTERNET_HOST,
    PPPOE_ADDRESS,
    ROUTER_FACTORY_CONFIG,
    VPS_UPLINK,
    VPS_UPLINK_IPV4,
)
from lab.pyinfra_cli import lab_backup_dir

pytestmark = pytest.mark.vm

SAVE_OP = "Router: verify by traffic from the VPS, then save"
TUNNEL_OP = "Router: ipip6 tunnel and default route"
# The router's inner address (the lab's tunnel_inner_network): rtx_verify_ping's default.
PING = "ping 192.0.2.2 from lab-vps through tun-home"

# BLOCK_TUNNEL: the IPv6 path loses protocol 4 (IPv4 in IPv6) from the VPS, as a WAN filter
# without a pass for it would: the router's change is fine on paper and carries nothing.

KEEPALIVE = "ip keepalive 1 icmp-echo 1 3 192.0.2.1"
ROUTER_LINES = [
    # The fallback is the router's own default route before the deploy: pp 1.
    "ip route default gateway tunnel 1 keepalive 1 gateway pp 1 weight 0",
    "tunnel select 1",
    " tunnel encapsulation ipip",
    " tunnel endpoint address 2001:db8:1::1",
    " ip tunnel address 192.0.2.2/30",
    " ip tunnel remote address 192.0.2.1",
    " ip tunnel mtu 1460",
    " ip tunnel tcp mss limit auto",
    " tunnel enable 1",
    KEEPALIVE,
]


@pytest.fixture(scope="module")
def lab(booted_vm, tmp_path_factory):
    """The lab, from the VM as it booted (whatever earlier modules deployed on the shared VM)
    and a router with a factory-like config."""
    e2e = E2ELab(booted_vm, tmp_path_factory.mktemp("e2e"))
    e2e.start_router()
    try:
        e2e.net.build(ROUTER_FACTORY_CONFIG)
        yield e2e
    finally:
        e2e.stop()


def assert_passes(check) -> None:
    assert check.problems() == [], "\n".join(check.problems())


def test_home_reaches_the_internet_by_pppoe_before_the_deploy(lab):
    check = lab.traffic(size=1 << 20, by="pppoe")
    assert_passes(check)
    assert check.transfer.source_seen == PPPOE_ADDRESS


def test_preview_shows_both_ends_and_changes_nothing(lab):
    saved, mark = lab.sim.saved_config_text, lab.router_log_mark()
    run = lab.deploy("--dry", "--diff")
    assert run.ok, run
    assert set(run.planned()) >= {"VPS: tunnel tun-home", TUNNEL_OP, SAVE_OP}
    assert f"Before saving: {PING}" in run.output
    assert "+ EncapsulationLimit=none" in run.output
    assert f"-o {VPS_UPLINK} -j MASQUERADE" in run.output
    assert "+  tunnel endpoint address 2001:db8:1::1" in run.output  # pyinfra's diff layout
    assert f"+ {KEEPALIVE}" in run.output
    assert f"+ {ROUTER_LINES[0]}" in run.output and "- ip route default gateway pp 1" in run.output
    assert "fallback: pp 1, the router's default route before this deploy" in run.output
    assert "+ Address=192.0.2.1/30" in run.output
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


def test_home_falls_back_to_pppoe_while_the_vps_is_down_and_comes_back(lab):
    failover = lab.failover()
    assert failover.problems() == [], "\n".join(failover.problems())
    assert failover.during.transfer.source_seen == PPPOE_ADDRESS
    assert failover.after.transfer.source_seen == "203.0.113.1"
    print(f"failover: {failover.summary()}")
    # 3 probes 1 s apart: generous bounds, the figures are printed above.
    assert failover.switched_after < 20 and failover.back_after < 20
    assert failover.without_ipv4 < 25
    assert lab.sim.running_config_text == lab.sim.saved_config_text  # the router's own doing


def test_second_run_changes_nothing_on_either_end(lab):
    before, saved, mark = lab.vps_snapshot(), lab.sim.saved_config_text, lab.router_log_mark()
    run = lab.deploy()
    assert run.ok, run
    assert run.changed() == []
    assert lab.router_config_commands(mark) == []  # reads only: no config command, no save
    assert lab.sim.saved_config_text == saved
    assert lab.vps_snapshot() == before  # same files, rules, and the very same link


# What the health check may send the router besides `show …`: its session's console set-up.
CHECK_SESSION = {"console lines infinity", "console columns 200", "administrator", "exit"}


def wrong_checks(run) -> list[str]:
    """The checks that failed, by operation name, from pyinfra's own --json."""
    return sorted(op["name"] for op in run.results["results"]["operations"] if op["error"])


def health_table(run) -> str:
    return run.stderr[run.stderr.index("--> Health check:") :]


def wait_for(lab, shell: str, what: str, seconds: int = 30) -> None:
    """Poll ``shell`` on the VPS until it succeeds (AssertionError after ``seconds``)."""
    out = lab.vps_sh(
        f"for i in $(seq 1 {seconds * 5}); do {shell} && echo ready && break; sleep 0.2; done; true"
    )
    assert "ready" in out, f"{what}: not after {seconds} s"


def test_health_check_names_each_drift_and_changes_nothing(lab):
    before, saved, mark = lab.vps_snapshot(), lab.sim.saved_config_text, lab.router_log_mark()
    run = lab.check()
    assert run.returncode == 0, run
    table = health_table(run)
    assert "WRONG" not in table and "could not tell" not in table, table
    assert "192.0.2.2 from lab-vps: 3/3 replies, 0% loss, rtt" in table
    assert "tun-home: encaplimit none" in table
    sent = [e.command for e in lab.sim.command_log[mark:]]
    assert [c for c in sent if not c.startswith("show ") and c not in CHECK_SESSION] == []
    assert lab.vps_snapshot() == before and lab.sim.saved_config_text == saved
    assert lab.sim.running_config_text == saved

    # An owned file edited by hand: named, and diffed with --diff.
    network = f"/etc/systemd/network/60-ipip6-{TUNNEL_NAME}.network"
    lab.vps_sh(f"echo '# edited by hand' >> {network}")
    run = lab.check("--diff")
    assert run.returncode == 1 and wrong_checks(run) == ["VPS: owned files"], run
    assert f"{network} changed" in run.stderr and "-# edited by hand" in run.stderr
    lab.vps_sh(f"sed -i '$d' {network}")

    # Rules flushed by another tool: the loaded rules are not those on disk any more.
    lab.vps_sh("iptables -t mangle -F IPIP6-FORWARD")
    run = lab.check()
    assert run.returncode == 1 and wrong_checks(run) == ["VPS: firewall loaded"], run
    assert "fix: systemctl restart ipip6-firewall.service" in run.stderr
    lab.vps_sh("systemctl restart ipip6-firewall.service")  # the fix it names

    # A hand-made tunnel (networkd still gives it the addresses and routes of its .network)
    # at the kernel's default encapsulation limit: the router drops what it sends.
    lab.vps_sh(
        f"ip link del dev {TUNNEL_NAME} && ip -6 tunnel add {TUNNEL_NAME} mode ipip6 "
        f"local {lab.inventory_data()['vps_ipv6']} remote {lab.inventory_data()['router_ipv6']} "
        f"&& ip link set dev {TUNNEL_NAME} mtu 1460 up"
    )
    wait_for(lab, f"ip -4 route show dev {TUNNEL_NAME} | grep -q .", "networkd's routes")
    run = lab.check()
    assert run.returncode == 1, run
    assert wrong_checks(run) == ["Across: ping through the tunnel", "VPS: encapsulation limit"]
    assert "0/3 replies" in run.stderr
    fixed = lab.net.now()
    lab.vps_sh(f"ip link del dev {TUNNEL_NAME}; systemctl restart systemd-networkd")  # its fix
    wait_for(lab, f"ip -d link show dev {TUNNEL_NAME} | grep -q 'encaplimit none'", "the link")

    # The tunnel down at the VPS end.
    lab.net.wait_keepalive("up", fixed)
    lab.vps_sh(f"ip link set dev {TUNNEL_NAME} down")
    run = lab.check()
    assert run.returncode == 1, run
    assert wrong_checks(run) == [
        "Across: ping through the tunnel",
        "VPS: routes to home",
        "VPS: tunnel link",
    ]
    fixed = lab.net.now()
    lab.vps_sh(f"ip link set dev {TUNNEL_NAME} up; networkctl reconfigure {TUNNEL_NAME}")
    wait_for(lab, f"ip -4 route show dev {TUNNEL_NAME} | grep -q .", "the routes back")
    lab.net.wait_keepalive("up", fixed)

    # Each fix as the check named it: healthy again, and nothing but reads sent to the router.
    run = lab.check()
    assert run.returncode == 0, run
    assert lab.router_config_commands(mark) == []
    assert lab.sim.saved_config_text == saved


def ask_forward(lab, ns: str, port: int = 8443) -> str:
    """What a client in namespace ``ns`` gets from the VPS's public address and ``port``."""
    return lab.vps_sh(
        f"ip netns exec {ns} socat -T 5 - TCP:{VPS_UPLINK_IPV4}:{port},connect-timeout=5 "
        "</dev/null 2>&1 || true"
    ).strip()


def assert_forward_answers(lab) -> None:
    assert ask_forward(lab, "inet") == f"answered-by-home from {INTERNET_HOST}"
    assert ask_forward(lab, "home") == f"answered-by-home from {VPS_INNER}"  # hairpin
    # Only that port: another one on the VPS's address goes nowhere near home.
    assert "answered-by-home" not in ask_forward(lab, "inet", port=8000)


def test_a_router_restore_is_checked_by_traffic_then_saved(lab):
    """A deploy changes a router value (after a backup); restore.py puts the backup's owned
    lines back through the same gate: read back, a ping from the VPS through the real tunnel,
    then saved. The VPS is not changed; a re-run and the deploy with the old value are no-ops."""
    folder = Path(lab_backup_dir()) / router_folder(ROUTER_HOST)
    before = set(folder.glob("*")) if folder.exists() else set()
    vps = lab.vps_snapshot()
    change = lab.deploy("--data", "rtx_keepalive_count=4")
    assert change.returncode == 0, change
    new = sorted(set(folder.glob("*")) - before)
    assert [p.name.split("-", 2)[2] for p in new] == ["running.txt", "saved.txt"], new
    # The saved config before the change, as the backup holds it.
    (keepalive,) = [x for x in new[1].read_text().splitlines() if x.startswith("ip keepalive 1 ")]
    assert " icmp-echo 1 3 " in keepalive, keepalive
    assert "icmp-echo 1 4 " in lab.sim.saved_config_text

    mark = lab.router_log_mark()
    run = lab.restore("--data", f"rtx_restore_from={new[1]}", "--data", "rtx_keepalive_count=4")
    assert run.returncode == 0, run
    assert lab.router_config_commands(mark) == [keepalive, "save"]
    assert f"verified by traffic: {PING}: " in run.output, run
    assert "icmp-echo 1 3 " in lab.sim.saved_config_text
    assert lab.sim.running_config_text == lab.sim.saved_config_text
    assert lab.vps_snapshot() == vps  # only read, and the ping

    again = lab.restore("--data", f"rtx_restore_from={new[1]}")
    assert again.returncode == 0 and again.changed() == [], again
    run = lab.deploy()
    assert run.returncode == 0 and run.changed() == [], run


@pytest.fixture
def home_service(lab):
    """A service on the home host's port 8000 that says who asked."""
    lab.vps_sh(
        "ip netns exec home nohup socat TCP-LISTEN:8000,fork,reuseaddr "
        "SYSTEM:'echo answered-by-home from $SOCAT_PEERADDR' >/dev/null 2>&1 &"
    )
    yield
    lab.vps_sh("pkill -f 'TCP-LISTE[N]:8000' || true")  # [N]: not pkill's own shell


def test_a_port_forward_is_answered_by_home_from_the_internet_and_from_home(lab, home_service):
    """A home service published on the VPS's address: the internet host reaches it (and is
    seen with its own address); a home host reaches it by the public address too (hairpin:
    the answer comes back through the VPS)."""
    home = lab.net.home_host
    # The forward stays in the data for the rest of the module: its no-op and reboot too.
    lab.vps_data = {"port_forwards": [{"proto": "tcp", "port": 8443, "to": home, "to_port": 8000}]}
    run = lab.deploy()
    assert run.ok, run
    assert run.changed(VPS_HOST) == ["VPS: firewall (iptables)"]
    assert run.changed(ROUTER_HOST) == []
    assert_forward_answers(lab)


def test_the_nftables_backend_carries_the_home_and_its_port_forward(lab, home_service):
    """The same VPS on firewall_backend nftables: the home's traffic through the tunnel (NATed,
    MSS clamped by the table) and the port forward, then back to iptables."""
    lab.vps_data = {**lab.vps_data, "firewall_backend": "nftables"}
    try:
        run = lab.deploy()
        assert run.ok, run
        assert run.changed(VPS_HOST) == ["VPS: firewall (nftables)"]
        assert "IPIP6" not in lab.vps_sh("iptables-save")
        check = lab.traffic(size=1 << 20)
        assert_passes(check)
        assert check.transfer.source_seen == VPS_UPLINK_IPV4
        assert_forward_answers(lab)
        health = lab.check()  # both ends healthy, the table read back as nft lists it
        assert health.returncode == 0, health
        assert "table inet ipip6:" in health_table(health)
    finally:
        lab.vps_data = {k: v for k, v in lab.vps_data.items() if k != "firewall_backend"}
    run = lab.deploy()
    assert run.ok, run
    assert lab.vps_sh("nft list table inet ipip6 2>&1 || true").startswith("Error")


def test_trap_reproduced_then_defeated_by_the_deploy(lab):
    # The blog's first try: the same .netdev without EncapsulationLimit=none.
    since = lab.net.now()
    link = lab.hand_made_tunnel()
    # the kernel's default, 4 (systemd before 248 wrote 0: a Destination Options header too)
    assert "encaplimit 4" in link or "encaplimit 0" in link, link
    assert "EncapsulationLimit" not in lab.vps_sh(f"grep -v '^#' {NETDEV}")
    # The router drops what the VPS sends, its keepalive's replies too: it falls back.
    lab.net.wait_keepalive("down", since)
    trapped = lab.traffic(size=1 << 20, timeout=3, by="pppoe")
    assert_passes(trapped)  # the home is online meanwhile, by PPPoE
    drops_before = lab.net.drop_counter()
    lab.net.ping(count=1, target="192.0.2.1", wait=1)  # home → the VPS's inner address
    trapped.drops = lab.net.drop_counter() - drops_before
    assert trapped.trap_problems() == [], "\n".join(trapped.trap_problems())

    mark, fixed = lab.router_log_mark(), lab.net.now()
    run = lab.deploy()
    assert run.ok, run
    assert run.changed(VPS_HOST) == ["VPS: tunnel tun-home"]
    assert run.changed(ROUTER_HOST) == []
    assert lab.router_config_commands(mark) == []
    assert "encaplimit none" in lab.vps_tunnel()
    lab.net.wait_keepalive("up", fixed)
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
