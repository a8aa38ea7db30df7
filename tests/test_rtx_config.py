"""The RTX config model: parsing ``show config`` and comparing it with the owned lines."""

from __future__ import annotations

import pytest

from ipip6.rtx.config import (
    RouterConfig,
    compare,
    desired_lines,
    line_key,
    normalise_line,
    render_owned,
)
from ipip6.rtx.wrap import reconcile
from ipip6.settings import RouterSettings

VPS = "2001:db8:100::10"


def owned_for(s: RouterSettings):
    """The owned lines for settings, tunnel 1 unless they name another."""
    return desired_lines(s, s.rtx_tunnel_number or 1)


ROUTER = "2001:db8:200::1"

HEADER = """\
# RTX1210 Rev.14.01.42 (Fri Jul  5 11:17:45 2024)
# MAC Address : 00:a0:de:00:00:01, 00:a0:de:00:00:02, 00:a0:de:00:00:03
# Memory 256Mbytes, 3LAN, 1BRI
# main:  RTX1210 ver=00 serial=S00000000 MAC-Address=00:a0:de:00:00:01
# Reporting Date: Dec 7 15:38:26 2024
"""

FACTORY = (
    HEADER
    + """\
ip lan1 address 192.168.100.1/24
dhcp service server
dhcp scope 1 192.168.100.2-192.168.100.191/24
"""
)

BUSY = (
    HEADER
    + """\
login password encrypted ABCDEFGH
administrator password encrypted IJKLMNOP
console character ja.utf8
ip route default gateway pp 1
ip route 10.0.0.0/8 gateway tunnel 2
ip lan1 address 192.168.100.1/24
ipv6 prefix 1 ra-prefix@lan2::/64
ipv6 lan2 dhcp service client ir=on
pp select 1
 description pp PRV/PPPoE/0:ISP
 pp keepalive interval 30 retry-interval 30 count 12
 pppoe use lan2
 pp auth accept pap chap
 pp auth myname user@example.jp secret
 ip pp mtu 1454
 ip pp nat descriptor 1000
 pp enable 1
tunnel select 2
 description tunnel 事務所
 tunnel encapsulation ipsec
 ipsec tunnel 101
  ipsec sa policy 101 2 esp aes-cbc sha-hmac
  ipsec ike keepalive use 2 on
 ip tunnel tcp mss limit auto
 tunnel enable 2
ip filter 200030 pass * 192.168.100.0/24 icmp * *
ipv6 filter 200031 pass * * 4
nat descriptor type 1000 masquerade
"""
)


def settings(**overrides) -> RouterSettings:
    data = {
        "vps_ipv6": VPS,
        "router_ipv6": ROUTER,
        "home_networks": ["192.168.100.0/24"],
        "rtx_admin_password": "secret",
        # The layout before inner addresses (tests/test_rtx_fallback.py has them).
        "tunnel_inner_network": False,
    }
    data.update(overrides)
    return RouterSettings(**data)


def ours(n: int = 1, endpoint: str = VPS, mtu: int = 1460) -> str:
    return (
        f"tunnel select {n}\n"
        " tunnel encapsulation ipip\n"
        f" tunnel endpoint address {endpoint}\n"
        f" ip tunnel mtu {mtu}\n"
        " ip tunnel tcp mss limit auto\n"
        f" tunnel enable {n}\n"
    )


# -- parser ----------------------------------------------------------------------------------


def test_parse_drops_header_and_builds_tree():
    config = RouterConfig.parse(BUSY)
    texts = [line.text for line in config.lines]
    assert not any(t.startswith("#") for t in texts)
    assert texts[:3] == [
        "login password encrypted ABCDEFGH",
        "administrator password encrypted IJKLMNOP",
        "console character ja.utf8",
    ]
    pp = config.block("pp select 1")
    assert pp is not None and len(pp.children) == 8
    assert pp.children[-1].text == "pp enable 1"
    tunnel = config.block("tunnel select 2")
    assert [c.text for c in tunnel.children][:3] == [
        "description tunnel 事務所",
        "tunnel encapsulation ipsec",
        "ipsec tunnel 101",
    ]
    # Two-space lines nest under the previous one-space line.
    ipsec = tunnel.children[2]
    assert [c.text for c in ipsec.children] == [
        "ipsec sa policy 101 2 esp aes-cbc sha-hmac",
        "ipsec ike keepalive use 2 on",
    ]
    assert tunnel.children[3].text == "ip tunnel tcp mss limit auto"
    assert config.lines[-1].text == "nat descriptor type 1000 masquerade"


