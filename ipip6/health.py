"""The health check's verdicts: what the two ends show, compared with what the data wants.

Pure: the facts come in (read by ``operations.health`` through pyinfra), :class:`Finding`\\ s come
out, one per check and host, each with what was seen and, when it is wrong, the one line that
fixes it. :func:`render_table` prints them as the compact table ``check.py`` ends with.

Every check says ``ok`` (True), ``wrong`` (False: a problem, the run exits non-zero) or ``unknown``
(None: the host did not say in a form known here; shown, never counted as healthy or as wrong).
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ipip6.rtx.config import (
    OwnedSection,
    RouterConfig,
    line_diff,
    owned_view,
    redact_line,
    unowned_view,
)
from ipip6.rtx.session import SESSION_KEYS
from ipip6.rtx.status import TunnelStatus
from ipip6.settings import RouterSettings, VpsSettings
from ipip6.tunnel_ping import PingOutcome, TunnelPing

DEPLOY = "pyinfra inventory.py deploy.py"

#: The router host's checks, in the order of the table (and of pyinfra's operations): its own,
#: then those across the tunnel (made from the VPS, about this router's tunnel).
ROUTER_CHECKS = (
    "identity",
    "owned lines",
    "unsaved changes",
    "tunnel status",
    "ping through the tunnel",
    "WAN IPv6 address",
)


@dataclass(frozen=True)
class Finding:
    """One check on one host: ``ok`` True (fine), False (wrong) or None (could not tell)."""

    host: str
    end: str  # "VPS", "router" or "across" (both ends: the ping, the router's address)
    check: str
    ok: bool | None
    seen: str
    fix: str = ""
    #: A diff or the lines behind ``seen`` (printed under the problem; secrets hidden).
    lines: tuple[str, ...] = field(default=(), compare=False)

    @property
    def state(self) -> str:
        return {True: "ok", False: "WRONG", None: "unknown"}[self.ok]


def _ok(host: str, end: str, check: str, seen: str) -> Finding:
    return Finding(host, end, check, True, seen)


def _wrong(host: str, end: str, check: str, seen: str, fix: str, lines=()) -> Finding:
    return Finding(host, end, check, False, seen, fix, tuple(lines))


def _unknown(host: str, end: str, check: str, seen: str, lines=()) -> Finding:
    return Finding(host, end, check, None, seen, "", tuple(lines))


def merge(host: str, end: str, check: str, parts: Sequence[Finding]) -> Finding:
    """One row for a check made per tunnel: wrong if any is, unknown if any is, else ok."""
    if not parts:
        return _ok(host, end, check, "nothing to check")
    worst = next((p for p in parts if p.ok is False), None) or next(
        (p for p in parts if p.ok is None), None
    )
    seen = "; ".join(p.seen for p in parts)
    if worst is None:
        return _ok(host, end, check, seen)
    wrong = [p for p in parts if p.ok is worst.ok]
    fixes = list(dict.fromkeys(p.fix for p in wrong if p.fix))
    lines = [line for p in wrong for line in p.lines]
    return Finding(host, end, check, worst.ok, seen, "; ".join(fixes), tuple(lines))


# --------------------------------------------------------------------------------------------
# The VPS


def _addr(text: str) -> ipaddress.IPv6Address | None:
    try:
        return ipaddress.IPv6Address(text.split("/", 1)[0])
    except ValueError:
        return None


@dataclass(frozen=True)
class LinkSeen:
    """One ip6tnl as ``ip -o -d link show`` prints it."""

    flags: frozenset[str]
    mtu: int | None
    kind: str | None  # "ip6tnl" for ours
    mode: str | None  # "ip6ip": IPv4 in IPv6 (networkd's Mode=ipip6)
    local: str | None
    remote: str | None
    encaplimit: str | None  # "none", or a number (the kernel's default is 4)

    @classmethod
    def parse(cls, line: str) -> LinkSeen:
        words = line.replace("\\", " ").split()
        flags = re.search(r"<([^>]*)>", line)

        def after(word: str, start: int = 0) -> str | None:
            for i in range(start, len(words) - 1):
                if words[i] == word:
                    return words[i + 1]
            return None

        kind_at = words.index("ip6tnl") if "ip6tnl" in words else None
        mtu = after("mtu")
        return cls(
            flags=frozenset(flags[1].split(",")) if flags else frozenset(),
            mtu=int(mtu) if mtu and mtu.isdigit() else None,
            kind="ip6tnl" if kind_at is not None else None,
            mode=words[kind_at + 1] if kind_at is not None and kind_at + 1 < len(words) else None,
            local=after("local", kind_at or 0),
            remote=after("remote", kind_at or 0),
            encaplimit=after("encaplimit", kind_at or 0),
        )


def link_findings(
    host: str, vps: VpsSettings, tunnel: VpsSettings, link: str | None
) -> tuple[Finding, Finding]:
    """(the link: up, ipip6, ends and MTU as in data; its encapsulation limit)."""
    name = tunnel.tunnel_name
    end = "VPS"
    recreate = f"ip link del dev {name}; systemctl restart systemd-networkd"
    if link is None:
        missing = _wrong(
            host, end, "tunnel link", f"{name}: no such link", f"{DEPLOY} (or: {recreate})"
        )
        return missing, _unknown(host, end, "encapsulation limit", f"{name}: no link")
    seen = LinkSeen.parse(link)
    problems = []
    if seen.kind != "ip6tnl" or seen.mode not in ("ip6ip", "ipip6"):
        problems.append(f"a {seen.kind or 'non-ip6tnl'} link in mode {seen.mode}, not ipip6")
    if _addr(seen.local or "") != vps.vps_ipv6:
        problems.append(f"local {seen.local}, the data says {vps.vps_ipv6}")
    if _addr(seen.remote or "") != tunnel.router_ipv6:
        problems.append(f"remote {seen.remote}, the data says {tunnel.router_ipv6}")
    if seen.mtu != tunnel.tunnel_mtu:
        problems.append(f"mtu {seen.mtu}, the data says {tunnel.tunnel_mtu}")
    if "UP" not in seen.flags:
        problems.append("down")
    summary = f"{name}: ipip6 {seen.local} → {seen.remote}, mtu {seen.mtu}"
    if problems:
        fix = f"ip link set dev {name} up" if problems == ["down"] else recreate
        link_row = _wrong(host, end, "tunnel link", f"{name}: {', '.join(problems)}", fix)
    else:
        link_row = _ok(host, end, "tunnel link", f"{summary}, up")
    if seen.encaplimit == "none":
        limit = _ok(host, end, "encapsulation limit", f"{name}: encaplimit none")
    elif seen.encaplimit is None:
        limit = _unknown(host, end, "encapsulation limit", f"{name}: ip -d link did not say")
    else:
        limit = _wrong(
            host,
            end,
            "encapsulation limit",
            f"{name}: encaplimit {seen.encaplimit}, the kernel's default: every packet carries a "
            "Destination Options header, which the RTX drops",
            recreate + " (networkd creates it again with EncapsulationLimit=none)",
        )
    return link_row, limit


def routes_finding(host: str, tunnel: VpsSettings, routes: Sequence[str]) -> Finding:
    name = tunnel.tunnel_name
    have = set()
    for line in routes:
        try:
            have.add(ipaddress.IPv4Network(line.split()[0]))
        except (ValueError, IndexError):
            continue
    missing = [str(n) for n in tunnel.home_networks if n not in have]
    if missing:
        return _wrong(
            host,
            "VPS",
            "routes to home",
            f"{name}: no route to {', '.join(missing)}",
            f"networkctl reconfigure {name} (the .network file holds the routes)",
        )
    nets = ", ".join(map(str, tunnel.home_networks))
    return _ok(host, "VPS", "routes to home", f"{nets} via {name}")


def sysctl_expected(sysctl_file: str) -> dict[str, str]:
    """``key = value`` lines of the rendered sysctl file."""
    out = {}
    for line in sysctl_file.splitlines():
        key, eq, value = line.partition("=")
        if eq and not line.lstrip().startswith("#"):
            out[key.strip()] = " ".join(value.split())
    return out


def sysctls_finding(host: str, expected: Mapping[str, str], live: Mapping[str, str]) -> Finding:
    off = [
        f"{key} is {live.get(key) or 'unset'}, {value} wanted"
        for key, value in expected.items()
        if " ".join((live.get(key) or "").split()) != value
    ]
    if off:
        return _wrong(
            host,
            "VPS",
            "sysctls",
            "; ".join(off),
            "sysctl --system (loads the persisted values)",
        )
    return _ok(host, "VPS", "sysctls", f"{len(expected)} live = persisted")


_COUNTERS = re.compile(r"\s*counter packets \d+ bytes \d+")


def normalise_rules(lines: Iterable[str]) -> list[str]:
    """Rules as compared: counters and blank lines dropped."""
    out = []
    for line in lines:
        line = re.sub(r" \[\d+:\d+\]$", "", _COUNTERS.sub(" counter", line)).rstrip()
        if line.strip():
            out.append(line)
    return out


def firewall_finding(
    host: str, backend: str, live: Sequence[str], disk: Sequence[str] | None
) -> Finding:
    what = "table inet ipip6" if backend == "nftables" else "the IPIP6-* chains and jumps"
    reload = (
        "nft -f /etc/ipip6/firewall.nft"
        if backend == "nftables"
        else "systemctl restart ipip6-firewall.service"
    )
    if disk is None:
        return _wrong(
            host,
            "VPS",
            "firewall loaded",
            f"the files in /etc/ipip6 do not load ({backend})",
            DEPLOY,
        )
    live, disk = normalise_rules(live), normalise_rules(disk)
    if live == disk:
        return _ok(host, "VPS", "firewall loaded", f"{what}: {len(live)} lines, as on disk")
    diff = list(difflib.unified_diff(disk, live, "on disk", "loaded", lineterm="", n=0))
    missing = sum(1 for x in diff[2:] if x.startswith("-"))
    extra = sum(1 for x in diff[2:] if x.startswith("+"))
    return _wrong(
        host,
        "VPS",
        "firewall loaded",
        f"{what}: {missing} lines on disk are not loaded, {extra} loaded are not on disk",
        f"{reload} (loads the rules on disk again; other tools' rules stay)",
        diff,
    )


def timers_finding(host: str, armed: Sequence[str]) -> Finding:
    if armed:
        return _wrong(
            host,
            "VPS",
            "rollback timers",
            f"armed: {', '.join(armed)} (a deploy died before its proof; the timer will "
            "restore the previous state)",
            f"{DEPLOY} (it restores first, then deploys)",
        )
    return _ok(host, "VPS", "rollback timers", "none armed")


def packages_finding(host: str, installed: Mapping[str, bool], wanted: Sequence[str]) -> Finding:
    missing = [p for p in wanted if not installed.get(p)]
    if missing:
        return _wrong(
            host,
            "VPS",
            "packages",
            f"missing: {', '.join(missing)}",
            f"apt install {' '.join(missing)}",
        )
    return _ok(host, "VPS", "packages", ", ".join(wanted))


def files_finding(
    host: str,
    wanted: Mapping[str, str],
    sums: Mapping[str, str | None],
    sha256,
    current: Mapping[str, Sequence[str] | None] | None = None,
) -> Finding:
    """``current``: the drifted files' contents, for a diff (``--diff``)."""
    drifted = [p for p, text in wanted.items() if sums.get(p) != sha256(text)]
    if not drifted:
        return _ok(host, "VPS", "owned files", f"{len(wanted)} as rendered")
    lines: list[str] = []
    for path in drifted:
        if current is not None and path in current:
            lines += difflib.unified_diff(
                list(current[path] or []),
                wanted[path].splitlines(),
                f"{path} (on the VPS)",
                f"{path} (from the data)",
                lineterm="",
            )
    seen = ", ".join(f"{p} {'missing' if sums.get(p) is None else 'changed'}" for p in drifted)
    return _wrong(host, "VPS", "owned files", seen, f"{DEPLOY} (writes them back)", lines)


