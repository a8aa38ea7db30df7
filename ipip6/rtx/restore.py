"""What a restore puts back: the owned lines as a backup holds them, as a candidate.

A restore is a deploy whose candidate comes from a backup (:mod:`ipip6.rtx.backup`) instead of
the settings: the lines this deploy owns on the router now (the tunnel blocks' owned heads, the
default route, the filters and keepalives, as :func:`ipip6.rtx.decide.owned_section` says from
the settings and the running config) take the values the backup has for them, and a line the
backup does not have goes. Nothing else of the backup is sent: the router's other lines are
the owner's, not this deploy's. The candidate then goes through the same commit (confirm or
roll back) and save (checked on the router and by traffic) as a deploy's.

Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from ipip6.rtx.backup import other_router
from ipip6.rtx.config import (
    OwnedSection,
    RouterConfig,
    TunnelBlock,
    line_key,
    owned_lines,
)

#: How a backup writes a value it hid (:func:`ipip6.rtx.config.redact_line`).
HIDDEN = "<hidden>"


class RestoreRefused(Exception):
    """The backup cannot be restored on this router (the message says why; nothing sent)."""


def restored_section(scope: OwnedSection, backup: RouterConfig, source: str) -> OwnedSection:
    """``scope`` (the owned section the settings give on this router) with the values of
    ``backup``: its lines for each owned key, none where it has none. ``source`` names the
    backup in messages. Raises :class:`RestoreRefused` when a line to restore was hidden in the
    backup (its value is not there to send)."""
    globals_, blocks = owned_lines(backup, scope)
    for line in [*globals_, *(x for _, lines in blocks for x in lines or ())]:
        if HIDDEN in line:
            raise RestoreRefused(
                f"rtx_restore_from {source!r}: the line {line.strip()!r} was hidden in the "
                "backup, so its value cannot be restored. Nothing was sent"
            )
    first, *rest = blocks
    backup_block = None
    if scope.backup is not None and rest:
        number, lines = rest[0]
        backup_block = TunnelBlock(number, tuple(lines or ()), scope.backup.takeover)
    present = {line_key(line) for line in globals_}
    retired = tuple(k for k in scope.owned_global_keys if k not in present)
    return replace(
        scope,
        tunnel_lines=tuple(first[1] or ()),
        global_lines=tuple(globals_),
        retired_keys=retired,
        backup=backup_block,
    )


def check_same_router(backup: RouterConfig, running: RouterConfig, source: str) -> None:
    """Raises :class:`RestoreRefused` unless ``backup`` is of the router whose running config
    is ``running`` (by the MAC addresses and model of the headers)."""
    why = other_router(backup, running)
    if why is not None:
        raise RestoreRefused(f"rtx_restore_from {source!r}: {why}. Nothing was sent")


def keeps_tunnel_to(desired: OwnedSection | None, vps_ipv6: ipaddress.IPv6Address) -> bool:
    """Whether restored lines keep a tunnel, enabled, to ``vps_ipv6`` (so that the VPS there
    can check the restore by traffic)."""
    for block in desired.enabled_blocks if desired is not None else ():
        for line in block.lines:
            words = line.split()
            if words[:3] != ["tunnel", "endpoint", "address"] or len(words) < 4:
                continue
            try:
                if ipaddress.IPv6Address(words[-1]) == vps_ipv6:
                    return True
            except ValueError:
                continue
    return False
