"""pyinfra operations for the home end: a YAMAHA RTX router behind the ``@rtx`` connector.

Confirm or roll back (NAPALM's steps, with ``save`` a step of its own as in pyinfra-vyos):

- :func:`tunnel` reads the running config, compares the lines this deploy owns with the
  settings (the *candidate*), prints the diff (``--diff``) and *commits* it without saving:
  line by line, then *confirms* it on the router (``show config`` read back: the owned section
  must equal the desired one, nothing else may have moved; more checks can be plugged in). An
  error line, a failed check or a lost connection *rolls back* the owned lines (on a fresh
  session if needed) and fails the host; nothing is saved.
- :func:`save` writes the running config to flash only when the saved config (``show config
  N``) differs from it, reads the saved config back, and restores what the router had if
  saving fails. Before that it asks the router whether the tunnel is up (``show status tunnel
  N``) and, with ``verify_from`` (the VPS host), *verifies by traffic*: the VPS pings a home
  address through the tunnel (:mod:`ipip6.tunnel_ping`); either failing rolls back and nothing
  is saved. ``deploy.py`` runs the router's operations after the VPS's, so both ends are in
  place when the packets go. Unsaved changes to lines the deploy does not own block both steps:
  ``save`` would write them too.

These operations only read facts, print the diff and yield: whether to change or save is
decided in :mod:`ipip6.rtx.decide`, how in :mod:`ipip6.rtx.commit`, by the router's
:class:`~ipip6.rtx.driver.RTXDriver`; administrator mode, paging and the save question are the
CLI session's job.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Sequence
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import FunctionCommand, State, StringCommand, operation
from pyinfra.api.host import Host

from ipip6.rtx import commit as gate
from ipip6.rtx import decide
from ipip6.rtx.backup import BackupError, resolve
from ipip6.rtx.config import RouterConfig, redact_line
from ipip6.rtx.connector import driver_of
from ipip6.rtx.facts import RunningConfig, SavedConfig
from ipip6.rtx.restore import keeps_tunnel_to
from ipip6.settings import DEFAULT_BACKUP_DIR, RouterSettings
from ipip6.tunnel_ping import PING_ATTEMPTS, PING_PAUSE, TunnelPing, parse_ping
from operations.diff import show_diff

_LEVELS = {"info": logger.info, "warning": logger.warning, "error": logger.error}


def _report(host_, result: gate.Result) -> bool:
    for level, text in result.messages:
        host_.log(text, _LEVELS[level])
    return result.ok


def _read_saved() -> tuple[int | None, RouterConfig | None]:
    """(config file number or None when unknown, saved config or None when unreadable)."""
    number = driver_of(host).config_file()
    if number is None:
        return None, None
    return number, host.get_fact(SavedConfig, number=number, _ignore_errors=True)


def _refuse(state, host, message: str) -> bool:  # noqa: ARG001 - pyinfra passes both by name
    """Fail the host with ``message``; roll back a change this run committed but not saved."""
    result = driver_of(host).rollback(message)
    if result is not None:
        return _report(host, result)
    host.log(message, logger.error)
    return False


def _yield_refusal(message: str) -> Generator[FunctionCommand, None, None]:
    if not host.state.is_executing:
        host.log(message, logger.warning)
    yield FunctionCommand(_refuse, (message,), {})


def _failed_in_this_run(state: State, host_name: str) -> bool:
    return state.inventory.get_host(host_name) in state.failed_hosts


def backup_folder(settings: RouterSettings | None) -> Path:
    """Where this router's backups go: ``rtx_backup_dir`` from the directory pyinfra runs in."""
    folder = settings.rtx_backup_dir if settings is not None else DEFAULT_BACKUP_DIR
    return resolve(folder, os.getcwd())


def _backed_up(host_, folder: Path) -> bool:
    """Before this run's first change to the router: its running and saved config to
    ``folder``. False (and said why) when that fails: then nothing may be sent."""
    try:
        backup = driver_of(host_).take_backup(folder)
    except BackupError as exc:
        host_.log(f"{exc}: nothing was sent to the router", logger.error)
        return False
    if backup is not None:
        host_.log(backup.describe(), logger.info)
    return True


# --------------------------------------------------------------------------------------------
# tunnel: compare → commit → confirm (or roll back)


# pyinfra passes state and host to a callback only when its parameters carry these names.
def _commit(
    state,
    host,
    plan: gate.Plan,
    checks: tuple[gate.Check, ...],
    vps_names: tuple[str, ...],
    backup_to: Path,
) -> bool:
    for vps_name in vps_names:
        if _failed_in_this_run(state, vps_name):
            # Its ping could not confirm the change: better not to make it.
            host.log(
                f"{vps_name} failed earlier in this run: nothing was changed on the router",
                logger.error,
            )
            return False
    if not _backed_up(host, backup_to):
        return False
    return _report(host, driver_of(host).commit(plan, checks))


