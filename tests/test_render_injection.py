"""No value reaches a generated file or a router command as more than the one token it is
meant to be. Hostile values either fail validation or, when they pass (Python objects from
group_data, odd but valid spellings), render exactly the lines a plain value renders; and a
value that got past validation some other way is refused by the renderers themselves."""

from __future__ import annotations

import ipaddress

import pytest

from ipip6.rtx.config import RouterConfig, desired_lines
from ipip6.rtx.fallback import choose_fallback
from ipip6.settings import (
    RouterSettings,
    SettingsError,
    VpsSettings,
    load_router_settings,
    load_vps_settings,
)
from ipip6.vps import render

BASE = {
    "vps_ipv6": "2001:db8:1::1",
    "router_ipv6": "2001:db8:2::1",
    "home_networks": ["192.168.100.0/24"],
}
ROUTER = {**BASE, "rtx_admin_password": "Adm1n-pw", "rtx_ipv6_filter_number": 101}
INJECTED = "-A INPUT -j ACCEPT"


def vps_files(settings: VpsSettings) -> dict[str, str]:
    files = render.render_tunnel_units(settings).files()
    dropin = settings.model_copy(update={"tunnel_attach": "netplan-dropin"})
    files[render.uplink_dropin_path(dropin)] = render.render_uplink_dropin(dropin)
    files[render.SYSCTL_FILE] = render.render_sysctl(settings)
    files[render.MODULES_FILE] = render.render_modules_load(settings)
    files[render.FIREWALL_V4] = render.render_firewall_v4(settings)
    files[render.FIREWALL_V6] = render.render_firewall_v6(settings)
    return files


def router_lines(settings: RouterSettings) -> list[str]:
    """Every line the deploy would own, the fallback's included (from a router whose default
    route was `pp 1`)."""
    n = settings.rtx_tunnel_number or 1
    before = RouterConfig.parse("ip route default gateway pp 1\n")
    section = desired_lines(settings, n, choose_fallback(settings, before, n))
    return [*section.tunnel_lines, *section.global_lines]


def shape(lines: list[str]) -> list[int]:
    """Per line, the number of words: an injected word or line changes it."""
    return [len(line.split()) for line in lines]


HOSTILE_TEXT = [
    "\n" + INJECTED,
    "\r" + INJECTED,
    "%x\n" + INJECTED,
    "%eth0",
    " " + INJECTED,
    "\t" + INJECTED,
    "\u2028" + INJECTED,
    "\u0085" + INJECTED,
    "\x00",
    "\x1b[2J",
    ";reboot",
    "$(reboot)",
    "`reboot`",
]
FIELDS = {
    "vps_ipv6": "2001:db8:1::1",
    "router_ipv6": "2001:db8:2::1",
    "tunnel_name": "tun-home",
    "uplink_interface": "ens3",
    "uplink_network_file": "10-netplan-ens3.network",
}


@pytest.mark.parametrize("suffix", HOSTILE_TEXT, ids=repr)
@pytest.mark.parametrize("key", sorted(FIELDS))
def test_hostile_text_after_a_good_value_is_refused(key, suffix):
    with pytest.raises(SettingsError):
        load_vps_settings("vps", {**BASE, key: FIELDS[key] + suffix})


@pytest.mark.parametrize("suffix", HOSTILE_TEXT, ids=repr)
def test_hostile_home_networks_are_refused(suffix):
    with pytest.raises(SettingsError):
        load_vps_settings("vps", {**BASE, "home_networks": ["192.168.100.0/24" + suffix]})
    with pytest.raises(SettingsError):
        load_router_settings("r", {**ROUTER, "home_networks": ["192.168.100.0/24" + suffix]})


