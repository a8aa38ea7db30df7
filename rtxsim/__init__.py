"""A simulated YAMAHA RTX router reachable over SSH, for testing the project's router driver.

``rtxsim.model``: the config model (pure). ``rtxsim.cli``: router state and terminal session
(pure). ``rtxsim.server``: the paramiko SSH server (:class:`Simulator`). ``python -m rtxsim``
runs one in the foreground.
"""

from .cli import CliSession, Device, LogEntry, sample_config
from .model import CliError, ConfigParseError, Context, RouterConfig
from .profiles import PROFILES, Profile
from .server import Simulator

__all__ = [
    "PROFILES",
    "CliError",
    "CliSession",
    "ConfigParseError",
    "Context",
    "Device",
    "LogEntry",
    "Profile",
    "RouterConfig",
    "Simulator",
    "sample_config",
]