@operation()
def tunnel(
    settings: RouterSettings,
    checks: Sequence[gate.Check] | None = None,
    verify_from: Host | None = None,
    backup_from: Host | None = None,
) -> Generator[FunctionCommand, None, None]:
    """
    Configure the router's end of the ipip6 tunnel and, optionally, its default route and an
    IPv6 filter letting protocol 4 from the VPS in; confirm it; roll back if it does not hold.

    + settings: the router's validated :class:`~ipip6.settings.RouterSettings`
    + checks: confirmation steps run after the delta is applied (default
      :data:`ipip6.rtx.commit.DEFAULT_CHECKS`: the owned section read back equals the desired
      one and no other line moved); each takes a :class:`~ipip6.rtx.commit.CheckContext` and
      returns ``None`` or why it failed.
    + verify_from: the VPS host that will verify the change by traffic (see :func:`save`): if
      it failed earlier in this run, nothing is sent and the host fails.
    + backup_from: the backup VPS host (``rtx_backup_tunnel``), likewise.

    Owned lines (and nothing else): under ``tunnel select N`` the encapsulation, endpoint,
    MTU, TCP MSS limit and ``tunnel enable N``; ``ip route default`` if
    ``rtx_default_route``; ``ipv6 filter F`` if ``rtx_ipv6_filter_number``; the keepalives
    of the fallback; with ``rtx_backup_tunnel`` a second tunnel block, to the backup VPS. N is
    ``rtx_tunnel_number``, or the tunnel to this VPS already there, or the lowest free one; a
    tunnel that holds or is used by anything else is refused before anything is sent (unless
    ``rtx_tunnel_takeover``). Only differing lines are sent, nothing is saved (call
    :func:`save`). On an error line, a failed check, a lost connection or any other error the
    owned lines are set back to what they were before (on a fresh SSH session when the old one
    died), read back, and the host fails. A router with unsaved changes to lines this deploy
    does not own is left alone (the host fails, nothing sent).

    **Example:**

    .. code:: python

        from ipip6.tunnels import TunnelInventory
        from operations import rtx

        settings = TunnelInventory.of(state).router_settings(host.name)
        rtx.tunnel(name="Tunnel to the VPS", settings=settings)
        rtx.save(name="Save the router config", settings=settings)
    """
    running = host.get_fact(RunningConfig)
    if running is None:
        # pyinfra has already failed this host and logged why; raising here would abort the
        # run for every other host too.
        host.log("could not read the running config (show config): not changing it", logger.error)
        return
    config_file, saved = _read_saved()
    step = decide.tunnel_step(settings, running, saved, config_file)
    for warning in step.warnings:
        host.log(warning, logger.warning)
    if step.refusal is not None:
        yield from _yield_refusal(step.refusal)
        return
    if step.noop is not None:
        host.noop(step.noop)
        return
    assert step.plan is not None
    for note in step.notes:
        host.log(note, logger.info)
    yield from _yield_commit(step.plan, checks, settings, verify_from, backup_from)


def _yield_commit(
    plan: gate.Plan,
    checks: Sequence[gate.Check] | None,
    settings: RouterSettings,
    verify_from: Host | None,
    backup_from: Host | None,
) -> Generator[FunctionCommand, None, None]:
    delta = plan.delta
    show_diff(
        "Will change the router's tunnel section:",
        [redact_line(line) for line in delta.current],
        [redact_line(line) for line in delta.wanted],
    )
    vps_names = tuple(h.name for h in (verify_from, backup_from) if h is not None)
    checks_ = tuple(checks or gate.DEFAULT_CHECKS)
    yield FunctionCommand(_commit, (plan, checks_, vps_names, backup_folder(settings)), {})


# --------------------------------------------------------------------------------------------
# restore: a backup's owned lines as the candidate, through the same commit


