"""The whole inventory as one validated model: every host's settings and the tunnels between them.

Built once per pyinfra run (:meth:`TunnelInventory.of`), before pyinfra connects to any host
(:mod:`ipip6.preflight`); ``deploy.py`` and the operations take their settings and peers from it
and never look at raw host data again.

Pairing is N:M by design: a :class:`Tunnel` joins one router host and one VPS host, found by the
VPS's address (a router's ``vps_ipv6`` is the VPS host's ``vps_ipv6``). For now each VPS carries
one tunnel and each router has one VPS; the checks say so in words a user can act on.

Where a key comes from matters. ``group_data/all.py`` and ``--data`` are read by both ends, so a
router key there is no mistake on a VPS host; in a VPS host's own data or in a group of VPS
hosts only it is (it would be silently ignored otherwise).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pyinfra.api import DeployError, State
from pyinfra.api.host import Host
from pyinfra.api.inventory import Inventory

from ipip6.settings import (
    End,
    RouterSettings,
    SettingsError,
    VpsSettings,
    describe,
    load_router_settings,
    load_vps_settings,
)

# Keys any data of this deploy has: an inventory with none of them on any host (and no @rtx
# host) is somebody else's, and is left alone.
TUNNEL_KEYS = frozenset({"vps_ipv6", "router_ipv6", "home_networks"})


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
        for host in hosts:
            data = host.data.dict()
            shared = _shared_keys(inventory, host, ends)
            load = load_router_settings if ends[host.name] == "router" else load_vps_settings
            try:
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
                model.vps[host.name] = settings
        if whole and complete:
            tunnels, pairing = _pair(model.vps, model.routers)
            model.tunnels = tunnels
            problems += pairing
        if problems:
            raise InventoryError(problems)
        return model

    # ----------------------------------------------------------------------------------------
    def vps_settings(self, host: str) -> VpsSettings:
        return self.vps[host]

    def router_settings(self, host: str) -> RouterSettings:
        return self.routers[host]

    def tunnels_of(self, host: str) -> tuple[Tunnel, ...]:
        return tuple(t for t in self.tunnels if host in (t.router_host, t.vps_host))

    def vps_of(self, router_host: str) -> str | None:
        """The VPS host at the other end of a router's tunnel (None: managed elsewhere)."""
        for tunnel in self.tunnels_of(router_host):
            if tunnel.router_host == router_host:
                return tunnel.vps_host
        return None


def looks_like_ours(inventory: Inventory) -> bool:
    """An inventory with an ``@rtx`` host or a host holding tunnel data: this deploy's."""
    return any(is_router(host) or TUNNEL_KEYS & set(host.data.dict()) for host in inventory)


# --------------------------------------------------------------------------------------------
# Pairing


def _problem(hosts: Iterable[str], *texts: str) -> str:
    return str(SettingsError(", ".join(hosts), list(texts)))


def _pair(
    vpses: Mapping[str, VpsSettings], routers: Mapping[str, RouterSettings]
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
    routers_of_vps: dict[str, list[str]] = {}
    for name, router in routers.items():
        names = by_address.get(router.vps_ipv6, [])
        if router.rtx_vps_managed_elsewhere:
            if names:
                problems.append(
                    _problem(
                        [name],
                        f"rtx_vps_managed_elsewhere (value True): but {names[0]} in this "
                        f"inventory has vps_ipv6 {str(router.vps_ipv6)!r}; expected False, so "
                        "the tunnel is checked by traffic from it before the router saves",
                    )
                )
                continue
            tunnels.append(Tunnel(name, None, router, None))
            continue
        if not names:
            problems.append(
                _problem(
                    [name],
                    f"vps_ipv6 (value {str(router.vps_ipv6)!r}): no VPS host in the inventory "
                    "has this vps_ipv6; expected the VPS at the other end of the tunnel in the "
                    "inventory (or rtx_vps_managed_elsewhere = True when it is set up elsewhere: "
                    "the router then saves without a check by traffic)",
                )
            )
            continue
        if len(names) > 1:
            continue  # reported above
        vps_name = names[0]
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
        routers_of_vps.setdefault(vps_name, []).append(name)
        tunnels.append(Tunnel(name, vps_name, router, vps))

    for vps_name, names in routers_of_vps.items():
        if len(names) > 1:
            problems.append(
                _problem(
                    names,
                    f"vps_ipv6: each of these routers has its tunnel to {vps_name}; expected one "
                    "router per VPS (several home sites on one VPS are not supported yet)",
                )
            )
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
    return out
