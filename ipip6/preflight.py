"""Check every host's data before pyinfra connects to any host, wherever pyinfra runs from.

pyinfra (3.10) has no hook between building the inventory and connecting, and reads
``config.py`` from the working directory only. What it always does, from any directory and for
every command (deploy files, ``fact``, ``exec``, ``--limit``, ``--data``), is load every
``pyinfra.connectors`` entry point while it builds the inventory: this package's ``@rtx``
connector among them. Importing :mod:`ipip6.rtx.connector` therefore calls
:func:`install_on_current_state`, which wraps ``init`` on the running State object (not on the
class): ``init`` is the last call before ``connect_all``, and ``State.init`` resets callback
handlers, so a callback would not do.

An inventory that is not this deploy's (no ``@rtx`` host, no host with tunnel data) is left
alone. Deploy files get the complete check (a missing key and the pairing of the two ends too);
``fact`` and ``exec`` only the values that are present, since they need no tunnel data
(``pyinfra @rtx/192.0.2.1 exec -- show config`` has none).
"""

from __future__ import annotations

from pyinfra.api import State
from pyinfra.api.inventory import Inventory
from pyinfra.context import ctx_state

from ipip6.tunnels import TunnelInventory, looks_like_ours

_MARK = "_ipip6_preflight"


def _runs_deploy_files() -> bool:
    """Whether the pyinfra CLI was asked to run deploy files (as it decides: every operation
    argument ends with ``.py``)."""
    import click

    ctx = click.get_current_context(silent=True)
    operations = ctx.params.get("operations") if ctx is not None else None
    return bool(operations) and all(str(op).endswith(".py") for op in operations)


def check(state: State, inventory: Inventory) -> None:
    """Validate ``inventory`` now; raises :class:`ipip6.tunnels.InventoryError`."""
    if not looks_like_ours(inventory):
        return
    complete = _runs_deploy_files()
    model = TunnelInventory.build(inventory, complete=complete)
    if complete:
        state._ipip6_tunnels = model  # type: ignore[attr-defined] # deploy.py reuses it


def install(state: State) -> None:
    """Run :func:`check` when ``state.init`` sets up the run, before any connection."""
    if getattr(state, _MARK, False):
        return
    original = state.init

    def init(inventory: Inventory, *args, **kwargs) -> None:
        # Before init: it type-checks the connectors' data with messages that name no host.
        check(state, inventory)
        original(inventory, *args, **kwargs)

    state.init = init  # type: ignore[method-assign]
    setattr(state, _MARK, True)


def install_on_current_state() -> None:
    """:func:`install` on the State of the pyinfra run in progress, if there is one."""
    if ctx_state.isset():
        install(ctx_state.get())
