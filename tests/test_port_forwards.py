"""Port forwards and the user's own rules: what the data may say, and the rules it becomes.

The refusals are what a careless or hostile user could write: the nearest value that slips
past each rule is a case here. What the kernel makes of the rules is proven on the lab VM
(tests/test_vps_vm_firewall.py, tests/test_e2e_vm.py)."""

from __future__ import annotations

import pytest

from ipip6.settings import SettingsError, load_vps_settings
from ipip6.tunnels import InventoryError, TunnelInventory
from ipip6.vps import render
from tests.test_tunnel_inventory import ROUTER_ONLY, inventory

BASE = {
    "vps_ipv6": "2001:db8:1::1",
    "router_ipv6": "2001:db8:2::1",
    "home_networks": ["192.168.100.0/24"],
}
WEB = {"proto": "tcp", "port": 443, "to": "192.168.100.10"}


def settings(**changes):
    return load_vps_settings("vps-a", {**BASE, **changes})


def refused(**changes) -> str:
    with pytest.raises(SettingsError) as info:
        settings(**changes)
    return str(info.value)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("-")]


def test_a_forward_becomes_dnat_forward_accept_and_hairpin():
    v4 = lines(render.render_firewall_v4(settings(port_forwards=[WEB])))
    assert (
        "-A IPIP6-PREROUTING -m addrtype --dst-type LOCAL -p tcp -m tcp --dport 443 -j DNAT "
        "--to-destination 192.168.100.10" in v4
    )
    # Exactly the DNATed flow is forwarded into the tunnel, before any other forward rule
    # but replies.
    accept = (
        "-A IPIP6-FORWARD -d 192.168.100.10/32 -o tun-home -p tcp -m tcp --dport 443 "
        "-m conntrack --ctstate DNAT -j ACCEPT"
    )
    forward = [line for line in v4 if line.startswith("-A IPIP6-FORWARD")]
    assert forward.index(accept) == 1
    assert (
        "-A IPIP6-POSTROUTING -s 192.168.100.0/24 -d 192.168.100.10/32 -o tun-home -p tcp -m tcp "
        "--dport 443 -m conntrack --ctstate DNAT -j MASQUERADE" in v4
    )
    # IPv4 only: nothing in the IPv6 file.
    assert "443" not in render.render_firewall_v6(settings(port_forwards=[WEB]))


def test_another_home_port_and_a_range():
    v4 = render.render_firewall_v4(
        settings(
            port_forwards=[
                {"proto": "tcp", "port": 2222, "to": "192.168.100.10", "to_port": 22},
                {"proto": "udp", "port": "27015-27030", "to": "192.168.100.11"},
                {"proto": "udp", "port": "3478-3479", "to": "192.168.100.11", "to_port": 3478},
            ]
        )
    )
    assert "--dport 2222 -j DNAT --to-destination 192.168.100.10:22" in v4
    assert "-o tun-home -p tcp -m tcp --dport 22 -m conntrack --ctstate DNAT -j ACCEPT" in v4
    assert "--dport 27015:27030 -j DNAT --to-destination 192.168.100.11\n" in v4
    assert "-p udp -m udp --dport 27015:27030 -m conntrack --ctstate DNAT -j ACCEPT" in v4
    assert "--dport 3478:3479 -j DNAT --to-destination 192.168.100.11\n" in v4


@pytest.mark.parametrize(
    ("forward", "named"),
    [
        ({**WEB, "port": "443"}, "expected a number, not the string '443' (write 443)"),
        ({**WEB, "port": True}, "expected a port (a number 1-65535)"),
        ({**WEB, "port": 0}, "expected a port 1-65535"),
        ({**WEB, "port": 65536}, "expected a port 1-65535"),
        ({**WEB, "port": "8000:8010"}, "expected a range written 'FIRST-LAST', e.g. '8000-8010'"),
        ({**WEB, "port": "8010-8000"}, "1 <= FIRST < LAST <= 65535"),
        ({**WEB, "port": "443-443"}, "one port: write 443 as a number"),
        ({**WEB, "port": "0-10"}, "1 <= FIRST < LAST <= 65535"),
        ({**WEB, "port": " 443-444"}, "expected a port"),
        ({**WEB, "port": "443-444;reboot"}, "expected a port"),
        ({**WEB, "port": 443.0}, "expected a port"),
        ({**WEB, "proto": "TCP"}, "Input should be 'tcp' or 'udp'"),
        ({**WEB, "proto": "sctp"}, "Input should be 'tcp' or 'udp'"),
        ({**WEB, "to": "192.168.100.10/32"}, "not a valid IPv4 address"),
        ({**WEB, "to": "192.168.100.10 "}, "whitespace"),
        ({**WEB, "to": "2001:db8::10"}, "not a valid IPv4 address"),
        ({**WEB, "to_port": 0}, "greater than or equal to 1"),
        ({**WEB, "to_port": "443"}, "valid integer"),
        ({**WEB, "port": "8000-8010", "to_port": 9000}, "forwarded to the same ports"),
        ({**WEB, "too": "192.168.100.10"}, "unknown key 'too': did you mean 'to'?"),
        ({"proto": "tcp", "port": 443}, "port_forwards.0.to: missing: The home host's IPv4"),
        ("tcp/443", "expected a mapping such as"),
    ],
)
def test_a_bad_forward_is_refused(forward, named):
    assert named in refused(port_forwards=[forward])


