"""Bad input is refused at the edge, with host, key, value and expectation in the message."""

import pytest

from ipip6.settings import SettingsError, known_keys, load_router_settings, load_vps_settings

GOOD = {
    "vps_ipv6": "2001:db8:1::1",
    "router_ipv6": "2001:db8:2::1",
    "home_networks": ["192.168.100.0/24"],
    "ssh_user": "root",
    "_sudo": True,
}


def vps_error(**changes) -> str:
    data = {**GOOD, **changes}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(SettingsError) as info:
        load_vps_settings("vps.example", data)
    text = str(info.value)
    assert "vps.example" in text
    return text


def test_good_data_gives_defaults():
    s = load_vps_settings("vps", GOOD)
    assert str(s.vps_ipv6) == "2001:db8:1::1"
    assert s.tunnel_name == "tun-home"
    assert s.tunnel_attach == "independent"
    assert s.masquerade is True  # 192.168.100.0/24 is private


def test_public_home_network_is_not_masqueraded_by_default():
    s = load_vps_settings("vps", {**GOOD, "home_networks": ["198.18.0.0/24", "8.8.8.0/24"]})
    # 198.18.0.0/15 counts as private to ipaddress; 8.8.8.0 does not, one is enough for auto.
    assert s.masquerade is True
    s = load_vps_settings("vps", {**GOOD, "home_networks": ["8.8.8.0/24"]})
    assert s.masquerade is False
    s = load_vps_settings("vps", {**GOOD, "nat": False})
    assert s.masquerade is False


@pytest.mark.parametrize(
    ("changes", "key", "expect"),
    [
        ({"vps_ipv6": "2001:db8:1::g"}, "vps_ipv6", "not a valid IPv6 address"),
        ({"router_ipv6": "2001:db8::1::2"}, "router_ipv6", "not a valid IPv6 address"),
        ({"router_ipv6": "192.0.2.1"}, "router_ipv6", "not a valid IPv6 address"),
        ({"vps_ipv6": "fe80::1"}, "vps_ipv6", "link-local"),
        ({"vps_ipv6": "::ffff:192.0.2.1"}, "vps_ipv6", "IPv4-mapped"),
        ({"router_ipv6": "2001:db8:1::1"}, "vps_ipv6 and router_ipv6", "same address"),
        ({"home_networks": ["2001:db8::/64"]}, "home_networks.0", "IPv4 network"),
        ({"home_networks": ["192.168.100.1/24"]}, "home_networks.0", "IPv4 network"),
        ({"home_networks": "192.168.100.0/24"}, "home_networks", "list of IPv4 networks"),
        ({"home_networks": []}, "home_networks", "at least 1"),
        (
            {"home_networks": ["192.168.0.0/16", "192.168.100.0/24"]},
            "home_networks",
            "192.168.0.0/16 and 192.168.100.0/24 overlap",
        ),
        ({"home_networks": ["0.0.0.0/0"]}, "home_networks.0", "/8 or longer"),
        ({"tunnel_name": "ip6tnl0"}, "tunnel_name", "fallback device"),
        ({"tunnel_name": "tun;reboot"}, "tunnel_name", "interface name"),
        ({"tunnel_name": "a-very-long-tunnel-name"}, "tunnel_name", "1-15 characters"),
        ({"tunnel_name": "tun 0"}, "tunnel_name", "interface name"),
        ({"uplink_interface": "ens3\n"}, "uplink_interface", "interface name"),
        ({"uplink_interface": "tun-home"}, "tunnel_name and uplink_interface", "same"),
        ({"tunnel_mtu": 9000}, "tunnel_mtu", "less than or equal to 1500"),
        ({"tunnel_attach": "netplan"}, "tunnel_attach", "'independent' or 'netplan-dropin'"),
        ({"uplink_network_file": "../../etc/passwd"}, "uplink_network_file", "no path"),
        ({"firewall_allow_tcp": [0]}, "firewall_allow_tcp.0", "greater than or equal to 1"),
        ({"tunel_name": "tun1"}, "tunel_name", "did you mean 'tunnel_name'"),
        ({"vps_ipv6": None}, "vps_ipv6", "missing"),
    ],
)
def test_bad_vps_input_is_named(changes, key, expect):
    text = vps_error(**changes)
    assert f"  - {key}" in text
    assert expect in text
    for name, value in changes.items():
        if name not in known_keys():  # an unknown key may hold a password: never shown
            assert repr(value) not in text and "(value <hidden>)" in text
        elif isinstance(value, str) and value and "\n" not in value and key != "vps_ipv6":
            assert repr(value)[:40] in text or "same" in text or "overlap" in text


def test_every_problem_reported_at_once():
    text = vps_error(vps_ipv6="nope", tunnel_name="ip6tnl0", tunel="x")
    assert text.count("\n  - ") == 3


def test_router_password_never_shown():
    with pytest.raises(SettingsError) as info:
        load_router_settings(
            "@rtx/192.0.2.1",
            {**GOOD, "rtx_admin_password": ["s3cret-value"], "rtx_tunnel_number": 0},
        )
    text = str(info.value)
    assert "s3cret-value" not in text
    assert "rtx_admin_password (value <hidden>)" in text
    assert "rtx_tunnel_number (value 0)" in text


def test_router_settings():
    s = load_router_settings("@rtx/r", {**GOOD, "rtx_admin_password": "pw"})
    assert s.rtx_tunnel_number is None  # chosen from the router's config
    assert s.rtx_tunnel_takeover is False
    assert s.rtx_admin_password.get_secret_value() == "pw"
    assert "pw" not in repr(s)


def test_readme_documents_every_data_key():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [key for key in sorted(known_keys()) if f"`{key}`" not in readme]
    assert missing == []


def test_takeover_needs_a_named_tunnel():
    with pytest.raises(SettingsError, match="rtx_tunnel_takeover: True needs rtx_tunnel_number"):
        load_router_settings(
            "@rtx/r", {**GOOD, "rtx_admin_password": "pw", "rtx_tunnel_takeover": True}
        )
    s = load_router_settings(
        "@rtx/r",
        {**GOOD, "rtx_admin_password": "pw", "rtx_tunnel_takeover": True, "rtx_tunnel_number": 1},
    )
    assert s.rtx_tunnel_takeover is True
