"""What each router step will do, decided from what was read: refuse, nothing, or the change.

The operations (:mod:`operations.rtx`) read the running config, the saved one and the config
file number, hand them here, and act on the answer: log a refusal (and fail the host when
executing), ``host.noop``, or print the diff and yield the driver's commit or save. Every rule
about *whether* to change or save the router lives here or in :mod:`ipip6.rtx.commit`, none in
the operations.

Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from ipip6.rtx import commit as gate
from ipip6.rtx.backup import BackupFile
from ipip6.rtx.config import (
    EMBEDDED_MARK,
    OwnedSection,
    RouterConfig,
    compare,
    desired_lines,
    keepalive_key,
    line_diff,
    owned_view,
    redact_line,
    unowned_view,
)
from ipip6.rtx.fallback import (
    FallbackChoice,
    FallbackRefused,
    choose_fallback,
    stale_keepalives,
)
from ipip6.rtx.restore import RestoreRefused, check_same_router, restored_section
from ipip6.rtx.tunnel_slot import TunnelRefused, choose_tunnel, tunnel_use
from ipip6.settings import RouterSettings
from ipip6.tunnel_ping import TunnelPing, choose_address


@dataclass(frozen=True)
class Step:
    """``refusal``: fail the host with this, send nothing. ``noop``: nothing to do (why).
    Otherwise the change: ``plan`` (tunnel) or a save of ``desired``."""

    refusal: str | None = None
    noop: str | None = None
    desired: OwnedSection | None = None
    plan: gate.Plan | None = None
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def _unknown_file(step: str) -> Step:
    return Step(
        refusal=(
            "cannot tell which config file the router booted from (show environment printed "
            f"no 'Config. file' this driver can read), so `save` and `show config N` could go "
            f"to different files: {step}"
        )
    )


def _unsaved_elsewhere(outside: list[str], config_file: int, what: str) -> str:
    return (
        "the router has unsaved changes outside the lines this deploy owns (show config vs "
        f"show config {config_file}): {'; '.join(outside)}. Saving would write them too: "
        f"`save` them or drop them (`restart`) first. {what}"
    )


def _owned_keys(settings: RouterSettings) -> tuple[str, ...]:
    # The top-level lines owned do not depend on the tunnel numbers, only on the settings.
    backup = 2 if settings.rtx_backup_tunnel is not None else None
    return desired_lines(settings, 1, backup_number=backup).global_keys


def owned_section(settings: RouterSettings, running: RouterConfig) -> OwnedSection:
    """The owned lines on this router: the settings with the tunnel numbers and the fallback
    chosen from the running config. Raises :class:`~ipip6.rtx.tunnel_slot.TunnelRefused` or
    :class:`~ipip6.rtx.fallback.FallbackRefused`."""
    return _owned_section(settings, running)[0]


def _owned_section(
    settings: RouterSettings, running: RouterConfig
) -> tuple[OwnedSection, FallbackChoice]:
    owned_keys = _owned_keys(settings)
    backup = settings.backup_site()
    named = backup.rtx_tunnel_number if backup is not None else None
    number = choose_tunnel(
        running,
        wanted=settings.rtx_tunnel_number,
        vps_ipv6=settings.vps_ipv6,
        takeover=settings.rtx_tunnel_takeover,
        owned_keys=owned_keys,
        exclude=(named,) if named is not None else (),  # the backup's, named in the data
    )
    backup_number = None
    if backup is not None:
        backup_number = choose_tunnel(
            running,
            wanted=backup.rtx_tunnel_number,
            vps_ipv6=backup.vps_ipv6,
            owned_keys=owned_keys,
            exclude=(number,),
            key="rtx_backup_tunnel.rtx_tunnel_number",
        )
        if backup_number == number:
            raise TunnelRefused(
                f"rtx_backup_tunnel.rtx_tunnel_number {number}: the tunnel to "
                f"{settings.vps_ipv6} is that number on this router; expected another. "
                "Nothing was sent"
            )
    fallback = choose_fallback(settings, running, number, backup_number)
    return desired_lines(settings, number, fallback, backup_number), fallback


def _ipv4_in(token: str) -> ipaddress.IPv4Network | None:
    """An IPv4 address or network a config word names (``A``, ``A/M``, ``key=A``), or None."""
    text = token.rpartition("=")[2]
    try:
        return ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        return None


def _links(settings: RouterSettings) -> str:
    """The inner link networks of this router's tunnels, as a message names them."""
    backup = settings.backup_site()
    first = str(settings.tunnel_inner_network)
    if backup is None:
        return first
    return f"{first} (rtx_backup_tunnel: {backup.tunnel_inner_network})"


