"""The one diff printer of both ends: pyinfra's own coloured unified diff, under a title."""

from __future__ import annotations

from collections.abc import Sequence

from pyinfra import host, logger
from pyinfra.operations.util.files import generate_color_diff


def show_diff(title: str, current: Sequence[str], desired: Sequence[str]) -> None:
    """Print ``current`` → ``desired`` as pyinfra prints a file's diff, when ``--diff`` is on.
    The lines must already be fit to print (secrets hidden)."""
    if not host.state.config.DIFF:
        return
    host.log(title, logger.info)
    for line in generate_color_diff(list(current), list(desired)):
        logger.info("  %s", line)
    logger.info("")