def test_parse_render_round_trip():
    config = RouterConfig.parse(BUSY)
    body = BUSY.split("# Reporting Date: Dec 7 15:38:26 2024\n", 1)[1]
    assert config.render() == body.rstrip("\n")
    assert config.to_json() == body.rstrip("\n").split("\n")


def test_parse_crlf_blank_lines_and_trailing_spaces():
    text = (
        "# header\r\n\r\nip route default gateway pp 1  \r\ntunnel select 1\r\n tunnel enable 1\r\n"
    )
    config = RouterConfig.parse(text)
    assert [line.text for line in config.lines] == [
        "ip route default gateway pp 1",
        "tunnel select 1",
    ]
    assert config.block("tunnel select 1").children[0].text == "tunnel enable 1"


def test_parse_two_space_children_without_one_space_level():
    # Some firmware might indent a section's children by two: still children of the section.
    config = RouterConfig.parse("tunnel select 1\n  tunnel encapsulation ipip\n  tunnel enable 1\n")
    block = config.block("tunnel select 1")
    assert [c.text for c in block.children] == ["tunnel encapsulation ipip", "tunnel enable 1"]


def test_parse_japanese_output():
    text = (
        "# RTX830 Rev.15.02.30 (Mon Oct 16 16:51:21 2023)\n"
        "# 設定ファイル: config0\n"
        "console character ja.utf8\n"
        "description 1 自宅ルーター\n"
        "tunnel select 1\n"
        " description tunnel VPSへのトンネル\n"
        " tunnel encapsulation ipip\n"
    )
    config = RouterConfig.parse(text)
    assert config.get("console character").text == "console character ja.utf8"
    assert config.block("tunnel select 1").children[0].text == "description tunnel VPSへのトンネル"


def test_parse_wrapped_at_80_columns_is_not_fooled():
    # Wrapped mid-token and right after a space, and across three physical lines; the
    # continuation of a child starts without the indentation it would need to be a child.
    child = " tunnel endpoint address 2001:db8:100:0:0:0:0:10" + " " * 0
    filt = "ipv6 filter 200040 pass 2001:0db8:0100:0000:0000:0000:0000:0010 " + (
        "2001:0db8:0200:0000:0000:0000:0000:0001 4"
    )
    very_long = "ip filter 100 pass " + " ".join(f"192.0.2.{i}" for i in range(20)) + " tcp * www"
    assert len(very_long) > 160
    logical = ["ip route default gateway pp 1", "tunnel select 1", child, filt, very_long]

    def printed(columns):
        physical = HEADER.splitlines()
        for line in logical:
            while len(line) > columns - 1:
                physical.append(line[: columns - 1])
                line = line[columns - 1 :]
            physical.append(line)
        return physical

    assert len(printed(80)) > len(logical) + len(HEADER.splitlines())
    lines = reconcile(printed(80), 80, printed(160), 160)
    config = RouterConfig.parse("\n".join(lines))
    assert [line.text for line in config.lines] == [
        "ip route default gateway pp 1",
        "tunnel select 1",
        filt,
        very_long,
    ]
    assert config.block("tunnel select 1").children[0].text == child.strip()