def inner_in_use(
    settings: RouterSettings, running: RouterConfig, desired: OwnedSection
) -> list[str]:
    """Lines of the router that this deploy does not own and that use an address of the
    tunnel's inner link: another tunnel's `ip tunnel address` (an AWS or Azure VPN takes
    169.254.x.x/30 links too), a LAN, a route, a filter. Two links in one network break both."""
    links = [s.inner.network for s in (settings, settings.backup_site()) if s and s.inner]
    found = []
    for line in unowned_view(running, desired) if links else ():
        if line.startswith(EMBEDDED_MARK):
            continue
        for token in line.split():
            net = _ipv4_in(token)
            if net is not None and any(net.overlaps(inner) for inner in links):
                found.append(redact_line(line.strip()))
                break
    return found


def with_retired(desired: OwnedSection, numbers: tuple[int, ...]) -> OwnedSection:
    """``desired`` owning these ``ip keepalive`` numbers too, as lines to remove."""
    keys = {*desired.retired_keys, *(keepalive_key(n) for n in numbers)}
    keys -= set(desired.global_keys)
    return replace(desired, retired_keys=tuple(sorted(keys)))


def tunnel_step(
    settings: RouterSettings,
    running: RouterConfig,
    saved: RouterConfig | None,
    config_file: int | None,
) -> Step:
    """The ``tunnel`` step: the candidate, or why there is none."""
    try:
        desired, fallback = _owned_section(settings, running)
    except (TunnelRefused, FallbackRefused) as exc:
        return Step(refusal=str(exc))
    if config_file is None:
        return _unknown_file("nothing was changed")
    if saved is not None:  # a keepalive an interrupted run removed, still in the saved config
        stale = stale_keepalives(settings, saved, desired.tunnel_number, desired.keepalive_numbers)
        desired = with_retired(desired, stale)
    plan = gate.Plan.make(running, desired)
    notes = (fallback.note,) if fallback.note else ()
    clash = inner_in_use(settings, running, desired)
    if clash:
        return Step(
            refusal=(
                f"tunnel_inner_network {_links(settings)}: the router already uses it: "
                f"{'; '.join(clash)}. Choose another (e.g. 169.254.101.0/30). Nothing was sent"
            )
        )
    warnings = []
    if desired.takeover:
        use = tunnel_use(running, desired.tunnel_number, settings.vps_ipv6, desired.global_keys)
        if use.foreign:
            warnings.append(
                f"rtx_tunnel_takeover: replacing tunnel {desired.tunnel_number}; its lines "
                "this deploy does not write are removed: "
                + "; ".join(redact_line(line) for line in use.foreign)
            )
        if use.references:
            warnings.append(
                f"tunnel {desired.tunnel_number} is also used by (left as they are): "
                + "; ".join(redact_line(line) for line in use.references)
            )
    if saved is not None:
        outside = gate.unsaved_outside(running, saved, desired)
        if outside:
            return Step(
                refusal=_unsaved_elsewhere(outside, config_file, "Nothing was changed"),
                desired=desired,
            )
    if not plan.delta:
        return Step(
            noop=_configured(settings, desired),
            desired=desired,
            warnings=tuple(warnings),
        )
    return Step(desired=desired, plan=plan, warnings=tuple(warnings), notes=notes)


def restore_step(
    settings: RouterSettings,
    running: RouterConfig,
    saved: RouterConfig | None,
    config_file: int | None,
    restore: BackupFile,
) -> Step:
    """The ``restore`` step: the owned lines as ``restore`` holds them, as a candidate (or why
    not). The same rules as :func:`tunnel_step` but for where the values come from."""
    try:
        check_same_router(restore.config, running, restore.path)
        desired = restored_section(owned_section(settings, running), restore.config, restore.path)
    except (TunnelRefused, FallbackRefused, RestoreRefused) as exc:
        return Step(refusal=str(exc))
    if config_file is None:
        return _unknown_file("nothing was changed")
    if saved is not None:
        outside = gate.unsaved_outside(running, saved, desired)
        if outside:
            return Step(
                refusal=_unsaved_elsewhere(outside, config_file, "Nothing was changed"),
                desired=desired,
            )
    plan = gate.Plan.make(running, desired)
    if not plan.delta:
        return Step(
            noop=f"the lines this deploy owns are already as in {restore.path}", desired=desired
        )
    warnings = []
    if not desired.enabled_blocks:
        warnings.append(
            f"{restore.path} has no tunnel of this deploy's enabled: the router's tunnel "
            f"{desired.tunnel_number} goes, and the save is checked on the router only"
        )
    return Step(desired=desired, plan=plan, warnings=tuple(warnings))


