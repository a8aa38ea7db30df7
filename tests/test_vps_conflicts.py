"""What the VPS already has against the data: the fact's parsing of real ``ip`` output and the
problems found, without a host (the lab VM test proves the same on a real Debian)."""

from __future__ import annotations

from ipip6.settings import load_vps_settings
from ipip6.vps.conflicts import conflicts
from ipip6.vps.facts import VpsNetwork

# As the fact's command prints it on Debian 12 (iproute2 6.1), one line per item.
OUTPUT = [
    "ssh 192.0.2.50 50022 192.0.2.10 22",
    "link 1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT "
    "group default qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00",
    "link 2: ens3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc fq_codel state UP mode "
    "DEFAULT group default qlen 1000\\    link/ether 52:54:00:12:34:56 brd ff:ff:ff:ff:ff:ff "
    "promiscuity 0 allmulti 0 minmtu 68 maxmtu 65535 \\    altname enp0s3",
    "link 5: tun-home@NONE: <NOARP,UP,LOWER_UP> mtu 1460 qdisc noqueue state UNKNOWN mode "
    "DEFAULT group default qlen 1000\\    link/tunnel6 2001:db8:1::1 peer 2001:db8:1::2 "
    "promiscuity 0 \\    ip6tnl ip6ip remote 2001:db8:1::2 local 2001:db8:1::1 encaplimit none",
    "link 6: docker0: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue state DOWN "
    "\\    link/ether 02:42:ac:11:00:01 brd ff:ff:ff:ff:ff:ff \\    bridge forward_delay 1500",
    "addr 1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever",
    "addr 2: ens3    inet 192.0.2.10/24 brd 192.0.2.255 scope global dynamic ens3\\    valid",
    "addr 6: docker0    inet 172.17.0.1/16 brd 172.17.255.255 scope global docker0",
    "addr 5: tun-home    inet 169.254.100.1/30 scope global tun-home\\       valid_lft forever",
    "route default via 192.0.2.1 dev ens3 proto dhcp src 192.0.2.10 metric 100",
    "netdev /etc/systemd/network/60-ipip6-tun-home.netdev",
]
BASE = {
    "vps_ipv6": "2001:db8:1::1",
    "router_ipv6": "2001:db8:1::2",
    "home_networks": ["198.51.100.0/24"],
    "uplink_interface": "ens3",
}


def network() -> dict:
    return VpsNetwork().process(OUTPUT)


def test_the_fact_reads_links_addresses_gateways_and_the_ssh_port():
    found = network()
    assert found["links"] == {"lo": "", "ens3": "", "tun-home": "ip6tnl", "docker0": "bridge"}
    assert found["ipv4"] == ["127.0.0.1", "192.0.2.10", "172.17.0.1", "169.254.100.1"]
    assert found["ipv4_links"]["169.254.100.1"] == "tun-home"
    assert found["gateways"] == ["192.0.2.1"]
    assert found["owned_netdevs"] == ["tun-home"]
    assert found["ssh_server_port"] == 22


def test_a_converged_vps_has_no_conflict():
    assert conflicts(load_vps_settings("v", BASE), network()) == []


def test_each_conflict_is_named():
    def problems(**changes):
        return "\n".join(conflicts(load_vps_settings("v", {**BASE, **changes}), network()))

    assert "tunnel_name (value 'docker0'): the VPS already has an interface docker0 (bridge)" in (
        problems(tunnel_name="docker0")
    )
    assert "uplink_interface (value 'eth0'): no such interface on the VPS; expected one of " in (
        problems(uplink_interface="eth0")
    )
    text = problems(home_networks=["192.0.2.0/25"])
    assert "holds the VPS's own IPv4 address 192.0.2.10" in text
    assert "holds the VPS's own IPv4 default gateway 192.0.2.1" in text
    assert "172.17.0.1" in problems(home_networks=["172.16.0.0/12"])  # Docker's bridge
    text = problems(ssh_port_allowed=2222)
    assert "this SSH connection arrived on port 22, which the firewall would close" in text
    assert problems(ssh_port_allowed=2222, firewall_allow_tcp=[22]) == ""


def test_nothing_known_means_nothing_refused():
    # sudo without $SSH_CONNECTION, or a connector that prints nothing: no guess either way.
    assert conflicts(load_vps_settings("v", {**BASE, "ssh_port_allowed": 2222}), {}) == []


def test_an_inner_network_the_vps_already_uses_is_refused_but_not_its_own_tunnels():
    def problems(**changes):
        return "\n".join(conflicts(load_vps_settings("v", {**BASE, **changes}), network()))

    # The deploy's own tunnel holds the inner address: no conflict (a converged VPS).
    assert problems() == ""
    assert (
        "tunnel_inner_network (value '172.17.0.0/30'): holds the VPS's own IPv4 address "
        "172.17.0.1 (on docker0)" in problems(tunnel_inner_network="172.17.0.0/30")
    )
    # Renamed: tun-home is still this deploy's (the run removes it), so no conflict either.
    assert problems(tunnel_name="tun-b") == ""


def test_an_inner_address_on_a_tunnel_this_deploy_did_not_create_is_a_conflict():
    output = [line for line in OUTPUT if not line.startswith("netdev ")]
    found = VpsNetwork().process(output)  # tun-home exists, but no .netdev of ours
    text = "\n".join(conflicts(load_vps_settings("v", {**BASE, "tunnel_name": "tun-b"}), found))
    assert "holds the VPS's own IPv4 address 169.254.100.1 (on tun-home)" in text
