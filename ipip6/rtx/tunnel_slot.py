"""Which ``tunnel select N`` this deploy may own on a router, read from its running config.

On the IPoE lines this tool is for, tunnel 1 is very often the line the home already depends
on: the ISP's MAP-E (v6plus, OCN) or DS-Lite tunnel, or a VPN. So a tunnel number is taken only
when it is *free* (no ``tunnel select N`` block, no line anywhere naming the tunnel) or *ours*
(a block holding nothing but the lines this deploy owns, an ipip tunnel to this VPS or not yet
any endpoint). Anything else is refused before a line is sent, naming what is there; taking it
over needs ``rtx_tunnel_takeover: True`` and an explicit ``rtx_tunnel_number``, and then every
foreign line of the block goes.

Without ``rtx_tunnel_number`` the number is chosen on every run from the router's own config:
the lowest tunnel that is ours, else the lowest free one. The router's config is the record:
once the first run has put the tunnel to this VPS there, later runs find it again, whatever
tunnels are added around it.

Pure: the operation calls :func:`choose_tunnel` on the running config it has read.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ipip6.rtx.config import (
    ConfigLine,
    RouterConfig,
    is_owned_tunnel_key,
    line_key,
    normalise_line,
    redact_line,
)

# How many tunnel interfaces a model has (Yamaha's spec sheets); other models: not checked here
# (the router's own `Parameter out of range` stops the first line, before anything changed).
MODEL_TUNNEL_LIMITS = {
    "RTX810": 6,
    "RTX830": 20,
    "RTX1200": 100,
    "RTX1210": 100,
    "RTX1220": 100,
    "RTX1300": 100,
    "RTX3500": 1000,
    "RTX5000": 3000,
}
_SEARCH_LIMIT = 3000  # the CLI's own range for tunnel numbers

# A tunnel named outside its block: `gateway tunnel 1`, `tunnel enable 1` in a schedule,
# `bridge member bridge1 lan1 tunnel1`, `pp bind tunnel1-tunnel3` (a range).
_SPACED = re.compile(r"(?<![\w-])tunnel (?:(?:enable|disable) )?(\d+)(?:-(\d+))?(?![\w.])")
_JOINED = re.compile(r"(?<![\w-])tunnel(\d+)(?:-tunnel(\d+))?(?![\w.])")


class TunnelRefused(Exception):
    """The tunnel number wanted is not free and not this deploy's (the message says why)."""


@dataclass(frozen=True)
class TunnelUse:
    """What a router's config holds for one tunnel number."""

    number: int
    block: tuple[str, ...]
    """The lines of its ``tunnel select N`` block (empty: no block)."""
    foreign: tuple[str, ...]
    """The block's lines this deploy would not write (another encapsulation or endpoint…)."""
    references: tuple[str, ...]
    """Lines outside the block that name the tunnel."""
    has_block: bool

    @property
    def free(self) -> bool:
        return not self.has_block and not self.references

    @property
    def ours(self) -> bool:
        return self.has_block and not self.foreign

    def describe(self) -> str:
        """What is there, for a message (secrets hidden)."""
        parts = []
        if self.foreign:
            parts.append(
                f"tunnel select {self.number} holds "
                + "; ".join(redact_line(line) for line in self.foreign)
            )
        if self.references:
            parts.append(
                f"tunnel {self.number} is used by "
                + "; ".join(redact_line(line) for line in self.references)
            )
        return ", and ".join(parts)


def named_tunnels(text: str) -> set[int]:
    """The tunnel numbers a config line names (``ipsec tunnel N`` is an IPsec policy id)."""
    text = " ".join(text.split())
    if text.startswith("ipsec tunnel ") or text.startswith("tunnel select "):
        return set()
    found: set[int] = set()
    if text.startswith("tunnel template "):
        # `tunnel template 2-10 12`: the tunnels that copy this block's settings.
        for token in text.split()[2:]:
            first, _, last = token.partition("-")
            if first.isdigit() and (not last or last.isdigit()):
                found.update(range(int(first), min(int(last or first), _SEARCH_LIMIT) + 1))
        return found
    for pattern in (_SPACED, _JOINED):
        for match in pattern.finditer(text):
            first = int(match[1])
            last = int(match[2]) if match[2] else first
            found.update(range(first, min(last, _SEARCH_LIMIT) + 1))
    return found


def _select_number(line: ConfigLine) -> int | None:
    words = line.text.split()
    if words[:2] == ["tunnel", "select"] and len(words) == 3 and words[2].isdigit():
        return int(words[2])
    return None


def _lines_of(line: ConfigLine) -> list[str]:
    out = [line.text]
    for child in line.children:
        out.extend(_lines_of(child))
    return out


