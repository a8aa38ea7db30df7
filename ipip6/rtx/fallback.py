"""The router's way out while the VPS is down: a keepalive on the tunnel and a second gateway.

With a fallback, the deploy owns two lines instead of a plain default route::

    ip keepalive K icmp-echo INTERVAL COUNT VPS_INNER
    ip route default gateway tunnel N keepalive K gateway FALLBACK weight 0

The router probes the VPS's inner address every INTERVAL seconds; after COUNT probes unanswered
in a row the first gateway is down and the home's IPv4 leaves by FALLBACK (weight 0: only
then); one answer brings the tunnel back. The probe's target is on the tunnel's inner link,
which nothing else routes, so a probe can never be answered by way of the fallback and flap the
route back (see ``tunnel_inner_network`` in :mod:`ipip6.settings`).

Which FALLBACK, with ``rtx_fallback_gateway: auto``: the default route the router had before the
first deploy (``ip route default gateway pp 1``: PPPoE), read from the running config; once the
deploy has written its own line, the gateway is read back from that line, so later runs keep it.
Which K: the one the deploy's own default route names, else the one already probing the VPS's
inner address, else the lowest number nothing uses.

Pure: the operations hand in the running config they have read.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ipip6.rtx.config import RouterConfig
from ipip6.settings import RouterSettings

#: ``ip keepalive`` numbers the deploy chooses from (the RTX's documented range varies by model;
#: 100 is within every model's).
KEEPALIVE_MAX = 100

# One plain gateway of an RTX route, as the fallback may name it (what rtx_fallback_gateway
# accepts: `pp N`, `tunnel N`, `dhcp lanN[.M]`, an IPv4 address).
_PLAIN_GATEWAY = r"(?:pp|tunnel) \d+|dhcp lan\d+(?:\.\d+)?|\d+\.\d+\.\d+\.\d+"
# The deploy's own default route, as it writes it; "weight 0" may be printed or not (it is the
# documented form, but a firmware that drops a default-looking option must not make the line
# a stranger's).
_ROUTE_OURS = (
    r"ip route default gateway tunnel {n}"
    rf"(?: keepalive (\d+) gateway ({_PLAIN_GATEWAY})(?: weight 0)?)?"
)
_ROUTE_SIMPLE = re.compile(rf"ip route default gateway ({_PLAIN_GATEWAY})")
_KEEPALIVE = re.compile(r"ip keepalive (\d+) (\S+)(?: (\d+) (\d+) (\S+))?.*")
_KEEPALIVE_USE = re.compile(r"\bkeepalive (\d+)\b")


class FallbackRefused(ValueError):
    """The fallback cannot be set up from this config and this data: nothing is sent."""


@dataclass(frozen=True)
class Fallback:
    """The keepalive and the second gateway of the owned default route."""

    keepalive: int
    interval: int
    count: int
    target: ipaddress.IPv4Address
    gateway: str

    def keepalive_line(self) -> str:
        return f"ip keepalive {self.keepalive} icmp-echo {self.interval} {self.count} {self.target}"

    def route_line(self, tunnel_number: int) -> str:
        return (
            f"ip route default gateway tunnel {tunnel_number} keepalive {self.keepalive} "
            f"gateway {self.gateway} weight 0"
        )

    @property
    def seconds(self) -> int:
        """About how long the home is without IPv4 before the fallback takes over."""
        return self.interval * self.count


@dataclass(frozen=True)
class FallbackChoice:
    """What :func:`choose_fallback` found: the fallback (or None) and a note for the user."""

    fallback: Fallback | None
    note: str | None = None
    retired: tuple[int, ...] = ()
    """Keepalives this deploy wrote earlier and no longer needs (to remove)."""


def _default_route(running: RouterConfig) -> str | None:
    line = running.get("ip route default")
    return " ".join(line.text.split()) if line is not None else None


def _our_route(config: RouterConfig, tunnel_number: int) -> tuple[str | None, re.Match | None]:
    """The default route line, and its match when it is the deploy's own for this tunnel."""
    route = _default_route(config)
    ours = re.fullmatch(_ROUTE_OURS.format(n=tunnel_number), route) if route else None
    return route, ours


def _keepalives(running: RouterConfig) -> dict[int, tuple[str, str | None]]:
    """``ip keepalive`` number → (its line, its icmp-echo target or None)."""
    found = {}
    for line in running.lines:
        text = " ".join(line.text.split())
        m = _KEEPALIVE.fullmatch(text)
        if m:
            target = m[5] if m[2] == "icmp-echo" else None
            found[int(m[1])] = (text, target)
    return found


def _referenced(running: RouterConfig, skip: str | None) -> set[int]:
    """Keepalive numbers any route names (but the line ``skip``, the deploy's own)."""
    used = set()
    for line in running.lines:
        text = " ".join(line.text.split())
        if text == skip or not text.startswith(("ip route ", "ipv6 route ")):
            continue
        used.update(int(n) for n in _KEEPALIVE_USE.findall(text))
    return used


