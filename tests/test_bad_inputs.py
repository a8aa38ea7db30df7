"""A catalogue of bad inputs: each refused with host, key, value and expectation, before any host
is contacted. Checked once as pure validation, and once through the real pyinfra CLI with every
bad host pointing at a listener that counts connections: it must count none."""

from __future__ import annotations

import socket
import threading

import pytest

from ipip6.settings import SettingsError, load_router_settings, load_vps_settings
from lab.pyinfra_cli import run_pyinfra, write_inventory

GOOD = {
    "vps_ipv6": "2001:db8:1::1",
    "router_ipv6": "2001:db8:2::1",
    "home_networks": ["198.51.100.0/24"],
}
ROUTER = {**GOOD, "ssh_user": "admin", "ssh_password": "login-pw", "rtx_admin_password": "pw"}

# (end, changes, what the message must name, what it must say is expected)
CATALOGUE = [
    ("vps", {"vps_ipv6": "2001:db8:1::g"}, "vps_ipv6", "valid IPv6 address"),
    ("vps", {"vps_ipv6": "2001:db8::1::2"}, "vps_ipv6", "valid IPv6 address"),
    ("vps", {"vps_ipv6": "2001:db8:1:1:1:1:1:1:1"}, "vps_ipv6", "valid IPv6 address"),
    ("vps", {"router_ipv6": "192.0.2.1"}, "router_ipv6", "valid IPv6 address"),
    ("vps", {"router_ipv6": "2001:db8::/64"}, "router_ipv6", "valid IPv6 address"),
    ("vps", {"vps_ipv6": "fe80::1"}, "vps_ipv6", "not unspecified, loopback, link-local"),
    ("vps", {"vps_ipv6": "::1"}, "vps_ipv6", "not unspecified, loopback"),
    ("vps", {"vps_ipv6": "ff02::1"}, "vps_ipv6", "multicast"),
    ("vps", {"router_ipv6": "2001:db8:1::1"}, "vps_ipv6 and router_ipv6", "same address"),
    ("vps", {"home_networks": ["2001:db8::/64"]}, "home_networks.0", "valid IPv4 network"),
    ("vps", {"home_networks": ["198.51.100.1/24"]}, "home_networks.0", "valid IPv4 network"),
    ("vps", {"home_networks": "198.51.100.0/24"}, "home_networks", "list of IPv4 networks"),
    ("vps", {"home_networks": []}, "home_networks", "at least 1 item"),
    (
        "vps",
        {"home_networks": ["198.51.100.0/24", "198.51.100.128/25"]},
        "home_networks",
        "overlap",
    ),
    ("vps", {"home_networks": ["0.0.0.0/0"]}, "home_networks", "list the home networks"),
    ("vps", {"home_networks": ["198.51.100.0/24\nsave"]}, "home_networks.0", "IPv4 network"),
    ("vps", {"tunnel_name": "ip6tnl0"}, "tunnel_name", "fallback device"),
    ("vps", {"tunnel_name": "tun;reboot"}, "tunnel_name", "interface name"),
    ("vps", {"tunnel_name": "$(reboot)"}, "tunnel_name", "interface name"),
    ("vps", {"tunnel_name": "tun'0"}, "tunnel_name", "interface name"),
    ("vps", {"tunnel_name": "averyveryverylongname"}, "tunnel_name", "1-15 characters"),
    ("vps", {"uplink_interface": "ens3\n"}, "uplink_interface", "interface name"),
    ("vps", {"uplink_interface": "tun-home"}, "tunnel_name and uplink_interface", "same"),
    ("vps", {"tunel_name": "tun1"}, "tunel_name", "did you mean 'tunnel_name'"),
    ("vps", {"home_network": ["198.51.100.0/24"]}, "home_network", "did you mean"),
    ("vps", {"tunnel_mtu": 9000}, "tunnel_mtu", "less than or equal to 1500"),
    ("vps", {"tunnel_mtu": 1000}, "tunnel_mtu", "greater than or equal to 1280"),
    ("vps", {"tunnel_mtu": "1460; save"}, "tunnel_mtu", "valid integer"),
    ("vps", {"ssh_port_allowed": 0}, "ssh_port_allowed", "greater than or equal to 1"),
    ("vps", {"firewall_allow_tcp": [70000]}, "firewall_allow_tcp.0", "less than or equal"),
    ("vps", {"conntrack_max": -1}, "conntrack_max", "greater than or equal to 1024"),
    ("vps", {"uplink_network_file": "../x.network"}, "uplink_network_file", "no path"),
    ("vps", {"rollback_after_seconds": 5}, "rollback_after_seconds", "greater than or equal"),
    ("vps", {"tunnel_attach": "bridge"}, "tunnel_attach", "'independent' or 'netplan-dropin'"),
    ("rtx", {"rtx_tunnel_number": 0}, "rtx_tunnel_number", "greater than or equal to 1"),
    ("rtx", {"rtx_tunnel_number": 3001}, "rtx_tunnel_number", "less than or equal to 3000"),
    ("rtx", {"rtx_tunnel_number": "1\nsave"}, "rtx_tunnel_number", "valid integer"),
    ("rtx", {"rtx_admin_password": "pw\rsave"}, "rtx_admin_password", "printable ASCII"),
    ("rtx", {"rtx_ipv6_filter_number": -5}, "rtx_ipv6_filter_number", "greater than or equal"),
    ("rtx", {"rtx_default_route": "gateway pp 1"}, "rtx_default_route", "valid boolean"),
    ("rtx", {"vps_ipv6": "2001:db8:1::1 save"}, "vps_ipv6", "valid IPv6 address"),
    ("rtx", {"tunnel_mtu": "1460\nsave"}, "tunnel_mtu", "valid integer"),
    ("rtx", {"rtx_tunel_number": 2}, "rtx_tunel_number", "did you mean 'rtx_tunnel_number'"),
    ("rtx", {"rtx_verify_ping": "198.51.101.1"}, "rtx_verify_ping", "outside home_networks"),
    ("rtx", {"rtx_verify_ping": "198.51.100.255"}, "rtx_verify_ping", "broadcast address"),
    ("rtx", {"rtx_verify_ping": "2001:db8:2::1"}, "rtx_verify_ping", "an IPv4 address"),
    ("rtx", {"rtx_verify_ping": True}, "rtx_verify_ping", "'auto', false or an IPv4 address"),
    ("rtx", {"rtx_verify_ping": "198.51.100.1; save"}, "rtx_verify_ping", "an IPv4 address"),
]