@operation()
def restore(
    settings: RouterSettings,
    checks: Sequence[gate.Check] | None = None,
    verify_from: Host | None = None,
    backup_from: Host | None = None,
) -> Generator[FunctionCommand, None, None]:
    """
    Put the lines this deploy owns back as a backup has them (``rtx_restore_from``), through
    the same commit as :func:`tunnel`: the router's config is backed up first, the delta sent
    without saving, read back and confirmed, rolled back if it does not hold. Call
    :func:`save` with ``restore=True`` after it.

    + settings: the router's :class:`~ipip6.settings.RouterSettings`, with ``rtx_restore_from``
      (read and checked with the data: a file that is no backup stops the run before any host
      is contacted). Which lines are owned comes from the settings (as for :func:`tunnel`),
      their values from the backup; a line the backup lacks is removed.
    + checks, verify_from, backup_from: as for :func:`tunnel`.

    A backup of another router (its header's MAC addresses) is refused with nothing sent, as
    are unsaved changes outside the owned lines.

    **Example:**

    .. code:: python

        rtx.restore(settings=settings, verify_from=vps_host)
        rtx.save(settings=settings, verify_from=vps_host, vps_tunnel_name="tun-home",
                 restore=True)
    """
    source = settings.rtx_restore_from
    if source is None:
        yield from _yield_refusal(
            "rtx_restore_from is not set for this router: which backup to restore is never "
            "guessed (e.g. --limit @rtx/NAME --data rtx_restore_from=backups/NAME/"
            "YYYYmmdd-HHMMSS-saved.txt). Nothing was sent"
        )
        return
    running = host.get_fact(RunningConfig)
    if running is None:
        host.log("could not read the running config (show config): not changing it", logger.error)
        return
    config_file, saved = _read_saved()
    step = decide.restore_step(settings, running, saved, config_file, source)
    for warning in step.warnings:
        host.log(warning, logger.warning)
    if step.refusal is not None:
        yield from _yield_refusal(step.refusal)
        return
    if step.noop is not None:
        host.noop(step.noop)
        return
    assert step.plan is not None
    yield from _yield_commit(step.plan, checks, settings, verify_from, backup_from)


# --------------------------------------------------------------------------------------------
# save: only when the saved config is behind, checked, rolled back if it fails


def _save(
    state,
    host,
    desired,
    running: RouterConfig | None,
    saved: RouterConfig | None,
    pings: tuple[TunnelPing, ...],
    check_tunnel: bool,
    backup_to: Path,
) -> bool:
    if not _backed_up(host, backup_to):  # taken by the commit already, if there was one
        return False
    verify = (lambda: _ping_all(state, pings)) if pings else None
    result = driver_of(host).save(desired, running, saved, verify, check_tunnel=check_tunnel)
    return _report(host, result)


def _ping_all(state: State, pings: tuple[TunnelPing, ...]) -> tuple[bool, str]:
    """Every tunnel checked by traffic (the first VPS's, then the backup's): all must answer."""
    seen = []
    for ping in pings:
        ok, text = _ping_from_vps(state, ping)
        seen.append(text)
        if not ok:
            return False, "; ".join(seen)
    return True, "; ".join(seen)


def _ping_from_vps(state: State, ping: TunnelPing) -> tuple[bool, str]:
    """Run ``ping`` on the VPS host (its own pyinfra connection): (replies came, what was seen)."""
    if _failed_in_this_run(state, ping.vps):
        return False, f"{ping.vps} failed earlier in this run, so the tunnel was not checked"
    vps = state.inventory.get_host(ping.vps)
    if not vps.connected:  # e.g. left out with --limit: this read-only check still needs it
        vps.connect(reason="to verify the tunnel", raise_exceptions=True)
    outcome = None
    for attempt in range(PING_ATTEMPTS):
        if attempt:
            time.sleep(PING_PAUSE)
        _, output = vps.run_shell_command(
            StringCommand(ping.command()),
            print_output=state.print_output,
            print_input=state.print_input,
        )
        outcome = parse_ping(output.stdout, output.stderr)
        if outcome.ok:
            return True, f"{ping.describe()}: {outcome.summary()}"
    tries = f" ({PING_ATTEMPTS} tries)" if PING_ATTEMPTS > 1 else ""
    return False, f"{ping.describe()}: {outcome.summary()}{tries}"


Prepared = tuple[decide.Step, RouterConfig, "RouterConfig | None", tuple[TunnelPing, ...]]