# --------------------------------------------------------------------------------------------
# The router


def identity_finding(host: str, running: RouterConfig, config_file: int | None) -> Finding:
    model = running.model or "model not shown"
    if running.revision:
        model += f" Rev.{running.revision}"
    if config_file is None:
        return _unknown(
            host, "router", "identity", f"{model}; show environment did not name the config file"
        )
    return _ok(host, "router", "identity", f"{model}, booted from config file {config_file}")


def owned_finding(host: str, running: RouterConfig, desired: OwnedSection) -> Finding:
    from ipip6.rtx.config import compare

    delta = compare(running, desired)
    if not delta.commands:
        return _ok(host, "router", "owned lines", f"{len(delta.wanted)} lines as in data")
    diff = difflib.unified_diff(
        [redact_line(x) for x in delta.current],
        [redact_line(x) for x in delta.wanted],
        "running",
        "from the data",
        lineterm="",
    )
    return _wrong(
        host,
        "router",
        "owned lines",
        f"differ from the data ({len(delta.commands)} commands would set them)",
        f"{DEPLOY} (sends them, checks, saves)",
        list(diff),
    )


def unsaved_finding(
    host: str, running: RouterConfig, saved: RouterConfig | None, desired: OwnedSection
) -> Finding:
    if saved is None:
        return _unknown(host, "router", "unsaved changes", "the saved config could not be read")
    owned = line_diff(owned_view(saved, desired), owned_view(running, desired))
    before = unowned_view(saved, desired, SESSION_KEYS)
    after = unowned_view(running, desired, SESSION_KEYS)
    other = line_diff(before, after) if before != after else []
    owned = owned if owned_view(saved, desired) != owned_view(running, desired) else []
    if not owned and not other:
        return _ok(host, "router", "unsaved changes", "none: running = saved")
    parts = []
    if owned:
        parts.append("in the deploy's lines")
    if other:
        parts.append("in lines the deploy does not own")
    fix = (
        "save them on the router (`save`) or undo them; a deploy refuses to run over them"
        if other
        else f"{DEPLOY} (sets the lines and saves them)"
    )
    return _wrong(
        host,
        "router",
        "unsaved changes",
        f"running differs from saved {' and '.join(parts)}",
        fix,
        [redact_line(x) for x in (*owned, *other)],
    )


