"""The nftables backend's table, and the user's rules for it, without a host. What nft makes
of the table is proven on the lab VM (tests/test_vps_vm_nftables.py): `nft -c`, then a load."""

from __future__ import annotations

import pytest

from ipip6.settings import SettingsError, load_vps_settings
from ipip6.vps import render
from tests.test_port_forwards import BASE, WEB

NFT = {"firewall_backend": "nftables"}


def settings(**changes):
    return load_vps_settings("vps-a", {**BASE, **NFT, **changes})


def refused(**changes) -> str:
    with pytest.raises(SettingsError) as info:
        settings(**changes)
    return str(info.value)


def statements(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.startswith("\t")]


def test_the_backend_decides_the_files():
    assert list(render.render_firewall(settings())) == [render.FIREWALL_NFT]
    assert list(render.render_firewall(settings(firewall_backend="iptables"))) == list(
        render.IPTABLES_FILES
    )
    assert "firewall_backend" in refused(firewall_backend="nft")
    assert "firewall_backend" in refused(firewall_backend=True)


def test_the_table_is_replaced_whole_and_owns_its_chains():
    text = render.render_firewall_nft(settings(firewall_allow_tcp=[443]))
    # Deleted and defined again in one transaction, whether it existed or not.
    body = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert body[:3] == ["table inet ipip6", "delete table inet ipip6", "table inet ipip6 {"]
    lines = statements(text)
    for expected in [
        "type filter hook input priority filter; policy drop;",
        "type filter hook forward priority filter; policy drop;",
        'iif "lo" accept',
        "ct state established,related accept",
        "meta l4proto ipv6-icmp accept",
        'iifname "tun-home" accept',
        # Protocol 4 from the router only: IPv4-in-IPv6.
        "ip6 saddr 2001:db8:2::1 ip6 daddr 2001:db8:1::1 meta l4proto 4 accept",
        "tcp dport 22 ct state new accept",
        "tcp dport 443 ct state new accept",
        'iifname "tun-home" ip saddr 192.168.100.0/24 accept',
        'ip saddr 192.168.100.0/24 oifname "ens3" masquerade',
        "tcp flags & (syn | rst) == syn tcp option maxseg size set rt mtu",
        # What others publish by DNAT (Docker's ports) and Docker's bridges pass.
        "ct status dnat accept",
        'iifname "docker0" accept',
    ]:
        assert expected in lines, expected


def test_a_port_forward_in_the_table():
    forwards = [
        {**WEB, "port": 2222, "to_port": 22},
        {"proto": "udp", "port": "27015-27030", "to": "192.168.100.11"},
    ]
    lines = statements(render.render_firewall_nft(settings(port_forwards=forwards)))
    assert (
        "meta nfproto ipv4 fib daddr type local tcp dport 2222 dnat ip to 192.168.100.10:22"
        in lines
    )
    assert (
        "meta nfproto ipv4 fib daddr type local udp dport 27015-27030 dnat ip to 192.168.100.11"
        in lines
    )
    assert (
        'ip saddr 192.168.100.0/24 ip daddr 192.168.100.10 oifname "tun-home" tcp dport 22 '
        "ct status dnat masquerade" in lines
    )


def test_extra_rules_are_statements_of_the_tables_chains():
    s = settings(
        firewall_extra_rules=[
            "input udp dport 51820 accept",
            "input ip saddr { 203.0.113.7, 203.0.113.8 } tcp dport 9100 accept",
            "prerouting tcp dport 8443 redirect to :443",
            'forward counter comment "mine"',
        ]
    )
    lines = statements(render.render_firewall_nft(s))
    assert (
        lines.index("udp dport 51820 accept")
        == lines.index("ct state established,related accept") + 1
    )
    assert "ip saddr { 203.0.113.7, 203.0.113.8 } tcp dport 9100 accept" in lines
    assert "tcp dport 8443 redirect to :443" in lines
    assert 'counter comment "mine"' in lines


@pytest.mark.parametrize(
    ("rule", "named"),
    [
        ("-A IPIP6-INPUT -j ACCEPT", "'CHAIN STATEMENT' for one of the chains"),
        ("output accept", "'CHAIN STATEMENT' for one of the chains"),
        ("input", "'CHAIN STATEMENT' for one of the chains"),
        ("input accept; flush ruleset", "no ';'"),
        ("input accept # and more", "no ';' and no '#'"),
        (
            "input accept } } table ip evil { chain c {",
            "closes more",
        ),
        ("input tcp dport { 80, 443 accept", "is not closed"),
        ("input accept }", "closes more"),
        ("input accept\nflush ruleset", "one rule on one line"),
        ('input include "/etc/shadow"', "not the file directive 'include'"),
        ("input define x = 1", "not the file directive 'define'"),
    ],
)
def test_a_bad_nft_rule_is_refused(rule, named):
    assert named in refused(firewall_extra_rules=[rule])


def test_a_rule_in_the_other_backends_language_is_named_as_such():
    text = refused(firewall_extra_rules=["-A IPIP6-INPUT -p udp --dport 51820 -j ACCEPT"])
    assert "firewall_extra_rules.0 (value '-A IPIP6-INPUT" in text
    with pytest.raises(SettingsError) as info:
        load_vps_settings("vps-a", {**BASE, "firewall_extra_rules": ["input accept"]})
    assert "with firewall_backend 'iptables', expected a rule that appends" in str(info.value)