def test_line_keys():
    assert line_key("tunnel endpoint address 2001:db8::1") == "tunnel endpoint address"
    assert line_key("tunnel endpoint name vps.example.jp fqdn") == "tunnel endpoint name"
    assert line_key("ip route default gateway pp 1") == "ip route default"
    assert line_key("ip route 10.0.0.0/8 gateway tunnel 2") == "ip route 10.0.0.0/8"
    assert line_key("ipv6 filter 10 pass * * 4") == "ipv6 filter 10"
    assert line_key("ip filter dynamic 100 * * ftp") == "ip filter dynamic 100"
    assert line_key("tunnel enable 1") == line_key("tunnel disable 1") == "tunnel enable 1"
    assert line_key("ip tunnel tcp mss limit auto") == "ip tunnel tcp mss limit"
    assert line_key("dhcp service server") == "dhcp service server"


def test_normalise_line_ipv6_forms():
    assert normalise_line("tunnel endpoint address 2001:DB8:0100:0::0010") == (
        "tunnel endpoint address 2001:db8:100::10"
    )
    assert normalise_line("ipv6 prefix 1 2001:DB8:1:0::/64") == "ipv6 prefix 1 2001:db8:1::/64"
    # Not addresses: left alone.
    assert (
        normalise_line("ipv6 prefix 1 ra-prefix@lan2::/64") == "ipv6 prefix 1 ra-prefix@lan2::/64"
    )
    assert normalise_line("x 00:a0:de:00:00:01 16:47:33") == "x 00:a0:de:00:00:01 16:47:33"


# -- desired lines ---------------------------------------------------------------------------


def test_desired_lines_default():
    owned = owned_for(settings())
    assert owned.tunnel_parent == "tunnel select 1"
    assert owned.tunnel_lines == (
        "tunnel encapsulation ipip",
        f"tunnel endpoint address {VPS}",
        "ip tunnel mtu 1460",
        "ip tunnel tcp mss limit auto",
        "tunnel enable 1",
    )
    assert owned.global_lines == ("ip route default gateway tunnel 1",)


def test_desired_lines_options():
    owned = owned_for(
        settings(
            rtx_tunnel_number=5,
            rtx_default_route=False,
            rtx_ipv6_filter_number=200040,
            tunnel_mtu=1440,
            vps_ipv6="2001:DB8:100:0::10",
        )
    )
    assert owned.tunnel_lines[1] == f"tunnel endpoint address {VPS}"
    assert owned.tunnel_lines[2] == "ip tunnel mtu 1440"
    assert owned.tunnel_lines[-1] == "tunnel enable 5"
    assert owned.global_lines == (f"ipv6 filter 200040 pass {VPS} {ROUTER} 4",)


def test_render_owned_layout():
    lines = render_owned(
        ["ipv6 filter 9 pass * * 4", "ip route default gateway tunnel 1"],
        [(1, ["tunnel enable 1", "tunnel encapsulation ipip"])],
    )
    assert lines == [
        "ip route default gateway tunnel 1",
        "tunnel select 1",
        " tunnel encapsulation ipip",
        " tunnel enable 1",
        "ipv6 filter 9 pass * * 4",
    ]


# -- compare ---------------------------------------------------------------------------------


def test_compare_factory_config():
    delta = compare(RouterConfig.parse(FACTORY), owned_for(settings()))
    assert delta.commands == (
        "tunnel select 1",
        "tunnel encapsulation ipip",
        f"tunnel endpoint address {VPS}",
        "ip tunnel mtu 1460",
        "ip tunnel tcp mss limit auto",
        "tunnel enable 1",
        "tunnel select none",
        "ip route default gateway tunnel 1",
    )
    assert delta.rollback == (
        "no ip route default",
        "tunnel select 1",
        "tunnel disable 1",
        "no ip tunnel tcp mss limit",
        "no ip tunnel mtu",
        "no tunnel endpoint address",
        "no tunnel encapsulation",
        "tunnel select none",
    )
    assert delta.diff.splitlines()[:3] == ["--- running", "+++ desired", "@@ -0,0 +1,7 @@"]
    assert "+ tunnel endpoint address 2001:db8:100::10" in delta.diff.splitlines()
    assert delta.foreign_lines == ()
    assert delta