def status_finding(host: str, statuses: Sequence[TunnelStatus]) -> Finding:
    rows = []
    for status in statuses:
        if status.up:
            rows.append(_ok(host, "router", "tunnel status", status.summary()))
        elif status.state == "unknown":
            rows.append(_unknown(host, "router", "tunnel status", status.summary()))
        else:
            rows.append(
                _wrong(
                    host,
                    "router",
                    "tunnel status",
                    status.summary(),
                    f"look at the VPS end and the ping row; `tunnel enable {status.number}` "
                    "on the router if it was disabled",
                )
            )
    return merge(host, "router", "tunnel status", rows)


def ping_finding(
    host: str, ping: TunnelPing | None, outcome: PingOutcome | None, why_not: str | None
) -> Finding:
    check = "ping through the tunnel"
    if ping is None:
        return _unknown(host, "across", check, why_not or "no ping to make")
    if outcome is None:
        return _unknown(host, "across", check, f"{ping.describe()}: could not run")
    loss = 100 * (outcome.sent - outcome.received) // max(outcome.sent, 1)
    rtt = f", rtt {outcome.rtt_ms:g} ms" if outcome.rtt_ms is not None else ""
    seen = f"{ping.address} from {ping.vps}: {outcome.summary()}, {loss}% loss{rtt}"
    if outcome.ok:
        return _ok(host, "across", check, seen)
    return _wrong(
        host,
        "across",
        check,
        seen,
        "see the tunnel rows of both ends; after a prefix change, the address row",
    )


