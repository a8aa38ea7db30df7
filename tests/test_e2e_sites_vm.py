"""Two home sites on one VPS, end to end with real packets: the lab VM is the VPS, two RTX
simulators are the routers, each with its own data plane, home host and IPv6 path in the VM's
namespaces (``lab.homenet.SITE`` and ``SECOND_SITE``). The project's deploy.py runs through the
real pyinfra CLI against all three, as a user would run it.

In file order: both sites deployed in one run; both pass traffic at once, each NATed to the
VPS, neither reaching the other's home; a re-run changes nothing; the second site removed from
the inventory takes only its own files and link away. Then one router with two VPSes: the
first router gets a backup VPS (a namespace with a real ip6tnl) and its home's IPv4 goes from
the first VPS to the backup, to PPPoE, and back.
"""

from __future__ import annotations

import re

import pytest

from lab.e2e import (
    ROUTER_HOST,
    SECOND_ROUTER_HOST,
    SECOND_TUNNEL_NAME,
    TUNNEL_NAME,
    VPS_HOST,
    E2ELab,
)
from lab.homenet import (
    BACKUP_VPS_IPV6,
    BACKUP_VPS_UPLINK_IPV4,
    PPPOE_ADDRESS,
    ROUTER_FACTORY_CONFIG,
    VPS_UPLINK_IPV4,
    ssh,
)

pytestmark = pytest.mark.vm

SECOND_NETDEV = f"/etc/systemd/network/60-ipip6-{SECOND_TUNNEL_NAME}.netdev"


@pytest.fixture(scope="module")
def lab(booted_vm, tmp_path_factory):
    e2e = E2ELab(booted_vm, tmp_path_factory.mktemp("sites"))
    e2e.start_router()
    try:
        e2e.net.build(ROUTER_FACTORY_CONFIG)
        e2e.start_second_router()
        yield e2e
    finally:
        e2e.stop()


def drop_counts(lab) -> dict[tuple[str, str], int]:
    """Packets the VPS's rules dropped between two sites, per (in, out) tunnel."""
    counts = {}
    for line in lab.vps_sh("iptables-save -c -t filter").splitlines():
        m = re.match(r"\[(\d+):\d+\] -A IPIP6-FORWARD -i (\S+) -o (\S+) -j DROP$", line)
        if m:
            counts[(m[2], m[3])] = int(m[1])
    assert len(counts) == 2, counts
    return counts


def assert_passes(check) -> None:
    assert check.problems() == [], "\n".join(check.problems())


def test_one_run_deploys_both_sites_each_verified_through_its_own_tunnel(lab):
    run = lab.deploy()
    assert run.ok, run
    assert f"VPS: tunnel {TUNNEL_NAME}, {SECOND_TUNNEL_NAME}" in run.changed(VPS_HOST)
    assert "verified by traffic: ping 192.0.2.2 from lab-vps through tun-home" in run.output
    assert "verified by traffic: ping 192.0.2.6 from lab-vps through tun-parents" in run.output
    for sim in (lab.sim, lab.second_sim):
        assert sim.saved_config_text == sim.running_config_text and not sim.dirty
    links = lab.vps_sh("ip -d -o link show type ip6tnl")
    assert "remote 2001:db8:2::1 local 2001:db8:1::1" in links
    assert "remote 2001:db8:3::1 local 2001:db8:1::1" in links
    assert links.count("encaplimit none") == 2
    # The second router had no other default route: no fallback, and the run says so.
    assert "no fallback: the router has no other default route" in run.output


def test_both_sites_pass_traffic_at_once_and_neither_reaches_the_other(lab):
    # At once: the second home pings the internet while the first transfers 4 MiB.
    lab.second_net.start_probe()
    try:
        start = lab.net.now()
        first = lab.traffic()
        end = lab.net.now()
    finally:
        samples = lab.second_net.stop_probe()
    assert_passes(first)
    during = [ok for t, ok in samples if start <= t <= end]
    assert during and all(during), samples
    second = lab.traffic(site=2)
    assert_passes(second)
    assert first.transfer.source_seen == second.transfer.source_seen == VPS_UPLINK_IPV4
    # Isolated: the VPS forwards each site to the internet, never to the other site; its
    # rule is what stops them (its counter moves), not a missing route.
    before = drop_counts(lab)
    assert lab.net.ping(count=2, target=lab.second_net.home_host, wait=1).received == 0
    assert lab.second_net.ping(count=2, target=lab.net.home_host, wait=1).received == 0
    after = drop_counts(lab)
    assert after[(TUNNEL_NAME, SECOND_TUNNEL_NAME)] - before[(TUNNEL_NAME, SECOND_TUNNEL_NAME)] >= 2
    assert after[(SECOND_TUNNEL_NAME, TUNNEL_NAME)] - before[(SECOND_TUNNEL_NAME, TUNNEL_NAME)] >= 2