def test_forwards_must_be_a_list():
    assert "expected a list of port forwards" in refused(port_forwards=WEB)


@pytest.mark.parametrize(
    ("forwards", "named"),
    [
        ([WEB, {**WEB, "to": "192.168.100.11"}], "tcp port 443 (to 192.168.100.10) and tcp port"),
        # The nearest overlap: a range's last port.
        (
            [{**WEB, "port": "8000-8010"}, {**WEB, "port": 8010}],
            "tcp port 8000-8010 (to 192.168.100.10) and tcp port 8010",
        ),
        (
            [{**WEB, "port": "8000-8010"}, {**WEB, "port": "8010-8020"}],
            "overlap: expected each public port forwarded once",
        ),
    ],
)
def test_a_public_port_is_forwarded_once(forwards, named):
    assert named in refused(port_forwards=forwards)


def test_the_same_port_over_tcp_and_udp_is_two_forwards():
    s = settings(port_forwards=[WEB, {**WEB, "proto": "udp"}])
    assert len(s.port_forwards) == 2


def test_the_vps_keeps_its_own_ports():
    assert "holds ssh_port_allowed 22" in refused(port_forwards=[{**WEB, "port": 22}])
    assert "holds ssh_port_allowed 22" in refused(port_forwards=[{**WEB, "port": "20-30"}])
    # The nearest slip: sshd on 2222 (ssh_port) and a forward of 2222.
    text = refused(ssh_port=2222, port_forwards=[{**WEB, "port": 2222}])
    assert "holds ssh_port_allowed 2222" in text
    text = refused(firewall_allow_tcp=[8443], port_forwards=[{**WEB, "port": "8440-8450"}])
    assert "holds the port 8443 of firewall_allow_tcp" in text
    # udp 22 is no SSH.
    assert settings(port_forwards=[{**WEB, "proto": "udp", "port": 22}]).port_forwards


def inventory_problems(inv) -> str:
    with pytest.raises(InventoryError) as info:
        TunnelInventory.build(inv)
    return str(info.value)


def test_the_target_is_a_host_of_the_home_networks():
    ok = TunnelInventory.build(
        inventory(shared={"home_networks": ["198.51.100.0/24"]}, vps={"port_forwards": []})
    )
    assert ok.vps_settings("vps-a").port_forwards == []
    for to, named in [
        ("192.168.100.10", "not inside the home networks of this VPS's tunnels (198.51.100.0/24)"),
        ("198.51.101.0", "not inside the home networks"),  # right next to it
        ("198.51.100.0", "the network or broadcast address of 198.51.100.0/24"),
        ("198.51.100.255", "the network or broadcast address of 198.51.100.0/24"),
    ]:
        forward = {"proto": "tcp", "port": 443, "to": to}
        text = inventory_problems(inventory(vps={"port_forwards": [forward]}))
        assert f"port_forwards: tcp port 443 to {to}: {named}" in text
        assert text.endswith("Nothing was changed.")


