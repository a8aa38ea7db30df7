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

from pyinfra.api import DeployError, State
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


def validate_inventory(inventory: Inventory, complete: bool = True) -> None:
    """Raise :class:`DeployError` listing every host with bad data; return quietly otherwise."""
    problems = []
    for host in inventory:
        load = load_router_settings if is_router(host) else load_vps_settings
        try:
            load(host.name, host.data.dict(), complete=complete)
        except SettingsError as exc:
            problems.append(str(exc))
    if problems:
        raise DeployError("\n".join(problems) + "\nNothing was changed.")


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
