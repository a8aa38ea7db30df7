"""pyinfra facts read from a YAMAHA RTX router through the ``@rtx`` connector.

.. code:: shell

    pyinfra inventory.py fact ipip6.rtx.facts.RunningConfig
    pyinfra inventory.py fact ipip6.rtx.facts.StartupConfigFile
    pyinfra inventory.py fact ipip6.rtx.facts.SavedConfig number=0
"""

from __future__ import annotations

import re

from pyinfra.api import FactBase

from ipip6.health import parse_ipv6_addresses
from ipip6.rtx.config import RouterConfig

# `show environment`: the file the router booted from, which a bare `save` writes. Older
# firmware prints "Config. file: 0" on a line of its own; firmware with several files prints it
# after the firmware field, as a name: "Firmware: exec1  Config. file: config1". Never
# "Default config. file: …" (the file for the next boot), whatever its case. A sub-file
# ("config0.1", RTX1210 and later) is not file 0: not matched rather than misread.
_CONFIG_FILE = re.compile(
    r"(?<![A-Za-z])(?:Config\.?\s*file|(?:起動時)?設定ファイル)\s*[:：]\s*(?:config)?(\d+)(?![\d.])",
    re.IGNORECASE,
)
_DEFAULT_BEFORE = re.compile(r"(?:default|デフォルト)\s*$", re.IGNORECASE)


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


class StartupConfigFile(FactBase["int | None"]):
    """
    The number of the config file the router runs from (``show environment``: ``Config.
    file: N``); a bare ``save`` writes to it. None when no such line is found: never guessed.
    """

    @staticmethod
    def default() -> int | None:
        return None

    def command(self) -> str:
        return "show environment"

    def process(self, output: list[str]) -> int | None:
        return config_file_number(output)


def config_file_number(show_environment: list[str]) -> int | None:
    """``Config. file: N`` from ``show environment`` output (None when not found)."""
    for line in show_environment:
        for match in _CONFIG_FILE.finditer(line):
            if not _DEFAULT_BEFORE.search(line[: match.start()]):
                return int(match.group(1))
    return None


class SavedConfig(FactBase[RouterConfig | None]):
    """
    A saved config file (``show config N``, default 0) as a
    :class:`~ipip6.rtx.config.RouterConfig`: what the router will run after a restart. ``None``
    when it could not be read (older firmware may not know ``show config N``).

    .. code:: shell

        pyinfra inventory.py fact ipip6.rtx.facts.SavedConfig number=0
    """

    @staticmethod
    def default() -> RouterConfig | None:
        return None

    def command(self, number: int = 0) -> str:
        return f"show config {int(number)}"

    def process(self, output: list[str]) -> RouterConfig:
        return RouterConfig.parse("\n".join(output))


class TunnelStatusLines(FactBase[list]):
    """``show status tunnel N`` as printed (for :func:`ipip6.rtx.status.parse_tunnel_status`,
    which needs N: pyinfra hands a fact's ``process`` the output only).

    .. code:: shell

        pyinfra inventory.py fact ipip6.rtx.facts.TunnelStatusLines number=1
    """

    @staticmethod
    def default() -> list:
        return []

    def command(self, number: int) -> str:
        return f"show status tunnel {int(number)}"

    def process(self, output: list[str]) -> list:
        return list(output)


class IPv6Addresses(FactBase[list]):
    """The router's unicast IPv6 addresses (``show ipv6 address``; link-local ones aside), as
    ``ADDRESS/LEN`` strings: whatever the layout the firmware prints, every word that parses as
    an IPv6 address counts.

    .. code:: shell

        pyinfra inventory.py fact ipip6.rtx.facts.IPv6Addresses
    """

    @staticmethod
    def default() -> list:
        return []

    def command(self) -> str:
        return "show ipv6 address"

    def process(self, output: list[str]) -> list:
        return [str(a) for a in parse_ipv6_addresses(output)]
