"""``@rtx`` pyinfra connector: YAMAHA RTX routers over an interactive SSH CLI session.

.. code:: shell

    pyinfra @rtx/192.0.2.1 exec -- show config
    pyinfra inventory.py fact ipip6.rtx.facts.RunningConfig

Login uses pyinfra's usual ``ssh_user`` / ``ssh_password`` / ``ssh_port`` / ``ssh_hostname``;
the connector then enters administrator mode with ``rtx_admin_password``. Commands are RTX CLI
lines, not shell: pyinfra's shell-only arguments (``_sudo``, ``_env``, ``_chdir`` …) and file
transfers are refused with an error for the host.

Safety rules:

- Host keys are checked against ``known_hosts`` (``rtx_known_hosts_file``, else pyinfra's
  ``ssh_known_hosts_file``, else ``~/.ssh/known_hosts``). An unknown key is refused unless
  ``rtx_trust_new_host_key: True`` or ``ssh_strict_host_key_checking: "accept-new"`` is set
  (pyinfra's SSH connector accepts new keys by default; for a router this one does not).
  A changed key is always refused.
- Legacy SSH algorithms (``diffie-hellman-group1-sha1`` kex, ``ssh-rsa`` SHA-1 signatures),
  which RTX1200/RTX810 need, are disabled for this connection unless ``rtx_legacy_ssh: True``;
  even then they stay last in the preference lists. This is set on the connection's own
  paramiko ``Transport`` (``disabled_algorithms``, its security options), never in paramiko's
  class defaults, so no other SSH connection in the process is affected.
- Password authentication only (``ssh_password``), as RTX1200/RTX810 offer nothing else.
- ``rtx_timeout`` (seconds, default 30) bounds the wait for each prompt; pyinfra's
  ``_timeout`` overrides it per operation.
- While pyinfra is not executing (``--dry``, fact gathering) only read-only ``show …``
  commands are sent.
- Leaving administrator mode answers ``Save new configuration ? (Y/N)`` with ``N``: saving is
  an explicit ``save`` command (see ``operations.rtx.save``).
- Secrets: the values of the host's secret-looking data keys (``ssh_password``,
  ``rtx_admin_password``…) are scrubbed from everything the connector returns or prints and
  from its error messages, and importing this module puts :mod:`ipip6.rtx.redact`'s filter on
  pyinfra's logger (pyinfra's ``--debug`` prints group data, passwords included).
- :attr:`RTXConnector.driver` (:func:`driver_of` for a host) is the
  :class:`~ipip6.rtx.driver.RTXDriver` that owns a commit's state; it drives the session
  through :meth:`RTXConnector.cli` and :meth:`RTXConnector.reconnect`.

Config reads are cheap to repeat: ``show config`` and ``show config N`` are answered from the
CLI session's earlier read as long as nothing sent since could have changed them (see
:meth:`ipip6.rtx.session.RTXSession.read`), so the facts of every operation and of pyinfra's
change detection cost one read per session. The session's own check of its console settings,
at ``#``, is that first running-config read. What was read before pyinfra's confirmation prompt
(a run without ``-y``) is read again once execution starts: the wait may be long.
"""

from __future__ import annotations

import os
import socket
import threading
from io import IOBase
from typing import TYPE_CHECKING, Any

import paramiko
from paramiko.hostkeys import HostKeyEntry
from pyinfra import logger
from pyinfra.api.command import StringCommand
from pyinfra.api.exceptions import ConnectError
from pyinfra.api.output import echo
from pyinfra.connectors.base import BaseConnector, DataMeta
from pyinfra.connectors.util import CommandOutput, OutputLine
from typing_extensions import TypedDict, Unpack, override

from ipip6 import preflight
from ipip6.rtx import redact
from ipip6.rtx.driver import RTXDriver
from ipip6.rtx.session import (
    KEPT_READ,
    AdministratorLoginError,
    CommandResult,
    RTXSession,
    SessionClosedError,
    SessionError,
)

if TYPE_CHECKING:
    from pyinfra.api.arguments import ConnectorArguments
    from pyinfra.api.host import Host
    from pyinfra.api.state import State

