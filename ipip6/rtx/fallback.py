"""The router's way out while the VPS is down: a keepalive on the tunnel and a second gateway.

With a fallback, the deploy owns two lines instead of a plain default route::

    ip keepalive K icmp-echo INTERVAL COUNT VPS_INNER
    ip route default gateway tunnel N keepalive K gateway FALLBACK weight 0

The router probes the VPS's inner address every INTERVAL seconds; after COUNT probes unanswered
in a row the first gateway is down and the home's IPv4 leaves by FALLBACK (weight 0: only
then); one answer brings the tunnel back. The probe's target is on the tunnel's inner link,
which nothing else routes, so a probe can never be answered by way of the fallback and flap the
route back (see ``tunnel_inner_network`` in :mod:`ipip6.settings`).

With a backup VPS (``rtx_backup_tunnel``) the route has a gateway more, probed by a keepalive
of its own on the backup tunnel's inner link::

    ip keepalive K2 icmp-echo INTERVAL COUNT BACKUP_VPS_INNER
    ip route default gateway tunnel N keepalive K gateway tunnel M keepalive K2 weight 0
        gateway FALLBACK weight 0

The manual says a ``weight 0`` gateway is used only while no other is valid, and a gateway with
``keepalive`` only while its keepalive is up. It does not say how two ``weight 0`` gateways
share: the deploy writes them in the order it wants them (backup, then FALLBACK), and the
README says what the home sees if a firmware shares streams between them instead.

Which FALLBACK, with ``rtx_fallback_gateway: auto``: the default route the router had before the
first deploy (``ip route default gateway pp 1``: PPPoE), read from the running config; once the
deploy has written its own line, the gateway is read back from that line, so later runs keep it.
Which K: the one the deploy's own default route names, else the one already probing the VPS's
inner address, else the lowest number nothing uses (K2 likewise, never K).

Pure: the operations hand in the running config they have read.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ipip6.rtx.config import RouterConfig, normalise_line
from ipip6.settings import RouterSettings

#: ``ip keepalive`` numbers the deploy chooses from (the RTX's documented range varies by model;
#: 100 is within every model's).
KEEPALIVE_MAX = 100

# One plain gateway of an RTX route, as the fallback may name it (what rtx_fallback_gateway
# accepts: `pp N`, `tunnel N`, `dhcp lanN[.M]`, an IPv4 address).
_PLAIN_GATEWAY = r"(?:pp|tunnel) \d+|dhcp lan\d+(?:\.\d+)?|\d+\.\d+\.\d+\.\d+"
# The deploy's own default route, as it writes it; "weight 0" may be printed or not (it is the
# documented form, but a firmware that drops a default-looking option must not make the line
# a stranger's). The backup hop is told from a plain `tunnel N` fallback by its keepalive.
_ROUTE_OURS = (
    r"ip route default gateway tunnel {n}"
    r"(?: keepalive (?P<k>\d+)"
    r"(?: gateway tunnel (?P<bt>\d+) keepalive (?P<bk>\d+)(?: weight 0)?)?"
    rf"(?: gateway (?P<gw>{_PLAIN_GATEWAY})(?: weight 0)?)?)?"
)
_ROUTE_SIMPLE = re.compile(rf"ip route default gateway ({_PLAIN_GATEWAY})")
_KEEPALIVE = re.compile(r"ip keepalive (\d+) (\S+)(?: (\d+) (\d+) (\S+))?.*")
_KEEPALIVE_USE = re.compile(r"\bkeepalive (\d+)\b")


class FallbackRefused(ValueError):
    """The fallback cannot be set up from this config and this data: nothing is sent."""


@dataclass(frozen=True)
class BackupHop:
    """The default route's second gateway: the tunnel to the backup VPS, and its keepalive."""

    tunnel: int
    keepalive: int
    target: ipaddress.IPv4Address


