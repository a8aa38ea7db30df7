"""The tunnel's inner addresses and the router's fallback: the data that describes them, which
keepalive number and which gateway a router gets, and the commands that set them up and undo
them. Configs as a router with PPPoE, MAP-E or keepalives of its own prints them."""

from __future__ import annotations

import ipaddress

import pytest

from ipip6.rtx.config import RouterConfig, compare, desired_lines
from ipip6.rtx.decide import owned_section, tunnel_ping, tunnel_step
from ipip6.rtx.fallback import FallbackRefused, choose_fallback
from ipip6.settings import SettingsError, load_router_settings, load_vps_settings
from ipip6.vps import render

VPS = "2001:db8:100::10"
ROUTER = "2001:db8:200::1"
DATA = {
    "vps_ipv6": VPS,
    "router_ipv6": ROUTER,
    "home_networks": ["192.168.100.0/24"],
    "rtx_admin_password": "secret",
}
HEADER = "# RTX830 Rev.15.02.30 (Tue Apr  2 10:00:00 2024)\n"
PPPOE = (
    HEADER
    + """\
ip route default gateway pp 1
ip lan1 address 192.168.100.1/24
pp select 1
 pppoe use lan2
 pp auth myname user@isp *
 ip pp nat descriptor 1000
 pp enable 1
nat descriptor type 1000 masquerade
"""
)


def router(**changes):
    return load_router_settings("@rtx/r", {**DATA, **changes})


def config(text: str) -> RouterConfig:
    return RouterConfig.parse(text)


def ours(n=1, k=1, gateway="pp 1", target="169.254.100.1", interval=5, count=6) -> str:
    return (
        HEADER
        + f"ip route default gateway tunnel {n} keepalive {k} gateway {gateway} weight 0\n"
        + "ip lan1 address 192.168.100.1/24\n"
        + f"tunnel select {n}\n"
        + " tunnel encapsulation ipip\n"
        + f" tunnel endpoint address {VPS}\n"
        + " ip tunnel address 169.254.100.2/30\n"
        + " ip tunnel remote address 169.254.100.1\n"
        + " ip tunnel mtu 1460\n"
        + " ip tunnel tcp mss limit auto\n"
        + f" tunnel enable {n}\n"
        + f"ip keepalive {k} icmp-echo {interval} {count} {target}\n"
    )


# --------------------------------------------------------------------------------------------
# Data


def test_defaults_give_a_link_local_inner_link_and_a_30_second_fallback():
    s = router()
    assert str(s.tunnel_inner_network) == "169.254.100.0/30"
    assert str(s.inner.vps) == "169.254.100.1/30" and str(s.inner.router) == "169.254.100.2/30"
    assert s.rtx_fallback_gateway == "auto" and s.fallback_wanted
    assert s.rtx_keepalive_interval * s.rtx_keepalive_count == 30


def test_a_31_gives_both_addresses_to_the_ends():
    s = router(tunnel_inner_network="192.0.2.10/31")
    assert (str(s.inner.vps), str(s.inner.router)) == ("192.0.2.10/31", "192.0.2.11/31")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("169.254.100.0/29", "/30 or /31"),
        ("169.254.100.0/32", "/30 or /31"),
        ("169.254.100.1/30", "did you mean '169.254.100.0/30'"),
        ("169.254.100.0", "prefix length is missing"),
        ("169.254.169.252/30", "metadata"),  # the nearest to 169.254.169.254
        ("169.254.170.0/30", "metadata"),  # ECS's 169.254.170.2
        ("169.254.0.0/30", "RFC 3927"),
        ("169.254.255.252/30", "RFC 3927"),
        ("127.0.0.0/30", "loopback"),
        ("100.64.0.0/30", "shared address space"),
        ("8.8.8.0/30", "never be reachable except through the tunnel"),
        ("192.168.100.0/30", "overlaps the home network"),
        ("192.168.100.252/30", "overlaps the home network"),
        ("169.254.100.0/30 ", "whitespace"),
        (True, "/31"),
        (30, "/31"),
        ("", "/31"),
    ],
)
def test_inner_networks_that_are_refused(value, expected):
    with pytest.raises(SettingsError) as info:
        router(tunnel_inner_network=value)
    assert "tunnel_inner_network" in str(info.value)
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("pp 1 ", "single spaces"),
        ("pp  1", "single spaces"),
        ("pp 0", "one gateway"),
        ("pp", "one gateway"),
        ("pp 1 gateway pp 2", "one gateway"),
        ("pp 1\nsave", "one gateway"),
        ("tunnel 1 keepalive 2", "one gateway"),
        ("0.0.0.0", "not 0.0.0.0"),
        ("192.0.2.1/24", "one gateway"),
        ("lan2", "one gateway"),
        ("auto ", "one gateway"),
        (True, "one gateway"),
        (1, "one gateway"),
    ],
)
def test_fallback_gateways_that_are_refused(value, expected):
    with pytest.raises(SettingsError) as info:
        router(rtx_fallback_gateway=value)
    assert "rtx_fallback_gateway" in str(info.value) and expected in str(info.value)