# What RTX1200/RTX810 offer and nothing newer; off unless rtx_legacy_ssh.
LEGACY_ALGORITHMS = {"kex": ["diffie-hellman-group1-sha1"], "keys": ["ssh-rsa"]}
DEFAULT_COMMAND_TIMEOUT = 30.0
PTY_WIDTH = 200  # wide, like the console width the session sets
PTY_HEIGHT = 1000
_KNOWN_HOSTS_LOCK = threading.Lock()

# pyinfra loads every connector entry point when it builds the inventory, from any directory
# and for every command, before it logs the group data with --debug and before it connects:
# the earliest point this package can hide the passwords in that log, and check every host's
# data before any host is contacted (ipip6/preflight.py).
redact.install_log_filter()
preflight.install_on_current_state()


class ConnectorData(TypedDict, total=False):
    ssh_hostname: str
    ssh_port: int
    ssh_user: str
    ssh_password: str
    ssh_known_hosts_file: str
    ssh_strict_host_key_checking: str
    rtx_admin_password: str
    rtx_known_hosts_file: str
    rtx_trust_new_host_key: bool
    rtx_legacy_ssh: bool
    rtx_timeout: float


connector_data_meta: dict[str, DataMeta] = {
    "ssh_hostname": DataMeta("Address of the router (default: the inventory name)"),
    "ssh_port": DataMeta("SSH port", 22),
    "ssh_user": DataMeta("Login user (`login user NAME PASS` on the router)"),
    "ssh_password": DataMeta("Login password"),
    "ssh_known_hosts_file": DataMeta("known_hosts file (default ~/.ssh/known_hosts)"),
    "ssh_strict_host_key_checking": DataMeta(
        "'accept-new' trusts an unknown host key (default: refuse it)"
    ),
    "rtx_admin_password": DataMeta("Password for `administrator`"),
    "rtx_known_hosts_file": DataMeta("known_hosts file for routers (overrides the ssh_ one)"),
    "rtx_trust_new_host_key": DataMeta("Trust and record an unknown host key", False),
    "rtx_legacy_ssh": DataMeta(
        "Allow diffie-hellman-group1-sha1 and ssh-rsa (RTX1200, RTX810)", False
    ),
    "rtx_timeout": DataMeta("Seconds to wait for the router's prompt", DEFAULT_COMMAND_TIMEOUT),
}

# pyinfra passes every connector argument with its default; these must stay at the default.
_SHELL_ONLY_ARGUMENTS = (
    "_sudo",
    "_sudo_user",
    "_use_sudo_login",
    "_preserve_sudo_env",
    "_su_user",
    "_use_su_login",
    "_preserve_su_env",
    "_su_shell",
    "_doas",
    "_doas_user",
    "_dzdo",
    "_dzdo_user",
    "_chdir",
    "_env",
    "_stdin",
)
# Never part of an RTX command line; typical of the shell pyinfra's own facts generate.
_SHELL_TOKENS = (" || ", " && ", "$(", "`", " 2>", "/dev/null")
# Session state the connector owns; a deploy sending these would break its bookkeeping.
_SESSION_COMMANDS = ("administrator", "exit", "quit", "console", "login", "logout")


def _unknown_host_key(known_hosts: str, name: str, key: paramiko.PKey, trust: bool) -> None:
    """A key not in known_hosts: refuse it, or (only when asked to) record and trust it."""
    if not trust:
        raise ConnectError(
            f"unknown host key for {name} ({key.get_name()} {key.fingerprint}) is not in "
            f"{known_hosts}; verify it and add it there, or set rtx_trust_new_host_key: True "
            "for the first connection"
        )
    line = HostKeyEntry([name], key).to_line()
    with _KNOWN_HOSTS_LOCK:
        os.makedirs(os.path.dirname(known_hosts) or ".", exist_ok=True)
        with open(known_hosts, "a", encoding="utf-8") as handle:
            handle.write(line)
    logger.warning(
        "Trusted new host key for %s (%s %s), added to %s",
        name,
        key.get_name(),
        key.fingerprint,
        known_hosts,
    )


