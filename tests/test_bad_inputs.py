"""A catalogue of bad inputs: each refused with host, key, value (or ``<hidden>``) and what was
expected, before any host is contacted.

Checked once as pure validation, and once through the real pyinfra CLI with every bad host
pointing at a listener that counts connections: it must count none, also when pyinfra is
started from another directory. The cases are what a careless or hostile user writes: lax
types, zone ids and line breaks, addresses and networks that are valid but not what a tunnel
end or a home network can be, keys of the other end, and two ends that do not match.
"""

from __future__ import annotations

import socket
import threading

import pytest

from ipip6.settings import SettingsError, harmless_keys, load_router_settings, load_vps_settings
from lab.pyinfra_cli import REPO, run_pyinfra, write_inventory

GOOD = {
    "vps_ipv6": "2001:db8:1::1",
    "router_ipv6": "2001:db8:2::1",
    "home_networks": ["198.51.100.0/24"],
}
ROUTER = {**GOOD, "ssh_user": "admin", "ssh_password": "login-pw", "rtx_admin_password": "pw"}

V6_BAD_SYNTAX = "not a valid IPv6 address"
V6_NOT_GLOBAL = "expected a global unicast IPv6 address"
NET = "IPv4 network"

# (end, changes, the key the message must name, what it must say is expected)
CATALOGUE = [
    # --- tunnel ends: syntax ---------------------------------------------------------------
    ("vps", {"vps_ipv6": "2001:db8:1::g"}, "vps_ipv6", V6_BAD_SYNTAX),
    ("vps", {"vps_ipv6": "2001:db8::1::2"}, "vps_ipv6", V6_BAD_SYNTAX),
    ("vps", {"vps_ipv6": "2001:db8:1:1:1:1:1:1:1"}, "vps_ipv6", V6_BAD_SYNTAX),
    ("vps", {"vps_ipv6": ""}, "vps_ipv6", V6_BAD_SYNTAX),
    ("vps", {"vps_ipv6": "2001:db8:1::10000"}, "vps_ipv6", V6_BAD_SYNTAX),
    ("vps", {"router_ipv6": "192.0.2.1"}, "router_ipv6", V6_BAD_SYNTAX),
    ("vps", {"router_ipv6": "2001:db8::/64"}, "router_ipv6", "not a network"),
    ("vps", {"router_ipv6": "2001:db8:2::1/128"}, "router_ipv6", "not a network"),
    ("rtx", {"vps_ipv6": "2001:db8:1::1 save"}, "vps_ipv6", "whitespace or control"),
    ("rtx", {"vps_ipv6": " 2001:db8:1::1"}, "vps_ipv6", "whitespace or control"),
    ("vps", {"vps_ipv6": "2001:db8:1::1\n"}, "vps_ipv6", "line break"),
    ("vps", {"vps_ipv6": "2001:db8:1::1\t"}, "vps_ipv6", "whitespace or control"),
    ("vps", {"vps_ipv6": "2001:db8:1::1\x00"}, "vps_ipv6", "whitespace or control"),
    ("vps", {"vps_ipv6": "2001:db8:1::1\u2028"}, "vps_ipv6", "whitespace or control"),
    ("vps", {"vps_ipv6": "2001:db8:1::1\u200b"}, "vps_ipv6", "whitespace or control"),
    # zone ids: whatever follows '%' would reach the files verbatim
    ("vps", {"vps_ipv6": "2001:db8:1::1%eth0"}, "vps_ipv6", "zone id"),
    ("vps", {"router_ipv6": "2001:db8:2::1%0"}, "router_ipv6", "zone id"),
    ("rtx", {"vps_ipv6": "2001:db8:1::1%x"}, "vps_ipv6", "zone id"),
    (
        "vps",
        {"router_ipv6": "2001:db8:2::1%x\n-A INPUT -j ACCEPT"},
        "router_ipv6",
        "line break",
    ),
    ("vps", {"vps_ipv6": "fe80::1%ens3"}, "vps_ipv6", "zone id"),
    # lax types
    ("vps", {"vps_ipv6": 1}, "vps_ipv6", "as a string, not int"),
    ("vps", {"vps_ipv6": True}, "vps_ipv6", "as a string, not bool"),
    ("vps", {"vps_ipv6": None}, "vps_ipv6", "as a string, not NoneType"),
    ("vps", {"vps_ipv6": ["2001:db8:1::1"]}, "vps_ipv6", "as a string, not list"),
    ("vps", {"vps_ipv6": 42540766411282592856903984951653826561}, "vps_ipv6", "not int"),
    ("vps", {"vps_ipv6": b"2001:db8:1::1"}, "vps_ipv6", "as a string, not bytes"),
    # --- tunnel ends: not global unicast ------------------------------------------------------
    ("vps", {"vps_ipv6": "::"}, "vps_ipv6", "unspecified"),
    ("vps", {"vps_ipv6": "::1"}, "vps_ipv6", "loopback"),
    ("vps", {"vps_ipv6": "fe80::1"}, "vps_ipv6", "link-local"),
    ("vps", {"vps_ipv6": "febf::1"}, "vps_ipv6", "link-local"),
    ("vps", {"vps_ipv6": "fec0::1"}, "vps_ipv6", "site-local"),
    ("vps", {"vps_ipv6": "ff02::1"}, "vps_ipv6", "multicast"),
    ("vps", {"router_ipv6": "ff0e::1"}, "router_ipv6", "multicast"),
    ("vps", {"vps_ipv6": "::ffff:192.0.2.1"}, "vps_ipv6", "IPv4-mapped"),
    ("vps", {"vps_ipv6": "::ffff:c000:201"}, "vps_ipv6", "IPv4-mapped"),
    ("vps", {"vps_ipv6": "::192.0.2.1"}, "vps_ipv6", "IPv4-compatible"),
    ("vps", {"vps_ipv6": "64:ff9b::c000:201"}, "vps_ipv6", "NAT64 well-known"),
    ("vps", {"router_ipv6": "64:ff9b:1::1"}, "router_ipv6", "NAT64 local-use"),
    ("vps", {"vps_ipv6": "100::1"}, "vps_ipv6", "discard-only"),
    ("vps", {"vps_ipv6": "2001:0:4136:e378::1"}, "vps_ipv6", "Teredo"),
    ("vps", {"vps_ipv6": "2001:2::1"}, "vps_ipv6", "IETF protocol assignment"),
    ("vps", {"vps_ipv6": "2001:10::1"}, "vps_ipv6", "IETF protocol assignment"),
    ("vps", {"router_ipv6": "2002:c000:201::1"}, "router_ipv6", "6to4"),
    ("vps", {"vps_ipv6": "fd00::1"}, "vps_ipv6", "unique local"),
    ("vps", {"router_ipv6": "fc00::1"}, "router_ipv6", "unique local"),
    ("vps", {"vps_ipv6": "4000::1"}, "vps_ipv6", "inside 2000::/3"),
    ("vps", {"vps_ipv6": "1fff:ffff::1"}, "vps_ipv6", "inside 2000::/3"),
    ("rtx", {"router_ipv6": "fe80::1"}, "router_ipv6", "link-local"),
    ("vps", {"router_ipv6": "2001:db8:1::1"}, "vps_ipv6 and router_ipv6", "same address"),
    (
        "vps",
        {"router_ipv6": "2001:DB8:1:0:0:0:0:1"},
        "vps_ipv6 and router_ipv6",
        "same address",
    ),
    # --- home networks ----------------------------------------------------------------------
    ("vps", {"home_networks": ["2001:db8::/64"]}, "home_networks.0", "not a valid IPv4 network"),
    ("vps", {"home_networks": ["198.51.100.1/24"]}, "home_networks.0", "host bits are set"),
    ("vps", {"home_networks": ["198.51.100.0"]}, "home_networks.0", "prefix length is missing"),
    ("vps", {"home_networks": ["198.51.100.7"]}, "home_networks.0", "prefix length is missing"),
    ("vps", {"home_networks": ["198.51.100.0/33"]}, "home_networks.0", "not a valid " + NET),
    ("vps", {"home_networks": ["198.51.100.0/"]}, "home_networks.0", "not a valid " + NET),
    ("vps", {"home_networks": ["198.51.100.0/-1"]}, "home_networks.0", "not a valid " + NET),
    ("vps", {"home_networks": ["198.51.100.0/24x"]}, "home_networks.0", "not a valid " + NET),
    ("vps", {"home_networks": ["198.51.100.0/24\nsave"]}, "home_networks.0", "line break"),
    ("vps", {"home_networks": ["198.51.100.0/24 "]}, "home_networks.0", "whitespace"),
    ("vps", {"home_networks": ["198.51.100.0/24%x"]}, "home_networks.0", "not a valid " + NET),
    ("vps", {"home_networks": ["198.051.100.0/24"]}, "home_networks.0", "not a valid " + NET),
    ("vps", {"home_networks": [24]}, "home_networks.0", "as a string, not int"),
    ("vps", {"home_networks": [True]}, "home_networks.0", "as a string, not bool"),
    ("vps", {"home_networks": [None]}, "home_networks.0", "as a string, not NoneType"),
    ("vps", {"home_networks": "198.51.100.0/24"}, "home_networks", "list of IPv4 networks"),
    ("vps", {"home_networks": {"198.51.100.0/24": 1}}, "home_networks", "list of IPv4 networks"),
    ("vps", {"home_networks": []}, "home_networks", "at least 1 item"),
    ("vps", {"home_networks": None}, "home_networks", "list of IPv4 networks"),
    (
        "vps",
        {"home_networks": ["198.51.100.0/24", "198.51.100.128/25"]},
        "home_networks",
        "overlap",
    ),
    (
        "vps",
        {"home_networks": ["198.51.100.0/24", "198.51.100.0/24"]},
        "home_networks",
        "overlap",
    ),
    ("vps", {"home_networks": ["0.0.0.0/0"]}, "home_networks.0", "/8 or longer"),
    ("vps", {"home_networks": ["0.0.0.0/1", "128.0.0.0/1"]}, "home_networks.0", "/8 or longer"),
    ("vps", {"home_networks": ["128.0.0.0/1"]}, "home_networks.0", "/8 or longer"),
    ("vps", {"home_networks": ["8.0.0.0/7"]}, "home_networks.0", "/8 or longer"),
    ("vps", {"home_networks": ["0.0.0.0/8"]}, "home_networks.0", "'this network'"),
    ("vps", {"home_networks": ["0.0.0.0/32"]}, "home_networks.0", "'this network'"),
    ("vps", {"home_networks": ["127.0.0.0/8"]}, "home_networks.0", "loopback"),
    ("vps", {"home_networks": ["127.0.0.1/32"]}, "home_networks.0", "loopback"),
    ("vps", {"home_networks": ["169.254.0.0/16"]}, "home_networks.0", "link-local"),
    ("vps", {"home_networks": ["169.254.169.254/32"]}, "home_networks.0", "metadata"),
    ("vps", {"home_networks": ["100.64.0.0/10"]}, "home_networks.0", "shared address space"),
    ("vps", {"home_networks": ["100.100.0.0/16"]}, "home_networks.0", "shared address space"),
    ("vps", {"home_networks": ["100.0.0.0/8"]}, "home_networks.0", "shared address space"),
    ("vps", {"home_networks": ["192.0.0.0/29"]}, "home_networks.0", "DS-Lite"),
    ("vps", {"home_networks": ["224.0.0.0/4"]}, "home_networks.0", "multicast"),
    ("vps", {"home_networks": ["239.1.1.0/24"]}, "home_networks.0", "multicast"),
    ("vps", {"home_networks": ["240.0.0.0/4"]}, "home_networks.0", "reserved"),
    ("vps", {"home_networks": ["255.255.255.255/32"]}, "home_networks.0", "broadcast"),
    (
        "vps",
        {"home_networks": ["198.51.100.0/24", "127.0.0.0/8"]},
        "home_networks.1",
        "loopback",
    ),
    # --- numbers and switches: strict types --------------------------------------------------
    ("vps", {"tunnel_mtu": 9000}, "tunnel_mtu", "less than or equal to 1500"),
    ("vps", {"tunnel_mtu": 1501}, "tunnel_mtu", "less than or equal to 1500"),
    ("vps", {"tunnel_mtu": 1000}, "tunnel_mtu", "greater than or equal to 1280"),
    ("vps", {"tunnel_mtu": 1279}, "tunnel_mtu", "greater than or equal to 1280"),
    ("vps", {"tunnel_mtu": "1460"}, "tunnel_mtu", "valid integer"),
    ("vps", {"tunnel_mtu": "1460; save"}, "tunnel_mtu", "valid integer"),
    ("vps", {"tunnel_mtu": 1460.0}, "tunnel_mtu", "valid integer"),
    ("vps", {"tunnel_mtu": True}, "tunnel_mtu", "valid integer"),
    ("rtx", {"tunnel_mtu": "1460\nsave"}, "tunnel_mtu", "valid integer"),
    ("vps", {"ssh_port_allowed": 0}, "ssh_port_allowed", "greater than or equal to 1"),
    ("vps", {"ssh_port_allowed": 65536}, "ssh_port_allowed", "less than or equal to 65535"),
    ("vps", {"ssh_port_allowed": True}, "ssh_port_allowed", "valid integer"),
    ("vps", {"ssh_port_allowed": "22"}, "ssh_port_allowed", "valid integer"),
    ("vps", {"ssh_port_allowed": 22.0}, "ssh_port_allowed", "valid integer"),
    ("vps", {"firewall_allow_tcp": [70000]}, "firewall_allow_tcp.0", "less than or equal"),
    ("vps", {"firewall_allow_tcp": [0]}, "firewall_allow_tcp.0", "greater than or equal to 1"),
    ("vps", {"firewall_allow_tcp": [True]}, "firewall_allow_tcp.0", "valid integer"),
    ("vps", {"firewall_allow_tcp": ["443"]}, "firewall_allow_tcp.0", "valid integer"),
    ("vps", {"firewall_allow_tcp": [80, "443 -j ACCEPT"]}, "firewall_allow_tcp.1", "integer"),
    ("vps", {"firewall_allow_tcp": 443}, "firewall_allow_tcp", "list of TCP ports"),
    ("vps", {"firewall_allow_tcp": "80,443"}, "firewall_allow_tcp", "list of TCP ports"),
    ("vps", {"conntrack_max": -1}, "conntrack_max", "greater than or equal to 1024"),
    ("vps", {"conntrack_max": 2**24 + 1}, "conntrack_max", "less than or equal"),
    ("vps", {"conntrack_max": "65536"}, "conntrack_max", "valid integer"),
    ("vps", {"rollback_after_seconds": 5}, "rollback_after_seconds", "greater than or equal"),
    ("vps", {"rollback_after_seconds": 901}, "rollback_after_seconds", "less than or equal"),
    ("vps", {"rollback_after_seconds": "90"}, "rollback_after_seconds", "valid integer"),
    ("vps", {"mss_clamp": 1}, "mss_clamp", "valid boolean"),
    ("vps", {"mss_clamp": "yes"}, "mss_clamp", "valid boolean"),
    ("vps", {"replace_ufw": "true"}, "replace_ufw", "valid boolean"),
    ("vps", {"replace_ufw": 1}, "replace_ufw", "valid boolean"),
    ("vps", {"nat": "yes"}, "nat", "'auto'"),
    ("vps", {"nat": 1}, "nat", "valid boolean"),
    ("vps", {"nat": "Auto"}, "nat", "'auto'"),
    ("vps", {"tunnel_attach": "bridge"}, "tunnel_attach", "'independent' or 'netplan-dropin'"),
    ("vps", {"tunnel_attach": "Independent"}, "tunnel_attach", "'independent' or"),
    ("vps", {"tunnel_attach": True}, "tunnel_attach", "'independent' or"),
    ("vps", {"tunnel_rp_filter": "off"}, "tunnel_rp_filter", "'unchanged', 'strict' or"),
    ("vps", {"tunnel_rp_filter": 1}, "tunnel_rp_filter", "'unchanged', 'strict' or"),
    ("rtx", {"rtx_tunnel_number": 0}, "rtx_tunnel_number", "greater than or equal to 1"),
    ("rtx", {"rtx_tunnel_number": 3001}, "rtx_tunnel_number", "less than or equal to 3000"),
    ("rtx", {"rtx_tunnel_number": "1\nsave"}, "rtx_tunnel_number", "valid integer"),
    ("rtx", {"rtx_tunnel_number": "1"}, "rtx_tunnel_number", "valid integer"),
    ("rtx", {"rtx_tunnel_number": True}, "rtx_tunnel_number", "valid integer"),
    ("rtx", {"rtx_tunnel_number": 1.5}, "rtx_tunnel_number", "valid integer"),
    ("rtx", {"rtx_tunnel_takeover": "yes"}, "rtx_tunnel_takeover", "valid boolean"),
    ("rtx", {"rtx_tunnel_takeover": 1}, "rtx_tunnel_takeover", "valid boolean"),
    # taking over a tunnel is never done on a guessed number
    ("rtx", {"rtx_tunnel_takeover": True}, "rtx_tunnel_takeover", "needs rtx_tunnel_number"),
    ("rtx", {"rtx_ipv6_filter_number": -5}, "rtx_ipv6_filter_number", "greater than or equal"),
    ("rtx", {"rtx_ipv6_filter_number": True}, "rtx_ipv6_filter_number", "valid integer"),
    ("rtx", {"rtx_ipv6_filter_number": "101"}, "rtx_ipv6_filter_number", "valid integer"),
    ("rtx", {"rtx_ipv6_filter_number": 2**31}, "rtx_ipv6_filter_number", "less than or equal"),
    ("rtx", {"rtx_default_route": "gateway pp 1"}, "rtx_default_route", "valid boolean"),
    ("rtx", {"rtx_default_route": 0}, "rtx_default_route", "valid boolean"),
    ("rtx", {"rtx_default_route": "false"}, "rtx_default_route", "valid boolean"),
    ("rtx", {"rtx_vps_managed_elsewhere": "yes"}, "rtx_vps_managed_elsewhere", "boolean"),
    ("rtx", {"rtx_vps_managed_elsewhere": 1}, "rtx_vps_managed_elsewhere", "boolean"),
    # --- the check by traffic ---------------------------------------------------------------
    ("rtx", {"rtx_verify_ping": "198.51.101.1"}, "rtx_verify_ping", "outside home_networks"),
    ("rtx", {"rtx_verify_ping": "198.51.100.255"}, "rtx_verify_ping", "broadcast address"),
    ("rtx", {"rtx_verify_ping": "198.51.100.0"}, "rtx_verify_ping", "network or broadcast"),
    ("rtx", {"rtx_verify_ping": "2001:db8:2::1"}, "rtx_verify_ping", "an IPv4 address"),
    ("rtx", {"rtx_verify_ping": True}, "rtx_verify_ping", "'auto', false or an IPv4 address"),
    ("rtx", {"rtx_verify_ping": 0}, "rtx_verify_ping", "'auto', false or an IPv4 address"),
    ("rtx", {"rtx_verify_ping": "198.51.100.1; save"}, "rtx_verify_ping", "an IPv4 address"),
    ("rtx", {"rtx_verify_ping": "198.51.100.1\n"}, "rtx_verify_ping", "an IPv4 address"),
    ("rtx", {"rtx_verify_ping": "AUTO"}, "rtx_verify_ping", "'auto', false or an IPv4"),
    ("rtx", {"rtx_verify_ping": "false"}, "rtx_verify_ping", "'auto', false or an IPv4"),
    ("rtx", {"rtx_verify_ping": 3325256705}, "rtx_verify_ping", "'auto', false or an IPv4"),
    # --- interface and file names -----------------------------------------------------------
    ("vps", {"tunnel_name": "ip6tnl0"}, "tunnel_name", "fallback device"),
    ("vps", {"tunnel_name": "sit0"}, "tunnel_name", "fallback device"),
    ("vps", {"tunnel_name": "tunl0"}, "tunnel_name", "fallback device"),
    ("vps", {"tunnel_name": "lo"}, "tunnel_name", "loopback interface"),
    ("vps", {"tunnel_name": "all"}, "tunnel_name", "sysctl keyword"),
    ("vps", {"tunnel_name": "default"}, "tunnel_name", "sysctl keyword"),
    ("vps", {"tunnel_name": "tun;reboot"}, "tunnel_name", "interface name"),
    ("vps", {"tunnel_name": "$(reboot)"}, "tunnel_name", "interface name"),
    ("vps", {"tunnel_name": "tun'0"}, "tunnel_name", "interface name"),
    ("vps", {"tunnel_name": "tun.home"}, "tunnel_name", "interface name"),
    ("vps", {"tunnel_name": "tun/home"}, "tunnel_name", "interface name"),
    ("vps", {"tunnel_name": "-tun"}, "tunnel_name", "starting with a letter or digit"),
    ("vps", {"tunnel_name": "tun home"}, "tunnel_name", "whitespace"),
    ("vps", {"tunnel_name": "tun-home\n"}, "tunnel_name", "line break"),
    ("vps", {"tunnel_name": "tünnel"}, "tunnel_name", "interface name"),
    ("vps", {"tunnel_name": ""}, "tunnel_name", "interface name"),
    ("vps", {"tunnel_name": "averyveryverylongname"}, "tunnel_name", "1-15 characters"),
    ("vps", {"tunnel_name": "a234567890123456"}, "tunnel_name", "1-15 characters"),
    ("vps", {"tunnel_name": 1}, "tunnel_name", "as a string, not int"),
    ("vps", {"uplink_interface": "ens3\n"}, "uplink_interface", "line break"),
    ("vps", {"uplink_interface": "lo"}, "uplink_interface", "loopback interface"),
    ("vps", {"uplink_interface": "all"}, "uplink_interface", "sysctl keyword"),
    ("vps", {"uplink_interface": "eth0 -j ACCEPT"}, "uplink_interface", "whitespace"),
    ("vps", {"uplink_interface": "eth+"}, "uplink_interface", "interface name"),
    ("vps", {"uplink_interface": "tun-home"}, "tunnel_name and uplink_interface", "same"),
    ("vps", {"uplink_network_file": "../x.network"}, "uplink_network_file", "no path"),
    ("vps", {"uplink_network_file": "/etc/x.network"}, "uplink_network_file", "no path"),
    ("vps", {"uplink_network_file": "10-netplan-ens3"}, "uplink_network_file", "no path"),
    ("vps", {"uplink_network_file": "a..network"}, "uplink_network_file", "no path"),
    ("vps", {"uplink_network_file": "x.network\n"}, "uplink_network_file", "line break"),
    ("vps", {"uplink_network_file": 10}, "uplink_network_file", "as a string, not int"),
    # --- the router's password --------------------------------------------------------------
    ("rtx", {"rtx_admin_password": "pw\rsave"}, "rtx_admin_password", "printable ASCII"),
    ("rtx", {"rtx_admin_password": "pw\nsave"}, "rtx_admin_password", "printable ASCII"),
    ("rtx", {"rtx_admin_password": "two words"}, "rtx_admin_password", "printable ASCII"),
    ("rtx", {"rtx_admin_password": ""}, "rtx_admin_password", "non-empty"),
    ("rtx", {"rtx_admin_password": "pässwörd"}, "rtx_admin_password", "printable ASCII"),
    ("rtx", {"rtx_admin_password": 1234}, "rtx_admin_password", "expected a string"),
    ("rtx", {"rtx_admin_password": None}, "rtx_admin_password", "expected a string"),
    # --- keys: typos, the other end's, nobody's ---------------------------------------------
    ("vps", {"tunel_name": "tun1"}, "tunel_name", "did you mean 'tunnel_name'"),
    ("vps", {"home_network": ["198.51.100.0/24"]}, "home_network", "did you mean"),
    ("vps", {"vps_ip6": "2001:db8:1::1"}, "vps_ip6", "did you mean 'vps_ipv6'"),
    ("vps", {"Tunnel_name": "tun1"}, "Tunnel_name", "did you mean 'tunnel_name'"),
    ("vps", {"router_pw": "Secret-Pw-1"}, "router_pw", "unknown key"),
    ("vps", {"ADMIN_PW": "Secret-Pw-2"}, "ADMIN_PW", "unknown key"),
    ("vps", {"rtx_tunnel_number": 2}, "rtx_tunnel_number", "a setting of the router end"),
    ("vps", {"rtx_admin_password": "Secret-Pw-3"}, "rtx_admin_password", "the router end"),
    ("vps", {"rtx_legacy_ssh": True}, "rtx_legacy_ssh", "a setting of the router end"),
    ("rtx", {"rtx_tunel_number": 2}, "rtx_tunel_number", "did you mean 'rtx_tunnel_number'"),
    ("rtx", {"rtx_admin_pasword": "Secret-Pw-4"}, "rtx_admin_pasword", "did you mean"),
    ("rtx", {"uplink_interface": "ens9"}, "uplink_interface", "a setting of the VPS end"),
    ("rtx", {"firewall_allow_tcp": [80]}, "firewall_allow_tcp", "a setting of the VPS end"),
    ("rtx", {"uplink_interface": "ens3"}, "uplink_interface", "a setting of the VPS end"),
    ("rtx", {"nat": True}, "nat", "a setting of the VPS end"),
]

