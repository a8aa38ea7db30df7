"""The whole inventory as one validated model: every host's settings and the tunnels between them.

Built once per pyinfra run (:meth:`TunnelInventory.of`), before pyinfra connects to any host
(:mod:`ipip6.preflight`); ``deploy.py`` and the operations take their settings and peers from it
and never look at raw host data again.

Pairing is N:M by design: a :class:`Tunnel` joins one router host and one VPS host, found by the
VPS's address (a router's ``vps_ipv6`` is the VPS host's ``vps_ipv6``). A VPS carries one tunnel
per router that names it (several home sites on one VPS): each tunnel's own keys (``SITE_KEYS``:
the router's address, its home networks, MTU, inner link and the VPS-side interface name) come
from its router, the rest from the VPS; with one router they may be set on either end but must
agree. A router may name a second VPS (``rtx_backup_tunnel``): that tunnel pairs with the backup
VPS host the same way, as a site of its own (:meth:`RouterSettings.backup_site`).

Where a key comes from matters. ``group_data/all.py`` and ``--data`` are read by both ends, so a
router key there is no mistake on a VPS host; in a VPS host's own data or in a group of VPS
hosts only it is (it would be silently ignored otherwise).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pyinfra.api import DeployError, State
from pyinfra.api.host import Host
from pyinfra.api.inventory import Inventory

from ipip6.settings import (
    End,
    RouterSettings,
    SettingsError,
    TunnelEnd,
    VpsSettings,
    describe,
    load_router_settings,
    load_vps_settings,
    port_forward_problems,
)

# Keys any data of this deploy has: an inventory with none of them on any host (and no @rtx
# host) is somebody else's, and is left alone.
TUNNEL_KEYS = frozenset({"vps_ipv6", "router_ipv6", "home_networks"})
#: Keys that describe one tunnel rather than one host: with several routers on a VPS, each
#: router's own values are its tunnel's on the VPS.
SITE_KEYS = ("router_ipv6", "home_networks", "tunnel_mtu", "tunnel_inner_network", "tunnel_name")


class InventoryError(DeployError):
    """Bad data somewhere in the inventory: every problem of every host, and nothing changed."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems) + "\nNothing was changed.")


def is_router(host: Host) -> bool:
    """Whether this host is a YAMAHA RTX reached through the ``@rtx`` connector."""
    from ipip6.rtx.connector import RTXConnector

    return issubclass(host.connector_cls, RTXConnector)


def end_of(host: Host) -> End:
    return "router" if is_router(host) else "vps"


@dataclass(frozen=True)
class Tunnel:
    """One ipip6 tunnel: the router at home and the VPS at the other end."""

    router_host: str
    vps_host: str | None  # None: the VPS is managed elsewhere (rtx_vps_managed_elsewhere)
    router: RouterSettings
    vps: VpsSettings | None
    backup: bool = False
    """The router's tunnel to its backup VPS (``router`` is then its backup site)."""


def router_sites(
    routers: Mapping[str, RouterSettings],
) -> list[tuple[str, RouterSettings, bool]]:
    """(router host, the settings of one of its tunnels, whether it is the backup) for every
    tunnel of every router: the first VPS's, and the backup VPS's when it has one."""
    out = []
    for name, router in routers.items():
        out.append((name, router, False))
        backup = router.backup_site()
        if backup is not None:
            out.append((name, backup, True))
    return out


def _shared_keys(inventory: Inventory, host: Host, ends: Mapping[str, End]) -> frozenset[str]:
    """The keys of ``host``'s data that are set only where hosts of both ends read them."""
    one_end: set[str] = set(inventory.get_host_data(host.name))
    for group in host.groups:
        members = {ends[h.name] for h in inventory.get_group(group, [])}
        if len(members) < 2:
            one_end |= set(inventory.get_group_data(group))
    shared = set(inventory.get_data()) | set(inventory.get_override_data())
    return frozenset(shared - one_end)