def test_with_several_sites_a_forward_goes_into_the_tunnel_of_its_home():
    parents = {
        **ROUTER_ONLY,
        "router_ipv6": "2001:db8:3::1",
        "home_networks": ["192.0.2.0/26"],
        "tunnel_name": "tun-parents",
        "tunnel_inner_network": "169.254.100.4/30",
    }
    forwards = [
        {"proto": "tcp", "port": 443, "to": "198.51.100.10"},
        {"proto": "tcp", "port": 8443, "to": "192.0.2.10"},
    ]
    model = TunnelInventory.build(
        inventory(vps={"port_forwards": forwards}, extra_routers=[("@rtx/parents", parents)])
    )
    tunnels = model.vps_tunnels("vps-a")
    v4 = render.render_firewall_v4(tunnels[0], tunnels)
    assert "-d 198.51.100.10/32 -o tun-home -p tcp -m tcp --dport 443 " in v4
    assert "-d 192.0.2.10/32 -o tun-parents -p tcp -m tcp --dport 8443 " in v4
    # Hairpin for the site's own networks only.
    assert "-s 192.0.2.0/26 -d 192.0.2.10/32 -o tun-parents" in v4
    assert "-s 198.51.100.0/24 -d 192.0.2.10/32" not in v4
    # A published service is public: reached from the other site too, before the drops
    # between sites (route_between_sites: false).
    text = lines(v4)
    assert text.index("-A IPIP6-FORWARD -i tun-home -o tun-parents -j DROP") > next(
        i for i, line in enumerate(text) if "-o tun-parents -p tcp" in line
    )
    # A host of neither site: refused, naming both.
    bad = [{"proto": "tcp", "port": 443, "to": "203.0.113.10"}]
    text = inventory_problems(
        inventory(vps={"port_forwards": bad}, extra_routers=[("@rtx/parents", parents)])
    )
    assert "(198.51.100.0/24, 192.0.2.0/26)" in text


# --- firewall_extra_rules ---------------------------------------------------------------------


def test_extra_rules_go_into_the_deploys_chains_of_each_family():
    s = settings(
        firewall_extra_rules=[
            "-A IPIP6-INPUT -p udp -m udp --dport 51820 -j ACCEPT",
            "-4 -A IPIP6-INPUT -s 203.0.113.7/32 -p tcp -m tcp --dport 9100 -j ACCEPT",
            "-6 -A IPIP6-INPUT -s 2001:db8:9::/48 -p tcp -m tcp --dport 9100 -j ACCEPT",
            "-A IPIP6-PREROUTING -p tcp -m tcp --dport 8443 -j REDIRECT --to-ports 443",
            '-A IPIP6-FORWARD -m comment --comment "my own" -j LOG',
        ]
    )
    v4, v6 = render.render_firewall_v4(s), render.render_firewall_v6(s)
    for rule in ("--dport 51820", "-4 -A IPIP6-INPUT", "-6 -A IPIP6-INPUT", '"my own"'):
        assert rule in v4 and rule in v6  # the other family's restore skips -4/-6 lines
    assert "REDIRECT" in v4 and "REDIRECT" not in v6  # no nat table in the IPv6 file
    # After loopback and replies, before the deploy's own accepts: they can narrow those too.
    input_rules = [line for line in lines(v4) if "IPIP6-INPUT" in line]
    assert input_rules[2] == "-A IPIP6-INPUT -p udp -m udp --dport 51820 -j ACCEPT"


@pytest.mark.parametrize(
    ("rule", "named"),
    [
        ("-A INPUT -j ACCEPT", "appends to one of the deploy's chains"),
        ("-I IPIP6-INPUT -j ACCEPT", "appends to one of the deploy's chains"),
        ("-A IPIP6-INPUTX -j ACCEPT", "appends to one of the deploy's chains"),
        ("-A IPIP6-INPUT", "appends to one of the deploy's chains"),
        ("-A IPIP6-INPUT -j ACCEPT\nCOMMIT", "one rule on one line"),
        ("-A IPIP6-INPUT -j ACCEPT\r", "one rule on one line"),
        ("-A IPIP6-INPUT\t-j ACCEPT", "one rule on one line"),
        ("-A IPIP6-INPUT  -j ACCEPT", "single spaces"),
        (" -A IPIP6-INPUT -j ACCEPT", "single spaces"),
        ("-A IPIP6-INPUT -j ACCEPT ", "single spaces"),
        ("-6 -A IPIP6-POSTROUTING -j MASQUERADE", "an IPv4 chain (the nat table)"),
        ("-F IPIP6-INPUT", "appends to one of the deploy's chains"),
        ("*filter", "appends to one of the deploy's chains"),
        (["-A IPIP6-INPUT -j ACCEPT"], "as a string"),
        (42, "as a string"),
    ],
)
def test_a_bad_extra_rule_is_refused(rule, named):
    assert named in refused(firewall_extra_rules=[rule])


def test_a_rule_line_that_slipped_past_validation_still_cannot_add_a_line():
    with pytest.raises(ValueError, match="firewall rule"):
        render._finalize(render.RuleLine("-A IPIP6-INPUT -j ACCEPT\n-A INPUT -j ACCEPT"))
    with pytest.raises(ValueError, match="template value"):
        render._finalize("two words")