SECRETS = ("Secret-Pw-1", "Secret-Pw-2", "Secret-Pw-3", "Secret-Pw-4", "login-pw", "pw\rsave")


def test_the_catalogue_is_large_enough():
    assert len(CATALOGUE) >= 200
    assert len({(end, repr(changes)) for end, changes, _, _ in CATALOGUE}) == len(CATALOGUE)


def expected_parts(key: str, changes: dict) -> list[str]:
    """What one problem line must contain: key, the value (or <hidden>), the expectation."""
    parts = [f"  - {key}"]
    top, _, index = key.partition(".")
    if top in changes and " and " not in key:
        value = changes[top]
        if top not in harmless_keys():
            parts.append("<hidden>")
        elif index:
            parts.append(repr(value[int(index)])[:30])
        else:
            parts.append(repr(value)[:30])
    return parts


@pytest.mark.parametrize(("end", "changes", "key", "expect"), CATALOGUE)
def test_each_bad_input_is_named(end, changes, key, expect):
    load = load_router_settings if end == "rtx" else load_vps_settings
    data = {**(ROUTER if end == "rtx" else GOOD), **changes}
    with pytest.raises(SettingsError) as info:
        load("host-under-test", data)
    text = str(info.value)
    assert text.startswith("invalid data for host host-under-test:")
    assert expect in text
    for part in expected_parts(key, changes):
        assert part in text
    for secret in SECRETS:
        assert secret not in text