def test_compare_busy_config_replaces_pp_default_route_and_leaves_the_rest():
    running = RouterConfig.parse(BUSY)
    delta = compare(running, owned_for(settings(rtx_ipv6_filter_number=200040)))
    assert delta.commands == (
        f"ipv6 filter 200040 pass {VPS} {ROUTER} 4",
        "tunnel select 1",
        "tunnel encapsulation ipip",
        f"tunnel endpoint address {VPS}",
        "ip tunnel mtu 1460",
        "ip tunnel tcp mss limit auto",
        "tunnel enable 1",
        "tunnel select none",
        "ip route default gateway tunnel 1",
    )
    # No "no ip route default": the new route replaces the pp one.
    assert not any(c.startswith("no ") for c in delta.commands)
    # Nothing about pp 1, tunnel 2, other filters or routes.
    assert not any("pp" in c or "tunnel 2" in c or "200031" in c for c in delta.commands)
    assert delta.rollback[0] == "ip route default gateway pp 1"
    assert delta.rollback[-1] == "no ipv6 filter 200040"
    diff = delta.diff.splitlines()
    assert "-ip route default gateway pp 1" in diff
    assert "+ip route default gateway tunnel 1" in diff
    assert not any("ipsec" in line or "pp select" in line for line in diff)


def test_compare_tunnel_present_with_another_endpoint():
    running = RouterConfig.parse(
        FACTORY + ours(endpoint="2001:db8:999::1") + "ip route default gateway tunnel 1\n"
    )
    delta = compare(running, owned_for(settings()))
    assert delta.commands == (
        "tunnel select 1",
        f"tunnel endpoint address {VPS}",
        "tunnel select none",
    )
    assert delta.rollback == (
        "tunnel select 1",
        "tunnel endpoint address 2001:db8:999::1",
        "tunnel select none",
    )
    assert delta.diff.splitlines()[2:] == [
        "@@ -1,7 +1,7 @@",
        " ip route default gateway tunnel 1",
        " tunnel select 1",
        "  tunnel encapsulation ipip",
        "- tunnel endpoint address 2001:db8:999::1",
        "+ tunnel endpoint address 2001:db8:100::10",
        "  ip tunnel mtu 1460",
        "  ip tunnel tcp mss limit auto",
        "  tunnel enable 1",
    ]


def test_compare_replaces_other_endpoint_forms_and_disabled_tunnel():
    running = RouterConfig.parse(
        "tunnel select 1\n"
        " tunnel encapsulation ipip\n"
        " tunnel endpoint name aftr.example.jp fqdn\n"
        " ip tunnel secure filter in 100\n"
        " tunnel disable 1\n"
    )
    delta = compare(running, owned_for(settings(rtx_default_route=False)))
    assert delta.commands == (
        "tunnel select 1",
        "no tunnel endpoint name",
        f"tunnel endpoint address {VPS}",
        "ip tunnel mtu 1460",
        "ip tunnel tcp mss limit auto",
        "tunnel enable 1",
        "tunnel select none",
    )
    assert "tunnel disable 1" in delta.rollback
    assert "tunnel endpoint name aftr.example.jp fqdn" in delta.rollback
    # Not ours: reported, never touched.
    assert delta.foreign_lines == ("ip tunnel secure filter in 100",)
    assert not any("secure filter" in c for c in delta.commands + delta.rollback)


def test_compare_ipv6_normalisation_means_nothing_to_do():
    running = RouterConfig.parse(
        "ip route default gateway tunnel 1\n"
        + ours(endpoint="2001:DB8:100:0:0:0:0:10")
        + "ipv6 filter 200040 pass 2001:0db8:0100::0010 2001:DB8:200::1 4\n"
    )
    delta = compare(running, owned_for(settings(rtx_ipv6_filter_number=200040)))
    assert delta.commands == ()
    assert delta.diff == ""
    assert not delta


def test_compare_nothing_to_do_in_busy_config():
    running = RouterConfig.parse(
        BUSY.replace("ip route default gateway pp 1", "ip route default gateway tunnel 1") + ours()
    )
    delta = compare(running, owned_for(settings()))
    assert not delta and delta.commands == () and delta.rollback == () and delta.diff == ""


