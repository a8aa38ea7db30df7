"""One router with two VPSes (``rtx_backup_tunnel``): the data that describes the second VPS and
the nearest values that must not slip past it, the pairing with the backup VPS host, and the
lines, commands and undo on the router. Configs as a router with PPPoE or keepalives of its own
prints them."""

from __future__ import annotations

import pytest
from pyinfra.api.inventory import Inventory

from ipip6.rtx.config import RouterConfig, compare
from ipip6.rtx.decide import owned_section, tunnel_step
from ipip6.rtx.fallback import FallbackRefused, choose_fallback
from ipip6.rtx.tunnel_slot import TunnelRefused
from ipip6.settings import SettingsError, load_router_settings
from ipip6.tunnels import InventoryError, TunnelInventory
from tests.test_rtx_fallback import DATA, HEADER, PPPOE, VPS

BACKUP = "2001:db8:400::1"
CHAIN = (
    "ip route default gateway tunnel 1 keepalive 1 gateway tunnel 2 keepalive 2 weight 0 "
    "gateway pp 1 weight 0"
)


def router(backup=None, **changes):
    backup = {"vps_ipv6": BACKUP} if backup is None else backup
    return load_router_settings("@rtx/r", {**DATA, "rtx_backup_tunnel": backup, **changes})


def refused(backup=None, **changes) -> str:
    with pytest.raises(SettingsError) as info:
        router(backup, **changes)
    return str(info.value)


def config(text: str) -> RouterConfig:
    return RouterConfig.parse(text)


# --------------------------------------------------------------------------------------------
# Data


def test_the_backup_gets_the_next_inner_link_and_the_routers_own_keys():
    s = router()
    b = s.backup_site()
    assert str(b.vps_ipv6) == BACKUP and str(b.tunnel_inner_network) == "169.254.100.4/30"
    assert (str(b.inner.vps), str(b.inner.router)) == ("169.254.100.5/30", "169.254.100.6/30")
    assert (b.router_ipv6, b.home_networks, b.tunnel_mtu) == (
        s.router_ipv6,
        s.home_networks,
        s.tunnel_mtu,
    )
    # Its VPS end is named by the backup VPS's data unless the backup names it.
    assert "tunnel_name" not in b.model_fields_set
    named = router({"vps_ipv6": BACKUP, "tunnel_name": "tun-backup"}).backup_site()
    assert named.tunnel_name == "tun-backup" and "tunnel_name" in named.model_fields_set
    # A /31 after a /31.
    assert str(
        router(tunnel_inner_network="169.254.7.0/31").backup_site().tunnel_inner_network
    ) == ("169.254.7.2/31")