@dataclass
class TunnelInventory:
    """Every host's validated settings, and the tunnels they form."""

    vps: dict[str, VpsSettings] = field(default_factory=dict)
    routers: dict[str, RouterSettings] = field(default_factory=dict)
    tunnels: tuple[Tunnel, ...] = ()
    sites: dict[str, dict[str, VpsSettings]] = field(default_factory=dict)
    """Per VPS with several routers: each router's tunnel as the VPS end sees it."""
    _inventory: Any = field(default=None, repr=False, compare=False)

    # ----------------------------------------------------------------------------------------
    @classmethod
    def of(cls, state: State) -> TunnelInventory:
        """The model of this run's inventory, built (and checked completely) once per State:
        the pre-connect check leaves its complete model there (``ipip6/preflight.py``)."""
        cached = getattr(state, "_ipip6_tunnels", None)
        if cached is not None and cached._inventory is state.inventory:
            return cached
        built = cls.build(state.inventory, complete=True)
        state._ipip6_tunnels = built  # type: ignore[attr-defined]
        return built

    @classmethod
    def build(cls, inventory: Inventory, *, complete: bool = True) -> TunnelInventory:
        """Validate every host and pair the ends. Raises :class:`InventoryError` listing every
        problem. With ``complete=False`` (``fact``, ``exec``: no tunnel data needed) only the
        values present are checked, and the ends are not paired."""
        problems: list[str] = []
        model = cls(_inventory=inventory)
        hosts = list(inventory)
        ends = {host.name: end_of(host) for host in hosts}
        whole = True
        # Routers first: a VPS with several of them takes each tunnel's keys from its router.
        for host in sorted(hosts, key=lambda h: ends[h.name] != "router"):
            data = host.data.dict()
            shared = _shared_keys(inventory, host, ends)
            load = load_router_settings if ends[host.name] == "router" else load_vps_settings
            try:
                sites = (
                    _routers_of(data, model.routers)
                    if complete and load is load_vps_settings
                    else {}
                )
                # Several routers, or the backup tunnel of one: each tunnel's keys are its
                # router's (a backup's inner link is never the VPS's default one).
                backups = any(r is not model.routers[name] for name, r in sites.items())
                if len(sites) > 1 or backups:
                    model.sites[host.name] = _load_sites(host.name, data, shared, sites)
                    settings = next(iter(model.sites[host.name].values()))
                else:
                    settings = load(host.name, data, shared=shared, complete=complete)
            except SettingsError as exc:
                problems.append(str(exc))
                whole = False  # a host with bad data cannot be paired: one message is enough
                continue
            if settings is None:
                whole = False
            elif isinstance(settings, RouterSettings):
                model.routers[host.name] = settings
            else:
                carried = list(model.sites.get(host.name, {}).values()) or [settings]
                forwards = port_forward_problems(carried)
                if forwards:
                    problems.append(str(SettingsError(host.name, forwards)))
                    whole = False
                    continue
                model.vps[host.name] = settings
        if whole and complete:
            tunnels, pairing = _pair(model.vps, model.routers, model.sites)
            model.tunnels = tunnels
            problems += pairing
        if problems:
            raise InventoryError(problems)
        return model

    # ----------------------------------------------------------------------------------------
    def vps_settings(self, host: str) -> VpsSettings:
        """The VPS's settings (with several routers: the first tunnel's; the VPS's own keys
        are the same in every tunnel's)."""
        return self.vps[host]

    def vps_tunnels(self, host: str) -> tuple[VpsSettings, ...]:
        """Every tunnel the VPS carries, as the VPS end sees it, by interface name."""
        mine = [t.vps for t in self.tunnels if t.vps_host == host and t.vps is not None]
        if not mine:  # no router in this inventory: the VPS's own data is its tunnel
            return (self.vps[host],)
        return tuple(sorted(mine, key=lambda s: s.tunnel_name))

    def vps_tunnel_name(self, router_host: str, *, backup: bool = False) -> str | None:
        """The name of the VPS's interface for this router's tunnel, or for the one to its
        backup VPS (None: managed elsewhere, or no backup)."""
        for tunnel in self.tunnels_of(router_host):
            if tunnel.router_host == router_host and tunnel.backup == backup and tunnel.vps:
                return tunnel.vps.tunnel_name
        return None

    def router_settings(self, host: str) -> RouterSettings:
        return self.routers[host]

    def tunnels_of(self, host: str) -> tuple[Tunnel, ...]:
        return tuple(t for t in self.tunnels if host in (t.router_host, t.vps_host))

    def vps_of(self, router_host: str, *, backup: bool = False) -> str | None:
        """The VPS host at the other end of a router's tunnel, or of the one to its backup VPS
        (None: managed elsewhere, or no backup)."""
        for tunnel in self.tunnels_of(router_host):
            if tunnel.router_host == router_host and tunnel.backup == backup:
                return tunnel.vps_host
        return None


