"""pyinfra operations of the health check (``check.py``): read both ends, change nothing.

Everything is read while pyinfra *prepares* its operations, as facts: on the router the
connector sends nothing but ``show …`` lines then (its dry-run gate), and on the VPS each fact is
a read (the firewall's files are loaded into a throwaway network namespace to compare them in the
kernel's own form). :mod:`ipip6.health` turns what was read into findings; each check is then one
operation per host, so pyinfra's own output (``--json`` too) says per check and host whether it
holds: ``No changes`` when it does, an error (ignored, so that every other check still runs)
when it does not. After the last operation the table is printed and the hosts with a problem
are marked failed, which is pyinfra's non-zero exit status.
"""

from __future__ import annotations

import hashlib
import ipaddress
import threading
import weakref
from collections.abc import Sequence

import click
from pyinfra import host, logger
from pyinfra.api import FunctionCommand, State, operation
from pyinfra.api.host import Host
from pyinfra.api.state import BaseStateCallback
from pyinfra.facts.files import FileContents

from ipip6 import health
from ipip6.health import Finding
from ipip6.rtx import decide
from ipip6.rtx.config import RouterConfig
from ipip6.rtx.facts import (
    IPv6Addresses,
    RunningConfig,
    SavedConfig,
    StartupConfigFile,
    TunnelStatusLines,
)
from ipip6.rtx.fallback import FallbackRefused
from ipip6.rtx.status import parse_tunnel_status
from ipip6.rtx.tunnel_slot import TunnelRefused
from ipip6.settings import RouterSettings, VpsSettings
from ipip6.tunnel_ping import parse_ping
from ipip6.vps import render
from ipip6.vps.facts import DebPackagesAndUfw, ManagedFiles, PingThrough, TunnelHealth
from ipip6.vps.guard import Guard
from operations.vps import required_packages

# --------------------------------------------------------------------------------------------
# The report: every finding of the run, printed once at the end


class Report(BaseStateCallback):
    """The findings of one pyinfra run; prints the table after the run's last operation."""

    def __init__(self) -> None:
        self._findings: dict[tuple[str, str, str], Finding] = {}
        self._lock = threading.Lock()
        self._printed = False

    def add(self, finding: Finding) -> None:
        """Record one finding; once per host and check, though pyinfra may run an operation's
        body twice (for change detection, then to execute it)."""
        with self._lock:
            self._findings[(finding.host, finding.end, finding.check)] = finding

    @property
    def findings(self) -> list[Finding]:
        return list(self._findings.values())

    def operation_end(self, state: State, op_hash) -> None:  # type: ignore[override]
        order = state.get_op_order()
        if self._printed or not order or op_hash != order[-1]:
            return
        self._printed = True
        hosts = [h.name for h in state.inventory]
        ordered = sorted(self.findings, key=lambda f: hosts.index(f.host))
        click.echo("\n--> Health check:\n", err=True)
        click.echo(health.render_table(ordered), err=True)
        # pyinfra's exit status is non-zero when a host failed: the checks' errors were
        # ignored so that every check ran; the hosts with a problem fail here, at the end.
        state.failed_hosts.update(
            state.inventory.get_host(f.host) for f in ordered if f.ok is False
        )


_REPORTS: weakref.WeakKeyDictionary[State, Report] = weakref.WeakKeyDictionary()


def report_of(state: State) -> Report:
    """This run's report (registered with pyinfra on first use)."""
    report = _REPORTS.get(state)
    if report is None:
        report = _REPORTS[state] = Report()
        state.add_callback_handler(report)
    return report


def _problem(state, host, finding: Finding) -> bool:  # noqa: ARG001 - pyinfra passes both
    host.log(f"{finding.check}: {finding.seen}", logger.error)
    for line in finding.lines:
        host.log(f"    {line}", logger.error)
    host.log(f"fix: {finding.fix}", logger.error)
    return False


@operation(is_idempotent=True)
def check(finding: Finding):
    """
    One health check on one host: no change when it holds, an error (with the fix) when not.

    + finding: the :class:`~ipip6.health.Finding` read for this host (see :func:`read_vps`,
      :func:`read_router`)

    Sends nothing to the host: what it reports was read before (pyinfra's facts). Call it with
    ``_ignore_errors=True`` so that one failing check does not stop the others; the run's
    :class:`Report` fails the host at the end.

    **Example:**

    .. code:: python

        for finding in health_ops.read_vps(settings, tunnels):
            health_ops.check(name=f"VPS: {finding.check}", finding=finding, _ignore_errors=True)
    """
    report_of(host.state).add(finding)
    if finding.ok is not False:
        host.noop(f"{finding.check} {finding.state}: {finding.seen}")
        return
    yield FunctionCommand(_problem, (finding,), {})


