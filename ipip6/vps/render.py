"""Render the VPS's files from validated settings. Pure: no host, no I/O beyond the templates.

The templates live in the repository's top-level ``files/`` directory, next to ``deploy.py``;
an installed package carries them as package data, ``ipip6/templates`` (pyproject.toml maps the
one onto the other).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jinja2

from ipip6 import safe_text
from ipip6.settings import (
    EXTRA_NFT_CHAINS,
    EXTRA_RULE_CHAINS,
    PortForward,
    VpsSettings,
    home_tunnel_of,
)

_PACKAGE = Path(__file__).resolve().parents[1]
#: Installed (a wheel): the package data; in a clone (an editable install too): ``files/``.
TEMPLATES = next(
    (d for d in (_PACKAGE / "templates", _PACKAGE.parent / "files") if d.is_dir()),
    _PACKAGE / "templates",
)

HEADER = (
    "# Managed by pyinfra-ipip6: a re-deploy overwrites local edits.\n"
    "# Change the inventory or group_data instead."
)

NETWORKD_DIR = "/etc/systemd/network"
SYSCTL_FILE = "/etc/sysctl.d/60-ipip6.conf"
MODULES_FILE = "/etc/modules-load.d/ipip6.conf"
#: The whole-ruleset files of releases before the firewall's own chains (netfilter-persistent
#: loads them at boot): removed once the new layout is confirmed, when they are this project's.
LEGACY_RULES_V4 = "/etc/iptables/rules.v4"
LEGACY_RULES_V6 = "/etc/iptables/rules.v6"
FIREWALL_DIR = "/etc/ipip6"
FIREWALL_V4 = f"{FIREWALL_DIR}/firewall.v4"
FIREWALL_V6 = f"{FIREWALL_DIR}/firewall.v6"
FIREWALL_LOADER = f"{FIREWALL_DIR}/firewall-load"
FIREWALL_NFT = f"{FIREWALL_DIR}/firewall.nft"
#: The line /etc/nftables.conf gets so that nftables.service loads the deploy's table.
NFTABLES_CONF = "/etc/nftables.conf"
NFT_INCLUDE = f'include "{FIREWALL_NFT}"'
FIREWALL_UNIT = "ipip6-firewall.service"
FIREWALL_UNIT_FILE = f"/etc/systemd/system/{FIREWALL_UNIT}"
#: Each owned chain and the base chain that jumps to it: (command, table, base chain, chain).
FIREWALL_HOOKS = (
    ("iptables", "filter", "INPUT", "IPIP6-INPUT"),
    ("iptables", "filter", "FORWARD", "IPIP6-FORWARD"),
    ("iptables", "mangle", "FORWARD", "IPIP6-FORWARD"),
    ("iptables", "nat", "PREROUTING", "IPIP6-PREROUTING"),
    ("iptables", "nat", "POSTROUTING", "IPIP6-POSTROUTING"),
    ("ip6tables", "filter", "INPUT", "IPIP6-INPUT"),
    ("ip6tables", "filter", "FORWARD", "IPIP6-FORWARD"),
)
#: The networkd units this project owns, under any tunnel name (a renamed tunnel leaves some).
OWNED_UNIT_GLOBS = (
    f"{NETWORKD_DIR}/60-ipip6-*",
    f"{NETWORKD_DIR}/*.network.d/60-ipip6-*.conf",
)
#: The .netdev files this project placed (their names give the tunnels it created).
OWNED_NETDEV_GLOB = f"{NETWORKD_DIR}/60-ipip6-*.netdev"
#: Every file the VPS end of the deploy owns (globs for the units).
OWNED_FILES = (
    *OWNED_UNIT_GLOBS,
    SYSCTL_FILE,
    MODULES_FILE,
    FIREWALL_V4,
    FIREWALL_V6,
    FIREWALL_LOADER,
    FIREWALL_UNIT_FILE,
    FIREWALL_NFT,
)
#: The files of each firewall backend.
IPTABLES_FILES = (FIREWALL_V4, FIREWALL_V6, FIREWALL_LOADER, FIREWALL_UNIT_FILE)
NFTABLES_FILES = (FIREWALL_NFT,)


class RuleLine(str):
    """A whole rule line of the user's (``firewall_extra_rules``): validated as one line with
    single spaces, so the templates write it as it is rather than as one token."""


def _finalize(value: object) -> object:
    # Second line of defence behind validation: no value may add a line (nor, but for a
    # user's rule line, a word) to a file.
    if isinstance(value, RuleLine):
        return safe_text.single_line(value, "firewall rule")
    return safe_text.single_token(value, "template value")


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,
    finalize=_finalize,
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


def _extra_rules(settings: VpsSettings, family: str) -> dict[str, list[RuleLine]]:
    """The user's rule lines per owned chain, for one family's file (a nat chain's only in the
    IPv4 file; '-4'/'-6' lines go into both, the other family's restore skips them)."""
    out: dict[str, list[RuleLine]] = {
        "filter_input": [],
        "filter_forward": [],
        "nat_prerouting": [],
        "nat_postrouting": [],
    }
    for rule in settings.firewall_extra_rules:
        chain = rule.removeprefix("-4 ").removeprefix("-6 ").split()[1]
        table = EXTRA_RULE_CHAINS[chain]
        if table == "nat" and family == "v6":
            continue
        out[f"{table}_{chain.removeprefix('IPIP6-').lower()}"].append(RuleLine(rule))
    return out


def _extra_nft_rules(settings: VpsSettings) -> dict[str, list[RuleLine]]:
    """The user's nft statements per chain of the deploy's table (the chain word dropped)."""
    out: dict[str, list[RuleLine]] = {chain: [] for chain in EXTRA_NFT_CHAINS}
    for rule in settings.firewall_extra_rules:
        chain, _, statement = rule.partition(" ")
        out[chain].append(RuleLine(statement))
    return out


def _forwards(settings: VpsSettings, tunnels: Sequence[VpsSettings]) -> list:
    """Each port forward with the tunnel it goes into (validation found one for each)."""
    return [(f, home_tunnel_of(f.to, tunnels)) for f in settings.port_forwards]


def _public_ports(forward: PortForward, sep: str = ":") -> str:
    """The public port or range, its ends joined by ``sep`` (iptables ':', nft '-')."""
    first, last = forward.port
    return str(first) if first == last else f"{first}{sep}{last}"


def _home_ports(forward: PortForward, sep: str = ":") -> str:
    """The home port(s) after the DNAT: ``to_port``, else the public ones."""
    port = forward.target_port
    return str(port) if port is not None else _public_ports(forward, sep)


def _destination(forward: PortForward) -> str:
    port = forward.target_port
    return f"{forward.to}:{port}" if port is not None else str(forward.to)


def render_firewall_v4(settings: VpsSettings, tunnels: Sequence[VpsSettings] = ()) -> str:
    """The deploy's IPv4 chains for every tunnel the VPS carries (default: the one of
    ``settings``), in iptables-restore format for ``--noflush``."""
    tunnels = list(tunnels or (settings,))
    return _render(
        "firewall.v4.j2",
        settings,
        tunnels=tunnels,
        extra=_extra_rules(settings, "v4"),
        forwards=_forwards(settings, tunnels),
        public_ports=_public_ports,
        home_ports=_home_ports,
        destination=_destination,
    )


def render_firewall_v6(settings: VpsSettings, tunnels: Sequence[VpsSettings] = ()) -> str:
    """The deploy's IPv6 chains: protocol 4 in from each tunnel's router only."""
    return _render(
        "firewall.v6.j2",
        settings,
        tunnels=list(tunnels or (settings,)),
        extra=_extra_rules(settings, "v6"),
    )


def render_firewall_loader(settings: VpsSettings) -> str:
    """The script ipip6-firewall.service runs: load both files, hook each chain once."""
    return _render(
        "ipip6-firewall.j2", settings, v4=FIREWALL_V4, v6=FIREWALL_V6, hooks=FIREWALL_HOOKS
    )


def render_firewall_unit(settings: VpsSettings) -> str:
    return _render("ipip6-firewall.service.j2", settings, loader=FIREWALL_LOADER)


def render_firewall_nft(settings: VpsSettings, tunnels: Sequence[VpsSettings] = ()) -> str:
    """The deploy's nftables table (``table inet ipip6``) for every tunnel the VPS carries."""
    tunnels = list(tunnels or (settings,))
    return _render(
        "firewall.nft.j2",
        settings,
        tunnels=tunnels,
        extra=_extra_nft_rules(settings),
        forwards=_forwards(settings, tunnels),
        nft_public_ports=partial(_public_ports, sep="-"),
        nft_home_ports=partial(_home_ports, sep="-"),
        destination=_destination,
    )


def render_firewall(settings: VpsSettings, tunnels: Sequence[VpsSettings] = ()) -> dict[str, str]:
    """Every file of the firewall, for the settings' backend: path → content."""
    if settings.firewall_backend == "nftables":
        return {FIREWALL_NFT: render_firewall_nft(settings, tunnels)}
    return {
        FIREWALL_V4: render_firewall_v4(settings, tunnels),
        FIREWALL_V6: render_firewall_v6(settings, tunnels),
        FIREWALL_LOADER: render_firewall_loader(settings),
        FIREWALL_UNIT_FILE: render_firewall_unit(settings),
    }