def looks_like_ours(inventory: Inventory) -> bool:
    """An inventory with an ``@rtx`` host or a host holding tunnel data: this deploy's."""
    return any(is_router(host) or TUNNEL_KEYS & set(host.data.dict()) for host in inventory)


# --------------------------------------------------------------------------------------------
# Pairing


def _problem(hosts: Iterable[str], *texts: str) -> str:
    return str(SettingsError(", ".join(hosts), list(texts)))


def _peek_vps_ipv6(data: Mapping[str, Any]) -> Any:
    """A VPS's ``vps_ipv6`` if it is valid (its own validation reports it otherwise)."""
    try:
        return TypeAdapter(TunnelEnd).validate_python(data.get("vps_ipv6"))
    except ValidationError:
        return None


def _routers_of(
    data: Mapping[str, Any], routers: Mapping[str, RouterSettings]
) -> dict[str, RouterSettings]:
    """The routers whose tunnel ends at this VPS (not those whose VPS is managed elsewhere)."""
    address = _peek_vps_ipv6(data)
    if address is None:
        return {}
    return {
        name: r
        for name, r, _ in sorted(router_sites(routers), key=lambda site: site[0])
        if r.vps_ipv6 == address and not r.rtx_vps_managed_elsewhere
    }


def _load_sites(
    host: str, data: Mapping[str, Any], shared: frozenset[str], sites: Mapping[str, RouterSettings]
) -> dict[str, VpsSettings]:
    """One VPS's settings per router that has its tunnel to it: the VPS's own keys and the
    router's tunnel keys. Raises :class:`SettingsError` with every problem."""
    names = ", ".join(sites)
    whose = (
        f"{len(sites)} routers ({names}) have their tunnel to it, each with its own"
        if len(sites) > 1
        else f"it is the backup VPS of {names}, whose rtx_backup_tunnel gives the tunnel's"
    )
    where = "each router's host data" if len(sites) > 1 else f"{names}'s rtx_backup_tunnel"
    problems = [
        f"{key} (value {describe(key, data[key])}): set for this VPS, but {whose}; expected "
        f"it in {where}"
        for key in SITE_KEYS
        if key in data and key not in shared
    ]
    out: dict[str, VpsSettings] = {}
    own = {k: v for k, v in data.items() if k not in SITE_KEYS}
    for name, router in sites.items():
        merged = {**own, **{key: getattr(router, key) for key in SITE_KEYS}}
        try:
            out[name] = load_vps_settings(host, merged, shared=shared)
        except SettingsError as exc:
            problems += [f"the tunnel to {name}: {p}" for p in exc.problems]
    if not problems:
        problems += _across_tunnels(out)
    if problems:
        raise SettingsError(host, problems)
    return out


def _across_tunnels(sites: Mapping[str, VpsSettings]) -> list[str]:
    """What several tunnels of one VPS must not share: names, router addresses, networks."""
    problems = []
    items = list(sites.items())
    for i, (a, sa) in enumerate(items):
        for b, sb in items[i + 1 :]:
            pair = f"the tunnels to {a} and {b}"
            if sa.tunnel_name == sb.tunnel_name:
                problems.append(
                    f"tunnel_name (value {sa.tunnel_name!r}): the same for {pair}; expected "
                    "one name per router (set tunnel_name in each router's host data)"
                )
            if sa.router_ipv6 == sb.router_ipv6:
                problems.append(
                    f"router_ipv6 (value {str(sa.router_ipv6)!r}): the same for {pair}; "
                    "expected one tunnel per router address"
                )
            for net in sa.home_networks:
                for other in sb.home_networks:
                    if net.overlaps(other):
                        problems.append(
                            f"home_networks: {net} ({a}) and {other} ({b}) overlap; the VPS "
                            "could not tell which tunnel to route them into"
                        )
            nets_a = [*sa.home_networks, *([sa.tunnel_inner_network] if sa.inner else [])]
            nets_b = [*sb.home_networks, *([sb.tunnel_inner_network] if sb.inner else [])]
            for x, y, owner in ((sa, nets_b, b), (sb, nets_a, a)):
                if x.inner is None:
                    continue
                for net in y:
                    if net.overlaps(x.tunnel_inner_network):
                        problems.append(
                            f"tunnel_inner_network (value {str(x.tunnel_inner_network)!r}): "
                            f"overlaps {net} of the tunnel to {owner}; expected a link "
                            "network of its own per tunnel"
                        )
    return list(dict.fromkeys(problems))