def test_a_rerun_changes_nothing_on_any_end(lab):
    before = lab.vps_snapshot()
    saved = (lab.sim.saved_config_text, lab.second_sim.saved_config_text)
    marks = (len(lab.sim.command_log), len(lab.second_sim.command_log))
    run = lab.deploy()
    assert run.ok, run
    assert run.changed() == []
    assert lab.vps_snapshot() == before
    assert (lab.sim.saved_config_text, lab.second_sim.saved_config_text) == saved
    from lab.e2e import config_commands

    assert config_commands(lab.sim.command_log[marks[0] :]) == []
    assert config_commands(lab.second_sim.command_log[marks[1] :]) == []


def test_removing_a_site_takes_only_its_own_files_and_link(lab):
    index = lab.vps_sh(f"cat /sys/class/net/{TUNNEL_NAME}/ifindex")
    lab.with_second_site = False
    run = lab.deploy()
    assert run.ok, run
    assert "VPS: tunnel tun-home" in run.changed(VPS_HOST)
    assert run.changed(ROUTER_HOST) == []  # the first router is left as it was
    assert SECOND_ROUTER_HOST not in run.output  # nor is the second contacted
    gone = ssh(
        lab.vm, f"test -e {SECOND_NETDEV}; echo $?; ip link show {SECOND_TUNNEL_NAME}", check=False
    )
    assert gone.stdout.startswith("1") and "does not exist" in gone.stderr
    # The first site's link is the very same (not re-created), and it still carries traffic.
    assert lab.vps_sh(f"cat /sys/class/net/{TUNNEL_NAME}/ifindex") == index
    assert_passes(lab.traffic(size=1 << 20))
    rules = lab.vps_sh("iptables -S")
    assert SECOND_TUNNEL_NAME not in rules and "192.0.2.128/26" not in rules


def test_a_router_with_a_backup_vps_goes_to_it_then_to_pppoe_and_back(lab):
    """One router, two VPSes: the lab's first VPS (the VM), then a second one (a namespace
    with a real ip6tnl), then PPPoE; each step seen by the internet host as another address."""
    lab.start_backup_vps()
    preview = lab.deploy("--dry", "--diff")
    assert preview.ok, preview
    chain = (
        "ip route default gateway tunnel 1 keepalive 1 gateway tunnel 2 keepalive 2 weight 0 "
        "gateway pp 1 weight 0"
    )
    assert f"+ {chain}" in preview.output
    assert "+ ip keepalive 2 icmp-echo 1 3 192.0.2.9" in preview.output
    assert f"+  tunnel endpoint address {BACKUP_VPS_IPV6}" in preview.output

    run = lab.deploy()
    assert run.ok, run
    assert run.changed(VPS_HOST) == []  # the first VPS has nothing to do with the second
    assert chain in lab.sim.saved_config_text.splitlines()
    # The backup VPS is set up by the lab, not the deploy: the run says its tunnel is saved
    # without a check by traffic from it (the first VPS's check still ran).
    assert "verified by traffic: ping 192.0.2.2 from lab-vps through tun-home" in run.output
    assert (
        "rtx_backup_tunnel.rtx_vps_managed_elsewhere: the backup VPS is not in this inventory: "
        "saving without a check by traffic"
    ) in run.output
    router_links = ssh(lab.vm, "ip -n rtx -d -o link show type ip6tnl").stdout
    assert f"remote {BACKUP_VPS_IPV6}" in router_links
    assert router_links.count("encaplimit none") == 2

    assert_passes(lab.traffic(size=1 << 20))  # on the first VPS
    chained = lab.failover_chain()
    assert chained.problems() == [], "\n".join(chained.problems())
    assert chained.on_backup.transfer.source_seen == BACKUP_VPS_UPLINK_IPV4
    assert chained.on_pppoe.transfer.source_seen == PPPOE_ADDRESS
    assert chained.after.transfer.source_seen == VPS_UPLINK_IPV4
    print(f"failover with a backup VPS: {chained.summary()}")
    # Generous bounds (1 s x 3 probes in the lab); the figures are printed, not asserted on.
    assert chained.to_backup_after < 20 and chained.to_pppoe_after < 20
    assert chained.back_after < 20

    saved = lab.sim.saved_config_text
    again = lab.deploy()
    assert again.ok, again
    assert again.changed() == []
    assert lab.sim.saved_config_text == saved