@pytest.mark.parametrize(
    ("backup", "changes", "expected"),
    [
        ({"vps_ipv6": VPS}, {}, "is the first VPS's too"),
        # The same address written another way is still the same VPS.
        ({"vps_ipv6": "2001:db8:100:0:0:0:0:10"}, {}, "is the first VPS's too"),
        ({"vps_ipv6": DATA["router_ipv6"]}, {}, "is router_ipv6"),
        ({"vps_ipv6": "fd00::1"}, {}, "unique local"),
        (
            {"vps_ipv6": BACKUP, "tunnel_inner_network": "169.254.100.0/30"},
            {},
            "overlaps the first",
        ),
        (
            {"vps_ipv6": BACKUP, "tunnel_inner_network": "169.254.100.2/31"},
            {},
            "overlaps the first",
        ),
        (
            {"vps_ipv6": BACKUP, "tunnel_inner_network": "192.168.100.8/30"},
            {},
            "overlaps the home network",
        ),
        ({"vps_ipv6": BACKUP, "tunnel_inner_network": False}, {}, "needs one"),
        ({"vps_ipv6": BACKUP, "tunnel_inner_network": "169.254.169.252/30"}, {}, "metadata"),
        ({"vps_ipv6": BACKUP, "tunnel_inner_network": "169.254.100.8/29"}, {}, "/30 or /31"),
        ({"vps_ipv6": BACKUP}, {"tunnel_inner_network": "169.254.167.252/30"}, "set one"),
        ({"vps_ipv6": BACKUP}, {"tunnel_inner_network": False}, "needs tunnel_inner_network"),
        ({"vps_ipv6": BACKUP}, {"rtx_default_route": False}, "needs rtx_default_route"),
        ({"vps_ipv6": BACKUP, "rtx_tunnel_number": 4}, {"rtx_tunnel_number": 4}, "first tunnel"),
        (
            {"vps_ipv6": BACKUP, "rtx_keepalive_number": 3},
            {"rtx_keepalive_number": 3},
            "first tunnel",
        ),
        ({"vps_ipv6": BACKUP, "rtx_tunnel_number": 5}, {"rtx_fallback_gateway": "tunnel 5"}, ""),
        ({"vps_ipv6": BACKUP, "rtx_ipv6_filter_number": 7}, {}, "for the backup only"),
        ({"vps_ipv6": BACKUP, "rtx_tunnel_number": 0}, {}, "greater than or equal to 1"),
        ({"vps_ipv6": BACKUP, "rtx_tunnel_number": "3"}, {}, "valid integer"),
        ({"vps_ipv6": BACKUP, "rtx_tunnel_number": True}, {}, "valid integer"),
        ({"vps_ipv6": BACKUP, "rtx_keepalive_number": 101}, {}, "less than or equal to 100"),
        ({"vps_ipv6": BACKUP, "tunnel_name": "ip6tnl0"}, {}, "fallback device"),
        ({"vps_ipv6": BACKUP, "vps_ipv4": "203.0.113.9"}, {}, "did you mean 'vps_ipv6'"),
        ({"vps_ipv6": BACKUP, "rtx_vps_managed_elsewhere": "yes"}, {}, "valid boolean"),
        ({}, {}, "rtx_backup_tunnel.vps_ipv6: missing: The backup VPS's IPv6 address"),
        (BACKUP, {}, "expected a mapping"),
        ([BACKUP], {}, "expected a mapping"),
        (True, {}, "expected a mapping"),
    ],
)
def test_a_bad_backup_is_refused_naming_what_and_why(backup, changes, expected):
    text = refused(backup, **changes)
    assert "@rtx/r" in text and "rtx_backup_tunnel" in text and expected in text


def test_a_fallback_gateway_that_is_the_backups_tunnel_is_refused():
    text = refused({"vps_ipv6": BACKUP, "rtx_tunnel_number": 5}, rtx_fallback_gateway="tunnel 5")
    assert "rtx_tunnel_number 5 is rtx_fallback_gateway" in text


# --------------------------------------------------------------------------------------------
# Pairing


SHARED = {
    "vps_ipv6": VPS,
    "router_ipv6": DATA["router_ipv6"],
    "home_networks": ["192.168.100.0/24"],
}
ROUTER_ONLY = {"rtx_admin_password": "Adm1n-pw-93c", "ssh_password": "S3cr3t-login-7f"}


def inventory(router_data=None, backup_vps=None, *, vps_b=True) -> Inventory:
    vps_hosts = [("vps-a", {})]
    if vps_b:
        vps_hosts.append(("vps-b", {"vps_ipv6": BACKUP, **(backup_vps or {})}))
    data = {**ROUTER_ONLY, "rtx_backup_tunnel": {"vps_ipv6": BACKUP}, **(router_data or {})}
    return Inventory(
        ([name for name, _ in vps_hosts] + ["@rtx/home"], SHARED),
        vps=(vps_hosts, {}),
        rtx=([("@rtx/home", data)], {}),
    )


def test_the_backup_pairs_with_the_backup_vps_which_carries_the_routers_tunnel():
    model = TunnelInventory.build(inventory())
    assert [(t.router_host, t.vps_host, t.backup) for t in model.tunnels] == [
        ("@rtx/home", "vps-a", False),
        ("@rtx/home", "vps-b", True),
    ]
    assert model.vps_of("@rtx/home") == "vps-a"
    assert model.vps_of("@rtx/home", backup=True) == "vps-b"
    (carried,) = model.vps_tunnels("vps-b")
    # The backup VPS's end: the router's address and networks, the backup's inner link.
    assert str(carried.router_ipv6) == DATA["router_ipv6"]
    assert str(carried.tunnel_inner_network) == "169.254.100.4/30"
    assert str(carried.inner.vps) == "169.254.100.5/30"
    assert str(model.vps_tunnels("vps-a")[0].tunnel_inner_network) == "169.254.100.0/30"
    assert model.vps_tunnel_name("@rtx/home", backup=True) == "tun-home"


