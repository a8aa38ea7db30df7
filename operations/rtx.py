"""pyinfra operations for the home end: a YAMAHA RTX router behind the ``@rtx`` connector.

Confirm or roll back (NAPALM's steps, with ``save`` a step of its own as in pyinfra-vyos):

- :func:`tunnel` reads the running config, compares the lines this deploy owns with the
  settings (the *candidate*), prints the diff (``--diff``) and *commits* it without saving:
  line by line, then *confirms* it on the router (``show config`` read back: the owned section
  must equal the desired one, nothing else may have moved; more checks can be plugged in). An
  error line, a failed check or a lost connection *rolls back* the owned lines (on a fresh
  session if needed) and fails the host; nothing is saved.
- :func:`save` writes the running config to flash only when the saved config (``show config
  N``) differs from it, reads the saved config back, and rolls back this run's change if saving
  fails. Before that, with ``verify_from`` (the VPS host), it *verifies by traffic*: the VPS
  pings a home address through the tunnel (:mod:`ipip6.tunnel_ping`); no reply rolls back and
  nothing is saved. ``deploy.py`` runs the router's operations after the VPS's, so both ends
  are in place when the packets go. Unsaved changes to lines the deploy does not own block both
  steps: ``save`` would write them too.

All the logic is in :mod:`ipip6.rtx.commit`; administrator mode, paging and the save question
are the connector's job.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence

from pyinfra import host, logger
from pyinfra.api import FunctionCommand, State, StringCommand, operation
from pyinfra.api.host import Host
from pyinfra.api.output import format_text

from ipip6.rtx import commit as gate
from ipip6.rtx.config import (
    OwnedSection,
    RouterConfig,
    compare,
    desired_lines,
    line_diff,
    owned_view,
    redact_line,
)
from ipip6.rtx.facts import RunningConfig, SavedConfig
from ipip6.settings import RouterSettings
from ipip6.tunnel_ping import PING_ATTEMPTS, PING_PAUSE, TunnelPing, choose_address, parse_ping

_LEVELS = {"info": logger.info, "warning": logger.warning, "error": logger.error}


def _show_diff(title: str, diff: str) -> None:
    host.log(title, logger.info)
    for line in diff.splitlines():
        if line.startswith(("+++", "---", "@@")):
            logger.info("  %s", line)
        elif line.startswith("+"):
            logger.info("  %s", format_text(line, "green"))
        elif line.startswith("-"):
            logger.info("  %s", format_text(line, "red"))
        else:
            logger.info("  %s", line)
    logger.info("")


class _ConnectorRouter:
    """The ``@rtx`` connector as :class:`ipip6.rtx.commit.Router`, echoing like pyinfra does
    (``-vv`` the lines sent, ``-vvv`` the router's answers)."""

    def __init__(self, state, host_):
        self.state = state
        self.host = host_
        self.connector = host_.connector

    @property
    def pending_commit(self):
        return getattr(self.connector, "pending_commit", None)

    @pending_commit.setter
    def pending_commit(self, value) -> None:
        self.connector.pending_commit = value

    @property
    def alive(self) -> bool:
        return self.connector.alive

    def cli(self, line: str):
        # The gate sends reads, ``save`` and config lines (the delta, its rollback, ``tunnel
        # select none``): those change the running config only, so the saved config read
        # before them still holds (the connector keeps it, and save needs no second read).
        return self.connector.cli(
            line,
            print_input=self.state.print_input,
            print_output=self.state.print_output,
            config_line=line != "save",
        )

    def reconnect(self) -> None:
        self.connector.reconnect()


def _report(host_, result: gate.Result) -> bool:
    for level, text in result.messages:
        host_.log(text, _LEVELS[level])
    return result.ok


def _read_saved() -> tuple[int, RouterConfig | None]:
    """(config file number, saved config or None when the router cannot show it)."""
    number = host.connector.startup_config_file()
    saved = host.get_fact(SavedConfig, number=number, _ignore_errors=True)
    return number, saved


def _refuse(state, host, message: str) -> bool:  # noqa: ARG001 - pyinfra passes state, host
    """Fail the host with ``message``; roll back a change this run committed but not saved."""
    router = _ConnectorRouter(state, host)
    pending = router.pending_commit
    if pending is not None:
        return _report(host, gate.rollback(router, pending.plan, message))
    host.log(message, logger.error)
    return False


def _unsaved_elsewhere_message(outside: list[str], config_file: int) -> str:
    return (
        "the router has unsaved changes outside the lines this deploy owns (show config vs "
        f"show config {config_file}): {'; '.join(outside)}. Saving would write them too: "
        "`save` them or drop them (`restart`) first. Nothing was changed"
    )


# --------------------------------------------------------------------------------------------
# tunnel: compare → commit → confirm (or roll back)


def _failed_in_this_run(state: State, host_name: str) -> bool:
    return state.inventory.get_host(host_name) in state.failed_hosts


def _commit(
    state, host, plan: gate.Plan, checks: tuple[gate.Check, ...], vps_name: str | None
) -> bool:
    if vps_name is not None and _failed_in_this_run(state, vps_name):
        # Its ping could not confirm the change: better not to make it.
        host.log(
            f"{vps_name} failed earlier in this run: nothing was changed on the router",
            logger.error,
        )
        return False
    return _report(host, gate.commit(_ConnectorRouter(state, host), plan, checks))


@operation()
def tunnel(
    settings: RouterSettings,
    checks: Sequence[gate.Check] | None = None,
    verify_from: Host | None = None,
) -> Generator[FunctionCommand, None, None]:
    """
    Configure the router's end of the ipip6 tunnel and, optionally, its default route and an
    IPv6 filter letting protocol 4 from the VPS in; confirm it; roll back if it does not hold.

    + settings: the router's validated :class:`~ipip6.settings.RouterSettings`
    + checks: confirmation steps run after the delta is applied (default
      :data:`ipip6.rtx.commit.DEFAULT_CHECKS`: the owned section read back equals the desired
      one and no other line moved); each takes a :class:`~ipip6.rtx.commit.CheckContext` and
      returns ``None`` or why it failed. Add your own, e.g. one that asks the router for the
      tunnel's status.
    + verify_from: the VPS host that will verify the change by traffic (see :func:`save`): if
      it failed earlier in this run, nothing is sent and the host fails.

    Owned lines (and nothing else): under ``tunnel select N`` the encapsulation, endpoint,
    MTU, TCP MSS limit and ``tunnel enable N``; ``ip route default`` if
    ``rtx_default_route``; ``ipv6 filter F`` if ``rtx_ipv6_filter_number``. Only differing
    lines are sent, nothing is saved (call :func:`save`). On an error line, a failed check or a
    lost connection the owned lines are set back to what they were before (on a fresh SSH
    session when the old one died), read back, and the host fails. A router with unsaved
    changes to lines this deploy does not own is left alone (the host fails, nothing sent).

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

    desired = desired_lines(settings)
    plan = gate.Plan.make(running, desired)
    if plan.delta.foreign_lines:
        host.log(
            f"tunnel select {settings.rtx_tunnel_number} also holds lines this deploy does not "
            "manage (left as they are): "
            + "; ".join(redact_line(line) for line in plan.delta.foreign_lines),
            logger.warning,
        )

    config_file, saved = _read_saved()
    if saved is not None:
        outside = gate.unsaved_outside(running, saved, desired)
        if outside:
            message = _unsaved_elsewhere_message(outside, config_file)
            if not host.state.is_executing:
                host.log(message, logger.warning)
            yield FunctionCommand(_refuse, (message,), {})
            return

    if not plan.delta:
        host.noop(
            f"tunnel {settings.rtx_tunnel_number} to {settings.vps_ipv6} is already configured"
        )
        return

    if host.state.config.DIFF:
        _show_diff("Will change the router's tunnel section:", plan.delta.diff)
    vps_name = verify_from.name if verify_from is not None else None
    yield FunctionCommand(_commit, (plan, tuple(checks or gate.DEFAULT_CHECKS), vps_name), {})


# --------------------------------------------------------------------------------------------
# save: only when the saved config is behind, checked, rolled back if it fails


def _save(
    state,
    host,
    desired: OwnedSection | None,
    running: RouterConfig | None,
    saved: RouterConfig | None,
    config_file: int,
    ping: TunnelPing | None,
) -> bool:
    router = _ConnectorRouter(state, host)
    pending = router.pending_commit
    if desired is None and pending is not None:
        desired = pending.plan.desired
    verify = (lambda: _ping_from_vps(state, ping)) if ping is not None else None
    result = gate.save(
        router,
        desired or _WHOLE_CONFIG,
        running,
        config_file=config_file,
        saved=saved,
        verify=verify,
    )
    return _report(host, result)


# No settings and nothing committed in this run: no owned lines, the whole config counts.
_WHOLE_CONFIG = OwnedSection(tunnel_number=0, tunnel_lines=(), global_lines=())


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


def _tunnel_ping(
    settings: RouterSettings, running: RouterConfig, vps: Host | None, tunnel_name: str | None
) -> tuple[TunnelPing | None, str | None]:
    """(the check by traffic to make before saving, why saving is refused). No check and no
    refusal when the data turned the check off or the VPS is managed elsewhere (a warning
    says so); a refusal when there is nothing to ping: the data did not turn the check off."""
    if settings.rtx_verify_ping is False:
        return None, None
    if vps is None or tunnel_name is None:
        why = (
            "rtx_vps_managed_elsewhere: the VPS is not in this inventory"
            if settings.rtx_vps_managed_elsewhere
            else f"no VPS host with vps_ipv6 {settings.vps_ipv6} was given"
        )
        host.log(f"{why}: saving without a check by traffic", logger.warning)
        return None, None
    address = choose_address(settings.rtx_verify_ping, running, settings.home_networks)
    if address is None:
        return None, (
            "the router has no LAN address inside home_networks "
            f"({', '.join(map(str, settings.home_networks))}) for the VPS to ping, so the "
            "change cannot be verified by traffic: not saved. Set rtx_verify_ping to a home "
            "address that answers ping (or to False to save without a check by traffic)"
        )
    return TunnelPing(vps=vps.name, tunnel_name=tunnel_name, address=address), None


@operation(is_idempotent=True)
def save(
    settings: RouterSettings | None = None,
    verify_from: Host | None = None,
    vps_tunnel_name: str | None = None,
) -> Generator[FunctionCommand, None, None]:
    """
    Write the running config to flash (``save``) when the saved config differs from it, then
    read the saved config back to check; with ``verify_from``, check the tunnel by traffic
    first.

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

    The saved config is ``show config N``, N the file the router booted from (``show
    environment``). If the router cannot show it, ``save`` runs only after :func:`tunnel`
    changed something (or always, without ``settings``). The connector puts back the console
    settings it changed for its own session first, so they are never saved. If saving fails
    (an error line, a lost connection, a router that restarted), the change :func:`tunnel`
    committed in this run is rolled back and the host fails.

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
    running = host.get_fact(RunningConfig)
    if running is None:
        host.log("could not read the running config (show config): not saving", logger.error)
        return
    desired = desired_lines(settings) if settings is not None else None
    config_file, saved = _read_saved()
    pending = getattr(host.connector, "pending_commit", None)

    def verification() -> tuple[TunnelPing | None, str | None]:
        if settings is None:
            return None, None
        ping, refusal = _tunnel_ping(settings, running, verify_from, vps_tunnel_name)
        if ping is not None and host.state.config.DIFF:
            host.log(f"Before saving: {ping.describe()}", logger.info)
        if refusal is not None and not host.state.is_executing:
            host.log(refusal, logger.warning)
        return ping, refusal

    if saved is None:
        will_change = desired is not None and bool(compare(running, desired))
        if pending is None and not will_change and desired is not None:
            host.noop(
                f"cannot read the saved config (show config {config_file}): saving only after "
                "a change"
            )
            return
        ping, refusal = verification()
        if refusal is not None:
            yield FunctionCommand(_refuse, (refusal,), {})
            return
        yield FunctionCommand(_save, (desired, None, None, config_file, ping), {})
        return

    scope = desired or _WHOLE_CONFIG
    if desired is not None:
        outside = gate.unsaved_outside(running, saved, desired)
        if outside:
            message = _unsaved_elsewhere_message(outside, config_file).replace(
                "Nothing was changed", "Not saved"
            )
            if not host.state.is_executing:
                host.log(message, logger.warning)
            yield FunctionCommand(_refuse, (message,), {})
            return

    behind = not gate.saved_is_current(running, saved, scope)
    # In a dry run tunnel has not run yet: a delta now means a save then.
    coming = desired is not None and not host.state.is_executing and bool(compare(running, desired))
    if not behind and not coming:
        host.noop("the saved config is up to date")
        return
    if behind and host.state.config.DIFF and desired is not None and not pending:
        before, after = owned_view(saved, desired), owned_view(running, desired)
        if before != after:
            host.log(
                f"show config {config_file} lags behind the running config: "
                + "; ".join(line_diff(before, after)),
                logger.info,
            )
    ping, refusal = verification()
    if refusal is not None:
        yield FunctionCommand(_refuse, (refusal,), {})
        return
    yield FunctionCommand(_save, (desired, running, saved, config_file, ping), {})