# --------------------------------------------------------------------------------------------
# Reading each end (facts only)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def read_vps(settings: VpsSettings, tunnels: Sequence[VpsSettings]) -> list[Finding]:
    """Read the VPS end (three facts, however many tunnels; a fourth per drifted file with
    ``--diff``) and judge it: one finding per check, in the order of the table."""
    name = host.name
    tunnels = list(tunnels or (settings,))
    files: dict[str, str] = {}
    for tunnel in tunnels:
        files.update(render.render_tunnel_units(tunnel).files())
    sysctl_file = render.render_sysctl(settings, tunnels)
    files[render.SYSCTL_FILE] = sysctl_file
    files[render.MODULES_FILE] = render.render_modules_load(settings)
    files.update(render.render_firewall(settings, tunnels))
    timers = [Guard(kind, settings.rollback_after_seconds).unit for kind in ("tunnel", "firewall")]
    managed = host.get_fact(ManagedFiles, paths=list(files), timers=timers)
    wanted_packages = required_packages(settings)
    packages = host.get_fact(DebPackagesAndUfw, packages=wanted_packages)
    expected = health.sysctl_expected(sysctl_file)
    nft = settings.firewall_backend == "nftables"
    seen = host.get_fact(
        TunnelHealth,
        tunnels=[t.tunnel_name for t in tunnels],
        sysctl_keys=list(expected),
        backend=settings.firewall_backend,
        loader=render.FIREWALL_NFT if nft else render.FIREWALL_LOADER,
    )
    current = None
    drifted = [p for p, text in files.items() if managed["sums"].get(p) != _sha256(text)]
    if drifted and host.state.config.DIFF:
        current = {p: host.get_fact(FileContents, path=p) for p in drifted}

    links, limits, routes = [], [], []
    for tunnel in tunnels:
        link, limit = health.link_findings(
            name, settings, tunnel, seen["links"].get(tunnel.tunnel_name)
        )
        links.append(link)
        limits.append(limit)
        routes.append(
            health.routes_finding(name, tunnel, seen["routes"].get(tunnel.tunnel_name, []))
        )
    return [
        health.merge(name, "VPS", "tunnel link", links),
        health.merge(name, "VPS", "encapsulation limit", limits),
        health.merge(name, "VPS", "routes to home", routes),
        health.sysctls_finding(name, expected, seen["sysctl"]),
        health.firewall_finding(name, settings.firewall_backend, seen["live"], seen["disk"]),
        health.timers_finding(name, managed["pending"]),
        health.packages_finding(name, packages["installed"], wanted_packages),
        health.files_finding(name, files, managed["sums"], _sha256, current),
    ]


def _ping_from(vps: Host, command: str):
    """The ping's outcome, or None when the VPS could not run it."""
    if not vps.connected:  # e.g. left out with --limit: the check across still needs it
        try:
            vps.connect(reason="to ping home through the tunnel", raise_exceptions=True)
        except Exception:  # noqa: BLE001 - any failure to connect: the ping is unknown
            return None
    output = vps.get_fact(PingThrough, ping=command, _ignore_errors=True)
    return parse_ping(output["output"]) if output else None


def _unreadable(name: str, what: str) -> list[Finding]:
    return [
        Finding(name, "across" if i >= 4 else "router", check, None, f"not checked: {what}")
        for i, check in enumerate(health.ROUTER_CHECKS)
    ]


def read_router(
    settings: RouterSettings,
    vps: Host | None,
    vps_tunnel_name: str | None,
    backup_vps: Host | None = None,
    backup_tunnel_name: str | None = None,
) -> list[Finding]:
    """Read the router end (``show`` commands only) and, from ``vps``, ping home through the
    tunnel; one finding per check of :data:`ipip6.health.ROUTER_CHECKS`, in that order."""
    name = host.name
    running: RouterConfig | None = host.get_fact(RunningConfig, _ignore_errors=True)
    if running is None:
        rows = _unreadable(name, "the running config (show config) could not be read")
        rows[1] = Finding(
            name,
            "router",
            "owned lines",
            False,
            "show config could not be read",
            "look at the router's SSH login and rtx_admin_password",
        )
        return rows
    config_file = host.get_fact(StartupConfigFile, _ignore_errors=True)
    saved = None
    if config_file is not None:
        saved = host.get_fact(SavedConfig, number=config_file, _ignore_errors=True)
    identity = health.identity_finding(name, running, config_file)
    try:
        desired = decide.owned_section(settings, running)
    except (TunnelRefused, FallbackRefused) as exc:
        rows = _unreadable(name, f"the data does not fit this router: {exc}")
        rows[0] = identity
        rows[1] = Finding(name, "router", "owned lines", False, str(exc), "see the message")
        return rows
    statuses = []
    for block in desired.blocks:
        lines = host.get_fact(TunnelStatusLines, number=block.number, _ignore_errors=True)
        statuses.append(parse_tunnel_status(block.number, "\n".join(lines or [])))

    pings = []
    sites = [(settings, vps, vps_tunnel_name, False)]
    backup = settings.backup_site()
    if backup is not None:
        sites.append((backup, backup_vps, backup_tunnel_name, True))
    for site, site_vps, tunnel_name, is_backup in sites:
        ping, refusal, warning = decide.tunnel_ping(
            site, running, site_vps.name if site_vps else None, tunnel_name, backup=is_backup
        )
        outcome = None
        if ping is not None and site_vps is not None:
            outcome = _ping_from(site_vps, ping.command())
        pings.append(health.ping_finding(name, ping, outcome, refusal or warning))
    addresses = host.get_fact(IPv6Addresses, _ignore_errors=True)
    parsed = [ipaddress.IPv6Interface(a) for a in addresses] if addresses is not None else None
    return [
        identity,
        health.owned_finding(name, running, desired),
        health.unsaved_finding(name, running, saved, desired),
        health.status_finding(name, statuses),
        health.merge(name, "across", "ping through the tunnel", pings),
        health.address_finding(name, settings, parsed),
    ]
