"""The check by traffic, its pure parts: which address, the command, reading ping's output."""

from __future__ import annotations

import ipaddress

import pytest

from ipip6.rtx.config import RouterConfig
from ipip6.tunnel_ping import PING_COUNT, TunnelPing, choose_address, parse_ping

HOME = [ipaddress.IPv4Network("192.168.100.0/24"), ipaddress.IPv4Network("192.168.200.0/24")]
CONFIG = RouterConfig.parse(
    "ip lan2 address 10.0.0.2/30\n"  # not a home network: not this one
    "ip lan1 address 192.168.100.1/24\n"
    "ip lan3 address dhcp\n"
)


def test_auto_picks_the_routers_lan_address_inside_the_home_networks():
    assert choose_address("auto", CONFIG, HOME) == ipaddress.IPv4Address("192.168.100.1")


def test_auto_finds_nothing_without_such_an_address():
    assert choose_address("auto", RouterConfig.parse("ip lan1 address 10.0.0.1/8\n"), HOME) is None


def test_an_address_from_data_wins_and_false_means_no_check():
    wanted = ipaddress.IPv4Address("192.168.200.10")
    assert choose_address(wanted, CONFIG, HOME) == wanted
    assert choose_address(False, CONFIG, HOME) is None


def test_the_command_goes_into_the_tunnel_only():
    ping = TunnelPing("vps", "tun-home", ipaddress.IPv4Address("192.168.100.1"))
    assert ping.command() == "ping -n -c 3 -i 0.5 -W 2 -I tun-home 192.168.100.1"
    assert ping.describe() == "ping 192.168.100.1 from vps through tun-home"


IPUTILS_OK = """\
PING 192.168.100.1 (192.168.100.1) from 203.0.113.1 tun-home: 56(84) bytes of data.
64 bytes from 192.168.100.1: icmp_seq=2 ttl=64 time=1.02 ms
64 bytes from 192.168.100.1: icmp_seq=3 ttl=64 time=0.98 ms

--- 192.168.100.1 ping statistics ---
3 packets transmitted, 2 received, 33.3333% packet loss, time 1003ms
rtt min/avg/max/mdev = 0.980/1.000/1.020/0.020 ms
"""
IPUTILS_LOST = """\
--- 192.168.100.1 ping statistics ---
3 packets transmitted, 0 received, 100% packet loss, time 2040ms
"""
BUSYBOX_LOST = """\
--- 192.168.100.1 ping statistics ---
3 packets transmitted, 0 packets received, 100% packet loss
"""
WARNING = "ping: Warning: source address might be selected on device other than: tun-home\n"


@pytest.mark.parametrize(
    ("stdout", "stderr", "sent", "received", "summary"),
    [
        (IPUTILS_OK, WARNING, 3, 2, "2/3 replies"),
        (IPUTILS_LOST, WARNING, 3, 0, "0/3 replies"),
        (BUSYBOX_LOST, "", 3, 0, "0/3 replies"),
        ("", "ping: connect: Network is unreachable\n", PING_COUNT, 0,
         "0/3 replies (ping: connect: Network is unreachable)"),
        ("", "bash: line 1: ping: command not found\n", PING_COUNT, 0,
         "0/3 replies (bash: line 1: ping: command not found)"),
        ("", "", PING_COUNT, 0, "0/3 replies (no ping summary in the output)"),
    ],
)  # fmt: skip
def test_reading_pings_output(stdout, stderr, sent, received, summary):
    outcome = parse_ping(stdout, stderr)
    assert (outcome.sent, outcome.received) == (sent, received)
    assert outcome.ok == (received > 0)
    assert outcome.summary() == summary


@pytest.mark.parametrize(
    "line",
    [
        "ip bridge1 address 192.168.100.254/24",
        "ip lan1.1 address 192.168.100.1/24",
        "ip lan1/1 address 192.168.100.1/24",
        "ip vlan1 address 192.168.100.1/24",
    ],
)
def test_auto_finds_the_lan_on_a_bridge_or_a_vlan(line):
    config = RouterConfig.parse(f"ip lan2 address 10.0.0.2/30\n{line}\nip lan3 address dhcp\n")
    expected = line.split()[3].split("/")[0]
    assert str(choose_address("auto", config, HOME)) == expected