SECRET_KEYS = ("rtx_admin_password", "ssh_password")


def test_the_catalogue_is_large_enough():
    assert len(CATALOGUE) >= 30


def expected_line(key: str, changes: dict) -> list[str]:
    """What one problem line must contain: key, the value (unless secret), the expectation."""
    parts = [f"  - {key}"]
    top = key.split(".")[0]
    if top in changes and " and " not in key:
        value = changes[top]
        if top in SECRET_KEYS:
            parts.append("<hidden>")
        elif key.endswith(".0"):
            parts.append(repr(value[0])[:30])
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
    for part in expected_line(key, changes):
        assert part in text
    assert "pw\rsave" not in text


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


def test_the_cli_refuses_them_all_before_contacting_any_host(tmp_path, connection_counter):
    port, count = connection_counter
    groups: dict[str, list] = {"vps": [], "rtx": []}
    names = []
    for i, (end, changes, _key, _expect) in enumerate(CATALOGUE):
        address = {"ssh_hostname": "127.0.0.1", "ssh_port": port}
        if end == "rtx":
            name = f"@rtx/bad-router-{i:02d}"
            groups["rtx"].append((name, {**ROUTER, **address, **changes}))
        else:
            name = f"bad-vps-{i:02d}"
            groups["vps"].append((name, {**GOOD, **address, **changes}))
        names.append(name)
    inventory = write_inventory(tmp_path, groups)

    run = run_pyinfra(inventory, timeout=120)
    assert run.returncode == 1
    assert "Connecting to hosts" not in run.output
    assert "Nothing was changed." in run.output
    for name in names:
        assert f"invalid data for host {name}:" in run.output
    assert "pw\rsave" not in run.output and "login-pw" not in run.output
    assert count["connections"] == 0


def test_the_ends_must_pair_up_before_any_host_is_contacted(tmp_path, connection_counter):
    # Two VPS hosts claiming one address, and a router whose ping has no VPS to come from.
    port, count = connection_counter
    address = {"ssh_hostname": "127.0.0.1", "ssh_port": port}
    lonely = {**ROUTER, **address, "vps_ipv6": "2001:db8:9::1", "rtx_verify_ping": "198.51.100.1"}
    inventory = write_inventory(
        tmp_path,
        {
            "vps": [("vps-a", {**GOOD, **address}), ("vps-b", {**GOOD, **address})],
            "rtx": [("@rtx/home", lonely)],
        },
    )

    run = run_pyinfra(inventory, timeout=120)

    assert run.returncode == 1
    assert "invalid data for host vps-a, vps-b:" in run.output
    assert "vps_ipv6 (value '2001:db8:1::1'): the same on each" in run.output
    assert "invalid data for host @rtx/home:" in run.output
    assert "rtx_verify_ping (value '198.51.100.1'): expected a VPS host with vps_ipv6 " in (
        run.output
    )
    assert "Nothing was changed." in run.output
    assert count["connections"] == 0