@pytest.mark.parametrize("value", ["pp 1", "pp 12", "tunnel 1", "dhcp lan2", "192.0.2.254"])
def test_fallback_gateways_that_pass(value):
    assert router(rtx_fallback_gateway=value).rtx_fallback_gateway == value


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"rtx_fallback_gateway": "pp 1", "tunnel_inner_network": False},
            "needs tunnel_inner_network",
        ),
        (
            {"rtx_fallback_gateway": "pp 1", "rtx_default_route": False},
            "needs rtx_default_route",
        ),
        (
            {"rtx_fallback_gateway": "tunnel 3", "rtx_tunnel_number": 3},
            "this deploy's own tunnel",
        ),
        ({"rtx_keepalive_interval": 0}, "rtx_keepalive_interval"),
        ({"rtx_keepalive_count": 101}, "rtx_keepalive_count"),
        ({"rtx_keepalive_number": 0}, "rtx_keepalive_number"),
        ({"rtx_keepalive_interval": True}, "rtx_keepalive_interval"),
    ],
)
def test_fallback_data_that_cannot_work_is_refused(changes, expected):
    with pytest.raises(SettingsError, match=expected):
        router(**changes)


def test_verify_ping_may_name_the_routers_inner_address():
    assert str(router(rtx_verify_ping="169.254.100.2").rtx_verify_ping) == "169.254.100.2"
    with pytest.raises(SettingsError, match="outside home_networks"):
        router(rtx_verify_ping="169.254.100.1")  # the VPS's own end


def test_vps_settings_read_the_same_inner_network():
    vps = load_vps_settings("vps", {k: v for k, v in DATA.items() if k != "rtx_admin_password"})
    assert str(vps.inner.vps.ip) == "169.254.100.1"
    assert [str(n) for n in vps.forwarded_sources] == ["192.168.100.0/24", "169.254.100.2/32"]


# --------------------------------------------------------------------------------------------
# Which gateway, which keepalive


def test_first_deploy_takes_the_pppoe_route_as_the_fallback():
    choice = choose_fallback(router(), config(PPPOE), 1)
    fb = choice.fallback
    assert fb is not None and fb.gateway == "pp 1" and fb.keepalive == 1
    assert fb.keepalive_line() == "ip keepalive 1 icmp-echo 5 6 169.254.100.1"
    assert fb.route_line(1) == "ip route default gateway tunnel 1 keepalive 1 gateway pp 1 weight 0"
    assert "pp 1" in choice.note


def test_later_runs_read_the_gateway_back_from_the_deploys_own_line():
    choice = choose_fallback(router(), config(ours(n=2, k=4, gateway="dhcp lan2")), 2)
    assert (choice.fallback.gateway, choice.fallback.keepalive) == ("dhcp lan2", 4)
    assert choice.note is None
    desired = owned_section(router(), config(ours(n=2, k=4, gateway="dhcp lan2")))
    assert not compare(config(ours(n=2, k=4, gateway="dhcp lan2")), desired)


def test_a_map_e_default_route_is_the_fallback_and_the_deploy_takes_tunnel_2():
    text = (
        HEADER
        + "ip route default gateway tunnel 1\n"
        + "tunnel select 1\n tunnel encapsulation map-e\n tunnel map-e type v6plus\n"
        + " tunnel enable 1\n"
    )
    desired = owned_section(router(), config(text))
    assert desired.tunnel_number == 2
    assert (
        "ip route default gateway tunnel 2 keepalive 1 gateway tunnel 1 weight 0"
        in desired.global_lines
    )


def test_keepalive_numbers_in_use_are_skipped():
    text = PPPOE + (
        "ip keepalive 1 icmp-echo 10 3 192.168.100.254\n"
        "ip route 10.0.0.0/8 gateway pp 2 keepalive 2 gateway pp 1 weight 0\n"
    )
    assert choose_fallback(router(), config(text), 1).fallback.keepalive == 3


def test_a_keepalive_already_probing_the_vps_inner_address_is_reused():
    text = PPPOE + "ip keepalive 7 icmp-echo 10 3 169.254.100.1\n"
    assert choose_fallback(router(), config(text), 1).fallback.keepalive == 7