def test_the_backup_vps_may_not_set_the_tunnels_keys_of_its_own():
    with pytest.raises(InventoryError) as info:
        TunnelInventory.build(inventory(backup_vps={"tunnel_inner_network": "169.254.100.0/30"}))
    text = str(info.value)
    assert "vps-b" in text and "it is the backup VPS of @rtx/home" in text
    assert "expected it in @rtx/home's rtx_backup_tunnel" in text


def test_a_backup_vps_missing_from_the_inventory_is_an_error_unless_managed_elsewhere():
    with pytest.raises(InventoryError) as info:
        TunnelInventory.build(inventory(vps_b=False))
    assert f"rtx_backup_tunnel.vps_ipv6 (value '{BACKUP}'): no VPS host" in str(info.value)
    model = TunnelInventory.build(
        inventory(
            {"rtx_backup_tunnel": {"vps_ipv6": BACKUP, "rtx_vps_managed_elsewhere": True}},
            vps_b=False,
        )
    )
    assert model.vps_of("@rtx/home", backup=True) is None
    assert [t.backup for t in model.tunnels] == [False, True]
    # Managed elsewhere, and yet in the inventory: which is it?
    with pytest.raises(InventoryError) as info:
        TunnelInventory.build(
            inventory(
                {"rtx_backup_tunnel": {"vps_ipv6": BACKUP, "rtx_vps_managed_elsewhere": True}}
            )
        )
    assert "rtx_backup_tunnel.rtx_vps_managed_elsewhere (value True): but vps-b" in str(info.value)


def test_a_backup_on_a_vps_that_carries_another_site_is_checked_across_its_tunnels():
    inv = Inventory(
        (["vps-a", "vps-b", "@rtx/home", "@rtx/parents"], SHARED),
        vps=([("vps-a", {}), ("vps-b", {"vps_ipv6": BACKUP})], {}),
        rtx=(
            [
                ("@rtx/home", {**ROUTER_ONLY, "rtx_backup_tunnel": {"vps_ipv6": BACKUP}}),
                (
                    "@rtx/parents",
                    {
                        **ROUTER_ONLY,
                        "vps_ipv6": BACKUP,
                        "router_ipv6": "2001:db8:300::1",
                        "home_networks": ["192.168.200.0/24"],
                        "tunnel_name": "tun-parents",
                        # The backup of @rtx/home takes 169.254.100.4/30 on vps-b.
                        "tunnel_inner_network": "169.254.100.4/30",
                    },
                ),
            ],
            {},
        ),
    )
    with pytest.raises(InventoryError) as info:
        TunnelInventory.build(inv)
    assert "tunnel_inner_network (value '169.254.100.4/30'): overlaps" in str(info.value)


# --------------------------------------------------------------------------------------------
# Lines and commands


def test_first_deploy_owns_two_blocks_two_keepalives_and_the_chain():
    running = config(PPPOE)
    desired = owned_section(router(), running)
    assert [b.number for b in desired.blocks] == [1, 2]
    assert desired.backup is not None
    assert f"tunnel endpoint address {BACKUP}" in desired.backup.lines
    assert "ip tunnel address 169.254.100.6/30" in desired.backup.lines
    assert desired.global_lines == (
        "ip keepalive 1 icmp-echo 5 6 169.254.100.1",
        "ip keepalive 2 icmp-echo 5 6 169.254.100.5",
        CHAIN,
    )
    delta = compare(running, desired)
    cmds = list(delta.commands)
    # Keepalives, both tunnels, then the route that moves traffic; undo: the route first.
    assert cmds.index("tunnel select 2") < cmds.index(CHAIN) == len(cmds) - 1
    assert cmds[:2] == list(desired.global_lines[:2])
    assert delta.rollback[0] == "ip route default gateway pp 1"
    assert delta.rollback[-2:] == ("no ip keepalive 2", "no ip keepalive 1")
    assert "tunnel disable 2" in delta.rollback and "tunnel disable 1" in delta.rollback
    # The preview shows both blocks.
    assert "+tunnel select 2" in delta.diff and f"+ tunnel endpoint address {BACKUP}" in delta.diff


