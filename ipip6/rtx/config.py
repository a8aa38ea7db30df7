"""A YAMAHA RTX config as data: parse ``show config``, build the owned lines, compare.

Pure functions only (no I/O): the pyinfra fact, operation and connector are thin layers on top.

Vocabulary (NAPALM's): get the running config → compare it with the desired lines → the delta
holds the commands to commit, a unified diff for review and the commands to roll back.

Ownership is explicit. This deploy owns, by *command head* (the part of a line a new value
replaces, see :func:`line_key`):

- inside ``tunnel select N``: ``tunnel encapsulation``, every ``tunnel endpoint …`` form,
  ``ip tunnel mtu``, ``ip tunnel tcp mss limit`` and ``tunnel enable|disable N``;
- ``ip route default`` when ``rtx_default_route`` is set;
- ``ipv6 filter F`` when ``rtx_ipv6_filter_number`` is set.

Every other line, including other lines inside the same tunnel block, is never touched; those
inside the block are reported (:attr:`ConfigDelta.foreign_lines`) because they share the tunnel.
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ipip6 import safe_text

if TYPE_CHECKING:
    from ipip6.rtx.fallback import FallbackChoice
    from ipip6.settings import RouterSettings

# The router's default terminal width; output is hard-wrapped after ``width - 1`` characters.
DEFAULT_CONSOLE_COLUMNS = 80


# --------------------------------------------------------------------------------------------
# Parsing


@dataclass(frozen=True)
class ConfigLine:
    """One config line (without its indentation) and the lines nested under it. ``body``: for
    ``embedded file NAME <<EOF`` the content lines, byte for byte, without the ``EOF`` line."""

    text: str
    children: tuple[ConfigLine, ...] = ()
    body: tuple[str, ...] = ()


# `embedded file NAME <<EOF` (RTX1300 Lua scripts): the lines up to the terminator are content.
# A quoted terminator (`<<"EOF"`) ends at the bare word, as in a shell here-document.
_EMBEDDED = re.compile(r"embedded file \S+ <<(['\"]?)(\S+?)\1")
# Sections opened by a select command are top level whatever their indentation.
_SELECT = re.compile(r"(?:tunnel|pp|ipsec|wan) select \S+")
# `# RTX1210 Rev.14.01.42 (Fri Jul  5 11:17:45 2024)`: the first header line of show config.
_HEADER_MODEL = re.compile(r"#\s*((?:RTX|NVR|RT|FWX|vRX)[0-9A-Za-z-]*)\s+Rev\.(\S+)")
# `# MAC Address : 00:a0:de:00:12:01, 00:a0:de:00:12:02`: the router's own addresses, which tell
# one router from another (a backup's header is checked against them before a restore).
_HEADER_MACS = re.compile(r"#\s*MAC Address\s*:\s*(.+)", re.IGNORECASE)
_MAC = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")


@dataclass(frozen=True)
class RouterConfig:
    """``show config`` as a tree: top-level lines, their indented children, and so on. The
    model, firmware revision and MAC addresses are read from the header when it names them
    (not compared)."""

    lines: tuple[ConfigLine, ...] = ()
    model: str | None = field(default=None, compare=False)
    revision: str | None = field(default=None, compare=False)
    macs: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def parse(cls, text: str) -> RouterConfig:
        """Parse ``show config`` output, its lines already unwrapped (:mod:`ipip6.rtx.wrap`).

        ``#`` lines (the header, with its ever-changing ``# Reporting Date:``) and blank lines are
        dropped. A line's parent is the closest line above it with less indentation, so one-space
        children of ``tunnel select N`` and two-space grandchildren (``ipsec tunnel``) both work;
        ``tunnel select N`` / ``pp select N`` always open a top-level section. The content of an
        ``embedded file`` is kept as it is, blank lines and indentation included.
        """
        physical = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")

        model = revision = None
        macs: tuple[str, ...] = ()
        # Stack of (indent, children list) from the root down to the current parent.
        root: list[_Node] = []
        stack: list[tuple[int, list[_Node]]] = [(-1, root)]
        embedded: _Node | None = None
        terminator = ""
        for raw in physical:
            if embedded is not None:
                if raw.rstrip() == terminator:
                    embedded = None
                else:
                    embedded.body.append(raw)
                continue
            line = raw.rstrip()
            if not line.strip():
                continue
            if line.lstrip().startswith("#"):
                header = _HEADER_MODEL.match(line.strip())
                if header and model is None and not root:
                    model, revision = header[1], header[2].rstrip(",")
                addresses = _HEADER_MACS.match(line.strip())
                if addresses and not macs and not root:
                    macs = tuple(m.lower() for m in _MAC.findall(addresses[1]))
                continue
            indent = len(line) - len(line.lstrip(" "))
            text_ = _normalise_spaces(line)
            if _SELECT.fullmatch(text_):
                indent = 0
            while stack[-1][0] >= indent:
                stack.pop()
            node = _Node(line.strip())
            stack[-1][1].append(node)
            stack.append((indent, node.children))
            opened = _EMBEDDED.fullmatch(text_)
            if opened:
                embedded, terminator = node, opened[2]
        return cls(tuple(n.freeze() for n in root), model=model, revision=revision, macs=macs)

    def get(self, key: str) -> ConfigLine | None:
        """The first top-level line whose :func:`line_key` is ``key``."""
        for line in self.lines:
            if line_key(line.text) == key:
                return line
        return None

    def block(self, parent: str) -> ConfigLine | None:
        """The section opened by ``parent`` (e.g. ``tunnel select 1``), if present."""
        wanted = _normalise_spaces(parent)
        for line in self.lines:
            if _normalise_spaces(line.text) == wanted:
                return line
        return None

    def lan_addresses(self) -> list[ipaddress.IPv4Interface]:
        """The IPv4 addresses of the router's own LAN interfaces (``ip lanN address A/L``, and
        bridges and VLANs: ``ip bridge1``, ``ip lan1.1``, ``ip lan1/1``, ``ip vlan1``), in
        config order; ``dhcp`` and other non-address forms are skipped."""
        found = []
        for line in self.lines:
            m = _LAN_ADDRESS.fullmatch(_normalise_spaces(line.text))
            if m:
                try:
                    found.append(ipaddress.IPv4Interface(m[1]))
                except ValueError:
                    continue
        return found

    def render(self) -> str:
        """Back to ``show config`` layout (one space per level), without the header."""
        return "\n".join(_render(self.lines, 0))

    def to_json(self) -> list[str]:
        """For ``pyinfra … fact``: the rendered lines."""
        return _render(self.lines, 0)


# `ip lan1 address …`, and the LAN as a bridge (`ip bridge1 address …`) or a VLAN
# (`ip lan1.1 address …` on newer models, `ip lan1/1 address …` on RTX1200, `ip vlan1 …`).
_LAN_ADDRESS = re.compile(r"ip (?:lan\d+(?:[./]\d+)?|bridge\d+|vlan\d+) address (\S+/\d+)")


@dataclass
class _Node:
    text: str
    children: list[_Node] = field(default_factory=list)
    body: list[str] = field(default_factory=list)

    def freeze(self) -> ConfigLine:
        return ConfigLine(self.text, tuple(c.freeze() for c in self.children), tuple(self.body))


# Put before each content line of an embedded file in the views compared and shown in messages
# (never in router output): messages hide those lines whole (a script can hold any secret).
EMBEDDED_MARK = "\x1f"


def _render(lines: Iterable[ConfigLine], depth: int, *, mark: str = "") -> list[str]:
    out = []
    for line in lines:
        out.append(" " * depth + line.text)
        embedded = _EMBEDDED.fullmatch(_normalise_spaces(line.text))
        if embedded:
            out.extend(mark + body for body in line.body)
            out.append(embedded[2])
        out.extend(_render(line.children, depth + 1, mark=mark))
    return out


# --------------------------------------------------------------------------------------------
# Keys and normalisation

# Command heads whose last word is a number that belongs to the key ("ip filter 200030").
_NUMBERED_HEADS = (
    "ip filter",
    "ipv6 filter",
    "ip filter dynamic",
    "ipv6 filter dynamic",
    "nat descriptor type",
    "nat descriptor address outer",
    "nat descriptor address inner",
    "ipv6 prefix",
    "ip keepalive",
)
# Multi-word heads whose value follows (longest first when matching).
_FIXED_HEADS = (
    "tunnel endpoint local address",
    "tunnel endpoint remote address",
    "tunnel endpoint local name",
    "tunnel endpoint remote name",
    "tunnel endpoint address",
    "tunnel endpoint name",
    "tunnel encapsulation",
    "ip tunnel tcp mss limit",
    "ip tunnel address",
    "ip tunnel remote address",
    "ip tunnel mtu",
    "ip tunnel secure filter in",
    "ip tunnel secure filter out",
    "ip tunnel nat descriptor",
    "ip route default",
    "console character",
    "console columns",
    "console lines",
    "console prompt",
)
_TUNNEL_STATE = re.compile(r"^tunnel (?:enable|disable) (\S+)$")
_IP_ROUTE = re.compile(r"^(ip(?:v6)? route \S+)")


# Longest first: "ip filter dynamic" before "ip filter".
_NUMBERED_BY_LENGTH = tuple(sorted(_NUMBERED_HEADS, key=len, reverse=True))


# A pure function of one line, asked for the same lines again and again (every comparison of a
# busy config walks all of them, several times per run and router): cached.
@functools.lru_cache(maxsize=65536)
def line_key(line: str) -> str:
    """The command head of a line: the part a new value replaces.

    ``tunnel endpoint address 2001:db8::1`` → ``tunnel endpoint address``;
    ``ip route default gateway pp 1`` → ``ip route default``; ``ipv6 filter 10 pass * * 4`` →
    ``ipv6 filter 10``; ``tunnel enable 1`` and ``tunnel disable 1`` share ``tunnel enable 1``.
    Unknown lines are their own key (compared as a whole).
    """
    text = _same_setting(_normalise_spaces(line))
    state = _TUNNEL_STATE.match(text)
    if state:
        return f"tunnel enable {state.group(1)}"
    for head in _FIXED_HEADS:
        if text == head or text.startswith(head + " "):
            return head
    for head in _NUMBERED_BY_LENGTH:
        if text.startswith(head + " "):
            words = text.split(" ")
            n = len(head.split(" "))
            return " ".join(words[: n + 1])
    route = _IP_ROUTE.match(text)
    if route:
        return route.group(1)
    return text


def normalise_line(line: str) -> str:
    """Single spaces, IPv6 addresses/prefixes in their compressed lower-case form (the router
    may print another form than we send), one spelling for one setting, and a route's gateway
    options in one order."""
    return _canonical_route(_same_setting(" ".join(_normalise_token(t) for t in line.split())))


# A route's gateway options in the order the deploy writes them. The manual gives them in no
# fixed order, and nothing says a firmware prints them as sent: `gateway tunnel 2 weight 0
# keepalive 2` is the same gateway as `... keepalive 2 weight 0`.
_ROUTE_OPTIONS = ("filter", "hide", "keepalive", "weight", "metric")
_GATEWAY_WITH_NUMBER = ("pp", "tunnel", "dhcp", "ipsec")


def _canonical_route(text: str) -> str:
    words = text.split(" ")
    if words[:2] not in (["ip", "route"], ["ipv6", "route"]) or words[3:4] != ["gateway"]:
        return text
    clauses: list[tuple[list[str], list[list[str]]]] = []
    rest = words[3:]
    i = 0
    while i < len(rest):
        word = rest[i]
        if word == "gateway" and i + 1 < len(rest):
            size = 2 if rest[i + 1] in _GATEWAY_WITH_NUMBER and i + 2 < len(rest) else 1
            clauses.append((rest[i : i + 1 + size], []))
            i += 1 + size
        elif word == "hide":
            clauses[-1][1].append([word])
            i += 1
        elif word in ("keepalive", "weight", "metric") and i + 1 < len(rest):
            clauses[-1][1].append(rest[i : i + 2])
            i += 2
        elif word == "filter":
            j = i + 1
            while j < len(rest) and rest[j] not in (*_ROUTE_OPTIONS, "gateway"):
                j += 1
            clauses[-1][1].append(rest[i:j])
            i = j
        else:
            return text  # an option this reader does not know: compared as printed
    out = words[:3]
    for gateway, options in clauses:
        out += gateway
        for option in sorted(options, key=lambda o: _ROUTE_OPTIONS.index(o[0])):
            out += option
    return " ".join(out)


# Newer firmware writes the remote end of `tunnel endpoint address REMOTE` as its own command.
_REMOTE_ENDPOINT = "tunnel endpoint remote address "


def _same_setting(text: str) -> str:
    if text.startswith(_REMOTE_ENDPOINT):
        return "tunnel endpoint address " + text[len(_REMOTE_ENDPOINT) :]
    return text


def _normalise_token(token: str) -> str:
    if ":" not in token:
        return token
    try:
        if "/" in token:
            net = ipaddress.ip_network(token, strict=False)
            if net.version == 6:
                return net.compressed
            return token
        addr = ipaddress.ip_address(token)
        return addr.compressed if addr.version == 6 else token
    except ValueError:
        return token


def _normalise_spaces(line: str) -> str:
    return " ".join(line.split())


# --------------------------------------------------------------------------------------------
# The owned section


# Router's own order inside a tunnel block (see rtx-cli.md); used for the rendered section.
_TUNNEL_ORDER = (
    "tunnel encapsulation",
    "tunnel endpoint",
    "ip tunnel address",
    "ip tunnel remote address",
    "ip tunnel mtu",
    "ip tunnel secure filter",
    "ip tunnel nat descriptor",
    "ip tunnel tcp mss limit",
    "tunnel enable",
)


def is_owned_tunnel_key(key: str, tunnel_number: int) -> bool:
    """Whether a line with this :func:`line_key` inside ``tunnel select N`` is one of the
    heads this deploy owns there (every ``tunnel endpoint …`` form included)."""
    return key.startswith(("tunnel encapsulation", "tunnel endpoint")) or key in (
        "ip tunnel address",
        "ip tunnel remote address",
        "ip tunnel mtu",
        "ip tunnel tcp mss limit",
        f"tunnel enable {tunnel_number}",
    )


@dataclass(frozen=True)
class TunnelBlock:
    """One ``tunnel select N`` block this deploy owns lines in, as it wants them."""

    number: int
    lines: tuple[str, ...]
    takeover: bool = False
    """The whole block is owned: lines the deploy does not write go."""

    @property
    def parent(self) -> str:
        return f"tunnel select {self.number}"

    def owns_key(self, key: str) -> bool:
        """Whether a line with this key inside the block belongs to this deploy."""
        return self.takeover or is_owned_tunnel_key(key, self.number)


@dataclass(frozen=True)
class OwnedSection:
    """The lines this deploy owns on one router, as it wants them."""

    tunnel_number: int
    tunnel_lines: tuple[str, ...]
    global_lines: tuple[str, ...]
    takeover: bool = False
    """The whole ``tunnel select N`` block is owned: lines the deploy does not write go."""
    retired_keys: tuple[str, ...] = ()
    """Top-level lines this deploy wrote earlier and no longer wants (removed if present)."""
    keepalive_numbers: tuple[int, ...] = ()
    """The ``ip keepalive`` numbers of the fallback (empty: no fallback)."""
    backup: TunnelBlock | None = None
    """The tunnel to the backup VPS (``rtx_backup_tunnel``), if any."""

    @property
    def tunnel_parent(self) -> str:
        return f"tunnel select {self.tunnel_number}"

    @property
    def blocks(self) -> tuple[TunnelBlock, ...]:
        """Every owned tunnel block: the first VPS's, then the backup's."""
        first = TunnelBlock(self.tunnel_number, self.tunnel_lines, self.takeover)
        return (first,) if self.backup is None else (first, self.backup)

    @property
    def enabled_blocks(self) -> tuple[TunnelBlock, ...]:
        """The blocks wanted with ``tunnel enable N`` (a restored section may have a block
        without): the only ones the router can be asked about, or traffic sent through."""
        return tuple(b for b in self.blocks if f"tunnel enable {b.number}" in b.lines)

    @property
    def global_keys(self) -> tuple[str, ...]:
        return tuple(line_key(line) for line in self.global_lines)

    @property
    def owned_global_keys(self) -> tuple[str, ...]:
        """Every top-level key this deploy owns here: the wanted lines and the retired ones."""
        return self.global_keys + tuple(k for k in self.retired_keys if k not in self.global_keys)


def _tunnel_block_lines(settings: RouterSettings, number: int) -> tuple[str, ...]:
    inner = []
    if settings.inner is not None:
        inner = [
            f"ip tunnel address {settings.inner.router}",
            f"ip tunnel remote address {settings.inner.vps.ip}",
        ]
    return (
        "tunnel encapsulation ipip",
        f"tunnel endpoint address {settings.vps_ipv6.compressed}",
        *inner,
        f"ip tunnel mtu {settings.tunnel_mtu}",
        "ip tunnel tcp mss limit auto",
        f"tunnel enable {number}",
    )


def _ipv6_filter(settings: RouterSettings) -> list[str]:
    if settings.rtx_ipv6_filter_number is None:
        return []
    return [
        f"ipv6 filter {settings.rtx_ipv6_filter_number} pass "
        f"{settings.vps_ipv6.compressed} {settings.router_ipv6.compressed} 4"
    ]


def desired_lines(
    settings: RouterSettings,
    tunnel_number: int,
    fallback: FallbackChoice | None = None,
    backup_number: int | None = None,
) -> OwnedSection:
    """The owned section for one router, from its validated settings, the tunnel number chosen
    for it (:func:`ipip6.rtx.tunnel_slot.choose_tunnel`), its fallback
    (:func:`ipip6.rtx.fallback.choose_fallback`; None: a plain default route) and the tunnel
    number chosen for its backup VPS (None: no backup)."""
    n = tunnel_number
    tunnel = _tunnel_block_lines(settings, n)
    backup_site = settings.backup_site() if backup_number is not None else None
    backup = None
    globals_ = _ipv6_filter(settings)
    if backup_site is not None and backup_number is not None:
        backup = TunnelBlock(backup_number, _tunnel_block_lines(backup_site, backup_number))
        globals_ += _ipv6_filter(backup_site)
    chosen = fallback.fallback if fallback is not None else None
    if chosen is not None:
        # Before the route that names them.
        globals_ += chosen.keepalive_lines()
    if settings.rtx_default_route:
        route = chosen.route_line(n) if chosen else f"ip route default gateway tunnel {n}"
        globals_.append(route)
    retired = tuple(keepalive_key(n) for n in (fallback.retired if fallback else ()))
    # Second line of defence behind validation: no value may add a command line.
    for line in (*tunnel, *(backup.lines if backup else ()), *globals_):
        safe_text.single_line(line, "router config line")
    return OwnedSection(
        tunnel_number=n,
        tunnel_lines=tunnel,
        global_lines=tuple(globals_),
        takeover=settings.rtx_tunnel_takeover,
        retired_keys=retired,
        keepalive_numbers=chosen.keepalives if chosen else (),
        backup=backup,
    )


def keepalive_key(number: int) -> str:
    """The :func:`line_key` of ``ip keepalive N …``."""
    return f"ip keepalive {number}"


def _tunnel_rank(key: str) -> int:
    for i, head in enumerate(_TUNNEL_ORDER):
        if key.startswith(head):
            return i
    return len(_TUNNEL_ORDER)


Blocks = list[tuple[int, "list[str] | None"]]


def owned_lines(running: RouterConfig, desired: OwnedSection) -> tuple[list[str], Blocks]:
    """(owned top-level lines, per owned tunnel block: its number and its owned lines as they
    run now, None when the block is not there)."""
    globals_ = []
    for key in desired.owned_global_keys:
        line = running.get(key)
        if line is not None:
            globals_.append(line.text)
    blocks: Blocks = []
    for wanted in desired.blocks:
        block = running.block(wanted.parent)
        lines = None
        if block is not None:
            lines = [c.text for c in block.children if wanted.owns_key(line_key(c.text))]
        blocks.append((wanted.number, lines))
    return globals_, blocks


def render_owned(
    global_lines: Sequence[str], blocks: Sequence[tuple[int, Sequence[str] | None]]
) -> list[str]:
    """The owned section as ``show config`` would print it: the default route, the tunnel
    blocks (lines ``None`` = no block at all), then filters and keepalives. IPv6 addresses are
    normalised so that equal values diff as equal."""
    routes = [normalise_line(x) for x in global_lines if line_key(x) == "ip route default"]
    others = [normalise_line(x) for x in global_lines if line_key(x) != "ip route default"]
    out = routes
    for number, lines in blocks:
        if lines is None:
            continue
        out.append(f"tunnel select {number}")
        ordered = sorted(lines, key=lambda line: _tunnel_rank(line_key(line)))
        out.extend(" " + normalise_line(line) for line in ordered)
    return out + others


def desired_view(desired: OwnedSection) -> list[str]:
    """The owned section as it is wanted, rendered like :func:`render_owned`."""
    return render_owned(desired.global_lines, [(b.number, b.lines) for b in desired.blocks])


# --------------------------------------------------------------------------------------------
# Comparing


@dataclass(frozen=True)
class ConfigDelta:
    """What it takes to go from the running config to the desired owned section."""

    commands: tuple[str, ...]
    """Commands to send, in order (empty: nothing to do)."""
    rollback: tuple[str, ...]
    """Commands that restore the owned lines as they were before ``commands``."""
    foreign_lines: tuple[str, ...] = ()
    """Lines inside the owned tunnel block that this deploy does not own (left alone)."""
    current: tuple[str, ...] = ()
    """The owned section as it runs now (as :func:`render_owned` prints it)."""
    wanted: tuple[str, ...] = ()
    """The owned section as it will be."""

    def __bool__(self) -> bool:
        return bool(self.commands)

    @property
    def diff(self) -> str:
        """Unified diff of the owned section, running → desired ('' when nothing to do)."""
        if not self.commands:
            return ""
        lines = difflib.unified_diff(
            self.current, self.wanted, fromfile="running", tofile="desired", lineterm=""
        )
        return "\n".join(lines)


def _no(key: str) -> str:
    return f"no {key}"


def _block_delta(
    running: RouterConfig, wanted: TunnelBlock
) -> tuple[list[str], list[str], list[str]]:
    """(commands, their undo, foreign lines) for one owned tunnel block, without the
    ``tunnel select`` wrapping."""
    n = wanted.number
    block = running.block(wanted.parent)
    run_tunnel = []
    foreign: list[str] = []
    if block is not None:
        for c in block.children:
            (run_tunnel if wanted.owns_key(line_key(c.text)) else foreign).append(c.text)
    run_by_key = {line_key(text): text for text in run_tunnel}
    want_by_key = {line_key(text): text for text in wanted.lines}
    removals = [_no(key) for key in run_by_key if key not in want_by_key]
    sets = [
        text
        for key, text in want_by_key.items()
        if key not in run_by_key or normalise_line(run_by_key[key]) != normalise_line(text)
    ]
    undo: list[str] = []
    # Undo in reverse: take the tunnel down before changing its endpoint back.
    for key, text in reversed(list(want_by_key.items())):
        if key in run_by_key:
            if normalise_line(run_by_key[key]) != normalise_line(text):
                undo.append(run_by_key[key])
        elif key == f"tunnel enable {n}":
            undo.append(f"tunnel disable {n}")
        else:
            undo.append(_no(key))
    undo.extend(text for key, text in run_by_key.items() if key not in want_by_key)
    return removals + sets, undo, foreign


def compare(running: RouterConfig, desired: OwnedSection) -> ConfigDelta:
    """Compare the running config with the owned section.

    Commands replace their previous value (keyed by :func:`line_key`), so a changed line is just
    resent; owned lines with no desired counterpart are removed with their ``no`` form. IPv6
    addresses are compared normalised. Tunnel commands are wrapped in ``tunnel select N`` …
    ``tunnel select none``; the default route comes last since it moves traffic onto the tunnel.
    """
    run_globals, run_blocks = owned_lines(running, desired)

    # Top level: filters and keepalives first (so the tunnel's packets pass), default route last.
    pre: list[tuple[str, str]] = []  # (command, its undo)
    post: list[tuple[str, str]] = []
    for line in desired.global_lines:
        key = line_key(line)
        current = running.get(key)
        if current is not None and normalise_line(current.text) == normalise_line(line):
            continue
        undo = current.text if current is not None else _no(key)
        (post if key == "ip route default" else pre).append((line, undo))

    tunnel_cmds: list[str] = []
    undo_tunnels: list[list[str]] = []
    foreign: list[str] = []
    for wanted in desired.blocks:
        cmds, undo, alien = _block_delta(running, wanted)
        foreign += alien
        if cmds:
            tunnel_cmds += [wanted.parent, *cmds, "tunnel select none"]
        if undo:
            undo_tunnels.append([wanted.parent, *undo, "tunnel select none"])

    # Lines written earlier and no longer wanted go last (a route may still name them before).
    retire = [
        (_no(key), running.get(key).text)  # type: ignore[union-attr]
        for key in desired.retired_keys
        if key not in desired.global_keys and running.get(key) is not None
    ]

    commands = [cmd for cmd, _ in pre] + tunnel_cmds
    commands += [cmd for cmd, _ in post]
    commands += [cmd for cmd, _ in retire]

    # Undo the default route first: it is what gives the home network its old path back (after
    # whatever it named is back).
    rollback = [undo for _, undo in retire]
    rollback += [undo for _, undo in post]
    for undo in reversed(undo_tunnels):
        rollback += undo
    rollback += [undo for _, undo in reversed(pre)]

    before = render_owned(run_globals, run_blocks)
    return ConfigDelta(
        commands=tuple(commands),
        rollback=tuple(rollback),
        foreign_lines=tuple(foreign),
        current=tuple(before),
        wanted=tuple(desired_view(desired)),
    )


# --------------------------------------------------------------------------------------------
# Views for checking: the owned section and everything else, of any config


def owned_view(config: RouterConfig, desired: OwnedSection) -> list[str]:
    """The lines of ``config`` that ``desired`` owns, rendered like :func:`render_owned` (so two
    configs' views compare equal when their owned lines are equal, IPv6 forms aside)."""
    globals_, blocks = owned_lines(config, desired)
    return render_owned(globals_, blocks)


def unowned_view(
    config: RouterConfig, desired: OwnedSection, ignore: Iterable[str] = ()
) -> list[str]:
    """Every line of ``config`` that ``desired`` does not own, in the router's order; top-level
    lines whose :func:`line_key` is in ``ignore`` (e.g. the session's console settings) are
    left out too. The owned tunnel blocks appear only with their foreign children."""
    skip = set(desired.owned_global_keys) | set(ignore)
    parents = {_normalise_spaces(b.parent): b for b in desired.blocks}
    out: list[str] = []
    for line in config.lines:
        if line_key(line.text) in skip:
            continue
        owned = parents.get(_normalise_spaces(line.text))
        if owned is not None:
            foreign = [c for c in line.children if not owned.owns_key(line_key(c.text))]
            if foreign:
                out.append(line.text)
                out.extend(_render(foreign, 1, mark=EMBEDDED_MARK))
            continue
        out.extend(_render([line], 0, mark=EMBEDDED_MARK))
    return out


def line_diff(before: Sequence[str], after: Sequence[str], *, limit: int = 12) -> list[str]:
    """The changed lines between two views as ``-``/``+`` lines (at most ``limit``, then
    ``…``), router secrets hidden (:func:`redact_line`)."""
    changed = [
        f"{d[0]}{redact_line(d[2:])}"
        for d in difflib.ndiff(list(before), list(after))
        if d[:1] in ("-", "+")
    ]
    if len(changed) > limit:
        changed = changed[:limit] + [f"… and {len(changed) - limit} more"]
    return changed


# Words after which a config line carries a password, key or community: the rest is hidden.
_SECRET_WORDS = frozenset(
    {
        "password",
        "myname",
        "username",
        "pre-shared-key",
        "secret",
        "community",
        "key",
        "auth",
        "encrypted",
        "user",
    }
)
# Kinds of line that carry a secret wherever it stands in them: everything after the command
# head is hidden, whatever the words (`set PP1=msen:SEED`, `ipsec ike local name ID key-id`).
_SECRET_HEADS = (
    "set",
    "login",
    "administrator",
    "pp auth",
    "ipsec ike",
    "ipsec sa",
    "l2tp tunnel auth",
    "pptp",
    "snmp",
    "snmpv2c",
    "snmpv3",
    "radius",
    "tacacs",
    "auth user",
    "netvolante-dns",
    "mail server",
    "provider",
    "wlan",
    "airlink",
    "sshd",
    "httpd",
    "ddns",
    "pp ppp",
)


def redact_line(line: str) -> str:
    """A config line fit for messages: on a line of a kind that carries a secret (``login
    user``, ``pp auth``, ``ipsec ike …``, ``set …``, ``snmp …`` and the like) everything after
    the command head becomes ``<hidden>``; elsewhere, the rest of the line after a word that
    introduces one (``password``, ``key``, ``secret``…). The content of an embedded file is
    hidden whole. Indentation is kept."""
    if line.startswith(EMBEDDED_MARK):
        return "  <a line of an embedded file, hidden>"
    indent = line[: len(line) - len(line.lstrip(" "))]
    words = line.split()
    for head in _SECRET_HEADS:
        size = len(head.split())
        if [w.lower() for w in words[:size]] == head.split() and len(words) > size:
            return indent + " ".join(words[:size] + ["<hidden>"])
    for i, word in enumerate(words):
        if word.lower() in _SECRET_WORDS and i + 1 < len(words):
            return indent + " ".join(words[: i + 1] + ["<hidden>"])
    return line


def redact_text(show_config: str) -> str:
    """``show config`` output fit to be kept in a file: every line as :func:`redact_line` would
    show it, the ``#`` header as printed, and the content of an ``embedded file`` replaced by
    one line saying how many were hidden (a script can hold any secret). Still parses as the
    same config, the hidden values aside."""
    out: list[str] = []
    terminator = None
    hidden = 0
    for line in show_config.replace("\r\n", "\n").split("\n"):
        if terminator is not None:
            if line.rstrip() != terminator:
                hidden += 1
                continue
            out.append(f"<{hidden} lines of an embedded file, hidden>")
            out.append(line)
            terminator, hidden = None, 0
            continue
        if line.lstrip().startswith("#"):
            out.append(line)
            continue
        out.append(redact_line(line))
        opened = _EMBEDDED.fullmatch(_normalise_spaces(line))
        if opened:
            terminator = opened[2]
    if terminator is not None:  # cut off before its end: what there was stays hidden
        out.append(f"<{hidden} lines of an embedded file, hidden>")
    return "\n".join(out)
