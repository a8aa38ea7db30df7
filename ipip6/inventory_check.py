"""The edge of the data flow: every host's merged data → validated settings, before anything runs.

Two checks, one model:

- before pyinfra connects to any host (``config.py`` installs :func:`check_before_connect`),
  every value present in any host's data is checked: typos, malformed addresses, ranges;
- when ``deploy.py`` loads (once per host), the whole inventory is validated completely (a
  required key missing too), before the first operation.

The first is partial on purpose: ``pyinfra @rtx/192.0.2.1 exec -- show config`` has no tunnel
data, and must still work.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from pyinfra.api import DeployError, State
from pyinfra.api.host import Host
from pyinfra.api.inventory import Inventory

from ipip6.settings import (
    RouterSettings,
    SettingsError,
    VpsSettings,
    check_present_keys,
    load_router_settings,
    load_vps_settings,
)


def is_router(host: Host) -> bool:
    """Whether this host is a YAMAHA RTX reached through the ``@rtx`` connector."""
    from ipip6.rtx.connector import RTXConnector

    return issubclass(host.connector_cls, RTXConnector)


def vps_settings(host: Host) -> VpsSettings:
    return load_vps_settings(host.name, host.data.dict())


def router_settings(host: Host) -> RouterSettings:
    return load_router_settings(host.name, host.data.dict())


def vps_peer(inventory: Inventory, router: RouterSettings) -> Host | None:
    """The VPS host at the other end of a router's tunnel: the one whose ``vps_ipv6`` is the
    router's (``validate_inventory`` makes sure there is at most one)."""
    for host in inventory:
        if not is_router(host) and vps_settings(host).vps_ipv6 == router.vps_ipv6:
            return host
    return None


def validate_inventory(inventory: Inventory, complete: bool = True) -> None:
    """Raise :class:`DeployError` listing every host with bad data; return quietly otherwise."""
    problems = []
    vpses, routers = {}, []
    whole = True  # every host's data valid and complete: the ends can be paired
    for host in inventory:
        router = is_router(host)
        try:
            if complete:
                load = load_router_settings if router else load_vps_settings
                settings = load(host.name, host.data.dict())
            else:
                settings = check_present_keys(host.name, host.data.dict(), router=router)
        except SettingsError as exc:
            problems.append(str(exc))
            whole = False  # a host with bad data cannot be paired: one message is enough
            continue
        if isinstance(settings, RouterSettings):
            routers.append((host.name, settings))
        elif isinstance(settings, VpsSettings):
            vpses.setdefault(settings.vps_ipv6, []).append(host.name)
        else:
            whole = False
    if whole:
        problems += _pairing_problems(vpses, routers)
    if problems:
        raise DeployError("\n".join(problems) + "\nNothing was changed.")


def _pairing_problems(
    vpses: dict[IPv6Address, list[str]], routers: list[tuple[str, RouterSettings]]
) -> list[str]:
    problems = [
        str(
            SettingsError(
                ", ".join(names),
                [
                    f"vps_ipv6 (value {str(address)!r}): the same on each; expected one VPS host "
                    "per tunnel"
                ],
            )
        )
        for address, names in vpses.items()
        if len(names) > 1
    ]
    for name, settings in routers:
        if isinstance(settings.rtx_verify_ping, IPv4Address) and settings.vps_ipv6 not in vpses:
            problems.append(
                str(
                    SettingsError(
                        name,
                        [
                            f"rtx_verify_ping (value {str(settings.rtx_verify_ping)!r}): "
                            f"expected a VPS host with vps_ipv6 {str(settings.vps_ipv6)!r} in "
                            "the inventory to ping from (or rtx_verify_ping = False to save "
                            "without a check by traffic)"
                        ],
                    )
                )
            )
    return problems


def check_before_connect(state: State) -> None:
    """Check every host's data right after pyinfra builds the inventory, before it connects.

    pyinfra (3.10) offers no hook between loading the inventory and connecting, and
    ``State.init`` resets callback handlers; ``init`` is the last call before ``connect_all``,
    so it is wrapped on this one State object (not on the class).
    """
    original = state.init

    def init(inventory: Inventory, *args, **kwargs) -> None:
        original(inventory, *args, **kwargs)
        validate_inventory(inventory, complete=False)

    state.init = init  # type: ignore[method-assign]