def _deployed(chain: str = CHAIN) -> str:
    return (
        PPPOE.replace("ip route default gateway pp 1\n", chain + "\n")
        + "".join(
            f"tunnel select {n}\n tunnel encapsulation ipip\n tunnel endpoint address {vps}\n"
            f" ip tunnel address {inner}/30\n ip tunnel remote address {remote}\n"
            f" ip tunnel mtu 1460\n ip tunnel tcp mss limit auto\n tunnel enable {n}\n"
            for n, vps, inner, remote in (
                (1, VPS, "169.254.100.2", "169.254.100.1"),
                (2, BACKUP, "169.254.100.6", "169.254.100.5"),
            )
        )
        + "ip keepalive 1 icmp-echo 5 6 169.254.100.1\n"
        + "ip keepalive 2 icmp-echo 5 6 169.254.100.5\n"
    )


def test_a_deployed_chain_is_a_no_op_and_keeps_its_gateway():
    running = config(_deployed())
    assert not compare(running, owned_section(router(), running))
    fb = choose_fallback(router(), running, 1, 2).fallback
    assert (fb.gateway, fb.keepalive, fb.backup.keepalive, fb.backup.tunnel) == ("pp 1", 1, 2, 2)
    # Printed without the weight-0 words, still this deploy's own.
    bare = config(_deployed(CHAIN.replace(" weight 0", "")))
    assert choose_fallback(router(), bare, 1, 2).fallback.gateway == "pp 1"


def test_without_a_fallback_gateway_the_chain_ends_at_the_backup():
    running = config(PPPOE)
    desired = owned_section(router(rtx_fallback_gateway=False), running)
    assert desired.global_lines[-1] == (
        "ip route default gateway tunnel 1 keepalive 1 gateway tunnel 2 keepalive 2 weight 0"
    )
    # No other default route at all: the backup still comes, and the note says what is missing.
    bare = config(HEADER + "ip lan1 address 192.168.100.1/24\n")
    choice = choose_fallback(router(), bare, 1, 2)
    assert choice.fallback is not None and choice.fallback.gateway is None
    assert "no fallback after the backup VPS" in choice.note


def test_the_backup_never_takes_the_first_tunnels_number_or_keepalive():
    # A block holding nothing but an encapsulation is "ours" to either tunnel: only one gets it.
    running = config(PPPOE + "tunnel select 1\n tunnel encapsulation ipip\n")
    desired = owned_section(router(), running)
    assert [b.number for b in desired.blocks] == [1, 2]
    # Keepalive 1 already probes the backup's inner address (left from a hand-made setup): the
    # first tunnel's keepalive is chosen first, the backup's never the same.
    probing = config(PPPOE + "ip keepalive 1 icmp-echo 5 6 169.254.100.5\n")
    fb = choose_fallback(router(), probing, 1, 2).fallback
    assert fb.keepalive != fb.backup.keepalive


def test_a_named_backup_tunnel_that_is_someone_elses_is_refused():
    running = config(PPPOE + "tunnel select 3\n tunnel encapsulation l2tpv3\n tunnel enable 3\n")
    with pytest.raises(TunnelRefused) as info:
        owned_section(router({"vps_ipv6": BACKUP, "rtx_tunnel_number": 3}), running)
    assert "rtx_backup_tunnel.rtx_tunnel_number 3 is not free" in str(info.value)
    with pytest.raises(FallbackRefused) as info:
        owned_section(
            router({"vps_ipv6": BACKUP, "rtx_keepalive_number": 4}),
            config(PPPOE + "ip keepalive 4 icmp-echo 10 3 192.0.2.99\n"),
        )
    assert "rtx_backup_tunnel.rtx_keepalive_number 4" in str(info.value)


def test_the_backups_inner_link_in_use_on_the_router_is_refused_before_anything_is_sent():
    text = PPPOE + "ip lan3 address 169.254.100.5/30\n"
    step = tunnel_step(router(), config(text), config(text), 0)
    assert step.refusal is not None and "169.254.100.4/30" in step.refusal
    assert "Nothing was sent" in step.refusal