def command_text(command: StringCommand | str) -> str:
    """The CLI text of a command pyinfra hands over (a StringCommand or a plain string)."""
    if isinstance(command, StringCommand):
        return command.get_raw_value()
    return str(command)


def is_read_only(line: str) -> bool:
    """Whether a CLI line only reads (``show …``), so it may run during ``--dry``."""
    words = line.split()
    return bool(words) and words[0] == "show"


def unsupported_arguments(arguments: dict[str, Any], shell: str | None) -> list[str]:
    """The shell-only arguments set to something other than their default."""
    problems = []
    for key in _SHELL_ONLY_ARGUMENTS:
        value = arguments.get(key)
        if value:
            problems.append(key)
    executable = arguments.get("_shell_executable")
    if executable and executable != shell:
        problems.append("_shell_executable")
    return problems


# Host key algorithm → the key type a known_hosts line names.
def _key_type(algorithm: str) -> str:
    return "ssh-rsa" if algorithm in ("rsa-sha2-512", "rsa-sha2-256") else algorithm


# Parsed known_hosts files by (path, mtime, size): with many routers in one run each connection
# would otherwise parse every key of the same file again (4 ms a router at 50 of them).
_known_hosts_cache: dict[tuple[str, int, int], paramiko.HostKeys] = {}


def _known_keys(known_hosts: str) -> paramiko.HostKeys:
    """The keys of ``known_hosts`` (none when it does not exist), parsed once while the file
    is unchanged. Only looked up, never changed, by the caller."""
    try:
        stat = os.stat(known_hosts)
    except FileNotFoundError:
        return paramiko.HostKeys()
    except OSError as exc:
        raise ConnectError(f"cannot read known_hosts {known_hosts}: {exc}") from exc
    cache_key = (os.path.abspath(known_hosts), stat.st_mtime_ns, stat.st_size)
    keys = _known_hosts_cache.get(cache_key)
    if keys is None:
        keys = paramiko.HostKeys()
        try:
            keys.load(known_hosts)
        except (OSError, paramiko.SSHException, ValueError) as exc:
            raise ConnectError(f"cannot read known_hosts {known_hosts}: {exc}") from exc
        _known_hosts_cache[cache_key] = keys
    return keys


def open_ssh(
    hostname: str,
    port: int,
    *,
    user: str,
    password: str,
    known_hosts: str,
    trust_new_key: bool = False,
    legacy: bool = False,
    timeout: float = 10,
) -> paramiko.Transport:
    """An authenticated SSH transport to a router, host key checked. Raises ``ConnectError``.

    Algorithms are set on this one transport only, never in paramiko's class defaults: without
    ``legacy`` the ``diffie-hellman-group1-sha1`` kex and ``ssh-rsa`` (SHA-1) signatures are
    disabled; with it they stay where paramiko puts them, last in each preference list. Host
    key algorithms matching a key already in known_hosts go first, modern before legacy.
    """
    where = f"{hostname}:{port}"
    known_name = hostname if port == 22 else f"[{hostname}]:{port}"
    known = _known_keys(known_hosts).lookup(known_name)
    try:
        sock = socket.create_connection((hostname, port), timeout=timeout)
    except OSError as exc:
        raise ConnectError(f"could not connect to {where}: {exc}") from exc
    transport = paramiko.Transport(sock, disabled_algorithms=None if legacy else LEGACY_ALGORITHMS)
    try:
        transport.banner_timeout = timeout
        transport.auth_timeout = timeout
        if known:
            options = transport.get_security_options()
            first = [a for a in options.key_types if _key_type(a) in known]
            options.key_types = first + [a for a in options.key_types if a not in first]
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
        if not known:
            _unknown_host_key(known_hosts, known_name, key, trust_new_key)
        elif known.get(key.get_name()) != key:
            expected = known.get(key.get_name()) or next(iter(known.values()))
            raise ConnectError(
                f"host key of {where} CHANGED: got {key.get_name()} {key.fingerprint}, "
                f"{known_hosts} expects {expected.get_name()} {expected.fingerprint}; refusing "
                "to connect (if the router was replaced, remove the old key with "
                f"ssh-keygen -R '{known_name}' -f {known_hosts})"
            )
        transport.auth_password(user, password)
    except ConnectError:
        transport.close()
        raise
    except paramiko.AuthenticationException as exc:
        transport.close()
        raise ConnectError(
            f"SSH login to {where} as {user!r} rejected ({exc}); expected the password "
            "set with `login user` on the router"
        ) from exc
    except paramiko.SSHException as exc:
        transport.close()
        hint = ""
        if "incompatible" in str(exc).lower() and not legacy:
            hint = (
                "; old RTX firmware only offers diffie-hellman-group1-sha1 / ssh-rsa: "
                "set rtx_legacy_ssh: True for this router"
            )
        raise ConnectError(f"SSH negotiation with {where} failed: {exc}{hint}") from exc
    except (OSError, EOFError) as exc:
        transport.close()
        raise ConnectError(f"SSH connection to {where} failed: {exc}") from exc
    return transport


