"""The health check's judgements (ipip6.health), from what hosts print: no host needed."""

from __future__ import annotations

import hashlib
import ipaddress

from ipip6 import health
from ipip6.settings import load_vps_settings
from ipip6.tunnel_ping import parse_ping

VPS_DATA = {
    "vps_ipv6": "2001:db8:1::1",
    "router_ipv6": "2001:db8:2::1",
    "home_networks": ["192.168.100.0/24"],
    "uplink_interface": "ens3",
}
# `ip -o -d link show dev tun-home` on Debian 12 (iproute2 6.1), as networkd leaves the link.
LINK = (
    "7: tun-home@NONE: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1460 qdisc noqueue state UNKNOWN "
    "mode DEFAULT group default qlen 1000\\    link/tunnel6 2001:db8:1::1 peer 2001:db8:2::1 "
    "promiscuity 0  allmulti 0 minmtu 68 maxmtu 65407 \\    ip6tnl ip6ip remote 2001:db8:2::1 "
    "local 2001:db8:1::1 hoplimit 64 encaplimit none tclass 0x00 flowlabel 0x00000 "
    "(flowinfo 0x00000000) addrgenmode eui64 numtxqueues 1 numrxqueues 1"
)


def vps():
    return load_vps_settings("vps", VPS_DATA)


def test_a_link_as_deployed_is_fine():
    link, limit = health.link_findings("vps", vps(), vps(), LINK)
    assert (link.ok, limit.ok) == (True, True), (link, limit)
    assert "ipip6 2001:db8:1::1 → 2001:db8:2::1, mtu 1460" in link.seen


def test_the_kernels_default_encapsulation_limit_is_named_with_its_fix():
    link, limit = health.link_findings(
        "vps", vps(), vps(), LINK.replace("encaplimit none", "encaplimit 4")
    )
    assert link.ok is True and limit.ok is False
    assert "encaplimit 4" in limit.seen and "Destination Options" in limit.seen
    assert "ip link del dev tun-home; systemctl restart systemd-networkd" in limit.fix


def test_a_link_that_differs_from_the_data():
    text = LINK.replace("remote 2001:db8:2::1", "remote 2001:db8:3::1").replace(",UP,LOWER_UP", "")
    link, _ = health.link_findings("vps", vps(), vps(), text)
    assert link.ok is False
    assert "remote 2001:db8:3::1, the data says 2001:db8:2::1" in link.seen and "down" in link.seen
    # only down: the fix is to bring it up, nothing more
    link, _ = health.link_findings("vps", vps(), vps(), LINK.replace(",UP,LOWER_UP", ""))
    assert link.fix == "ip link set dev tun-home up"
    # a link of another mode under our name
    link, _ = health.link_findings("vps", vps(), vps(), LINK.replace("ip6tnl ip6ip", "ip6tnl any"))
    assert "mode any, not ipip6" in link.seen
    missing, limit = health.link_findings("vps", vps(), vps(), None)
    assert missing.ok is False and limit.ok is None


def test_routes_to_home():
    ok = health.routes_finding("vps", vps(), ["192.168.100.0/24 proto static scope link"])
    assert ok.ok is True
    bad = health.routes_finding("vps", vps(), ["192.168.101.0/24 proto static scope link"])
    assert bad.ok is False and "no route to 192.168.100.0/24" in bad.seen


def test_sysctls_live_against_the_file():
    wanted = health.sysctl_expected(
        "# Managed\nnet.ipv4.conf.all.forwarding = 1\n# x = 2\n"
        "net.ipv4.ip_local_port_range = 1024 65535\n"
    )
    assert wanted == {
        "net.ipv4.conf.all.forwarding": "1",
        "net.ipv4.ip_local_port_range": "1024 65535",
    }
    live = {"net.ipv4.conf.all.forwarding": "1", "net.ipv4.ip_local_port_range": "1024\t65535"}
    assert health.sysctls_finding("vps", wanted, live).ok is True
    off = health.sysctls_finding("vps", wanted, {**live, "net.ipv4.conf.all.forwarding": "0"})
    assert off.ok is False and "net.ipv4.conf.all.forwarding is 0, 1 wanted" in off.seen


def test_firewall_counters_do_not_count_but_a_missing_rule_does():
    disk = [":INPUT DROP [0:0]", "-A IPIP6-INPUT -i lo -j ACCEPT"]
    live = [":INPUT DROP [123:4567]", "-A IPIP6-INPUT -i lo -j ACCEPT"]
    assert health.firewall_finding("vps", "iptables", live, disk).ok is True
    flushed = health.firewall_finding("vps", "iptables", live[:1], disk)
    assert flushed.ok is False and "1 lines on disk are not loaded" in flushed.seen
    assert "systemctl restart ipip6-firewall.service" in flushed.fix
    assert "--A IPIP6-INPUT -i lo -j ACCEPT" in flushed.lines
    nft = ["table inet ipip6 {", "  counter packets 10 bytes 840 drop", "}"]
    assert health.firewall_finding(
        "vps", "nftables", nft, [nft[0], "  counter packets 0 bytes 0 drop", nft[2]]
    ).ok
    assert health.firewall_finding("vps", "nftables", nft, None).ok is False