def test_a_named_keepalive_that_is_somebody_elses_is_refused():
    text = PPPOE + "ip keepalive 1 icmp-echo 10 3 192.168.100.254\n"
    with pytest.raises(FallbackRefused, match="rtx_keepalive_number 1.*not this deploy's"):
        choose_fallback(router(rtx_keepalive_number=1), config(text), 1)
    text = PPPOE + "ip route 10.0.0.0/8 gateway pp 2 keepalive 2 gateway pp 1 weight 0\n"
    with pytest.raises(FallbackRefused, match="another route"):
        choose_fallback(router(rtx_keepalive_number=2), config(text), 1)


@pytest.mark.parametrize(
    "route",
    [
        "ip route default gateway pp 1 filter 1 gateway pp 2",
        "ip route default gateway pp 1 keepalive 3 gateway pp 2 weight 0",
        "ip route default gateway pp 1 weight 2 gateway pp 2 weight 1",
        "ip route default gateway tunnel 3 keepalive 1 gateway pp 1 weight 0",
    ],
)
def test_auto_refuses_a_default_route_of_more_than_one_gateway(route):
    text = HEADER + route + "\n"
    step = tunnel_step(router(), config(text), config(text), 0)
    assert step.refusal is not None and "is not one plain gateway" in step.refusal
    assert "Nothing was sent" in step.refusal


def test_auto_with_no_default_route_means_no_fallback_and_says_so():
    choice = choose_fallback(router(), config(HEADER + "ip lan1 address 192.168.100.1/24\n"), 1)
    assert choice.fallback is None and "no other default route" in choice.note


def test_auto_after_a_deploy_without_fallback_says_how_to_get_one():
    text = HEADER + "ip route default gateway tunnel 1\ntunnel select 1\n tunnel enable 1\n"
    choice = choose_fallback(router(), config(text), 1)
    assert choice.fallback is None and "set rtx_fallback_gateway" in choice.note


def test_an_explicit_gateway_wins_over_what_the_router_had():
    choice = choose_fallback(router(rtx_fallback_gateway="pp 2"), config(PPPOE), 1)
    assert choice.fallback.gateway == "pp 2"
    choice = choose_fallback(router(rtx_fallback_gateway="pp 2"), config(ours()), 1)
    assert choice.fallback.gateway == "pp 2" and choice.fallback.keepalive == 1


def test_a_fallback_to_the_deploys_own_tunnel_is_refused_at_the_router():
    text = HEADER + "ip route default gateway tunnel 1\n"
    with pytest.raises(FallbackRefused, match="the tunnel this deploy owns"):
        choose_fallback(router(rtx_fallback_gateway="tunnel 2"), config(text), 2)


# --------------------------------------------------------------------------------------------
# Commands and their undo


def test_first_deploy_commands_keepalive_before_route_and_undo_in_reverse():
    desired = owned_section(router(), config(PPPOE))
    delta = compare(config(PPPOE), desired)
    assert delta.commands == (
        "ip keepalive 1 icmp-echo 5 6 169.254.100.1",
        "tunnel select 1",
        "tunnel encapsulation ipip",
        f"tunnel endpoint address {VPS}",
        "ip tunnel address 169.254.100.2/30",
        "ip tunnel remote address 169.254.100.1",
        "ip tunnel mtu 1460",
        "ip tunnel tcp mss limit auto",
        "tunnel enable 1",
        "tunnel select none",
        "ip route default gateway tunnel 1 keepalive 1 gateway pp 1 weight 0",
    )
    assert delta.rollback[0] == "ip route default gateway pp 1"
    assert delta.rollback[-1] == "no ip keepalive 1"
    assert "+ip keepalive 1 icmp-echo 5 6 169.254.100.1" in delta.diff.splitlines()


def test_the_deploy_is_a_no_op_on_its_own_result():
    running = config(ours())
    assert not compare(running, owned_section(router(), running))


def test_a_changed_interval_resends_only_the_keepalive():
    running = config(ours())
    delta = compare(running, owned_section(router(rtx_keepalive_interval=2), running))
    assert delta.commands == ("ip keepalive 1 icmp-echo 2 6 169.254.100.1",)
    assert delta.rollback == ("ip keepalive 1 icmp-echo 5 6 169.254.100.1",)


