"""Which tunnel number the deploy may own: never one that anything else holds or uses.

The configs are shaped like public RTX configs on IPoE lines: v6plus MAP-E, DS-Lite to an
AFTR, L2TP/IPsec VPNs, bridges and PPPoE binds naming tunnels.
"""

from __future__ import annotations

import ipaddress

import pytest

from ipip6.rtx.config import RouterConfig, compare, desired_lines
from ipip6.rtx.tunnel_slot import TunnelRefused, choose_tunnel, named_tunnels, tunnel_use
from ipip6.settings import load_router_settings

VPS = ipaddress.IPv6Address("2001:db8:100::10")
HEADER = "# RTX830 Rev.15.02.22 (Mon Dec 14 10:00:00 2022)\n# Reporting Date: Dec 7 15:38:26 2024\n"

MAP_E = """\
ip route default gateway tunnel 1
tunnel select 1
 tunnel encapsulation map-e
 tunnel map-e type v6plus
 ip tunnel mtu 1460
 ip tunnel nat descriptor 1000
 tunnel enable 1
"""
DS_LITE = """\
tunnel select 1
 tunnel encapsulation ipip
 tunnel endpoint name gw.transix.jp fqdn
 ip tunnel mtu 1460
 tunnel enable 1
"""
L2TP = """\
pp select anonymous
 pp bind tunnel1-tunnel3
 pp auth request mschap-v2
pp enable anonymous
tunnel select 1
 tunnel encapsulation l2tp
 ipsec tunnel 101
  ipsec sa policy 101 1 esp aes-cbc sha-hmac
 tunnel enable 1
tunnel select 2
 tunnel encapsulation l2tp
 ipsec tunnel 102
 tunnel enable 2
"""
OURS = f"""\
tunnel select 4
 tunnel encapsulation ipip
 tunnel endpoint remote address {VPS}
 ip tunnel mtu 1460
 ip tunnel tcp mss limit auto
 tunnel enable 4
"""


def config(text: str) -> RouterConfig:
    return RouterConfig.parse(HEADER + text)


def choose(text: str, wanted: int | None = None, **kw) -> int:
    return choose_tunnel(config(text), wanted=wanted, vps_ipv6=VPS, **kw)


@pytest.mark.parametrize(
    ("text", "what"),
    [
        (MAP_E, "tunnel encapsulation map-e; tunnel map-e type v6plus"),
        (DS_LITE, "tunnel endpoint name gw.transix.jp fqdn"),
        (L2TP, "tunnel encapsulation l2tp; ipsec tunnel 101"),
        ("ip route 10.0.0.0/8 gateway tunnel 1\n", "is used by ip route 10.0.0.0/8"),
        ("bridge member bridge1 lan1 tunnel1\n", "is used by bridge member bridge1 lan1 tunnel1"),
        ("schedule at 1 */* 03:00 * tunnel enable 1\n", "is used by schedule at 1"),
        (
            "tunnel select 1\n tunnel encapsulation ipip\n tunnel endpoint address 2001:db8:9::1\n",
            "tunnel endpoint address 2001:db8:9::1",
        ),
    ],
    ids=["map-e", "ds-lite", "l2tp-ipsec", "route", "bridge", "schedule", "another-vps"],
)
def test_a_tunnel_in_use_is_refused_by_name(text, what):
    with pytest.raises(TunnelRefused) as info:
        choose(text, wanted=1)
    message = str(info.value)
    assert "rtx_tunnel_number 1 is not free" in message and what in message
    assert "Nothing was sent" in message and "rtx_tunnel_takeover" in message


def test_secrets_in_what_is_in_the_way_are_hidden():
    text = "tunnel select 1\n tunnel encapsulation l2tp\n l2tp tunnel auth on s3cret\n"
    with pytest.raises(TunnelRefused) as info:
        choose(text, wanted=1)
    assert "s3cret" not in str(info.value)