@dataclass(frozen=True)
class Fallback:
    """The keepalives and the later gateways of the owned default route."""

    keepalive: int
    interval: int
    count: int
    target: ipaddress.IPv4Address
    gateway: str | None
    """The last way out (None: none after the backup VPS)."""
    backup: BackupHop | None = None

    def keepalive_line(self) -> str:
        return f"ip keepalive {self.keepalive} icmp-echo {self.interval} {self.count} {self.target}"

    def keepalive_lines(self) -> list[str]:
        """Every keepalive the route names, the first tunnel's first."""
        lines = [self.keepalive_line()]
        if self.backup is not None:
            b = self.backup
            lines.append(
                f"ip keepalive {b.keepalive} icmp-echo {self.interval} {self.count} {b.target}"
            )
        return lines

    @property
    def keepalives(self) -> tuple[int, ...]:
        return (self.keepalive,) + ((self.backup.keepalive,) if self.backup else ())

    def route_line(self, tunnel_number: int) -> str:
        line = f"ip route default gateway tunnel {tunnel_number} keepalive {self.keepalive}"
        if self.backup is not None:
            line += (
                f" gateway tunnel {self.backup.tunnel} keepalive {self.backup.keepalive} weight 0"
            )
        if self.gateway is not None:
            line += f" gateway {self.gateway} weight 0"
        return line

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
    return normalise_line(line.text) if line is not None else None


def _our_route(config: RouterConfig, tunnel_number: int) -> tuple[str | None, re.Match | None]:
    """The default route line, and its match when it is the deploy's own for this tunnel."""
    route = _default_route(config)
    ours = re.fullmatch(_ROUTE_OURS.format(n=tunnel_number), route) if route else None
    if ours and ours["k"] and not (ours["bt"] or ours["gw"]):
        ours = None  # a keepalive and no gateway after it: not a line this deploy writes
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
        text = normalise_line(line.text)
        if text == skip or not text.startswith(("ip route ", "ipv6 route ")):
            continue
        used.update(int(n) for n in _KEEPALIVE_USE.findall(text))
    return used


def stale_keepalives(
    settings: RouterSettings, config: RouterConfig, tunnel_number: int, keep: tuple[int, ...]
) -> tuple[int, ...]:
    """The ``ip keepalive`` numbers in ``config`` that this deploy wrote and that are no longer
    wanted (all but ``keep``): those its default route names there, and any probing the VPS
    inner address of this router's tunnels. A saved config may hold one the running config has
    already dropped: the save step asks both."""
    _, ours = _our_route(config, tunnel_number)
    keepalives = _keepalives(config)
    sites = (settings, settings.backup_site())
    targets = {str(s.inner.vps.ip) for s in sites if s is not None and s.inner is not None}
    stale = {int(ours[g]) for g in ("k", "bk") if ours and ours[g]}
    stale |= {n for n, (_, t) in keepalives.items() if t in targets}
    return tuple(sorted(n for n in stale if n in keepalives and n not in keep))


def _keepalive_number(
    key: str,
    wanted: int | None,
    current: int | None,
    target: str,
    running: RouterConfig,
    own_route: str | None,
    exclude: tuple[int, ...] = (),
) -> int:
    """The keepalive number for probing ``target``: ``wanted`` if it is free or this deploy's,
    else ``current`` (the one the deploy's route names), else one already probing ``target``,
    else the lowest free one. ``own_route``: the deploy's route line, if it is there."""
    keepalives = _keepalives(running)
    if wanted is not None:
        line, their_target = keepalives.get(wanted, (None, None))
        if line is not None and wanted != current and their_target != target:
            raise FallbackRefused(
                f"{key} {wanted}: the router already has `{line}`, which is not this deploy's; "
                "choose another number (or leave it unset). Nothing was sent"
            )
        if wanted in _referenced(running, own_route) and wanted != current:
            raise FallbackRefused(
                f"{key} {wanted}: another route of the router uses keepalive {wanted}; choose "
                "another number (or leave it unset). Nothing was sent"
            )
        return wanted
    if current is not None and current not in exclude:
        return current
    probing = [n for n, (_, t) in sorted(keepalives.items()) if t == target and n not in exclude]
    if probing:
        return probing[0]
    taken = set(keepalives) | _referenced(running, None) | set(exclude)
    free = [n for n in range(1, KEEPALIVE_MAX + 1) if n not in taken]
    if not free:
        raise FallbackRefused(
            f"no free `ip keepalive` number (1-{KEEPALIVE_MAX}): set {key}, or "
            "rtx_fallback_gateway false. Nothing was sent"
        )
    return free[0]