def test_compare_does_not_own_default_route_when_disabled():
    running = RouterConfig.parse(FACTORY + "ip route default gateway pp 1\n" + ours())
    delta = compare(running, owned_for(settings(rtx_default_route=False)))
    assert not delta


def test_compare_changed_mtu_and_filter():
    running = RouterConfig.parse(
        ours(mtu=1280) + "ipv6 filter 200040 pass * * 4\nip route default gateway tunnel 1\n"
    )
    delta = compare(running, owned_for(settings(rtx_ipv6_filter_number=200040)))
    assert delta.commands == (
        f"ipv6 filter 200040 pass {VPS} {ROUTER} 4",
        "tunnel select 1",
        "ip tunnel mtu 1460",
        "tunnel select none",
    )
    assert delta.rollback == (
        "tunnel select 1",
        "ip tunnel mtu 1280",
        "tunnel select none",
        "ipv6 filter 200040 pass * * 4",
    )


@pytest.mark.parametrize("number", [1, 7, 3000])
def test_compare_other_tunnel_numbers(number):
    running = RouterConfig.parse(FACTORY + ours(n=2))
    delta = compare(running, owned_for(settings(rtx_tunnel_number=number)))
    if number == 2:
        return
    assert delta.commands[0] == f"tunnel select {number}"
    assert f"tunnel enable {number}" in delta.commands
    assert delta.commands[-1] == f"ip route default gateway tunnel {number}"


@pytest.mark.parametrize(
    ("lines", "number"),
    [
        # older firmware: a bare number on a line of its own
        (["Firmware: exec0", "Config. file: 0", "Default config. file: 0"], 0),
        (["Firmware: exec0", "Config. file: 2", "Default config. file: 0"], 2),
        # several files: after the firmware field, as a name; the default line never counts
        (
            [
                "Firmware: exec1  Config. file: config1",
                "Default firmware: exec0  Default config. file: config0",
            ],
            1,
        ),
        (
            [
                "Default firmware: exec0  Default config. file: config0",
                "Firmware: exec0  Config. file: config3",
            ],
            3,
        ),
        (["起動時設定ファイル: 1"], 1),
        (["デフォルト設定ファイル: config0", "設定ファイル: config1"], 1),
        # only the next boot's file: not what save writes, so not known
        (["Default config. file: 1"], None),
        (["Default  config file: 1", "Config file: 2"], 2),  # another spelling
        (["DEFAULT CONFIG. FILE: config1  CONFIG. FILE: config2"], 2),
        # a sub-file is not file 1: not known, never misread
        (["Firmware: exec0  Config. file: config1.2"], None),
        ([], None),
    ],
)
def test_the_booted_config_file_in_every_form(lines, number):
    from ipip6.rtx.facts import config_file_number

    assert config_file_number(lines) == number


# -- what other routers print and hold -------------------------------------------------------


def test_embedded_file_is_kept_byte_for_byte():
    lua = [
        "embedded file status.lua <<EOF",
        "-- # not a comment of the config",
        "",
        "  local x = 1",
        " tunnel select 9",
        "EOF",
    ]
    text = HEADER + "ip lan1 address 192.168.100.1/24\n" + "\n".join(lua) + "\ntunnel select 1\n"
    config = RouterConfig.parse(text)
    embedded = config.lines[1]
    assert embedded.body == tuple(lua[1:-1])
    assert config.block("tunnel select 1") is not None
    assert config.block("tunnel select 9") is None  # content, not config
    assert config.render().splitlines()[1:7] == lua


def test_a_quoted_terminator_ends_the_embedded_file_at_the_bare_word():
    text = HEADER + 'embedded file a.lua <<"EOF"\nx = 1\nEOF\ntunnel select 1\n'
    config = RouterConfig.parse(text)
    assert config.lines[0].body == ("x = 1",)
    assert config.block("tunnel select 1") is not None  # not swallowed as content