def stale_keepalives(
    settings: RouterSettings, config: RouterConfig, tunnel_number: int, keep: int | None
) -> tuple[int, ...]:
    """The ``ip keepalive`` numbers in ``config`` that this deploy wrote and that are no longer
    wanted (all but ``keep``): the one its default route names there, and any probing this
    tunnel's VPS inner address. A saved config may hold one the running config has already
    dropped: the save step asks both."""
    _, ours = _our_route(config, tunnel_number)
    keepalives = _keepalives(config)
    target = str(settings.inner.vps.ip) if settings.inner is not None else None
    stale = {int(ours[1])} if ours and ours[1] else set()
    stale |= {n for n, (_, t) in keepalives.items() if target is not None and t == target}
    return tuple(sorted(n for n in stale if n in keepalives and n != keep))


def choose_fallback(
    settings: RouterSettings, running: RouterConfig, tunnel_number: int
) -> FallbackChoice:
    """The fallback this router gets (see the module's docstring). Raises
    :class:`FallbackRefused` when the data names a keepalive something else uses, or when
    ``auto`` meets a default route this deploy cannot take a gateway from."""
    route, ours = _our_route(running, tunnel_number)
    our_keepalive = int(ours[1]) if ours and ours[1] else None
    keepalives = _keepalives(running)
    inner = settings.inner

    if not settings.fallback_wanted or inner is None:
        return FallbackChoice(
            None, retired=stale_keepalives(settings, running, tunnel_number, None)
        )

    # The gateway.
    gateway = settings.rtx_fallback_gateway
    note = None
    if gateway == "auto":
        if ours:
            gateway = ours[2]
            if gateway is None:
                return FallbackChoice(
                    None,
                    retired=stale_keepalives(settings, running, tunnel_number, None),
                    note=(
                        f"no fallback: the default route is already tunnel {tunnel_number}'s "
                        "and the router's earlier one is not known; set rtx_fallback_gateway "
                        "(e.g. 'pp 1') to have one"
                    ),
                )
        elif route is None:
            return FallbackChoice(
                None,
                note="no fallback: the router has no other default route (rtx_fallback_gateway)",
            )
        else:
            simple = _ROUTE_SIMPLE.fullmatch(route)
            if simple is None:
                raise FallbackRefused(
                    f"rtx_fallback_gateway 'auto': the router's default route ({route}) is not "
                    "one plain gateway (several, or options), so the deploy cannot tell which "
                    "one to fall back to. Set rtx_fallback_gateway (e.g. 'pp 1'), or false for "
                    "none. Nothing was sent"
                )
            gateway = simple[1]
            note = f"fallback: {gateway}, the router's default route before this deploy"
    if gateway == f"tunnel {tunnel_number}":
        raise FallbackRefused(
            f"rtx_fallback_gateway {gateway!r}: that is the tunnel this deploy owns; expected "
            "another way out. Nothing was sent"
        )

    # The keepalive number.
    target = str(inner.vps.ip)
    wanted = settings.rtx_keepalive_number
    if wanted is not None:
        line, their_target = keepalives.get(wanted, (None, None))
        users = _referenced(running, route if ours else None)
        if line is not None and wanted != our_keepalive and their_target != target:
            raise FallbackRefused(
                f"rtx_keepalive_number {wanted}: the router already has `{line}`, which is "
                "not this deploy's; choose another number (or leave it unset). Nothing was sent"
            )
        if wanted in users and wanted != our_keepalive:
            raise FallbackRefused(
                f"rtx_keepalive_number {wanted}: another route of the router uses keepalive "
                f"{wanted}; choose another number (or leave it unset). Nothing was sent"
            )
        number = wanted
    elif our_keepalive is not None:
        number = our_keepalive
    else:
        probing = [n for n, (_, t) in sorted(keepalives.items()) if t == target]
        if probing:
            number = probing[0]
        else:
            taken = set(keepalives) | _referenced(running, None)
            free = [n for n in range(1, KEEPALIVE_MAX + 1) if n not in taken]
            if not free:
                raise FallbackRefused(
                    f"no free `ip keepalive` number (1-{KEEPALIVE_MAX}): set "
                    "rtx_keepalive_number, or rtx_fallback_gateway false. Nothing was sent"
                )
            number = free[0]
    fallback = Fallback(
        keepalive=number,
        interval=settings.rtx_keepalive_interval,
        count=settings.rtx_keepalive_count,
        target=inner.vps.ip,
        gateway=gateway,
    )
    retired = stale_keepalives(settings, running, tunnel_number, number)
    return FallbackChoice(fallback, note=note, retired=retired)