def parse_ipv6_addresses(lines: Iterable[str]) -> list[ipaddress.IPv6Interface]:
    """Every unicast IPv6 address (link-local aside) in ``show ipv6 address`` output, whatever
    the layout: the words that parse as an IPv6 address, with or without a prefix length."""
    found = []
    for line in lines:
        for word in re.findall(r"[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*(?:/\d{1,3})?", line):
            try:
                iface = ipaddress.IPv6Interface(word)
            except ValueError:
                continue
            ip = iface.ip
            if ip.is_link_local or ip.is_multicast or ip.is_loopback or ip.is_unspecified:
                continue
            if iface not in found:
                found.append(iface)
    return found


def address_finding(
    host: str, settings: RouterSettings, addresses: Sequence[ipaddress.IPv6Interface] | None
) -> Finding:
    check = "WAN IPv6 address"
    wanted = settings.router_ipv6
    if addresses is None:
        return _unknown(host, "across", check, "show ipv6 address could not be read")
    if any(a.ip == wanted for a in addresses):
        return _ok(host, "across", check, f"{wanted} (router_ipv6) is the router's")
    if not addresses:
        return _unknown(host, "across", check, "show ipv6 address named no global address")
    iid = int(wanted) & (2**64 - 1)
    moved = [a for a in addresses if int(a.ip) & (2**64 - 1) == iid]
    fix_where = "in the data (group_data/all.py or the router's host data)"
    if moved:
        new = moved[0]
        old_prefix = ipaddress.IPv6Network(f"{wanted}/64", strict=False)
        new_prefix = ipaddress.IPv6Network(f"{new.ip}/64", strict=False)
        return _wrong(
            host,
            "across",
            check,
            f"the IPoE prefix changed: {old_prefix} → {new_prefix}; "
            f"the router is {new.ip} now, router_ipv6 says {wanted}",
            f'set router_ipv6 = "{new.ip}" {fix_where}, then {DEPLOY} (the VPS\'s tunnel follows)',
        )
    listed = ", ".join(str(a.ip) for a in addresses)
    return _wrong(
        host,
        "across",
        check,
        f"router_ipv6 {wanted} is none of the router's addresses ({listed})",
        f"set router_ipv6 to the router's WAN address {fix_where}, then {DEPLOY}",
    )


# --------------------------------------------------------------------------------------------
# The table


def render_table(findings: Sequence[Finding], seen_width: int = 72) -> str:
    """The compact table: one row per host and check (what was seen cut at ``seen_width``),
    then each problem, whole, with its fix."""
    rows = [("host", "end", "check", "state", "seen")]
    for f in findings:
        seen = f.seen if len(f.seen) <= seen_width else f.seen[: seen_width - 1] + "…"
        rows.append((f.host, f.end, f.check, f.state, seen))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    out = []
    for row in rows:
        out.append(
            "  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
        )
    problems = [f for f in findings if f.ok is False]
    unknown = [f for f in findings if f.ok is None]
    out.append("")
    if problems:
        out.append(f"{len(problems)} problem{'s' if len(problems) > 1 else ''}, each with its fix:")
        for f in problems:
            out.append(f"- {f.host} {f.end}, {f.check}: {f.seen}")
            out.append(f"  fix: {f.fix}")
    else:
        out.append("No problem found.")
    if unknown:
        out.append(
            f"{len(unknown)} check(s) could not tell: "
            + ", ".join(f"{f.host} {f.check}" for f in unknown)
        )
    return "\n".join(out)