def choose_fallback(
    settings: RouterSettings,
    running: RouterConfig,
    tunnel_number: int,
    backup_number: int | None = None,
) -> FallbackChoice:
    """The fallback this router gets (see the module's docstring). ``backup_number``: the
    tunnel chosen for the backup VPS, if the data has one. Raises :class:`FallbackRefused`
    when the data names a keepalive something else uses, or when ``auto`` meets a default
    route this deploy cannot take a gateway from."""
    choice = _choose(settings, running, tunnel_number, backup_number)
    _, ours = _our_route(running, tunnel_number)
    if ours and ours["bt"] and int(ours["bt"]) != backup_number:
        # Its block is left as it is: it may hold lines of the user's, and a tunnel no route
        # names carries nothing.
        left = (
            f"tunnel {ours['bt']} is no longer this deploy's (the backup VPS was dropped or "
            "moved): no route names it after this run; its block is left as it is (remove it "
            f"by hand: `tunnel select {ours['bt']}`, `tunnel disable {ours['bt']}`, then `no` "
            "each line)"
        )
        note = f"{choice.note}; {left}" if choice.note else left
        choice = FallbackChoice(choice.fallback, note=note, retired=choice.retired)
    return choice


def _choose(
    settings: RouterSettings,
    running: RouterConfig,
    tunnel_number: int,
    backup_number: int | None,
) -> FallbackChoice:
    route, ours = _our_route(running, tunnel_number)
    inner = settings.inner
    backup = settings.backup_site() if backup_number is not None else None
    chain = settings.rtx_default_route and inner is not None
    if not chain or (not settings.fallback_wanted and backup is None):
        return FallbackChoice(None, retired=stale_keepalives(settings, running, tunnel_number, ()))

    # The last gateway.
    gateway = settings.rtx_fallback_gateway
    note = None
    if gateway is False:
        gateway = None
    elif gateway == "auto":
        if ours:
            gateway = ours["gw"]
            if gateway is None and not (ours["k"] and backup is not None):
                note = (
                    f"no fallback: the default route is already tunnel {tunnel_number}'s "
                    "and the router's earlier one is not known; set rtx_fallback_gateway "
                    "(e.g. 'pp 1') to have one"
                )
        elif route is None:
            gateway = None
            note = "no fallback: the router has no other default route (rtx_fallback_gateway)"
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
    for number, what in ((tunnel_number, "the tunnel"), (backup_number, "the backup tunnel")):
        if number is not None and gateway == f"tunnel {number}":
            raise FallbackRefused(
                f"rtx_fallback_gateway {gateway!r}: that is {what} this deploy owns; expected "
                "another way out. Nothing was sent"
            )
    if note and note.startswith("no fallback:") and backup is not None:
        note = note.replace("no fallback:", "no fallback after the backup VPS:", 1)
    if gateway is None and backup is None:
        retired = stale_keepalives(settings, running, tunnel_number, ())
        return FallbackChoice(None, note=note, retired=retired)

    # The keepalive numbers.
    own_route = route if ours else None
    named = backup.rtx_keepalive_number if backup is not None else None
    number = _keepalive_number(
        "rtx_keepalive_number",
        settings.rtx_keepalive_number,
        int(ours["k"]) if ours and ours["k"] else None,
        str(inner.vps.ip),
        running,
        own_route,
        exclude=(named,) if named is not None else (),  # the backup's, named in the data
    )
    hop = None
    if backup is not None and backup.inner is not None and backup_number is not None:
        hop = BackupHop(
            tunnel=backup_number,
            keepalive=_keepalive_number(
                "rtx_backup_tunnel.rtx_keepalive_number",
                backup.rtx_keepalive_number,
                int(ours["bk"]) if ours and ours["bk"] else None,
                str(backup.inner.vps.ip),
                running,
                own_route,
                exclude=(number,),
            ),
            target=backup.inner.vps.ip,
        )
        if hop.keepalive == number:
            raise FallbackRefused(
                f"rtx_backup_tunnel.rtx_keepalive_number {number}: the first tunnel's keepalive "
                "too; expected another. Nothing was sent"
            )
    fallback = Fallback(
        keepalive=number,
        interval=settings.rtx_keepalive_interval,
        count=settings.rtx_keepalive_count,
        target=inner.vps.ip,
        gateway=gateway,
        backup=hop,
    )
    retired = stale_keepalives(settings, running, tunnel_number, fallback.keepalives)
    return FallbackChoice(fallback, note=note, retired=retired)
