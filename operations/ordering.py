"""Ordering across hosts: a point every host reaches before any of them goes on.

pyinfra (3.x) orders operations as a graph: each host's operations follow that host's previous
ones, and an operation called from the *same line* for several hosts is one node they share.
Operations of different hosts are otherwise unordered, so a router's step can run before a
VPS's earlier-looking one. :func:`barrier`, called from one line for every host, is such a
shared node: nothing after it starts before every host has finished everything before it.
"""

from __future__ import annotations

from collections.abc import Generator

from pyinfra import host
from pyinfra.api import operation


@operation(is_idempotent=True)
def barrier(reached: str) -> Generator[str, None, None]:
    """
    Wait here for every host; change nothing.

    + reached: what is true once every host is here (shown as the host's no-op reason)

    Call it from one line of the deploy for all hosts, not from inside a branch per host.
    It reads no fact and sends no command.

    **Example:**

    .. code:: python

        if not is_router(host):
            vps.tunnel(settings=settings)
        ordering.barrier(name="VPS end deployed", reached="waited for the VPS end")
        if is_router(host):
            rtx.tunnel(settings=settings)
            rtx.save(settings=settings, verify_from=vps_host)
    """
    host.noop(reached)
    return
    yield  # a generator, as pyinfra's operations are