def _configured(settings: RouterSettings, desired: OwnedSection) -> str:
    text = f"tunnel {desired.tunnel_number} to {settings.vps_ipv6}"
    backup = settings.backup_site()
    if desired.backup is not None and backup is not None:
        text += f" and tunnel {desired.backup.number} to {backup.vps_ipv6} (backup)"
    return f"{text} {'are' if desired.backup else 'is'} already configured"


def save_step(
    settings: RouterSettings | None,
    running: RouterConfig,
    saved: RouterConfig | None,
    config_file: int | None,
    *,
    pending: gate.PendingCommit | None,
    executing: bool,
    restore: BackupFile | None = None,
) -> Step:
    """The ``save`` step: whether the flash needs writing, and of which owned lines.
    ``restore``: after :func:`restore_step`, the owned lines are the backup's."""
    desired = None
    if settings is not None and restore is not None:
        if pending is not None:  # what the restore committed in this run
            desired = pending.plan.desired
        else:  # a dry run (or a restore that was already in place): as the restore decides
            step = restore_step(settings, running, saved, config_file, restore)
            if step.refusal is not None:
                refusal = step.refusal.replace("Nothing was changed", "Not saved")
                return Step(refusal=refusal.replace("Nothing was sent", "Not saved"))
            desired = step.desired
    elif settings is not None:
        try:
            desired = owned_section(settings, running)
        except (TunnelRefused, FallbackRefused) as exc:
            return Step(refusal=str(exc).replace("Nothing was sent", "Not saved"))
    if desired is not None and saved is not None and restore is None:
        # What the saved config holds of this deploy's and the running one no longer does
        # (a keepalive just removed) is this deploy's too: it goes with the save.
        stale = stale_keepalives(settings, saved, desired.tunnel_number, desired.keepalive_numbers)
        desired = with_retired(desired, stale)
    if desired is None and pending is not None:
        desired = pending.plan.desired
    if config_file is None:
        return _unknown_file("not saved")
    if saved is None:
        will_change = desired is not None and bool(compare(running, desired))
        if pending is None and not will_change and settings is not None:
            return Step(
                noop=(
                    f"cannot read the saved config (show config {config_file}): saving only "
                    "after a change"
                )
            )
        return Step(desired=desired)
    scope = desired or gate.WHOLE_CONFIG
    if settings is not None:
        outside = gate.unsaved_outside(running, saved, scope)
        if outside:
            return Step(refusal=_unsaved_elsewhere(outside, config_file, "Not saved"))
    behind = not gate.saved_is_current(running, saved, scope)
    # In a dry run the tunnel step has not run yet: a delta now means a save then.
    coming = settings is not None and not executing and bool(compare(running, scope))
    if not behind and not coming:
        return Step(noop="the saved config is up to date")
    notes = []
    if behind and settings is not None and pending is None:
        before, after = owned_view(saved, scope), owned_view(running, scope)
        if before != after:
            notes.append(
                f"show config {config_file} lags behind the running config: "
                + "; ".join(line_diff(before, after))
            )
    return Step(desired=desired, notes=tuple(notes))


def tunnel_ping(
    settings: RouterSettings,
    running: RouterConfig,
    vps_host: str | None,
    tunnel_name: str | None,
    *,
    backup: bool = False,
) -> tuple[TunnelPing | None, str | None, str | None]:
    """(the check by traffic to make before saving, why saving is refused, a warning). No
    check when the data turned it off, or when the VPS is managed elsewhere (with a warning
    that says so); a refusal when there is nothing to ping and the data did not turn it off.
    ``backup``: ``settings`` is the router's backup site (:meth:`RouterSettings.backup_site`)."""
    if settings.rtx_verify_ping is False:
        return None, None, None
    if vps_host is None or tunnel_name is None:
        key, vps = (
            ("rtx_backup_tunnel.rtx_vps_managed_elsewhere", "the backup VPS")
            if backup
            else ("rtx_vps_managed_elsewhere", "the VPS")
        )
        why = (
            f"{key}: {vps} is not in this inventory"
            if settings.rtx_vps_managed_elsewhere
            else f"no VPS host with vps_ipv6 {settings.vps_ipv6} was given"
        )
        return None, None, f"{why}: saving without a check by traffic (only the router's own)"
    inner = settings.inner.router.ip if settings.inner is not None else None
    address = choose_address(settings.rtx_verify_ping, running, settings.home_networks, inner)
    if address is None:
        networks = ", ".join(map(str, settings.home_networks))
        return (
            None,
            (
                f"the router has no LAN address inside home_networks ({networks}) for the VPS "
                "to ping, so the change cannot be verified by traffic: not saved. Set "
                "rtx_verify_ping to a home address that answers ping (or to False to save "
                "without a check by traffic)"
            ),
            None,
        )
    return TunnelPing(vps=vps_host, tunnel_name=tunnel_name, address=address), None, None
