"""Verification by traffic: from the VPS, ping the router through the tunnel.

A router change is confirmed by what it is for, IPv4 packets crossing the tunnel both ways,
before it is saved: the VPS sends echo requests into its ip6tnl (``ping -I``: never out of any
other interface) to the router's inner address (or, on a tunnel without one, to an address
behind the router, whose replies come back by the router's IPv4 default route). It needs both
ends deployed, so it runs after the VPS's operations, in the router's ``save`` step (see
``deploy.py``).

Pure: which address to ping, the command, and the reading of its output. The operation runs the
command on the VPS host (:mod:`operations.rtx`).
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ipip6.rtx.config import RouterConfig

# Three echo requests half a second apart, each waited for 2 s: one reply is proof enough (the
# first may be lost while the router resolves the VPS's neighbour on its WAN).
PING_COUNT = 3
PING_INTERVAL = 0.5
PING_WAIT = 2
# A fresh tunnel may need a moment more (the VPS's route, the router's neighbour entry): the
# whole ping is tried this many times, this many seconds apart, before the change is rolled back.
PING_ATTEMPTS = 3
PING_PAUSE = 2.0


def choose_address(
    setting: Literal["auto", False] | ipaddress.IPv4Address,
    running: RouterConfig,
    home_networks: Sequence[ipaddress.IPv4Network],
    router_inner: ipaddress.IPv4Address | None = None,
) -> ipaddress.IPv4Address | None:
    """The address to ping: ``rtx_verify_ping`` itself; with ``auto`` the router's inner
    address when the tunnel has one (it proves the tunnel itself, and needs no route to the
    VPS's public IPv4), else the router's first own LAN address inside ``home_networks`` (None
    when it has none, or with ``False``)."""
    if setting is False:
        return None
    if isinstance(setting, ipaddress.IPv4Address):
        return setting
    if router_inner is not None:
        return router_inner
    for interface in running.lan_addresses():
        if any(interface.ip in net for net in home_networks):
            return interface.ip
    return None


@dataclass(frozen=True)
class TunnelPing:
    """One verification: ping ``address`` from the VPS host ``vps`` through ``tunnel_name``."""

    vps: str
    tunnel_name: str
    address: ipaddress.IPv4Address

    def command(self) -> str:
        return (
            f"ping -n -c {PING_COUNT} -i {PING_INTERVAL:g} -W {PING_WAIT} "
            f"-I {shlex.quote(self.tunnel_name)} {self.address}"
        )

    def describe(self) -> str:
        return f"ping {self.address} from {self.vps} through {self.tunnel_name}"


@dataclass(frozen=True)
class PingOutcome:
    """What one run of ``ping`` reported."""

    sent: int
    received: int
    detail: str  # the last line of error output, if any (e.g. "Network is unreachable")
    rtt_ms: float | None = None  # the average round trip, when replies came

    @property
    def ok(self) -> bool:
        return self.received > 0

    def summary(self) -> str:
        text = f"{self.received}/{self.sent} replies"
        return f"{text} ({self.detail})" if self.detail and not self.ok else text


_STATS = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")
# iputils: "rtt min/avg/max/mdev = 0.061/0.082/0.110/0.019 ms"; busybox: "round-trip
# min/avg/max = 0.061/0.082/0.110 ms".
_RTT = re.compile(r"min/avg/max\S* = [\d.]+/([\d.]+)/")


def parse_ping(stdout: str, stderr: str = "") -> PingOutcome:
    """Read iputils' (or busybox's) summary line; no summary counts as nothing received."""
    m = _STATS.search(stdout)
    errors = [line.strip() for line in stderr.splitlines() if line.strip()]
    # iputils warns about the source address when the tunnel has no IPv4 address of its own
    # (it needs none): not a reason, unlike "Network is unreachable" or a missing ping.
    errors = [line for line in errors if "Warning:" not in line]
    detail = errors[-1] if errors else ""
    if not m:
        return PingOutcome(PING_COUNT, 0, detail or "no ping summary in the output")
    rtt = _RTT.search(stdout)
    return PingOutcome(int(m[1]), int(m[2]), detail, float(rtt[1]) if rtt else None)