def _pair(
    vpses: Mapping[str, VpsSettings],
    routers: Mapping[str, RouterSettings],
    sites: Mapping[str, Mapping[str, VpsSettings]] | None = None,
) -> tuple[tuple[Tunnel, ...], list[str]]:
    problems: list[str] = []
    by_address: dict[Any, list[str]] = {}
    for name, settings in vpses.items():
        by_address.setdefault(settings.vps_ipv6, []).append(name)
    for address, names in by_address.items():
        if len(names) > 1:
            problems.append(
                _problem(
                    names,
                    f"vps_ipv6 (value {str(address)!r}): the same on each; expected one VPS "
                    "host per tunnel address",
                )
            )

    tunnels: list[Tunnel] = []
    for name, router, backup in router_sites(routers):
        names = by_address.get(router.vps_ipv6, [])
        vps_key = "rtx_backup_tunnel.vps_ipv6" if backup else "vps_ipv6"
        elsewhere_key = (
            "rtx_backup_tunnel.rtx_vps_managed_elsewhere" if backup else "rtx_vps_managed_elsewhere"
        )
        if router.rtx_vps_managed_elsewhere:
            if names:
                problems.append(
                    _problem(
                        [name],
                        f"{elsewhere_key} (value True): but {names[0]} in this "
                        f"inventory has vps_ipv6 {str(router.vps_ipv6)!r}; expected False, so "
                        "the tunnel is checked by traffic from it before the router saves",
                    )
                )
                continue
            tunnels.append(Tunnel(name, None, router, None, backup))
            continue
        if not names:
            problems.append(
                _problem(
                    [name],
                    f"{vps_key} (value {str(router.vps_ipv6)!r}): no VPS host in the inventory "
                    "has this vps_ipv6; expected the VPS at the other end of the tunnel in the "
                    f"inventory (or {elsewhere_key} = True when it is set up elsewhere: "
                    "the router then saves without a check by traffic)",
                )
            )
            continue
        if len(names) > 1:
            continue  # reported above
        vps_name = names[0]
        if sites and vps_name in sites:  # built from this router's keys
            tunnels.append(Tunnel(name, vps_name, router, sites[vps_name][name], backup))
            continue
        vps = vpses[vps_name]
        mismatches = _mismatches(router, vps)
        if mismatches:
            problems.append(
                _problem(
                    [name, vps_name],
                    *(
                        f"{key}: {describe(key, a)} on {name} but {describe(key, b)} on "
                        f"{vps_name}; expected the same on both ends of the tunnel"
                        for key, a, b in mismatches
                    ),
                )
            )
            continue
        # The VPS-side name: the router's when its data sets one, else the VPS's.
        if "tunnel_name" in router.model_fields_set and router.tunnel_name != vps.tunnel_name:
            try:
                vps = VpsSettings.model_validate(
                    {key: getattr(vps, key) for key in VpsSettings.model_fields}
                    | {"tunnel_name": router.tunnel_name}
                )
            except ValidationError as exc:
                problems.append(
                    _problem(
                        [name, vps_name],
                        *(
                            f"tunnel_name (value {router.tunnel_name!r}): "
                            + e["msg"].removeprefix("Value error, ")
                            for e in exc.errors(include_url=False)
                        ),
                    )
                )
                continue
        tunnels.append(Tunnel(name, vps_name, router, vps, backup))
    return tuple(tunnels), problems


def _comparable(value: Any) -> Any:
    """A setting as the user wrote it: text for addresses, a sorted list of texts for networks."""
    if isinstance(value, list):
        return sorted(str(v) for v in value)
    return value if isinstance(value, int) else str(value)


def _mismatches(router: RouterSettings, vps: VpsSettings) -> list[tuple[str, Any, Any]]:
    """(key, router's value, VPS's value) for every tunnel setting the two ends disagree on."""
    out = []
    for key in ("router_ipv6", "home_networks", "tunnel_mtu", "tunnel_inner_network"):
        a, b = _comparable(getattr(router, key)), _comparable(getattr(vps, key))
        if a != b:
            out.append((key, a, b))
    # The interface name: set on both ends, it must agree; on one end, that one names it.
    both = "tunnel_name" in router.model_fields_set and "tunnel_name" in vps.model_fields_set
    if both and router.tunnel_name != vps.tunnel_name:
        out.append(("tunnel_name", router.tunnel_name, vps.tunnel_name))
    return out