def test_takeover_takes_it():
    assert choose(MAP_E, wanted=1, takeover=True) == 1


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("", 1),
        (MAP_E, 2),
        (DS_LITE, 2),
        (L2TP, 4),  # 1 and 2 are VPNs, 3 is bound by `pp bind tunnel1-tunnel3`
        (MAP_E + OURS, 4),  # ours, found again whatever is around it
        ("ip route 10.0.0.0/8 gateway tunnel 1\n", 2),
    ],
    ids=["factory", "map-e", "ds-lite", "l2tp-range", "ours", "route"],
)
def test_without_a_number_ours_else_the_lowest_free(text, number):
    assert choose(text) == number


def test_own_default_route_is_not_a_use():
    # rtx_default_route owns `ip route default`: it names the tunnel, but it is ours to move.
    use = tunnel_use(config(MAP_E), 1, VPS, owned_keys=("ip route default",))
    assert use.references == ()
    assert tunnel_use(config(MAP_E), 1, VPS).references == ("ip route default gateway tunnel 1",)


def test_an_empty_or_half_made_block_of_ours_is_reused():
    assert choose("tunnel select 3\n tunnel encapsulation ipip\n") == 3
    assert choose("tunnel select 3\n") == 3


def test_the_model_limit():
    with pytest.raises(TunnelRefused, match="beyond this RTX830's 20 tunnel interfaces"):
        choose("", wanted=21)
    assert choose("", wanted=20) == 20
    # Unknown model: the router's own range error stops the first line instead.
    unknown = RouterConfig.parse("tunnel select 1\n")
    assert choose_tunnel(unknown, wanted=2999, vps_ipv6=VPS) == 2999


def test_every_number_in_use_is_refused():
    text = "".join(f"ip route 10.{n}.0.0/16 gateway tunnel {n}\n" for n in range(1, 21))
    with pytest.raises(TunnelRefused, match="no free tunnel number"):
        choose(text)


@pytest.mark.parametrize(
    ("line", "numbers"),
    [
        ("ip route default gateway tunnel 12", {12}),
        ("pp bind tunnel1-tunnel3", {1, 2, 3}),
        ("bridge member bridge1 lan1 tunnel10", {10}),
        ("ipsec tunnel 101", set()),  # an IPsec policy id
        ("tunnel select 1", set()),
        ("ip route 192.0.2.0/24 gateway tunnel 1 keepalive 1 gateway pp 1 weight 0", {1}),
        ("ip tunnel mtu 1460", set()),
        ("description lan1 tunnel 5.1 to the office", set()),
    ],
)
def test_named_tunnels(line, numbers):
    assert named_tunnels(line) == numbers


def test_takeover_removes_the_foreign_lines_and_rollback_puts_them_back():
    settings = load_router_settings(
        "r",
        {
            "vps_ipv6": str(VPS),
            "router_ipv6": "2001:db8:200::1",
            "home_networks": ["192.168.100.0/24"],
            "rtx_admin_password": "pw",
            "rtx_tunnel_number": 1,
            "rtx_tunnel_takeover": True,
        },
    )
    running = config(MAP_E)
    delta = compare(running, desired_lines(settings, 1))
    assert "no tunnel map-e type v6plus" in delta.commands
    assert "no ip tunnel nat descriptor" in delta.commands
    assert "tunnel encapsulation ipip" in delta.commands
    assert "tunnel map-e type v6plus" in delta.rollback
    assert "ip tunnel nat descriptor 1000" in delta.rollback
    assert "tunnel encapsulation map-e" in delta.rollback


def test_tunnels_made_from_a_template_are_in_use():
    template = "tunnel select 1\n tunnel template 2-4 6\n tunnel encapsulation l2tpv3\n"
    assert named_tunnels("tunnel template 2-4 6") == {2, 3, 4, 6}
    assert choose(template) == 5
    with pytest.raises(TunnelRefused, match="is used by tunnel template 2-4 6"):
        choose(template, wanted=3)