def test_select_lines_open_a_top_level_section_whatever_their_indentation():
    text = HEADER + (
        "tunnel select 1\n tunnel encapsulation map-e\n"
        " tunnel select 2\n  tunnel encapsulation ipip\n"  # indentation off
    )
    config = RouterConfig.parse(text)
    assert [c.text for c in config.block("tunnel select 1").children] == [
        "tunnel encapsulation map-e"
    ]
    assert [c.text for c in config.block("tunnel select 2").children] == [
        "tunnel encapsulation ipip"
    ]


def test_model_and_revision_come_from_the_header():
    config = RouterConfig.parse(HEADER + "ip lan1 address 192.168.100.1/24\n")
    assert (config.model, config.revision) == ("RTX1210", "14.01.42")
    assert RouterConfig.parse("ip lan1 address 192.168.100.1/24\n").model is None


def test_remote_endpoint_form_is_the_same_setting():
    running = RouterConfig.parse(
        FACTORY + ours().replace("endpoint address", "endpoint remote address")
    )
    assert "tunnel endpoint remote address" in running.render()
    assert not compare(running, owned_for(settings(rtx_default_route=False)))


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("set PP1=msen:0123456789abcdef", "set <hidden>"),
        ("ipsec ike local name 1 home key-id", "ipsec ike <hidden>"),
        ("ipsec ike pre-shared-key 1 text s3cret", "ipsec ike <hidden>"),
        ("snmpv2c community read-only public", "snmpv2c <hidden>"),
        (" pp auth myname user@isp s3cret", " pp auth <hidden>"),
        ("login user admin s3cret", "login <hidden>"),
        ("ip route default gateway pp 1", "ip route default gateway pp 1"),
    ],
)
def test_secrets_are_hidden_by_line_kind(line, shown):
    from ipip6.rtx.config import redact_line

    assert redact_line(line) == shown


def test_embedded_content_never_shows_in_a_message():
    from ipip6.rtx.config import line_diff, unowned_view

    before = RouterConfig.parse("embedded file a.lua <<EOF\nlocal seed = 'abc'\nEOF\n")
    after = RouterConfig.parse("embedded file a.lua <<EOF\nlocal seed = 'xyz'\nEOF\n")
    owned = owned_for(settings())
    diff = line_diff(unowned_view(before, owned), unowned_view(after, owned))
    assert diff and not any("abc" in d or "xyz" in d for d in diff)


@pytest.mark.parametrize(
    ("output", "state"),
    [
        (
            "TUNNEL[1]:\nDescription:\n  Interface type: IPIP\n  Tunnel interface is connected\n",
            "up",
        ),
        (
            "TUNNEL[1]:\n説明:\n  インタフェースの種類: IPIP\n"
            "  トンネルインタフェースは接続されています\n",
            "up",
        ),
        ("TUNNEL[1]:\nDescription:\n  Tunnel interface is not connected\n", "down"),
        ("TUNNEL[1]:\n説明:\n  トンネルインタフェースは接続されていません\n", "down"),
        ("TUNNEL[1]:\n  トンネルインタフェースは接続されていない\n", "down"),
        ("TUNNEL[1]:\n  Current status is Online.\n", "up"),
        ("TUNNEL[1]:\n  Current status is Offline.\n", "down"),
        ("TUNNEL[1]:\n  Status: up\n", "up"),
        ("TUNNEL[1]:\n  Status: down (keepalive)\n", "down"),
        ("TUNNEL[1]: disabled\n", "down"),
        # the user's own words in the description are never read as a status
        ("TUNNEL[1]:\nDescription: is connected\n  Interface type: IPIP\n", "unknown"),
        ("TUNNEL[1]:\n  something else entirely\n", "unknown"),
    ],
)
def test_tunnel_status_in_every_form(output, state):
    from ipip6.rtx.status import parse_tunnel_status

    status = parse_tunnel_status(1, output)
    assert status.state == state
    assert status.up == (state == "up")


def test_tunnel_status_error_is_not_up():
    from ipip6.rtx.status import parse_tunnel_status

    status = parse_tunnel_status(1, "", "Error: Invalid command name")
    assert not status.up and "Invalid command name" in status.summary()