def _prepare_save(
    settings: RouterSettings | None,
    verify_from: Host | None,
    vps_tunnel_name: str | None,
    backup_from: Host | None = None,
    backup_tunnel_name: str | None = None,
    restore: bool = False,
) -> Prepared | str | None:
    """(the step, running, saved, the pings to make), or why not to save (str), or None when
    there is nothing to do (``host.noop`` said so)."""
    running = host.get_fact(RunningConfig, _ignore_errors=True)
    if running is None:
        return "could not read the running config (show config): not saved"
    config_file, saved = _read_saved()
    driver = driver_of(host)
    source = settings.rtx_restore_from if settings is not None and restore else None
    if restore and source is None:
        return "rtx_restore_from is not set for this router: not saved"
    step = decide.save_step(
        settings,
        running,
        saved,
        config_file,
        pending=driver.pending_commit,
        executing=host.state.is_executing,
        restore=source,
    )
    if step.refusal is not None:
        return step.refusal
    if step.noop is not None:
        host.noop(step.noop)
        return None
    if host.state.config.DIFF:
        for note in step.notes:
            host.log(note, logger.info)
    pings = []
    sites = [(settings, verify_from, vps_tunnel_name, False)] if settings is not None else []
    backup = settings.backup_site() if settings is not None else None
    if backup is not None:
        sites.append((backup, backup_from, backup_tunnel_name, True))
    for site, vps, tunnel_name, is_backup in sites:
        if source is not None and not keeps_tunnel_to(step.desired, site.vps_ipv6):
            host.log(
                f"{source} has no enabled tunnel to {site.vps_ipv6}: saving without a check "
                "by traffic through it",
                logger.warning,
            )
            continue
        ping, refusal, warning = decide.tunnel_ping(
            site, running, vps.name if vps else None, tunnel_name, backup=is_backup
        )
        if warning is not None:
            host.log(warning, logger.warning)
        if refusal is not None:
            return refusal
        if ping is not None:
            pings.append(ping)
            if host.state.config.DIFF:
                host.log(f"Before saving: {ping.describe()}", logger.info)
    return step, running, saved, tuple(pings)


@operation(is_idempotent=True)
def save(
    settings: RouterSettings | None = None,
    verify_from: Host | None = None,
    vps_tunnel_name: str | None = None,
    backup_from: Host | None = None,
    backup_tunnel_name: str | None = None,
    restore: bool = False,
) -> Generator[FunctionCommand, None, None]:
    """
    Write the running config to flash (``save``) when the saved config differs from it, then
    read the saved config back to check. Before that the router is asked whether the tunnel is
    up (``show status tunnel N``) and, with ``verify_from``, the tunnel is checked by traffic.

    + settings: the router's :class:`~ipip6.settings.RouterSettings`. With them, unsaved
      changes to lines the deploy does not own are refused (they would be saved too), and a dry
      run can tell that :func:`tunnel` will make a save necessary.
    + verify_from: the VPS host at the other end of the tunnel (with ``settings``). Before
      saving, it pings ``rtx_verify_ping`` (by default the router's own LAN address inside
      ``home_networks``) through its tunnel, three tries; without a reply nothing is saved and
      the owned lines go back to what they were before the run (or, for an unsaved change an
      earlier run left, to the saved config's). With nothing to ping (``auto`` and no LAN
      address inside ``home_networks``) nothing is saved either, unless the data turned the
      check off. Call it after the VPS's operations.
    + vps_tunnel_name: the name of the VPS's ip6tnl (the ping goes out of it only), from the
      VPS's settings.
    + backup_from, backup_tunnel_name: the same for the backup VPS (``rtx_backup_tunnel``):
      its tunnel is checked by traffic too, and both must answer before anything is saved.
    + restore: after :func:`restore`: the owned lines to save are the backup's
      (``rtx_restore_from``); a tunnel the backup does not keep enabled to its VPS is not
      checked by traffic (nor asked about), with a warning.

    The saved config is ``show config N``, N the file the router booted from (``show
    environment``). If the router cannot show it, ``save`` runs only after :func:`tunnel`
    changed something (or always, without ``settings``). The session puts back the console
    settings it changed for itself first, so they are never saved. If saving fails (an error
    line, a lost connection, a router that restarted), the change :func:`tunnel` committed in
    this run is rolled back and the host fails; once ``save`` was sent, the flash is looked at
    on a new connection and restored to the saved config from before the run unless it holds
    the checked change (see :func:`ipip6.rtx.commit.save`).

    **Example:**

    .. code:: python

        rtx.tunnel(settings=settings)
        # ... the VPS's operations ...
        rtx.save(
            settings=settings,
            verify_from=inventory.get_host("vps.example.net"),
            vps_tunnel_name="tun-home",
        )
    """
    # From here on a change this run committed may be running unsaved: whatever goes wrong
    # before the save is sent, it is rolled back (by _refuse), never left behind.
    try:
        prepared = _prepare_save(
            settings, verify_from, vps_tunnel_name, backup_from, backup_tunnel_name, restore
        )
    except Exception as exc:  # noqa: BLE001
        yield from _yield_refusal(
            f"could not prepare the save ({gate.describe_error(exc)}): not saved"
        )
        return
    if isinstance(prepared, str):
        yield from _yield_refusal(prepared)
        return
    if prepared is None:
        return
    step, running, saved, pings = prepared
    # The router's own view of the tunnel is asked whenever this deploy's lines are saved.
    # Without a saved config to compare with, nothing is read back after the save.
    check_tunnel = step.desired is not None
    running_then = running if saved is not None else None
    yield FunctionCommand(
        _save,
        (step.desired, running_then, saved, pings, check_tunnel, backup_folder(settings)),
        {},
    )
