"""The edge of the data flow: every host's merged data → validated settings, before anything runs.

pyinfra loads ``deploy.py`` once per host; each load validates the whole inventory (cheap, pure)
so the first host to load stops the run when any host's data is bad, before any operation.
"""

from __future__ import annotations

from pyinfra.api import DeployError
from pyinfra.api.host import Host
from pyinfra.api.inventory import Inventory

from ipip6.settings import (
    RouterSettings,
    SettingsError,
    VpsSettings,
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


def validate_inventory(inventory: Inventory) -> None:
    """Raise :class:`DeployError` listing every host with bad data; return quietly otherwise."""
    problems = []
    for host in inventory:
        try:
            router_settings(host) if is_router(host) else vps_settings(host)
        except SettingsError as exc:
            problems.append(str(exc))
    if problems:
        raise DeployError("\n".join(problems) + "\nNothing was changed.")