def test_owned_files_drift_names_the_file_and_diffs_it():
    wanted = {"/etc/a": "one\ntwo\n", "/etc/b": "three\n"}

    def sha(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    sums = {"/etc/a": sha("one\ntwo\n"), "/etc/b": sha("three\nedited\n")}
    found = health.files_finding("vps", wanted, sums, sha, {"/etc/b": ["three", "edited"]})
    assert found.ok is False and found.seen == "/etc/b changed"
    assert "-edited" in found.lines
    assert health.files_finding("vps", wanted, {"/etc/a": sums["/etc/a"]}, sha).seen == (
        "/etc/b missing"
    )


def test_the_routers_address_whatever_the_layout():
    lines = [
        "LAN2 scope-id 2 [up]",
        "  global     2001:DB8:2:0:0:0:0:1/64 (RA)",
        "  link-local fe80::2a0:deff:fe00:1202/64",
        "LAN1 IPv6アドレス: 2001:db8:ff::1/64",
        "  ff02::1",
        "Memory 256Mbytes, 3LAN, 1BRI  12:34:56",
    ]
    found = health.parse_ipv6_addresses(lines)
    assert [str(a) for a in found] == ["2001:db8:2::1/64", "2001:db8:ff::1/64"]


def _router_settings():
    from ipip6.settings import RouterSettings

    data = {k: v for k, v in VPS_DATA.items() if k != "uplink_interface"}
    return RouterSettings.model_validate({**data, "rtx_admin_password": "pw"})


def test_the_wan_address_and_a_prefix_change():
    settings = _router_settings()
    same = [ipaddress.IPv6Interface("2001:db8:2::1/64")]
    assert health.address_finding("@rtx/r", settings, same).ok is True
    moved = health.address_finding(
        "@rtx/r", settings, [ipaddress.IPv6Interface("2001:db8:f2::1/64")]
    )
    assert moved.ok is False
    assert "the IPoE prefix changed: 2001:db8:2::/64 → 2001:db8:f2::/64" in moved.seen
    assert 'set router_ipv6 = "2001:db8:f2::1"' in moved.fix
    other = health.address_finding(
        "@rtx/r", settings, [ipaddress.IPv6Interface("2001:db8:9::77/64")]
    )
    assert other.ok is False and "none of the router's addresses (2001:db8:9::77)" in other.seen
    assert health.address_finding("@rtx/r", settings, []).ok is None
    assert health.address_finding("@rtx/r", settings, None).ok is None


def test_ping_rtt_from_iputils_and_busybox():
    iputils = (
        "3 packets transmitted, 3 received, 0% packet loss, time 402ms\n"
        "rtt min/avg/max/mdev = 0.061/0.082/0.110/0.019 ms\n"
    )
    assert parse_ping(iputils).rtt_ms == 0.082
    busybox = (
        "3 packets transmitted, 2 packets received, 33% packet loss\n"
        "round-trip min/avg/max = 0.500/0.750/1.000 ms\n"
    )
    outcome = parse_ping(busybox)
    assert (outcome.received, outcome.rtt_ms) == (2, 0.75)
    assert parse_ping("3 packets transmitted, 0 received, 100% packet loss").rtt_ms is None


def test_the_table_lists_every_check_and_each_problem_with_its_fix():
    rows = [
        health.Finding("vps", "VPS", "tunnel link", True, "up"),
        health.Finding("vps", "VPS", "sysctls", False, "forwarding is 0", "sysctl --system"),
        health.Finding("@rtx/r", "router", "tunnel status", None, "unknown words"),
    ]
    table = health.render_table(rows)
    assert table.splitlines()[0].split() == ["host", "end", "check", "state", "seen"]
    assert "1 problem, each with its fix:" in table
    assert "  fix: sysctl --system" in table
    assert "1 check(s) could not tell: @rtx/r tunnel status" in table
    assert "No problem found." in health.render_table(rows[:1])


def test_merge_keeps_the_worst_of_several_tunnels():
    ok = health.Finding("vps", "VPS", "routes to home", True, "a")
    bad = health.Finding("vps", "VPS", "routes to home", False, "b", "fix b")
    merged = health.merge("vps", "VPS", "routes to home", [ok, bad])
    assert (merged.ok, merged.seen, merged.fix) == (False, "a; b", "fix b")


def test_a_finding_counts_once_though_pyinfra_runs_an_operation_twice():
    from operations.health import Report

    report = Report()
    row = health.Finding("vps", "VPS", "sysctls", False, "forwarding is 0", "sysctl --system")
    report.add(row)
    report.add(row)  # change detection, then execution, without -y
    assert report.findings == [row]