def test_turning_the_fallback_off_removes_the_keepalive_after_the_route():
    running = config(ours(k=3))
    delta = compare(running, owned_section(router(rtx_fallback_gateway=False), running))
    assert delta.commands == ("ip route default gateway tunnel 1", "no ip keepalive 3")
    # Undo: the keepalive back first, then the route that names it.
    assert delta.rollback == (
        "ip keepalive 3 icmp-echo 5 6 169.254.100.1",
        "ip route default gateway tunnel 1 keepalive 3 gateway pp 1 weight 0",
    )


def test_a_new_inner_network_moves_the_probe_with_it():
    running = config(ours())
    desired = owned_section(router(tunnel_inner_network="192.0.2.0/30"), running)
    delta = compare(running, desired)
    assert "ip keepalive 1 icmp-echo 5 6 192.0.2.1" in delta.commands
    assert "ip tunnel address 192.0.2.2/30" in delta.commands
    assert "ip tunnel remote address 192.0.2.1" in delta.commands


def test_without_inner_addresses_the_block_has_none_and_the_route_is_plain():
    s = router(tunnel_inner_network=False)
    desired = desired_lines(s, 1, choose_fallback(s, config(PPPOE), 1))
    assert not any("ip tunnel address" in line for line in desired.tunnel_lines)
    assert desired.global_lines == ("ip route default gateway tunnel 1",)


def test_inner_address_lines_of_the_block_are_owned_and_removed_when_unwanted():
    running = config(ours())
    s = router(tunnel_inner_network=False, rtx_fallback_gateway=False)
    delta = compare(running, owned_section(s, running))
    assert "no ip tunnel address" in delta.commands
    assert "no ip tunnel remote address" in delta.commands


# --------------------------------------------------------------------------------------------
# The check by traffic


def test_the_check_by_traffic_pings_the_routers_inner_address():
    ping, refusal, _ = tunnel_ping(router(), config(PPPOE), "vps", "tun-home")
    assert refusal is None and ping.address == ipaddress.IPv4Address("169.254.100.2")
    # Without inner addresses: the router's LAN address, as before.
    ping, _, _ = tunnel_ping(router(tunnel_inner_network=False), config(PPPOE), "vps", "tun-home")
    assert ping.address == ipaddress.IPv4Address("192.168.100.1")


def test_vps_network_unit_and_rules_follow_the_inner_network():
    vps = load_vps_settings(
        "vps",
        {
            **{k: v for k, v in DATA.items() if k != "rtx_admin_password"},
            "tunnel_inner_network": "192.0.2.4/30",
        },
    )
    assert "Address=192.0.2.5/30" in render.render_network(vps).splitlines()
    assert "-A IPIP6-FORWARD -i tun-home -s 192.0.2.6/32 -j ACCEPT" in render.render_firewall_v4(
        vps
    )


@pytest.mark.parametrize(
    "line",
    [
        # An AWS VPN's tunnel on the same link-local /30 (AWS picks 169.254.x.x/30 links).
        "tunnel select 5\n ipsec tunnel 105\n ip tunnel address 169.254.100.1/30\n"
        " ip tunnel remote address 169.254.100.2\n tunnel enable 5",
        "ip lan3 address 169.254.100.3/30",
        "ip route 169.254.100.0/29 gateway 192.168.100.254",
        "ip keepalive 9 icmp-echo 10 3 169.254.100.2",  # (one probing .1 is reused: ours)
        "ip filter 10 pass * 169.254.100.2 icmp",
    ],
)
def test_an_inner_link_the_router_already_uses_is_refused(line):
    text = PPPOE + line + "\n"
    step = tunnel_step(router(), config(text), config(text), 0)
    assert step.refusal is not None, step
    assert "tunnel_inner_network 169.254.100.0/30: the router already uses it" in step.refusal
    assert "Nothing was sent" in step.refusal


def test_the_deploys_own_inner_link_is_no_clash():
    running = config(ours())
    step = tunnel_step(router(), running, running, 0)
    assert step.refusal is None and step.noop is not None
    # Nor is an address outside the inner link that merely looks alike.
    text = PPPOE + "ip lan3 address 169.254.101.1/30\n"
    assert tunnel_step(router(), config(text), config(text), 0).refusal is None


def test_the_deploys_route_printed_without_weight_0_is_still_its_own():
    # A firmware that leaves out the default-looking option must not make the line a stranger's
    # (which auto would then refuse on every run).
    text = ours().replace(" weight 0\n", "\n")
    choice = choose_fallback(router(), config(text), 1)
    assert (choice.fallback.gateway, choice.fallback.keepalive) == ("pp 1", 1)
    text = ours(gateway="192.0.2.254").replace(" weight 0\n", "\n")
    assert choose_fallback(router(), config(text), 1).fallback.gateway == "192.0.2.254"
