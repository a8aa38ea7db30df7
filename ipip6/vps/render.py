"""Render the VPS's files from validated settings. Pure: no host, no I/O beyond the templates.

The templates live in the repository's top-level ``files/`` directory, next to ``deploy.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from ipip6 import safe_text
from ipip6.settings import VpsSettings

TEMPLATES = Path(__file__).resolve().parents[2] / "files"

HEADER = (
    "# Managed by pyinfra-ipip6: a re-deploy overwrites local edits.\n"
    "# Change the inventory or group_data instead."
)

NETWORKD_DIR = "/etc/systemd/network"
SYSCTL_FILE = "/etc/sysctl.d/60-ipip6.conf"
MODULES_FILE = "/etc/modules-load.d/ipip6.conf"
RULES_V4 = "/etc/iptables/rules.v4"
RULES_V6 = "/etc/iptables/rules.v6"
#: The networkd units this project owns, under any tunnel name (a renamed tunnel leaves some).
OWNED_UNIT_GLOBS = (
    f"{NETWORKD_DIR}/60-ipip6-*",
    f"{NETWORKD_DIR}/*.network.d/60-ipip6-*.conf",
)
#: The .netdev files this project placed (their names give the tunnels it created).
OWNED_NETDEV_GLOB = f"{NETWORKD_DIR}/60-ipip6-*.netdev"
#: Every file the VPS end of the deploy owns (globs for the units).
OWNED_FILES = (*OWNED_UNIT_GLOBS, SYSCTL_FILE, MODULES_FILE, RULES_V4, RULES_V6)

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,
    # Second line of defence behind validation: no value may add a line or a word to a file.
    finalize=lambda value: safe_text.single_token(value, "template value"),
)


def _render(template: str, settings: VpsSettings, **extra: object) -> str:
    body = _env.get_template(template).render(s=settings, **extra)
    text = f"{HEADER}\n{body}"
    # Blank-line runs left by conditional blocks are noise in a diff.
    lines = text.splitlines()
    out: list[str] = []
    for line in lines:
        if line == "" and (not out or out[-1] == ""):
            continue
        out.append(line)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class TunnelUnits:
    """The systemd-networkd files for one tunnel: path → content, per kind of reload needed."""

    netdev: tuple[str, str]
    network: tuple[str, str]
    uplink_dropin: tuple[str, str] | None

    def files(self) -> dict[str, str]:
        items = [self.netdev, self.network] + ([self.uplink_dropin] if self.uplink_dropin else [])
        return dict(items)


def unit_basename(settings: VpsSettings) -> str:
    return f"60-ipip6-{safe_text.single_token(settings.tunnel_name, 'file name')}"


def render_netdev(settings: VpsSettings) -> str:
    return _render("ip6tnl.netdev.j2", settings)


def render_network(settings: VpsSettings) -> str:
    return _render("ip6tnl.network.j2", settings)


def render_uplink_dropin(settings: VpsSettings) -> str:
    return _render("uplink-tunnel.conf.j2", settings)


def uplink_dropin_path(settings: VpsSettings) -> str:
    folder = safe_text.single_token(settings.network_file_for_dropin, "file name")
    return f"{NETWORKD_DIR}/{folder}.d/{unit_basename(settings)}.conf"


def render_tunnel_units(settings: VpsSettings) -> TunnelUnits:
    base = f"{NETWORKD_DIR}/{unit_basename(settings)}"
    dropin = None
    if settings.tunnel_attach == "netplan-dropin":
        dropin = (uplink_dropin_path(settings), render_uplink_dropin(settings))
    return TunnelUnits(
        netdev=(f"{base}.netdev", render_netdev(settings)),
        network=(f"{base}.network", render_network(settings)),
        uplink_dropin=dropin,
    )


def render_sysctl(settings: VpsSettings, tunnels: Sequence[VpsSettings] = ()) -> str:
    """The sysctl file: ``settings`` the VPS's, ``tunnels`` every tunnel it carries (default:
    the one of ``settings``)."""
    return _render(
        "sysctl.conf.j2",
        settings,
        modules_file=Path(MODULES_FILE).name,
        tunnels=list(tunnels or (settings,)),
    )


def render_modules_load(settings: VpsSettings) -> str:
    return _render("modules-load.conf.j2", settings)


def render_rules_v4(settings: VpsSettings, tunnels: Sequence[VpsSettings] = ()) -> str:
    """The IPv4 ruleset for every tunnel the VPS carries (default: the one of ``settings``)."""
    return _render("rules.v4.j2", settings, tunnels=list(tunnels or (settings,)))


def render_rules_v6(settings: VpsSettings, tunnels: Sequence[VpsSettings] = ()) -> str:
    """The IPv6 ruleset: protocol 4 in from each tunnel's router only."""
    return _render("rules.v6.j2", settings, tunnels=list(tunnels or (settings,)))
