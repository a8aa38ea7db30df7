"""An SSH server in front of a simulated router (paramiko), listening on loopback only.

Password authentication only, interactive ``shell`` channels only (``exec`` is refused), a PTY
request is accepted. The ``rtx1200`` profile offers only ``diffie-hellman-group1-sha1`` and the
``ssh-rsa`` host key algorithm; the lists are set per transport, paramiko's globals are untouched.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import paramiko

from .cli import CliSession, Device, LogEntry
from .profiles import Profile

log = logging.getLogger(__name__)

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_HOST_KEY_BITS = 2048
_cached_key: paramiko.RSAKey | None = None
_cached_key_lock = threading.Lock()


def load_host_key(path: str | os.PathLike[str] | None) -> paramiko.RSAKey:
    """The RSA host key at ``path`` (generated and written there if missing).

    Without a path, one key is generated per process and reused.
    """
    global _cached_key
    if path is None:
        with _cached_key_lock:
            if _cached_key is None:
                _cached_key = paramiko.RSAKey.generate(_HOST_KEY_BITS)
            return _cached_key
    p = Path(path)
    if p.exists():
        return paramiko.RSAKey.from_private_key_file(str(p))
    key = paramiko.RSAKey.generate(_HOST_KEY_BITS)
    p.parent.mkdir(parents=True, exist_ok=True)
    key.write_private_key_file(str(p))
    return key


class _Interface(paramiko.ServerInterface):
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.username = ""
        self.shell_requested: dict[int, threading.Event] = {}
        self.exec_refused = 0

    def _event(self, chanid: int) -> threading.Event:
        return self.shell_requested.setdefault(chanid, threading.Event())

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_none(self, username: str) -> int:
        return paramiko.AUTH_FAILED

    def check_auth_password(self, username: str, password: str) -> int:
        if self.sim.device.check_login(username, password):
            self.username = username
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            self._event(chanid)
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_pty_request(
        self, channel, term, width, height, pixelwidth, pixelheight, modes
    ):
        return True

    def check_channel_window_change_request(
        self, channel, width, height, pixelwidth, pixelheight
    ) -> bool:
        return True

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        self._event(channel.get_id()).set()
        return True

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        self.exec_refused += 1
        self.sim._exec_refused += 1
        return False

    def check_channel_subsystem_request(self, channel: paramiko.Channel, name: str) -> bool:
        return False

    def check_port_forward_request(self, address: str, port: int) -> bool:
        return False

    def check_channel_direct_tcpip_request(self, chanid: int, origin, destination) -> int:
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class Simulator:
    """A simulated YAMAHA RTX reachable over SSH on 127.0.0.1.

    Options (all keyword):

    ``config_text``: initial config (also the saved config); default ``configs/factory.txt``.
    ``profile``: ``"rtx1200"`` (legacy SSH algorithms only) or ``"rtx830"`` (modern ones).
    ``user`` / ``password``: SSH login (``login user`` lines with a known password also work).
    ``admin_password``: for ``administrator`` (default: from the config, else empty).
    ``host_key_path``: RSA host key file, generated if missing (default: one key per process).
    ``normalise_ipv6``: ``show config`` prints IPv6 addresses compressed (default: as typed).
    ``default_character``: the factory ``console character`` (``ja.sjis``; messages Japanese).
    ``fail_command``: regex; a matching command answers ``Error: Parameter out of range``.
    ``drop_on``: regex; a matching command cuts the TCP connection before it is applied.
    ``dirty_on_console_commands``: ``console …`` at ``#`` marks the config unsaved (False).
    ``dirty_on_same_value``: re-entering an identical line marks it unsaved (True).
    ``user_console_commands_change_config``: ``console …`` at ``>`` is stored too (False).
    ``show_config_requires_admin``: ``show config`` at ``>`` → admin-only error (False).
    ``wrong_password_text``: printed for a wrong administrator password
    (default ``Error: Incorrect password`` / Japanese).
    ``state_dir``: the saved config persists as ``state_dir/config0.txt``.
    ``clock``: callable returning the (aware) datetime used for dates.

    :attr:`on_running_change` (settable any time): called with the running config's text each
    time it changes (a config command, a restart), before the router answers; a lab's data
    plane follows the running config through it, as a real router's does.
    """

    def __init__(
        self,
        config_text: str | None = None,
        *,
        profile: str | Profile = "rtx1200",
        host_key_path: str | os.PathLike[str] | None = None,
        **options,
    ) -> None:
        self.device = Device(config_text, profile=profile, **options)
        self.profile = self.device.profile
        self.device.reboot_hook = self._drop_all
        self.host_key = load_host_key(host_key_path)
        self.host = "127.0.0.1"
        self.port: int | None = None
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._transports: set[paramiko.Transport] = set()
        self._lock = threading.Lock()
        self._exec_refused = 0
        self.sessions_started = 0

    # ---- lifecycle

    def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host:port`` (loopback only; 0 = any free port) → the actual port."""
        if host not in _LOOPBACK:
            raise ValueError("the simulator listens on loopback only")
        host = "127.0.0.1" if host == "localhost" else host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(16)
        sock.settimeout(0.2)
        self._listener = sock
        self.host = host
        self.port = sock.getsockname()[1]
        self._stopping.clear()
        t = threading.Thread(target=self._accept_loop, name="rtxsim-accept", daemon=True)
        t.start()
        self._threads.append(t)
        return self.port

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self._drop_all()
        for t in list(self._threads):
            if t is not threading.current_thread():
                t.join(timeout=5)
        self._threads.clear()

    def __enter__(self) -> Simulator:
        if self.port is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- test API

    @property
    def running_config_text(self) -> str:
        """The running config body as ``show config`` prints it, without the ``#`` header."""
        with self.device.lock:
            return self.device.running.text()

    @property
    def saved_config_text(self) -> str:
        with self.device.lock:
            return self.device.saved.text()

    @property
    def running_config(self):
        return self.device.running

    @property
    def saved_config(self):
        return self.device.saved

    @property
    def dirty(self) -> bool:
        return self.device.dirty

    @property
    def command_log(self) -> list[LogEntry]:
        """Every Enter-terminated line received, across sessions: ``(mode, context, command)``.

        ``mode`` is ``user`` or ``admin``; ``context`` ``""``/``tunnel1``/``pp1``. Empty lines
        are included (a CR LF client sends one per command). Passwords typed after
        ``administrator`` and the single-key save answer are not lines and are not logged.
        """
        with self.device.lock:
            return list(self.device.command_log)

    @property
    def commands(self) -> list[str]:
        """Just the non-empty commands of :attr:`command_log`."""
        return [e.command for e in self.command_log if e.command]

    @property
    def exec_requests_refused(self) -> int:
        return self._exec_refused

    @property
    def active_sessions(self) -> int:
        with self._lock:
            return sum(1 for t in self._transports if t.is_active())

    def show_config(self) -> str:
        """``show config`` with its header, unwrapped, ``\\n`` line ends."""
        return "\n".join(self.device.show_config_lines()) + "\n"

    @property
    def on_running_change(self) -> Callable[[str], None] | None:
        return self.device.running_hook

    @on_running_change.setter
    def on_running_change(self, callback: Callable[[str], None] | None) -> None:
        self.device.running_hook = callback

    def restart(self) -> None:
        """Reboot: running := saved, unsaved changes lost, every session dropped."""
        self.device.reboot()

    def load(self, config_text: str) -> None:
        """Replace running and saved config (like a config file load plus restart)."""
        with self.device.lock:
            self.device.saved = self.device.parse(config_text)
            self.device._persist()
        self.device.reboot()

    # ---- internals

    def _drop_all(self) -> None:
        with self._lock:
            transports = list(self._transports)
        for t in transports:
            _abort(t)

    def _accept_loop(self) -> None:
        listener = self._listener
        while not self._stopping.is_set() and listener is not None:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            t = threading.Thread(target=self._serve, args=(conn,), name="rtxsim-conn", daemon=True)
            t.start()
            with self._lock:
                self._threads = [x for x in self._threads if x.is_alive()]
                self._threads.append(t)

    def _make_transport(self, conn: socket.socket) -> paramiko.Transport:
        p = self.profile
        t = paramiko.Transport(conn, server_sig_algs=p.ssh_extensions, strict_kex=p.ssh_extensions)
        opts = t.get_security_options()
        if p.kex is not None:
            opts.kex = tuple(k for k in p.kex if k in t._kex_info)
        if p.key_types is not None:
            opts.key_types = p.key_types
        if p.ciphers is not None:
            opts.ciphers = p.ciphers
        if p.digests is not None:
            opts.digests = p.digests
        t.add_server_key(self.host_key)
        return t

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(None)
        try:
            transport = self._make_transport(conn)
        except Exception:  # pragma: no cover - socket died at once
            conn.close()
            return
        with self._lock:
            self._transports.add(transport)
        iface = _Interface(self)
        try:
            try:
                transport.start_server(server=iface)
            except (paramiko.SSHException, EOFError, OSError) as e:
                log.debug("negotiation failed: %s", e)
                return
            # Channels are opened, then a shell (or an exec, refused) is asked for on them: run
            # a session on the first channel that asked for a shell.
            pending: dict[int, paramiko.Channel] = {}
            while transport.is_active() and not self._stopping.is_set():
                chan = transport.accept(timeout=0.05)
                if chan is not None:
                    pending[chan.get_id()] = chan
                ready = [c for cid, c in pending.items() if iface._event(cid).is_set()]
                if not ready:
                    continue
                chan = ready[0]
                del pending[chan.get_id()]
                if self._run_session(chan, transport, iface.username) == "stop":
                    break
        finally:
            _abort(transport, graceful=True)
            with self._lock:
                self._transports.discard(transport)

    def _run_session(self, chan: paramiko.Channel, transport: paramiko.Transport, user: str):
        session = CliSession(self.device, user)
        self.sessions_started += 1
        chan.settimeout(0.2)
        try:
            chan.sendall(session.start())
            while not self._stopping.is_set() and transport.is_active():
                try:
                    data = chan.recv(4096)
                except TimeoutError:
                    continue
                if not data:
                    return "stop"
                out, action = session.feed(data)
                if out:
                    chan.sendall(out)
                if action == "close":
                    chan.close()
                    return "stop"
                if action == "drop":
                    _abort(transport)
                    return "stop"
        except (OSError, EOFError, paramiko.SSHException):
            return "stop"
        return "stop"


def _abort(transport: paramiko.Transport, graceful: bool = False) -> None:
    """Close a connection; not graceful = cut the TCP connection without any SSH goodbye."""
    sock = transport.sock
    if not graceful:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    try:
        transport.close()
    except Exception:  # pragma: no cover
        pass
    try:
        sock.close()
    except OSError:
        pass


__all__ = ["Simulator", "load_host_key"]