def driver_of(host: Host) -> RTXDriver:
    """The :class:`~ipip6.rtx.driver.RTXDriver` of a router host (an ``@rtx/…`` host)."""
    connector = host.connector
    if not isinstance(connector, RTXConnector):
        raise TypeError(
            f"{host.name} is not an @rtx/ host (its connector is "
            f"{type(connector).__name__}): the router operations need the @rtx connector"
        )
    return connector.driver


def _error_output(*lines: str) -> CommandOutput:
    return CommandOutput([OutputLine("stderr", line) for line in lines])


class RTXConnector(BaseConnector):
    """
    Drive a YAMAHA RTX router's CLI over SSH (interactive shell, administrator mode).

    .. code:: python

        # inventory.py
        routers = [
            ("@rtx/192.0.2.1", {
                "ssh_user": "admin",
                "ssh_password": "...",
                "rtx_admin_password": "...",
                "rtx_legacy_ssh": True,  # RTX1200 / RTX810
            }),
        ]
    """

    handles_execution = True

    data_cls = ConnectorData
    data_meta = connector_data_meta
    data: ConnectorData

    def __init__(self, state: State, host: Host):
        super().__init__(state, host)
        self.transport: paramiko.Transport | None = None
        self.session: RTXSession | None = None
        #: The one owner of this router's commit state in this run.
        self.driver = RTXDriver(self)
        # Whether reads made before pyinfra's confirmation prompt have been dropped.
        self._reads_renewed = False
        redact.register_secrets_in(host.data.dict())
        self._secrets = tuple(
            str(v) for k, v in host.data.dict().items() if redact.is_secret_key(k) and v
        )

    def scrub(self, text: str) -> str:
        """``text`` without this host's secrets (and every other registered one)."""
        return redact.scrub(text, self._secrets)

    @override
    @staticmethod
    def make_names_data(name: str):
        yield f"@rtx/{name}", {"ssh_hostname": name}, ["@rtx"]

    # -- connecting ------------------------------------------------------------------------

    def _address(self) -> tuple[str, int]:
        return self.data.get("ssh_hostname") or self.host.name, int(self.data.get("ssh_port") or 22)

    def _known_hosts(self) -> str:
        path = (
            self.data.get("rtx_known_hosts_file")
            or self.data.get("ssh_known_hosts_file")
            or "~/.ssh/known_hosts"
        )
        return os.path.expanduser(path)

    def _trust_new_key(self) -> bool:
        return bool(self.data.get("rtx_trust_new_host_key")) or (
            self.data.get("ssh_strict_host_key_checking") == "accept-new"
        )

    @override
    def connect(self) -> None:
        hostname, port = self._address()
        where = f"{hostname}:{port}"
        user = self.data.get("ssh_user")
        password = self.data.get("ssh_password")
        admin_password = self.data.get("rtx_admin_password")
        missing = [
            key
            for key, value in (
                ("ssh_user", user),
                ("ssh_password", password),
                ("rtx_admin_password", admin_password),
            )
            if not value
        ]
        if missing:
            raise ConnectError(f"missing host data for the RTX router: {', '.join(missing)}")

        transport = open_ssh(
            hostname,
            port,
            user=user,
            password=password,
            known_hosts=self._known_hosts(),
            trust_new_key=self._trust_new_key(),
            legacy=bool(self.data.get("rtx_legacy_ssh")),
            timeout=self.state.config.CONNECT_TIMEOUT,
        )
        try:
            # A shell, never exec: RTX810 has no exec channel.
            channel = transport.open_session(timeout=self.state.config.CONNECT_TIMEOUT)
            channel.get_pty(term="vt100", width=PTY_WIDTH, height=PTY_HEIGHT)
            channel.invoke_shell()
            session = RTXSession(channel, name=self.host.name, timeout=self._timeout())
            session.start(admin_password)
        except AdministratorLoginError as exc:
            transport.close()
            raise ConnectError(self.scrub(str(exc).removeprefix(f"{self.host.name}: "))) from None
        except (SessionError, OSError, EOFError, paramiko.SSHException) as exc:
            transport.close()
            message = f"CLI session on {where} failed to start: {exc}"
            raise ConnectError(self.scrub(message)) from None
        self.transport = transport
        self.session = session

    @property
    def alive(self) -> bool:
        """Whether the CLI session can still take commands."""
        return (
            self.session is not None
            and self.session.broken is None
            and self.transport is not None
            and self.transport.is_active()
        )

    def reconnect(self) -> None:
        """Drop the current session (dead or not) and log in again: a fresh SSH connection, a
        fresh CLI session in administrator mode. Raises ``ConnectError``."""
        self.disconnect()
        self.connect()

    def _timeout(self, override: float | None = None) -> float:
        return float(override or self.data.get("rtx_timeout") or DEFAULT_COMMAND_TIMEOUT)

    @override
    def disconnect(self) -> None:
        # Never raises: pyinfra's disconnect_all would abort the whole run otherwise.
        if self.session is not None:
            self.session.close(save=False)
            self.session = None
        if self.transport is not None:
            try:
                self.transport.close()
            except Exception as exc:  # noqa: BLE001
                logger.debug("%s: closing SSH transport: %s", self.host.name, exc)
            self.transport = None

    # -- commands --------------------------------------------------------------------------

    @override
    def run_shell_command(
        self,
        command: StringCommand,
        print_output: bool = False,
        print_input: bool = False,
        **arguments: Unpack[ConnectorArguments],
    ) -> tuple[bool, CommandOutput]:
        """Send CLI lines (one per line of ``command``) in order, stopping at the first line
        the router rejects. Returns ``(False, output)`` with the error line for device errors;
        raises ``OSError``/``TimeoutError`` for transport faults."""
        lines = [line.strip() for line in command_text(command).splitlines() if line.strip()]
        refusal = self._refusal(lines, dict(arguments))
        if refusal:
            refusal = self.scrub(refusal)
            if print_output:
                echo(f"{self.host.print_prefix}{refusal}", err=True)
            return False, _error_output(refusal)
        if self.session is None:
            raise ConnectionError(f"{self.host.name}: not connected")

        timeout = arguments.get("_timeout")
        output: list[OutputLine] = []
        for line in lines:
            result = self.cli(
                line, timeout=timeout, print_input=print_input, print_output=print_output
            )
            for out in result.output.splitlines():
                if out.strip() == result.error:
                    continue  # reported once, below
                output.append(OutputLine("stdout", out))
            if not result.ok:
                # Stop here: nothing after a rejected line is sent.
                message = self.scrub(f"router rejected {line!r}: {result.error}")
                if print_output:
                    echo(f"{self.host.print_prefix}{message}", err=True)
                output.append(OutputLine("stderr", message))
                return False, CommandOutput(output)
        return True, CommandOutput(output)

    def cli(
        self,
        line: str,
        *,
        timeout: float | None = None,
        print_input: bool = False,
        print_output: bool = False,
        config_line: bool = False,
    ) -> CommandResult:
        """Send one CLI line on the current session; ``save`` puts the session's console
        settings back first. ``show config`` and ``show config N`` may be answered from the
        session's earlier read (nothing sent since could have changed it). ``config_line``: the
        caller vouches that ``line`` changes the running config only (never ``save``), so
        earlier ``show config N`` reads stay valid. Output and error come back with secrets
        scrubbed. Transport faults raise ``OSError`` (``TimeoutError``,
        ``SessionClosedError``…)."""
        if self.session is None:
            raise SessionClosedError(f"{self.host.name}: not connected")
        self._renew_reads_after_prompt()
        if print_input:
            echo(f"{self.host.print_prefix}>>> {self.scrub(line)}", err=True)
        wait = self._timeout(timeout)
        try:
            if line == "save":
                result = self.session.save(timeout=wait)
            elif KEPT_READ.fullmatch(line):
                result = self.session.read(line, timeout=wait)
            else:
                result = self.session.run(line, timeout=wait, config_line=config_line)
        except SessionError as exc:
            # The router did not behave as documented (an unexpected question, output that
            # cannot be read exactly): this line failed, the session is still usable.
            message = self.scrub(str(exc).removeprefix(f"{self.host.name}: "))
            result = CommandResult(line, "", message)
        except OSError as exc:
            # Same type (pyinfra and the commit gate tell transport faults by it), clean text;
            # the host name goes: whoever logs it puts the host's prefix in front.
            prefix = f"{self.host.name}: "
            exc.args = tuple(
                self.scrub(a.removeprefix(prefix)) if isinstance(a, str) else a for a in exc.args
            )
            raise
        result = CommandResult(
            result.command,
            self.scrub(result.output),
            self.scrub(result.error) if result.error else None,
        )
        if print_output:
            for out in result.output.splitlines():
                if out.strip() != result.error:
                    echo(f"{self.host.print_prefix}{out}", err=True)
        return result

    def _renew_reads_after_prompt(self) -> None:
        """Without ``-y`` pyinfra detects changes, then waits for the user to confirm: reads
        made before that wait are not used once execution starts (the router may have been
        changed meanwhile, and ``save`` must never go by an old read)."""
        if self._reads_renewed or not self.state.is_executing:
            return
        self._reads_renewed = True
        if self.state.check_for_changes and self.session is not None:
            self.session.forget_reads()

    def _refusal(self, lines: list[str], arguments: dict[str, Any]) -> str | None:
        """Why these lines must not be sent at all, if so."""
        problems = unsupported_arguments(arguments, self.state.config.SHELL)
        if problems:
            return (
                f"{', '.join(problems)} not supported by the @rtx connector: commands are RTX "
                "CLI lines, not shell (the connector enters administrator mode itself; set "
                "_sudo and the like only for the VPS hosts)"
            )
        for line in lines:
            if not line[0].isalpha() or any(token in line for token in _SHELL_TOKENS):
                return (
                    f"refusing {line!r}: that is POSIX shell (a built-in pyinfra fact or "
                    "operation?), not an RTX CLI line"
                )
            if line.split()[0] in _SESSION_COMMANDS:
                return (
                    f"refusing {line!r}: the @rtx connector manages the session "
                    "(administrator mode, console settings, logging out)"
                )
        if not self.state.is_executing:
            writes = [line for line in lines if not is_read_only(line)]
            if writes:
                return (
                    f"refusing {writes[0]!r} while pyinfra is not executing (dry run or fact "
                    "gathering): only read-only 'show …' commands are sent"
                )
        return None

    @override
    def put_file(
        self,
        filename_or_io: str | IOBase,
        remote_filename: str,
        remote_temp_filename: str | None = None,
        print_output: bool = False,
        print_input: bool = False,
        **arguments: Unpack[ConnectorArguments],
    ) -> bool:
        logger.error(
            "%s@rtx connector cannot upload %s: the router is configured with CLI commands "
            "(use operations.rtx), not files",
            self.host.print_prefix,
            remote_filename,
        )
        return False

    @override
    def get_file(
        self,
        remote_filename: str,
        filename_or_io: str | IOBase,
        remote_temp_filename: str | None = None,
        print_output: bool = False,
        print_input: bool = False,
        **arguments: Unpack[ConnectorArguments],
    ) -> bool:
        logger.error(
            "%s@rtx connector cannot download %s: read the config with the "
            "ipip6.rtx.facts.RunningConfig fact instead",
            self.host.print_prefix,
            remote_filename,
        )
        return False