@pytest.mark.parametrize("suffix", HOSTILE_TEXT, ids=repr)
@pytest.mark.parametrize(
    "key",
    ["vps_ipv6", "router_ipv6", "rtx_verify_ping", "rtx_fallback_gateway", "tunnel_inner_network"],
)
def test_hostile_router_values_are_refused(key, suffix):
    good = {
        "rtx_verify_ping": "192.168.100.1",
        "rtx_fallback_gateway": "pp 1",
        "tunnel_inner_network": "169.254.100.0/30",
    }.get(key) or FIELDS[key]
    with pytest.raises(SettingsError):
        load_router_settings("r", {**ROUTER, key: good + suffix})


# Valid, but not the plain spelling: Python objects, upper case, long forms.
ODD_BUT_VALID = [
    {"vps_ipv6": ipaddress.IPv6Address("2001:db8:1::1")},
    {"vps_ipv6": "2001:DB8:1:0:0:0:0:1"},
    {"router_ipv6": "2001:0db8:0002:0000:0000:0000:0000:0001"},
    {"home_networks": [ipaddress.IPv4Network("192.168.100.0/24")]},
    {"home_networks": ("192.168.100.0/24",)},
    {"home_networks": ["192.168.100.0/255.255.255.0"]},
]


@pytest.mark.parametrize("changes", ODD_BUT_VALID, ids=repr)
def test_odd_but_valid_values_render_the_same_lines(changes):
    plain = vps_files(load_vps_settings("vps", BASE))
    odd = vps_files(load_vps_settings("vps", {**BASE, **changes}))
    assert odd == plain
    assert router_lines(load_router_settings("r", {**ROUTER, **changes})) == router_lines(
        load_router_settings("r", ROUTER)
    )


def test_zone_ids_in_python_objects_are_refused():
    zoned = ipaddress.IPv6Address("2001:db8:1::1%x")
    with pytest.raises(SettingsError) as info:
        load_vps_settings("vps", {**BASE, "vps_ipv6": zoned})
    assert "zone id" in str(info.value)


def test_every_generated_line_is_one_line_with_plain_words():
    files = vps_files(load_vps_settings("vps", BASE))
    for path, text in files.items():
        assert text.endswith("\n") and "\r" not in text, path
        for line in text.splitlines():
            assert line.isprintable(), (path, line)
        assert INJECTED not in text, path
    for line in router_lines(load_router_settings("r", ROUTER)):
        assert line.isprintable() and "\n" not in line
    assert shape(router_lines(load_router_settings("r", ROUTER))) == [3, 4, 4, 5, 4, 6, 3, 7, 7, 13]


# Past validation some other way (model_construct skips it): the renderers still refuse.
BYPASSED = [
    {"tunnel_name": "tun\n" + INJECTED},
    {"uplink_interface": "ens3 " + INJECTED},
    {"vps_ipv6": ipaddress.IPv6Address("2001:db8:1::1%x\n" + INJECTED)},
    {"home_networks": ["192.168.100.0/24\n" + INJECTED]},
    {"conntrack_max": "1\nnet.ipv4.ip_forward = 0"},
    {"uplink_network_file": "a.network\n[Network]"},
]


@pytest.mark.parametrize("changes", BYPASSED, ids=repr)
def test_renderers_refuse_values_that_skipped_validation(changes):
    good = load_vps_settings("vps", BASE)
    bad = VpsSettings.model_construct(**{**dict(good), **changes})
    with pytest.raises(ValueError, match="refusing to write"):
        vps_files(bad)


@pytest.mark.parametrize(
    "changes",
    [
        {"vps_ipv6": ipaddress.IPv6Address("2001:db8:1::1%x\nsave")},
        {"rtx_tunnel_number": "1\nsave"},
        {"tunnel_mtu": "1460\rsave"},
        {"rtx_ipv6_filter_number": "101\nsave"},
    ],
    ids=repr,
)
def test_router_lines_refuse_values_that_skipped_validation(changes):
    good = load_router_settings("r", ROUTER)
    bad = RouterSettings.model_construct(**{**dict(good), **changes})
    with pytest.raises(ValueError, match="refusing to write"):
        router_lines(bad)
