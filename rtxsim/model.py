"""The running config of a simulated YAMAHA RTX router (pure: no I/O, no clock).

A config is a set of lines keyed by their *command head*: resending a line with the same head
replaces the old one (``ip route default gateway pp 1`` then ``ip route default gateway tunnel 1``
leaves one default route). ``no <command> [args]`` deletes. Lines that belong to a tunnel or a
PP interface live in that interface's block. :meth:`RouterConfig.lines` renders them in the
router's own order (a fixed ranking of heads), never in input order, with block children indented
one space and default values omitted.

Each known command is a :class:`Spec` in :data:`SPECS`: its words (``{slot}`` words are variable
and part of the key), how many arguments follow, the context it needs (global / tunnel / pp), its
place in ``show config`` and a value check. Anything not in the table is
``Error: Invalid command name``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from .messages import CHARSETS
from .profiles import Profile, get_profile

# --------------------------------------------------------------------------------------------
# Errors and contexts


class CliError(Exception):
    """A command the router refuses. ``code`` is a key of :mod:`rtxsim.messages`."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


class ConfigParseError(ValueError):
    """A config text line the router would refuse."""

    def __init__(self, line_no: int, line: str, code: str) -> None:
        super().__init__(f"line {line_no}: {line!r}: {code}")
        self.line_no = line_no
        self.line = line
        self.code = code


@dataclass(frozen=True)
class Context:
    """What ``tunnel select N`` / ``pp select N`` selected (nothing by default)."""

    kind: str | None = None  # "tunnel" | "pp" | None
    num: int | None = None

    @property
    def label(self) -> str:
        """The prompt part: ``tunnel1``, ``pp1`` or ``""``."""
        return f"{self.kind}{self.num}" if self.kind else ""


NO_CONTEXT = Context()

# --------------------------------------------------------------------------------------------
# Tokens and values

_TOKEN = re.compile(r"\"[^\"]*\"|'[^']*'|\S+")
_LAN = re.compile(r"lan(\d+)")
# Interfaces an address can sit on: a LAN port, a VLAN on it (`lan1.1` on newer models,
# `lan1/1` on RTX1200), a bridge, a VLAN interface.
_IF_NAME = re.compile(
    r"lan(?P<lan>\d+)(?:[./](?P<sub>\d+))?|bridge(?P<bridge>\d+)|vlan(?P<vlan>\d+)"
)
_INT = re.compile(r"\d+")
_INT_MAX = 2147483647


def tokenize(line: str) -> list[str]:
    """Split a command line on blanks; a quoted string is one token (quotes kept)."""
    return _TOKEN.findall(line)


def unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "\"'":
        return token[1:-1]
    return token


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _net(value: str, version: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None
    return net if net.version == version else None


def compress_ipv6(token: str) -> str:
    """``2001:0db8:0:0::1/64`` → ``2001:db8::1/64``; anything else is returned unchanged."""
    if ":" not in token or "@" in token or "=" in token:
        return token
    try:
        iface = ipaddress.ip_interface(token)
    except ValueError:
        return token
    if iface.version != 6:
        return token
    if "/" in token:
        return f"{iface.ip.compressed}/{iface.network.prefixlen}"
    return iface.ip.compressed


# --------------------------------------------------------------------------------------------
# Command table

Check = Callable[["RouterConfig", list[str]], None]


@dataclass(frozen=True)
class Spec:
    """One command head.

    ``words``: literal words and ``{slot}`` words (variable, part of the key). ``args``: min/max
    number of tokens after the words (``None`` = no maximum). ``ctx``: ``global`` (valid
    anywhere), ``tunnel`` or ``pp`` (needs that interface selected; stored in its block).
    ``group``: place in ``show config`` (see :data:`GROUPS`). ``default``: arguments equal to the
    factory default delete the line (defaults are omitted). ``secret``: a lone last argument is a
    password, shown as ``*``. ``render``: fixed arguments shown instead of the typed ones.
    ``action``: ``set``, ``select`` (tunnel/pp select) or ``disable`` (deletes the matching
    ``… enable N``). ``block``: the line goes into the tunnel/pp block named by its number slot,
    whatever is selected (``tunnel enable N``). ``console``: a ``console …`` setting (also
    allowed at ``>``, also a per-session setting). ``feature``: only on profiles that have it.
    """

    head: str
    args: tuple[int, int | None] = (1, 1)
    ctx: str = "global"
    group: str = "misc"
    check: Check | None = None
    default: tuple[str, ...] | None = None
    secret: bool = False
    render: tuple[str, ...] | None = None
    action: str = "set"
    block: str | None = None
    console: bool = False
    feature: str | None = None
    index: int = 0
    words: tuple[str, ...] = field(default=(), compare=False)

    @property
    def literals(self) -> int:
        return sum(1 for w in self.words if not w.startswith("{"))


def _err(code: str, detail: str = "") -> CliError:
    return CliError(code, detail)


def _enum(*choices: str) -> Check:
    def check(cfg: RouterConfig, args: list[str]) -> None:
        if args and args[0] not in choices:
            raise _err("keyword", args[0])

    return check


_ONOFF = _enum("on", "off")


def _each_enum(*choices: str) -> Check:
    def check(cfg: RouterConfig, args: list[str]) -> None:
        for a in args:
            if a not in choices:
                raise _err("keyword", a)

    return check


def _int_range(lo: int, hi: int, allow: Iterable[str] = ()) -> Check:
    allowed = frozenset(allow)

    def check(cfg: RouterConfig, args: list[str]) -> None:
        if not args:
            return
        value = args[0]
        if value in allowed:
            return
        if not _INT.fullmatch(value) or not lo <= int(value) <= hi:
            raise _err("range", value)

    return check


def _int_list(cfg: RouterConfig, args: list[str]) -> None:
    for a in args:
        if not _INT.fullmatch(a) or not 1 <= int(a) <= _INT_MAX:
            raise _err("range", a)


def _filter_list(cfg: RouterConfig, args: list[str]) -> None:
    seen_dynamic = False
    for a in args:
        if a == "dynamic" and not seen_dynamic:
            seen_dynamic = True
            continue
        if not _INT.fullmatch(a) or not 1 <= int(a) <= _INT_MAX:
            raise _err("range", a)


_FILTER_ACTIONS = (
    "pass",
    "reject",
    "restrict",
    "pass-log",
    "pass-nolog",
    "reject-log",
    "reject-nolog",
    "restrict-log",
    "restrict-nolog",
)


def _filter(cfg: RouterConfig, args: list[str]) -> None:
    if args[0] not in _FILTER_ACTIONS:
        raise _err("keyword", args[0])


def _each_ip(cfg: RouterConfig, args: list[str]) -> None:
    for a in args:
        if _ip(a) is None:
            raise _err("range", a)


def _endpoint(cfg: RouterConfig, args: list[str]) -> None:
    addrs = [_ip(a) for a in args]
    if any(a is None for a in addrs):
        raise _err("range", " ".join(args))
    if len({a.version for a in addrs if a is not None}) > 1:
        raise _err("range", "address families differ")


def _lan_arg(cfg: RouterConfig, args: list[str]) -> None:
    cfg.lan_index(args[0])


def _gateway(version: int) -> Check:
    """``gateway G [keepalive K] [weight W] [gateway G2 ...]``: each gateway and option."""

    def check(cfg: RouterConfig, args: list[str]) -> None:
        if args[0] != "gateway":
            raise _err("keyword", args[0])
        clauses: list[list[str]] = []
        for token in args:
            if token == "gateway":
                clauses.append([])
            else:
                clauses[-1].append(token)
        for clause in clauses:
            if not clause:
                raise _err("params")
            one(cfg, clause)

    def one(cfg: RouterConfig, clause: list[str]) -> None:
        gw, rest = clause[0], clause[1:]
        options = []
        if gw in ("pp", "tunnel", "dhcp") and rest:
            rest, options = rest[:1], rest[1:]
        elif gw not in ("pp", "tunnel", "dhcp"):
            rest, options = [], rest
        while options:
            word = options.pop(0)
            if word in ("keepalive", "weight", "filter", "metric"):
                if not options or not _INT.fullmatch(options[0]):
                    raise _err("params" if not options else "range", word)
                value = int(options.pop(0))
                if word == "keepalive" and not 1 <= value <= KEEPALIVE_MAX:
                    raise _err("range", str(value))
                while word == "filter" and options and _INT.fullmatch(options[0]):
                    options.pop(0)
            elif word != "hide":
                raise _err("keyword", word)
        if gw in ("pp", "tunnel"):
            if not rest:
                raise _err("params")
            kind_max = cfg.profile.tunnel_max if gw == "tunnel" else cfg.profile.pp_max
            if not _INT.fullmatch(rest[0]) or not 1 <= int(rest[0]) <= kind_max:
                raise _err("range", rest[0])
        elif gw == "dhcp":
            if not rest:
                raise _err("params")
            cfg.lan_index(rest[0])
        elif _LAN.fullmatch(gw):
            cfg.lan_index(gw)
        else:
            addr = _ip(gw.split("%", 1)[0])
            if addr is None:
                raise _err("keyword", gw)
            if addr.version != version:
                raise _err("range", gw)

    return check


def _mss(cfg: RouterConfig, args: list[str]) -> None:
    _int_range(536, 1460, allow=("auto", "off"))(cfg, args)


def _mru(cfg: RouterConfig, args: list[str]) -> None:
    _ONOFF(cfg, args)
    if len(args) > 1:
        _int_range(64, 1792)(cfg, args[1:])


def _security(cfg: RouterConfig, args: list[str]) -> None:
    _int_range(1, 3)(cfg, args)
    for a in args[1:]:
        if a not in ("on", "off"):
            raise _err("keyword", a)


def _address4(cfg: RouterConfig, args: list[str]) -> None:
    if args[0] == "dhcp":
        return
    if len(args) == 2:  # ADDRESS NETMASK
        if _net(f"{args[0]}/{args[1]}", 4) is None:
            raise _err("range", " ".join(args))
    elif _net(args[0], 4) is None or "/" not in args[0]:
        raise _err("range", args[0])


def _host4(cfg: RouterConfig, args: list[str]) -> None:
    addr = _ip(args[0])
    if addr is None or addr.version != 4:
        raise _err("range", args[0])


#: ``ip keepalive`` numbers (RTX830 and RTX1210 document 1-100 [inferred for other models]).
KEEPALIVE_MAX = 100


def _keepalive(cfg: RouterConfig, args: list[str]) -> None:
    """``icmp-echo INTERVAL COUNT TARGET [option=value ...]``."""
    kind, interval, count, target, *options = args
    if kind != "icmp-echo":
        raise _err("keyword", kind)
    for value, hi in ((interval, 65535), (count, 100)):
        if not _INT.fullmatch(value) or not 1 <= int(value) <= hi:
            raise _err("range", value)
    _host4(cfg, [target])
    for option in options:
        name, sep, value = option.partition("=")
        if not sep or name not in ("upwait", "downwait", "length", "local-address"):
            raise _err("keyword", option)


def _address6(cfg: RouterConfig, args: list[str]) -> None:
    value = args[0]
    if value in ("dhcp", "auto") or "@" in value:
        return
    try:
        ipaddress.IPv6Interface(value)
    except ValueError:
        raise _err("range", value) from None


def _scope(cfg: RouterConfig, args: list[str]) -> None:
    span = args[0]
    first, _, last = span.partition("-")
    last_ip = last.split("/", 1)[0] if last else first.split("/", 1)[0]
    if _ip(first.split("/", 1)[0]) is None or _ip(last_ip) is None:
        raise _err("range", span)


def _login_password(cfg: RouterConfig, args: list[str]) -> None:
    # Typed, `login password X` is not a command (real-device transcript: the password is asked
    # interactively); only the forms `show config` prints are read back.
    if not (args == ["*"] or (len(args) == 2 and args[0] == "encrypted")):
        raise _err("invalid")


S = Spec

#: Every command the simulator knows, in ``show config`` rank order within each group.
_SPEC_LIST: list[Spec] = [
    # --- accounts and console
    S("login password", args=(1, 2), group="login password", secret=True, check=_login_password),
    S("administrator password", group="administrator password", secret=True),
    S("login user {name}", args=(1, 2), group="login user", secret=True),
    S("user attribute {name}", args=(1, None), group="user attribute"),
    S("security class", args=(3, 4), group="security class", check=_security),
    S("console character", group="console", console=True, check=_enum(*CHARSETS)),
    S("console columns", group="console", console=True, default=("80",), check=_int_range(80, 200)),
    S(
        "console lines",
        group="console",
        console=True,
        default=("24",),
        check=_int_range(10, 100, allow=("infinity",)),
    ),
    S("console prompt", args=(0, 1), group="console", console=True),
    S("login timer", group="login timer", default=("300",), check=_int_range(60, 21474836)),
    S("timezone", group="timezone"),
    # --- routes and prefixes
    S("ip route {net}", args=(2, None), group="ip route", check=_gateway(4)),
    S("ipv6 route {v6net}", args=(2, None), group="ipv6 route", check=_gateway(6)),
    S("ipv6 prefix {n}", args=(1, None), group="ipv6 prefix"),
    # --- LAN interfaces: all lines of lan1, then lan2, ... (ip before ipv6)
    S("description {if}", args=(1, None), group="if"),
    S("bridge member {if}", args=(1, None), group="if"),
    S("ip {if} address", args=(1, 2), group="if", check=_address4),
    S("ip {if} mtu", group="if", check=_int_range(64, 1500)),
    S("ip {if} proxyarp", group="if", default=("off",), check=_ONOFF),
    S("ip {if} secure filter {dir}", args=(1, None), group="if", check=_filter_list),
    S("ip {if} intrusion detection {dir}", args=(1, None), group="if"),
    S("ip {if} nat descriptor", args=(1, None), group="if", check=_int_list),
    S("ipv6 {if} address", args=(1, 2), group="if", check=_address6),
    S("ipv6 {if} prefix", args=(1, None), group="if"),
    S("ipv6 {if} rtadv send", args=(1, None), group="if"),
    S("ipv6 {if} rip send", group="if", check=_ONOFF),
    S("ipv6 {if} rip receive", group="if", check=_ONOFF),
    S("ipv6 {if} secure filter {dir}", args=(1, None), group="if", check=_filter_list),
    S("ipv6 {if} dhcp service", args=(1, 2), group="if"),
    S("ngn type {if}", group="if"),
    # --- pp select N block
    S("description pp", args=(1, None), ctx="pp", group="pp"),
    S("pp keepalive use", args=(1, None), ctx="pp", group="pp"),
    S("pp keepalive interval", args=(1, None), ctx="pp", group="pp"),
    S("pp always-on", ctx="pp", group="pp", default=("off",), check=_ONOFF),
    S("pppoe use", ctx="pp", group="pp", check=_lan_arg),
    S("pppoe auto connect", ctx="pp", group="pp", default=("on",), check=_ONOFF),
    S("pppoe auto disconnect", ctx="pp", group="pp", default=("on",), check=_ONOFF),
    S(
        "pp auth accept",
        args=(1, 4),
        ctx="pp",
        group="pp",
        check=_each_enum("pap", "chap", "mschap", "mschap-v2"),
    ),
    S("pp auth request", args=(1, 2), ctx="pp", group="pp"),
    S("pp auth myname", args=(2, 2), ctx="pp", group="pp"),
    S("ppp lcp mru", args=(1, 2), ctx="pp", group="pp", check=_mru),
    S("ppp ipcp ipaddress", ctx="pp", group="pp", default=("off",), check=_ONOFF),
    S("ppp ipcp msext", ctx="pp", group="pp", default=("off",), check=_ONOFF),
    S(
        "ppp ccp type",
        ctx="pp",
        group="pp",
        check=_enum("none", "stac", "cstac", "mppe-40", "mppe-128", "mppe-any"),
    ),
    S("ppp ipv6cp use", ctx="pp", group="pp", check=_ONOFF),
    S("ip pp address", ctx="pp", group="pp"),
    S("ip pp mtu", ctx="pp", group="pp", check=_int_range(64, 1500)),
    S("ip pp secure filter {dir}", args=(1, None), ctx="pp", group="pp", check=_filter_list),
    S("ip pp nat descriptor", args=(1, None), ctx="pp", group="pp", check=_int_list),
    S("ip pp tcp mss limit", ctx="pp", group="pp", default=("off",), check=_mss),
    S("ipv6 pp secure filter {dir}", args=(1, None), ctx="pp", group="pp", check=_filter_list),
    S("ipv6 pp dhcp service", args=(1, 2), ctx="pp", group="pp"),
    S("pp enable {pn}", args=(0, 0), group="pp", block="pp"),
    S("pp disable {pn}", args=(0, 0), group="pp", block="pp", action="disable"),
    S("pp select {psel}", args=(0, 0), action="select"),
    # --- tunnel select N block
    S(
        "tunnel encapsulation",
        ctx="tunnel",
        group="tunnel",
        check=_enum("ipsec", "ipip", "l2tp", "l2tpv3", "gre", "map-e"),
    ),
    # v6plus / OCN MAP-E, and IPsec: what tunnel 1 very often is on an IPoE line already.
    S("tunnel map-e type", ctx="tunnel", group="tunnel"),
    S("ipsec tunnel", ctx="tunnel", group="tunnel"),
    S("tunnel endpoint address", args=(1, 2), ctx="tunnel", group="tunnel", check=_endpoint),
    S("tunnel endpoint name", args=(1, 3), ctx="tunnel", group="tunnel"),
    S(
        "tunnel endpoint local address",
        ctx="tunnel",
        group="tunnel",
        check=_endpoint,
        feature="endpoint-local-remote",
    ),
    S(
        "tunnel endpoint remote address",
        ctx="tunnel",
        group="tunnel",
        check=_endpoint,
        feature="endpoint-local-remote",
    ),
    S("ip tunnel address", ctx="tunnel", group="tunnel", check=_address4),
    S("ip tunnel remote address", ctx="tunnel", group="tunnel", check=_host4),
    S("ip tunnel mtu", ctx="tunnel", group="tunnel", check=_int_range(68, 1500)),
    S(
        "ip tunnel secure filter {dir}",
        args=(1, None),
        ctx="tunnel",
        group="tunnel",
        check=_filter_list,
    ),
    S("ip tunnel nat descriptor", args=(1, None), ctx="tunnel", group="tunnel", check=_int_list),
    S("ip tunnel tcp mss limit", ctx="tunnel", group="tunnel", default=("off",), check=_mss),
    S("tunnel enable {tn}", args=(0, 0), group="tunnel", block="tunnel"),
    S("tunnel disable {tn}", args=(0, 0), group="tunnel", block="tunnel", action="disable"),
    S("tunnel select {tsel}", args=(0, 0), action="select"),
    # --- keepalives (the gateway of a route with `keepalive N` is up while N answers)
    S("ip keepalive {keepalive}", args=(4, None), group="ip keepalive", check=_keepalive),
    # --- filters
    S("ip filter {n}", args=(2, 6), group="ip filter", check=_filter),
    S("ip filter dynamic {n}", args=(3, None), group="ip filter dynamic"),
    S("ipv6 filter {n}", args=(2, 6), group="ipv6 filter", check=_filter),
    S("ipv6 filter dynamic {n}", args=(3, None), group="ipv6 filter dynamic"),
    # --- NAT: all lines of descriptor 1000, then 2000, ...
    S(
        "nat descriptor type {n}",
        group="nat",
        check=_enum("masquerade", "nat", "nat-masquerade", "none"),
    ),
    S("nat descriptor address outer {n}", args=(1, None), group="nat"),
    S("nat descriptor address inner {n}", args=(1, None), group="nat"),
    S("nat descriptor masquerade static {n} {m}", args=(2, 4), group="nat"),
    # --- services
    S("syslog host", args=(1, None), group="syslog"),
    S("syslog facility", group="syslog"),
    S("syslog notice", group="syslog", check=_ONOFF),
    S("syslog info", group="syslog", check=_ONOFF),
    S("syslog debug", group="syslog", default=("off",), check=_ONOFF),
    S("telnetd service", group="telnetd", default=("on",), check=_ONOFF),
    S("telnetd host", args=(1, None), group="telnetd"),
    S("dhcp service", group="dhcp", default=("off",), check=_enum("server", "relay", "off")),
    S("dhcp server rfc2131 compliant", args=(1, None), group="dhcp"),
    S("dhcp scope {n}", args=(1, None), group="dhcp", check=_scope),
    S("dhcp scope bind {n} {ip}", args=(1, 2), group="dhcp"),
    S("dhcp scope option {n}", args=(1, None), group="dhcp"),
    S("dhcp client release linkdown", group="dhcp", check=_ONOFF),
    S("dns host", args=(1, None), group="dns"),
    S("dns service", args=(1, 2), group="dns"),
    S("dns server", args=(1, None), group="dns", check=_each_ip),
    S("dns server pp {pn}", args=(0, 0), group="dns"),
    S("dns server dhcp {if}", args=(0, 0), group="dns"),
    S("dns server select {n}", args=(2, None), group="dns"),
    S("dns private address spoof", group="dns", default=("off",), check=_ONOFF),
    S("dns private name", group="dns"),
    S("schedule at {n}", args=(2, None), group="schedule"),
    S("sshd service", group="sshd", default=("off",), check=_ONOFF),
    S("sshd host key generate", args=(0, 1), group="sshd", render=("*",)),
    S("sshd host", args=(1, None), group="sshd"),
    S("sftpd host", args=(1, None), group="sftpd"),
    S("httpd host", args=(1, None), group="httpd"),
    S("statistics {name}", group="statistics", check=_ONOFF),
    S("snmp sysname", args=(1, None), group="misc"),
]

SPECS: tuple[Spec, ...] = tuple(
    replace(spec, index=i, words=tuple(spec.head.split())) for i, spec in enumerate(_SPEC_LIST)
)
_BY_HEAD = {spec.head: spec for spec in SPECS}

#: Top-level order of ``show config``; ``pp`` and ``tunnel`` are the select blocks.
GROUPS: tuple[str, ...] = (
    "login password",
    "administrator password",
    "login user",
    "user attribute",
    "security class",
    "console",
    "login timer",
    "timezone",
    "ip route",
    # A real RTX1210's show config prints `ip keepalive` right after the IPv4 routes.
    "ip keepalive",
    "ipv6 route",
    "ipv6 prefix",
    "if",
    "pp",
    "tunnel",
    "ip filter",
    "ip filter dynamic",
    "ipv6 filter",
    "ipv6 filter dynamic",
    "nat",
    "syslog",
    "telnetd",
    "dhcp",
    "dns",
    "schedule",
    "sshd",
    "sftpd",
    "httpd",
    "statistics",
    "misc",
)
_GROUP_RANK = {g: i for i, g in enumerate(GROUPS)}
_EMBEDDED = re.compile(r"embedded file \S+ <<(['\"]?)(\S+?)\1")
#: Groups ordered by their first slot before the command (``ip lan1 …`` before ``ip lan2 …``).
_SLOT_MAJOR = frozenset({"if", "nat"})
_ENABLE_OF = {"pp disable {pn}": "pp enable {pn}", "tunnel disable {tn}": "tunnel enable {tn}"}

# --------------------------------------------------------------------------------------------
# The config


@dataclass
class Entry:
    spec: Spec
    slots: list[str]  # as typed
    args: list[str]  # as typed (secret replaced by "*")
    sort: tuple  # sortable slot values
    secret: str | None = None

    def words(self) -> list[str]:
        out: list[str] = []
        slots = iter(self.slots)
        for w in self.spec.words:
            out.append(next(slots) if w.startswith("{") else w)
        out.extend(self.spec.render if self.spec.render is not None else self.args)
        return out


@dataclass
class ApplyResult:
    """What a successful command did.

    ``kind``: ``set``, ``delete``, ``select`` or ``validate`` (checked, not stored).
    ``changed``: the running config differs from before. ``context``: the selection after the
    command. ``console``: for ``console …`` commands, ``(name, value)`` with ``value`` ``None``
    when the setting went back to its default. ``head``: the spec head (``console lines``).
    """

    kind: str
    changed: bool
    context: Context
    head: str
    console: tuple[str, str | None] | None = None
    secret: str | None = None


_Key = tuple


class RouterConfig:
    """A running (or saved) config: parse, apply commands, render ``show config``'s body."""

    def __init__(self, profile: str | Profile = "rtx1200", *, normalise_ipv6: bool = False):
        self.profile = get_profile(profile)
        self.normalise_ipv6 = normalise_ipv6
        self.top: dict[_Key, Entry] = {}
        self.blocks: dict[tuple[str, int], dict[_Key, Entry]] = {}
        #: ``embedded file NAME <<EOF`` … ``EOF`` (RTX1300 Lua scripts): header → content lines,
        #: kept and printed byte for byte after the other lines.
        self.embedded: dict[str, list[str]] = {}
        self._specs = tuple(
            s for s in SPECS if s.feature is None or s.feature in self.profile.features
        )

    # ---- construction

    @classmethod
    def from_text(
        cls, text: str, profile: str | Profile = "rtx1200", *, normalise_ipv6: bool = False
    ) -> RouterConfig:
        """Parse a config as ``show config`` prints it (or as typed: indentation is optional).

        ``#`` lines and blank lines are skipped. Lines are applied in order as administrator
        commands, so ``tunnel select N`` selects until another select (or ``… select none``).
        """
        cfg = cls(profile, normalise_ipv6=normalise_ipv6)
        ctx = NO_CONTEXT
        body: list[str] | None = None
        terminator = ""
        for no, raw in enumerate(text.splitlines(), 1):
            if body is not None:
                if raw.rstrip() == terminator:
                    body = None
                else:
                    body.append(raw)
                continue
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            embedded = _EMBEDDED.fullmatch(" ".join(line.split()))
            if embedded:
                body = cfg.embedded.setdefault(" ".join(line.split()), [])
                terminator = embedded[2]
                continue
            try:
                ctx = cfg.apply(line, ctx).context
            except CliError as e:
                raise ConfigParseError(no, raw, e.code) from None
        return cfg

    def copy(self) -> RouterConfig:
        new = RouterConfig(self.profile, normalise_ipv6=self.normalise_ipv6)
        new.top = {
            k: replace(v, slots=list(v.slots), args=list(v.args)) for k, v in self.top.items()
        }
        new.blocks = {
            b: {k: replace(v, slots=list(v.slots), args=list(v.args)) for k, v in d.items()}
            for b, d in self.blocks.items()
        }
        new.embedded = {header: list(body) for header, body in self.embedded.items()}
        return new

    # ---- queries

    def lan_index(self, name: str) -> int:
        m = _LAN.fullmatch(name)
        if not m:
            raise _err("keyword", name)
        idx = int(m.group(1))
        if not 1 <= idx <= self.profile.lan_count:
            raise _err("range", name)
        return idx

    def get(self, head: str, *slots: str, block: tuple[str, int] | None = None) -> list[str] | None:
        """Arguments of the line with this head and slot values, or ``None`` if absent.

        ``cfg.get("console lines")`` → ``["infinity"]``; ``cfg.get("ip filter {n}", "10")``;
        ``cfg.get("ip tunnel mtu", block=("tunnel", 1))``.
        """
        spec = _BY_HEAD[head]
        norm = tuple(
            self.slot(w[1:-1], v)[0] for w, v in zip(_slot_words(spec), slots, strict=True)
        )
        table = self.top if block is None else self.blocks.get(block, {})
        entry = table.get((spec.index, norm))
        return None if entry is None else list(entry.args)

    def console(self, name: str) -> str | None:
        """A ``console NAME`` value (unquoted), or ``None`` when it is at its default."""
        args = self.get(f"console {name}")
        if not args:
            return None
        return unquote(args[0])

    def secret(self, head: str, *slots: str) -> str | None:
        """The password typed for ``administrator password`` / ``login user NAME`` (if known)."""
        spec = _BY_HEAD[head]
        norm = tuple(
            self.slot(w[1:-1], v)[0] for w, v in zip(_slot_words(spec), slots, strict=True)
        )
        entry = self.top.get((spec.index, norm))
        return None if entry is None else entry.secret

    def login_users(self) -> dict[str, str | None]:
        spec = _BY_HEAD["login user {name}"]
        return {e.slots[0]: e.secret for (i, _), e in self.top.items() if i == spec.index}

    # ---- applying commands

    def resolve(self, tokens: list[str]) -> tuple[Spec, list[str], list[str]]:
        """Find the spec for ``tokens`` → ``(spec, slot values, arguments)``.

        The spec whose words match with the most literal words wins. Raises ``invalid`` for an
        unknown command, ``params`` for a known command cut short.
        """
        best: tuple[tuple[int, int], Spec] | None = None
        partial = False
        for spec in self._specs:
            words = spec.words
            n = min(len(words), len(tokens))
            if not all(_word_match(words[i], tokens[i]) for i in range(n)):
                continue
            if len(tokens) < len(words):
                partial = True
                continue
            score = (spec.literals, len(words))
            if best is None or score > best[0]:
                best = (score, spec)
        if best is None:
            raise _err("params" if partial else "invalid")
        spec = best[1]
        slots = [tokens[i] for i, w in enumerate(spec.words) if w.startswith("{")]
        return spec, slots, tokens[len(spec.words) :]

    def apply(
        self,
        line: str,
        context: Context = NO_CONTEXT,
        *,
        admin: bool = True,
        commit: bool = True,
    ) -> ApplyResult:
        """Apply one command typed in ``context``. Raises :class:`CliError` on refusal.

        At user level (``admin=False``) only ``console …`` commands pass (validated; stored only
        if ``commit``); anything else known is ``admin_only``.
        """
        tokens = tokenize(line)
        if not tokens:
            raise _err("invalid")
        negate = tokens[0] == "no"
        if negate:
            tokens = tokens[1:]
            if not tokens:
                raise _err("params")
        spec, slot_values, args = self.resolve(tokens)
        if not admin and not spec.console:
            raise _err("admin_only")
        if negate and spec.action == "select":
            raise _err("invalid")
        if spec.ctx == "tunnel" and context.kind != "tunnel":
            raise _err("no_tunnel")
        if spec.ctx == "pp" and context.kind != "pp":
            raise _err("no_pp")
        norm: list = []
        sort: list = []
        for w, v in zip(_slot_words(spec), slot_values, strict=True):
            n, s = self.slot(w[1:-1], v)
            norm.append(n)
            sort.append(s)
        if not negate:
            lo, hi = spec.args
            if len(args) < lo or (hi is not None and len(args) > hi):
                raise _err("params")
            if spec.check is not None:
                spec.check(self, args)

        if spec.action == "select":
            new_ctx = NO_CONTEXT if norm[0] is None else Context(spec.words[0], norm[0])
            return ApplyResult("select", False, new_ctx, spec.head)

        target = _BY_HEAD[_ENABLE_OF[spec.head]] if spec.action == "disable" else spec
        if spec.block is not None:
            block: tuple[str, int] | None = (spec.block, norm[0])
        elif spec.ctx in ("tunnel", "pp"):
            block = (context.kind, context.num)  # type: ignore[assignment]
        else:
            block = None
        key = (target.index, tuple(norm))
        delete = (
            negate
            or spec.action == "disable"
            or (spec.default is not None and tuple(args) == spec.default)
            or (spec.head == "console prompt" and (not args or unquote(args[0]) == ""))
        )
        secret = None
        shown = list(args)
        if spec.secret and len(args) == 1 and not delete:
            secret = None if args[0] == "*" else args[0]
            shown = ["*"]
        console = None
        if spec.console:
            console = (spec.words[1], None if delete else unquote(args[0]))

        table = self.top if block is None else self.blocks.get(block, {})
        old = table.get(key)
        if delete:
            changed = old is not None
        else:
            new_words = Entry(target, slot_values, shown, tuple(sort)).words()
            changed = old is None or old.words() != new_words or old.secret != secret
        if not commit:
            return ApplyResult("validate", changed, context, spec.head, console, secret)

        if delete:
            if old is not None:
                del table[key]
                if block is not None and not table:
                    self.blocks.pop(block, None)
            return ApplyResult("delete", changed, context, spec.head, console)
        if secret is None and old is not None and shown == ["*"]:
            secret = old.secret  # "administrator password *" keeps a password we know
        entry = Entry(target, list(slot_values), shown, tuple(sort), secret)
        if block is None:
            self.top[key] = entry
        else:
            self.blocks.setdefault(block, {})[key] = entry
        return ApplyResult("set", changed, context, spec.head, console, secret)

    def slot(self, kind: str, value: str) -> tuple[object, tuple]:
        """Validate a ``{kind}`` word's value → (normalised key value, sort key).

        Kinds: ``n``/``m`` numbers, ``tn``/``pn`` tunnel/pp numbers (profile limits),
        ``tsel``/``psel`` the same or ``none``, ``if`` a LAN, ``net``/``v6net`` a network or
        ``default``, ``ip`` an address, ``dir`` in/out, anything else free text.
        """
        if kind in ("n", "m"):
            if not _INT.fullmatch(value) or not 1 <= int(value) <= _INT_MAX:
                raise _err("range", value)
            return int(value), (0, int(value), 0)
        if kind == "keepalive":
            if not _INT.fullmatch(value) or not 1 <= int(value) <= KEEPALIVE_MAX:
                raise _err("range", value)
            return int(value), (0, int(value), 0)
        if kind in ("tn", "pn", "tsel", "psel"):
            if kind in ("tsel", "psel") and value == "none":
                return None, (-1, 0, 0)
            limit = self.profile.tunnel_max if kind[0] == "t" else self.profile.pp_max
            if not _INT.fullmatch(value) or not 1 <= int(value) <= limit:
                raise _err("range", value)
            return int(value), (0, int(value), 0)
        if kind == "if":
            m = _IF_NAME.fullmatch(value)
            if m is None:
                raise _err("keyword", value)
            if m["lan"] is not None:
                idx = self.lan_index(f"lan{m['lan']}")
                return value, (0, idx, int(m["sub"] or 0))
            if m["bridge"] is not None:
                return value, (1, int(m["bridge"]), 0)
            return value, (2, int(m["vlan"]), 0)
        if kind in ("net", "v6net"):
            if value == "default":
                return value, (-1, 0, 0)
            net = _net(value, 4 if kind == "net" else 6)
            if net is None:
                raise _err("range", value)
            return net.compressed, (0, int(net.network_address), net.prefixlen)
        if kind == "ip":
            addr = _ip(value)
            if addr is None:
                raise _err("range", value)
            return addr.compressed, (0, int(addr), 0)
        if kind == "dir":
            if value not in ("in", "out"):
                raise _err("keyword", value)
            return value, (0, 0 if value == "in" else 1, 0)
        return value, (1, 0, 0, value)

    # ---- rendering

    def lines(self) -> list[str]:
        """The config body in the router's order (no ``#`` header)."""
        items: list[tuple[tuple, list[str]]] = []
        for entry in self.top.values():
            items.append((self._sort_key(entry), [self._render(entry)]))
        for kind, num in self.blocks:
            block_lines = self.block_lines(kind, num)
            if block_lines:
                items.append(((_GROUP_RANK[kind], (0, num, 0), 0, ()), block_lines))
        items.sort(key=lambda item: item[0])
        out = [line for _, lines in items for line in lines]
        for header, body in self.embedded.items():
            out += [header, *body, _EMBEDDED.fullmatch(header)[2]]  # type: ignore[index]
        return out

    def text(self) -> str:
        body = self.lines()
        return "\n".join(body) + ("\n" if body else "")

    def block_lines(self, kind: str, num: int) -> list[str]:
        """``tunnel select N`` / ``pp select N`` and its indented children (empty if unset)."""
        table = self.blocks.get((kind, num))
        if not table:
            return []
        children = sorted(table.values(), key=lambda e: (e.spec.index, e.sort))
        return [f"{kind} select {num}"] + [" " + self._render(e) for e in children]

    def _render(self, entry: Entry) -> str:
        words = entry.words()
        if self.normalise_ipv6:
            words = [compress_ipv6(w) for w in words]
        return " ".join(words)

    @staticmethod
    def _sort_key(entry: Entry) -> tuple:
        spec = entry.spec
        rank = _GROUP_RANK[spec.group]
        if spec.group in _SLOT_MAJOR and entry.sort:
            return (rank, entry.sort[0], spec.index, entry.sort[1:])
        return (rank, (0, spec.index, 0), 0, entry.sort)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RouterConfig):
            return NotImplemented
        return self.lines() == other.lines()

    def __repr__(self) -> str:
        return f"<RouterConfig {self.profile.name} {len(self.lines())} lines>"


def _slot_words(spec: Spec) -> list[str]:
    return [w for w in spec.words if w.startswith("{")]


_SLOT_SHAPE = {"if": _IF_NAME}


def _word_match(word: str, token: str) -> bool:
    if word.startswith("{"):
        shape = _SLOT_SHAPE.get(word[1:-1])
        return shape is None or shape.fullmatch(token) is not None
    return word == token
