"""pyinfra operations for the home end: a YAMAHA RTX router behind the ``@rtx`` connector.

Get config → compare → commit, on the controller: :func:`tunnel` reads the running config,
compares the lines this deploy owns with the settings, prints the diff (``--diff``) and sends
only the commands that differ; :func:`save` writes the result to flash as its own step.
Administrator mode, paging and the save question are the connector's job.
"""

from __future__ import annotations

from collections.abc import Generator

from pyinfra import host, logger
from pyinfra.api import operation
from pyinfra.api.output import format_text

from ipip6.rtx.config import compare, desired_lines
from ipip6.rtx.facts import RunningConfig
from ipip6.settings import RouterSettings


def _show_diff(diff: str) -> None:
    host.log("Will change the router's tunnel section:", logger.info)
    for line in diff.splitlines():
        if line.startswith(("+++", "---", "@@")):
            logger.info("  %s", line)
        elif line.startswith("+"):
            logger.info("  %s", format_text(line, "green"))
        elif line.startswith("-"):
            logger.info("  %s", format_text(line, "red"))
        else:
            logger.info("  %s", line)
    logger.info("")


@operation()
def tunnel(settings: RouterSettings) -> Generator[str, None, None]:
    """
    Configure the router's end of the ipip6 tunnel and, optionally, its default route and an
    IPv6 filter letting protocol 4 from the VPS in.

    + settings: the router's validated :class:`~ipip6.settings.RouterSettings`

    Owned lines (and nothing else): under ``tunnel select N`` the encapsulation, endpoint,
    MTU, TCP MSS limit and ``tunnel enable N``; ``ip route default`` if
    ``rtx_default_route``; ``ipv6 filter F`` if ``rtx_ipv6_filter_number``. Only differing
    lines are sent; with nothing to change the operation is a no-op. Nothing is saved: call
    :func:`save` for that.

    **Example:**

    .. code:: python

        from ipip6.settings import load_router_settings
        from operations import rtx

        settings = load_router_settings(host.name, host.data.dict())
        changed = rtx.tunnel(name="Tunnel to the VPS", settings=settings)
        rtx.save(name="Save the router config", _if=changed.did_change)
    """
    running = host.get_fact(RunningConfig)
    if running is None:
        # pyinfra has already failed this host and logged why; raising here would abort the
        # run for every other host too.
        host.log("could not read the running config (show config): not changing it", logger.error)
        return

    delta = compare(running, desired_lines(settings))
    if delta.foreign_lines:
        host.log(
            f"tunnel select {settings.rtx_tunnel_number} also holds lines this deploy does not "
            f"manage (left as they are): {'; '.join(delta.foreign_lines)}",
            logger.warning,
        )
    if not delta:
        host.noop(
            f"tunnel {settings.rtx_tunnel_number} to {settings.vps_ipv6} is already configured"
        )
        return

    if host.state.config.DIFF:
        _show_diff(delta.diff)
    yield from delta.commands


@operation(is_idempotent=False)
def save() -> Generator[str, None, None]:
    """
    Write the running config to flash (``save``), e.g. only when something changed.

    The connector puts back the console settings it changed for its own session first, so only
    the deploy's changes are saved.

    **Example:**

    .. code:: python

        changed = rtx.tunnel(settings=settings)
        rtx.save(_if=changed.did_change)
    """
    yield "save"