def _references(config: RouterConfig, owned_keys: tuple[str, ...]) -> dict[int, list[str]]:
    """{tunnel number: the lines outside its own block that name it}."""
    found: dict[int, list[str]] = {}
    for line in config.lines:
        own = _select_number(line)
        if own is None and line_key(line.text) in owned_keys:
            continue
        texts = [text for child in line.children for text in _lines_of(child)]
        if own is None:
            texts.insert(0, line.text)
        for text in texts:
            for number in named_tunnels(text) - {own}:
                found.setdefault(number, []).append(text)
    return found


def _ours(line: str, number: int, vps_ipv6: ipaddress.IPv6Address) -> bool:
    """Whether a line of the block is one this deploy writes (for this VPS): an owned head
    (:func:`~ipip6.rtx.config.is_owned_tunnel_key`) with a value this deploy would write, or
    one it replaces anyway (MTU, MSS, a local address the router picks itself)."""
    text = normalise_line(line)
    key = line_key(text)
    if key == "tunnel encapsulation":
        return text == "tunnel encapsulation ipip"
    if key == "tunnel endpoint address":
        return text.split()[-1] == vps_ipv6.compressed
    if key.startswith("tunnel endpoint") and key != "tunnel endpoint local address":
        return False  # a name endpoint (DS-Lite's AFTR, another service's FQDN)
    return is_owned_tunnel_key(key, number)


def _use(
    config: RouterConfig,
    number: int,
    vps_ipv6: ipaddress.IPv6Address,
    references: dict[int, list[str]],
) -> TunnelUse:
    block = config.block(f"tunnel select {number}")
    children = tuple(child.text for child in block.children) if block is not None else ()
    foreign = tuple(line for line in children if not _ours(line, number, vps_ipv6))
    return TunnelUse(
        number, children, foreign, tuple(references.get(number, ())), block is not None
    )


def tunnel_use(
    config: RouterConfig,
    number: int,
    vps_ipv6: ipaddress.IPv6Address,
    owned_keys: tuple[str, ...] = (),
) -> TunnelUse:
    """What ``config`` holds for tunnel ``number``. ``owned_keys``: top-level lines this deploy
    owns (e.g. ``ip route default``), not counted as references."""
    return _use(config, number, vps_ipv6, _references(config, owned_keys))


def tunnel_limit(model: str | None) -> int | None:
    """The number of tunnel interfaces of ``model`` (from the config's header), if known."""
    if model is None:
        return None
    return MODEL_TUNNEL_LIMITS.get(model.upper())


def choose_tunnel(
    config: RouterConfig,
    *,
    wanted: int | None,
    vps_ipv6: ipaddress.IPv6Address,
    takeover: bool = False,
    owned_keys: tuple[str, ...] = (),
    exclude: tuple[int, ...] = (),
    key: str = "rtx_tunnel_number",
) -> int:
    """The tunnel number to own: ``wanted`` when it is free, ours, or ``takeover`` is set;
    without ``wanted``, the lowest tunnel that is ours, else the lowest free one, never one of
    ``exclude`` (the router's other tunnel of this deploy). ``key``: the data key that names
    it, for messages. Raises :class:`TunnelRefused` naming what is in the way."""
    limit = tunnel_limit(config.model)
    references = _references(config, owned_keys)
    if wanted is not None:
        if limit is not None and wanted > limit:
            raise TunnelRefused(
                f"{key} {wanted} is beyond this {config.model}'s {limit} tunnel "
                f"interfaces (expected 1 to {limit}). Nothing was sent"
            )
        use = _use(config, wanted, vps_ipv6, references)
        if use.free or use.ours or takeover:
            return wanted
        raise TunnelRefused(
            f"{key} {wanted} is not free: {use.describe()}. Nothing was sent. "
            "Leave rtx_tunnel_number out to use the lowest free tunnel, choose a free one, or "
            "set rtx_tunnel_takeover: True to replace that tunnel (its lines above are removed)"
        )
    blocks = sorted(number for line in config.lines if (number := _select_number(line)) is not None)
    for number in blocks:
        if number in exclude or (limit is not None and number > limit):
            continue
        if _use(config, number, vps_ipv6, references).ours:
            return number
    taken = set(blocks) | set(references) | set(exclude)
    top = limit or _SEARCH_LIMIT
    free = next((number for number in range(1, top + 1) if number not in taken), None)
    if free is None:
        raise TunnelRefused(
            f"no free tunnel number on this router (1 to {top} are all in use); set "
            "rtx_tunnel_number and rtx_tunnel_takeover: True to replace one. Nothing was sent"
        )
    return free
