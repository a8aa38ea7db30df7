"""pyinfra facts read from a YAMAHA RTX router through the ``@rtx`` connector."""

from __future__ import annotations

from pyinfra.api import FactBase

from ipip6.rtx.config import RouterConfig


class RunningConfig(FactBase[RouterConfig | None]):
    """
    The router's running config (``show config``) as a :class:`~ipip6.rtx.config.RouterConfig`
    tree; the ``#`` header lines (with their ever-changing ``Reporting Date``) are dropped.
    ``None`` when it could not be read.

    .. code:: shell

        pyinfra inventory.py fact ipip6.rtx.facts.RunningConfig
    """

    @staticmethod
    def default() -> RouterConfig | None:
        return None

    def command(self) -> str:
        return "show config"

    def process(self, output: list[str]) -> RouterConfig:
        return RouterConfig.parse("\n".join(output))
