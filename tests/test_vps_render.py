"""Rendering the VPS's files from settings: pure functions, no host."""

import configparser

import pytest

from ipip6.settings import load_vps_settings
from ipip6.vps import render

BASE = {
    "vps_ipv6": "2001:db8:1::1",
    "router_ipv6": "2001:db8:2::1",
    "home_networks": ["192.168.100.0/24", "192.168.101.0/24"],
}


def settings(**changes):
    return load_vps_settings("vps", {**BASE, **changes})


def ini(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(text)
    return parser


def test_netdev_has_encapsulation_limit_none_and_says_why():
    text = render.render_netdev(settings())
    assert text.startswith("# Managed by pyinfra-ipip6")
    unit = ini(text)
    assert dict(unit["NetDev"]) == {"Name": "tun-home", "Kind": "ip6tnl", "MTUBytes": "1460"}
    assert unit["Tunnel"]["Mode"] == "ipip6"
    assert unit["Tunnel"]["Local"] == "2001:db8:1::1"
    assert unit["Tunnel"]["Remote"] == "2001:db8:2::1"
    assert unit["Tunnel"]["EncapsulationLimit"] == "none"
    assert unit["Tunnel"]["Independent"] == "yes"
    # The reason sits right above the line, naming the trap.
    before = text.split("EncapsulationLimit=none")[0].splitlines()[-4:]
    assert any("RTX1200" in line for line in before)
    assert any("Destination Options" in line for line in before)


def test_addresses_are_written_compressed():
    s = settings(vps_ipv6="2001:0db8:0001:0000:0000:0000:0000:0001")
    assert "Local=2001:db8:1::1\n" in render.render_netdev(s)


def test_netplan_dropin_mode():
    s = settings(tunnel_attach="netplan-dropin", uplink_interface="eth0")
    units = render.render_tunnel_units(s)
    assert "Independent" not in units.netdev[1]
    assert units.uplink_dropin[0] == (
        "/etc/systemd/network/10-netplan-eth0.network.d/60-ipip6-tun-home.conf"
    )
    assert ini(units.uplink_dropin[1])["Network"]["Tunnel"] == "tun-home"
    s = settings(tunnel_attach="netplan-dropin", uplink_network_file="50-cloud-init.network")
    assert "/50-cloud-init.network.d/" in render.render_tunnel_units(s).uplink_dropin[0]
    assert render.render_tunnel_units(settings()).uplink_dropin is None


def test_network_routes_each_home_network_with_scope_link():
    text = render.render_network(settings())
    assert text.count("[Route]") == 2
    assert "Destination=192.168.100.0/24\nScope=link" in text
    assert "Destination=192.168.101.0/24\nScope=link" in text
    assert "Name=tun-home" in text


def test_sysctl_and_modules():
    text = render.render_sysctl(settings())
    assert "net.ipv4.conf.all.forwarding = 1" in text
    assert "net.netfilter.nf_conntrack_max = 65536" in text
    assert "rp_filter" not in text
    assert "rp_filter = 2" in render.render_sysctl(settings(tunnel_rp_filter="loose"))
    assert "net.ipv4.conf.tun-home.rp_filter = 1" in render.render_sysctl(
        settings(tunnel_rp_filter="strict")
    )
    assert "\nnf_conntrack\n" in render.render_modules_load(settings())


def rule_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_rules_v4_policy_nat_and_mss():
    lines = rule_lines(render.render_firewall_v4(settings(firewall_allow_tcp=[443])))
    assert ":INPUT DROP [0:0]" in lines and ":FORWARD DROP [0:0]" in lines
    assert "-A IPIP6-INPUT -i tun-home -j ACCEPT" in lines
    assert "-A IPIP6-INPUT -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT" in lines
    assert "-A IPIP6-INPUT -p tcp -m tcp --dport 443 -m conntrack --ctstate NEW -j ACCEPT" in lines
    assert "-A IPIP6-FORWARD -i tun-home -s 192.168.101.0/24 -j ACCEPT" in lines
    assert "-A IPIP6-POSTROUTING -s 192.168.100.0/24 -o ens3 -j MASQUERADE" in lines
    assert (
        "-A IPIP6-FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu"
        in lines
    )
    assert lines.count("COMMIT") == 3


def test_rules_v4_without_nat_or_clamp():
    text = render.render_firewall_v4(
        settings(nat=False, mss_clamp=False, tunnel_inner_network=False)
    )
    assert "MASQUERADE" not in text
    assert "TCPMSS" not in text


def test_the_routers_inner_address_is_forwarded_and_natted_even_without_nat():
    # The router's own traffic (its DNS proxy, NTP) leaves by the tunnel with its inner
    # address, which no network routes back: it is NATed whatever `nat` says.
    lines = rule_lines(render.render_firewall_v4(settings(nat=False)))
    assert "-A IPIP6-FORWARD -i tun-home -s 169.254.100.2/32 -j ACCEPT" in lines
    assert "-A IPIP6-POSTROUTING -s 169.254.100.2/32 -o ens3 -j MASQUERADE" in lines
    assert not any("MASQUERADE" in line and "192.168" in line for line in lines)


def test_network_unit_carries_the_vps_inner_address():
    text = render.render_network(settings(tunnel_inner_network="192.0.2.0/31"))
    assert "Address=192.0.2.0/31" in text.splitlines()
    assert "Address=" not in render.render_network(settings(tunnel_inner_network=False))
    assert "Address=169.254.100.1/30" in render.render_network(settings()).splitlines()


def test_rules_v6_lets_protocol_4_in_from_the_router_only():
    lines = rule_lines(render.render_firewall_v6(settings(ssh_port_allowed=2222)))
    assert "-A IPIP6-INPUT -s 2001:db8:2::1/128 -d 2001:db8:1::1/128 -p 4 -j ACCEPT" in lines
    assert "-A IPIP6-INPUT -p ipv6-icmp -j ACCEPT" in lines
    assert "-A IPIP6-INPUT -p tcp -m tcp --dport 2222 -m conntrack --ctstate NEW -j ACCEPT" in lines
    assert not any("-p ipip" in line for line in lines)


@pytest.mark.parametrize(
    "fn",
    [
        render.render_netdev,
        render.render_network,
        render.render_sysctl,
        render.render_modules_load,
        render.render_firewall_v4,
        render.render_firewall_v6,
    ],
)
def test_every_file_carries_the_header_and_no_blank_runs(fn):
    text = fn(settings())
    assert text.startswith(render.HEADER)
    assert "\n\n\n" not in text
    assert text.endswith("\n") and not text.endswith("\n\n")


def two_sites():
    home = settings()
    parents = settings(
        tunnel_name="tun-parents",
        router_ipv6="2001:db8:3::1",
        home_networks=["192.0.2.0/26"],
        tunnel_inner_network="169.254.100.4/30",
        tunnel_mtu=1400,
    )
    return home, parents


def test_each_site_on_one_vps_gets_its_units_and_its_rules():
    home, parents = two_sites()
    units = render.render_tunnel_units(parents).files()
    assert set(units) == {
        "/etc/systemd/network/60-ipip6-tun-parents.netdev",
        "/etc/systemd/network/60-ipip6-tun-parents.network",
    }
    assert "Remote=2001:db8:3::1" in units["/etc/systemd/network/60-ipip6-tun-parents.netdev"]
    v4 = rule_lines(render.render_firewall_v4(home, (home, parents)))
    for line in (
        "-A IPIP6-INPUT -i tun-home -j ACCEPT",
        "-A IPIP6-INPUT -i tun-parents -j ACCEPT",
        "-A IPIP6-FORWARD -i tun-parents -s 192.0.2.0/26 -j ACCEPT",
        "-A IPIP6-FORWARD -i tun-parents -s 169.254.100.6/32 -j ACCEPT",
        "-A IPIP6-POSTROUTING -s 192.0.2.0/26 -o ens3 -j MASQUERADE",
        "-A IPIP6-FORWARD -i tun-home -s 192.168.100.0/24 -j ACCEPT",
    ):
        assert line in v4, line
    # A site's networks are forwarded only from its own tunnel.
    assert "-A IPIP6-FORWARD -i tun-home -s 192.0.2.0/26 -j ACCEPT" not in v4
    v6 = rule_lines(render.render_firewall_v6(home, (home, parents)))
    assert "-A IPIP6-INPUT -s 2001:db8:3::1/128 -d 2001:db8:1::1/128 -p 4 -j ACCEPT" in v6
    assert "-A IPIP6-INPUT -s 2001:db8:2::1/128 -d 2001:db8:1::1/128 -p 4 -j ACCEPT" in v6
    sysctl = render.render_sysctl(
        settings(tunnel_rp_filter="loose"),
        (
            settings(tunnel_rp_filter="loose"),
            parents.model_copy(update={"tunnel_rp_filter": "loose"}),
        ),
    )
    assert "net.ipv4.conf.tun-home.rp_filter = 2" in sysctl
    assert "net.ipv4.conf.tun-parents.rp_filter = 2" in sysctl


def test_sites_never_reach_each_other_unless_the_data_says_so():
    home, parents = two_sites()
    v4 = rule_lines(render.render_firewall_v4(home, (home, parents)))
    drops = [
        "-A IPIP6-FORWARD -i tun-home -o tun-parents -j DROP",
        "-A IPIP6-FORWARD -i tun-parents -o tun-home -j DROP",
    ]
    for line in drops:
        assert line in v4
    # Before the accepts of either site (first match wins).
    assert v4.index(drops[0]) < v4.index(
        "-A IPIP6-FORWARD -i tun-home -s 192.168.100.0/24 -j ACCEPT"
    )
    routed = home.model_copy(update={"route_between_sites": True})
    assert not any(
        "-j DROP" in line
        for line in rule_lines(render.render_firewall_v4(routed, (routed, parents)))
    )
    assert not any("-j DROP" in line for line in rule_lines(render.render_firewall_v4(home)))


def test_one_tunnel_renders_as_before_with_or_without_the_list():
    s = settings()
    assert render.render_firewall_v4(s) == render.render_firewall_v4(s, (s,))
    assert "The tunnel's MTU is 1460" in render.render_firewall_v4(s)