def test_dropping_the_backup_retires_its_keepalive_and_says_its_block_stays():
    running = config(_deployed())
    plain = load_router_settings("@rtx/r", DATA)
    step = tunnel_step(plain, running, running, 0)
    assert step.refusal is None and step.plan is not None
    cmds = step.plan.delta.commands
    assert cmds[-2:] == (
        "ip route default gateway tunnel 1 keepalive 1 gateway pp 1 weight 0",
        "no ip keepalive 2",
    )
    assert not any(c.startswith("tunnel select 2") for c in cmds)
    assert any("tunnel 2 is no longer this deploy's" in note for note in step.notes)


def test_numbers_named_for_the_backup_are_left_to_it_by_the_first_tunnel():
    # Both free: the first tunnel would take 1 by itself, and so would its keepalive.
    s = router({"vps_ipv6": BACKUP, "rtx_tunnel_number": 1, "rtx_keepalive_number": 1})
    desired = owned_section(s, config(PPPOE))
    assert [b.number for b in desired.blocks] == [2, 1]
    assert desired.keepalive_numbers == (2, 1)
    assert desired.global_lines[-1] == (
        "ip route default gateway tunnel 2 keepalive 2 gateway tunnel 1 keepalive 1 weight 0 "
        "gateway pp 1 weight 0"
    )


def test_an_unknown_key_inside_the_backup_hides_the_whole_value():
    text = refused({"vps_ipv6": BACKUP, "ssh_password": "Sup3r-s3cret-pw"})
    assert "Sup3r-s3cret-pw" not in text
    assert "rtx_backup_tunnel (value <hidden>): unknown key 'ssh_password'" in text
    # A known key's bad value helps, and is shown.
    text = refused({"vps_ipv6": BACKUP, "rtx_tunnel_number": "3"})
    assert "rtx_backup_tunnel.rtx_tunnel_number (value '3'): " in text


def test_the_check_by_traffic_may_name_the_routers_address_on_either_tunnel():
    assert str(router(rtx_verify_ping="169.254.100.6").rtx_verify_ping) == "169.254.100.6"
    assert str(router(rtx_verify_ping="169.254.100.2").rtx_verify_ping) == "169.254.100.2"
    # The nearest that must not pass: the backup VPS's own end of the link.
    assert "outside home_networks" in refused(rtx_verify_ping="169.254.100.5")


@pytest.mark.parametrize(
    "printed",
    [
        # Each gateway's options in another order than the deploy sends them.
        "ip route default gateway tunnel 1 keepalive 1 gateway tunnel 2 weight 0 keepalive 2 "
        "gateway pp 1 weight 0",
        # And with more spaces than one.
        "ip route default  gateway tunnel 1 keepalive 1  gateway tunnel 2 weight 0 keepalive 2 "
        "gateway pp 1  weight 0",
    ],
)
def test_a_chain_printed_with_its_options_reordered_is_still_ours_and_no_change(printed):
    running = config(_deployed(printed))
    desired = owned_section(router(), running)
    assert not compare(running, desired)
    fb = choose_fallback(router(), running, 1, 2).fallback
    assert (fb.gateway, fb.keepalive, fb.backup.keepalive) == ("pp 1", 1, 2)


def test_route_options_are_compared_in_one_order_and_nothing_else_is_touched():
    from ipip6.rtx.config import normalise_line

    assert normalise_line("ip route default gateway pp 1 weight 0 keepalive 3") == (
        "ip route default gateway pp 1 keepalive 3 weight 0"
    )
    # A filter's numbers stay with it; hide comes first; an address gateway is one word.
    assert normalise_line(
        "ip route 10.0.0.0/8 gateway 192.0.2.1 weight 2 filter 1 2 3 hide gateway pp 2"
    ) == ("ip route 10.0.0.0/8 gateway 192.0.2.1 filter 1 2 3 hide weight 2 gateway pp 2")
    # Options this reader does not know leave the line as printed (compared whole).
    odd = "ip route default gateway tunnel 1 dpd 5 weight 0"
    assert normalise_line(odd) == odd
    # Weight 0 is meaning, not decoration: never dropped.
    assert normalise_line("ip route default gateway pp 1 weight 0") != normalise_line(
        "ip route default gateway pp 1"
    )