@pytest.fixture
def connection_counter():
    """A TCP listener on 127.0.0.1 that counts connections (and answers nothing)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.2)
    count = {"connections": 0}
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            count["connections"] += 1
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], count
    stop.set()
    thread.join()
    server.close()


@pytest.mark.parametrize("where", ["repository", "elsewhere"])
def test_the_cli_refuses_them_all_before_contacting_any_host(tmp_path, connection_counter, where):
    port, count = connection_counter
    groups: dict[str, list] = {"vps": [], "rtx": []}
    names = []
    for i, (end, changes, _key, _expect) in enumerate(CATALOGUE):
        address = {"ssh_hostname": "127.0.0.1", "ssh_port": port}
        if end == "rtx":
            name = f"@rtx/bad-router-{i:03d}"
            groups["rtx"].append((name, {**ROUTER, **address, **changes}))
        else:
            name = f"bad-vps-{i:03d}"
            groups["vps"].append((name, {**GOOD, **address, **changes}))
        names.append(name)
    inventory = write_inventory(tmp_path, groups)

    if where == "repository":
        run = run_pyinfra(inventory, timeout=180)
    else:  # from an unrelated directory, with the paths of the user's files
        run = run_pyinfra(inventory, target=str(REPO / "deploy.py"), cwd=tmp_path, timeout=180)
    assert run.returncode == 1
    assert "Connecting to hosts" not in run.output
    assert "Nothing was changed." in run.output
    for name in names:
        assert f"invalid data for host {name}:" in run.output
    for secret in SECRETS:
        assert secret not in run.output
    assert count["connections"] == 0
