"""The router's state and its terminal: no sockets here.

:class:`Device` holds what survives a session: running and saved config, the unsaved-changes
flag, passwords, options, the command log. :class:`CliSession` is one login's terminal: it takes
the bytes a client types and returns the bytes the router prints (echo, prompts, errors, paged
output, the save question), so it can be tested without SSH.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import threading
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, TextIO

from . import messages
from .model import NO_CONTEXT, ApplyResult, CliError, Context, RouterConfig, tokenize, unquote
from .profiles import Profile, get_profile

CONFIGS_DIR = Path(__file__).with_name("configs")
JST = _dt.timezone(_dt.timedelta(hours=9), "JST")
STATE_FILE = "config0.txt"


def sample_config(name: str) -> str:
    """Text of a sample config shipped in ``rtxsim/configs`` (``factory`` or ``busy``)."""
    return (CONFIGS_DIR / f"{name}.txt").read_text(encoding="utf-8")


class LogEntry(NamedTuple):
    mode: str  # "user" (at ">") or "admin" (at "#")
    context: str  # "", "tunnel1", "pp1"
    command: str  # the line as received, stripped of blanks at both ends


def _compile(pattern: str | re.Pattern[str] | None) -> re.Pattern[str] | None:
    if pattern is None or isinstance(pattern, re.Pattern):
        return pattern
    return re.compile(pattern)


class Device:
    """A simulated router (thread-safe).

    ``config_text`` is the initial config (``None``: ``configs/factory.txt``); it is also the
    saved config. See :class:`rtxsim.server.Simulator` for the options.
    """

    def __init__(
        self,
        config_text: str | None = None,
        *,
        profile: str | Profile = "rtx1200",
        user: str | None = "admin",
        password: str | None = "admin",
        admin_password: str | None = None,
        normalise_ipv6: bool = False,
        default_character: str = "ja.sjis",
        fail_command: str | re.Pattern[str] | None = None,
        drop_on: str | re.Pattern[str] | None = None,
        drop_after: str | re.Pattern[str] | None = None,
        console_needs_admin: bool = False,
        tunnel_down: bool = False,
        dirty_on_console_commands: bool = False,
        dirty_on_same_value: bool = True,
        user_console_commands_change_config: bool = False,
        show_config_requires_admin: bool = False,
        wrong_password_text: str | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        clock: Callable[[], _dt.datetime] | None = None,
        config_file: int | None = None,
    ) -> None:
        if default_character not in messages.CHARSETS:
            raise ValueError(f"default_character must be one of {', '.join(messages.CHARSETS)}")
        self.profile = get_profile(profile)
        self.user = user
        self.password = password
        self.normalise_ipv6 = normalise_ipv6
        self.default_character = default_character
        self.fail_command = _compile(fail_command)
        self.drop_on = _compile(drop_on)
        #: Fault: the command is carried out, then the connection drops before the answer.
        self.drop_after = _compile(drop_after)
        #: Firmware where `console …` is refused at ">" (administrator use only).
        self.console_needs_admin = console_needs_admin
        #: Fault: `show status tunnel N` says not connected whatever the config.
        self.tunnel_down = tunnel_down
        #: Other firmware: `show status tunnel N` prints these lines instead.
        self.tunnel_status_text: list[str] | None = None
        #: Addresses the interfaces learned (an ISP's RA on lan2), beside the configured ones;
        #: ``{"lan2": "2001:db8:201::1/64"}``. A renumbered IPoE line changes them.
        self.learned_ipv6: dict[str, str] = {}
        #: Other firmware: `show ipv6 address` prints these lines instead.
        self.ipv6_address_text: list[str] | None = None
        self.dirty_on_console_commands = dirty_on_console_commands
        self.dirty_on_same_value = dirty_on_same_value
        self.user_console_commands_change_config = user_console_commands_change_config
        self.show_config_requires_admin = show_config_requires_admin
        self.wrong_password_text = wrong_password_text
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self._clock = clock or (lambda: _dt.datetime.now(JST))
        #: None: older firmware, one config file printed as a bare number (``Config. file: 0``).
        #: N: firmware with several files (``Config. file: configN``), booted from file N; the
        #: others hold the factory config. A bare ``save`` writes file N.
        self.config_file = config_file
        self.lock = threading.RLock()
        self.command_log: list[LogEntry] = []
        #: Also written here, one tab-separated line per entry (``python -m rtxsim
        #: --command-log``: another process, a bench, counts what was sent).
        self.log_to: TextIO | None = None
        #: Called (with no arguments) after a reboot, to drop every session.
        self.reboot_hook: Callable[[], None] | None = None
        #: Called with the running config's text whenever it changed (a config command that
        #: changed it, a reboot), before the router answers: what a data plane follows.
        self.running_hook: Callable[[str], None] | None = None

        text = config_text if config_text is not None else sample_config("factory")
        state_file = self._state_file()
        if state_file is not None and state_file.exists():
            text = state_file.read_text(encoding="utf-8")
        self.saved = self.parse(text)
        self.running = self.saved.copy()
        #: The saved files other than the one booted from (firmware with several files).
        self.other_files: dict[int, RouterConfig] = {}
        if config_file is not None:
            for number in (0, 1):
                if number != config_file:
                    self.other_files[number] = self.parse(sample_config("factory"))
        self.dirty = False
        if admin_password is None:
            admin_password = self.saved.secret("administrator password") or ""
        self.admin_password = admin_password
        self._saved_admin_password = admin_password
        self.boot_time = self.now()
        self._persist()

    # ---- config

    def parse(self, text: str) -> RouterConfig:
        return RouterConfig.from_text(text, self.profile, normalise_ipv6=self.normalise_ipv6)

    def apply(self, line: str, context: Context, *, admin: bool) -> ApplyResult:
        """Apply a config command typed in a session; raises :class:`CliError`."""
        with self.lock:
            commit = admin or self.user_console_commands_change_config
            res = self.running.apply(line, context, admin=admin, commit=commit)
            if res.kind in ("set", "delete"):
                console = res.console is not None
                if (res.changed or self.dirty_on_same_value) and (
                    not console or self.dirty_on_console_commands
                ):
                    self.dirty = True
                if res.head == "administrator password":
                    self.admin_password = (res.secret or "") if res.kind == "set" else ""
            text = self.running.text() if res.changed and res.console is None else None
        if text is not None:
            self._running_changed(text)
        return res

    def _running_changed(self, text: str) -> None:
        if self.running_hook is not None:
            self.running_hook(text)

    def save(self) -> None:
        with self.lock:
            self.saved = self.running.copy()
            self._saved_admin_password = self.admin_password
            self.dirty = False
            self._persist()

    def reboot(self) -> None:
        """Power cycle: the running config becomes the saved one; sessions are dropped."""
        with self.lock:
            self.running = self.saved.copy()
            self.admin_password = self._saved_admin_password
            self.dirty = False
            self.boot_time = self.now()
            text = self.running.text()
        if self.reboot_hook is not None:
            self.reboot_hook()
        self._running_changed(text)

    def _state_file(self) -> Path | None:
        return None if self.state_dir is None else self.state_dir / STATE_FILE

    def _persist(self) -> None:
        path = self._state_file()
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.saved.text(), encoding="utf-8")
        tmp.replace(path)

    # ---- authentication

    def check_login(self, user: str, password: str) -> bool:
        with self.lock:
            if self.user is not None and user == self.user and password == self.password:
                return True
            known = self.running.login_users().get(user)
            return known is not None and known == password

    def check_admin(self, password: str) -> bool:
        with self.lock:
            return password == self.admin_password

    # ---- texts

    def now(self) -> _dt.datetime:
        return self._clock()

    def record(self, mode: str, context: str, command: str) -> None:
        with self.lock:
            self.command_log.append(LogEntry(mode, context, command))
            if self.log_to is not None:
                self.log_to.write(f"{mode}\t{context}\t{command}\n")
                self.log_to.flush()

    def banner_lines(self) -> list[str]:
        p = self.profile
        return [
            p.version_line,
            f"Copyright (c) {p.copyright_years} Yamaha Corporation. All Rights Reserved.",
            "To display the software copyright statement, use 'show copyright' command.",
            ", ".join(p.macs),
            p.memory,
        ]

    def header_lines(self) -> list[str]:
        p = self.profile
        now = self.now()
        return [
            f"# {p.version_line}",
            f"# MAC Address : {', '.join(p.macs)}",
            f"# {p.memory}",
            f"# {p.main_line}",
            f"# Reporting Date: {now:%b} {now.day} {now:%H:%M:%S} {now.year}",
        ]

    def show_config_lines(self, saved: bool = False) -> list[str]:
        with self.lock:
            cfg = self.saved if saved else self.running
            return self.header_lines() + cfg.lines()

    def _environment_files(self) -> list[str]:
        if self.config_file is None:
            return ["Firmware: exec0", "Config. file: 0", "Default config. file: 0"]
        n = self.config_file
        return [
            f"Firmware: exec0  Config. file: config{n}",
            f"Default firmware: exec0  Default config. file: config{n}",
        ]

    def saved_file(self, number: int) -> RouterConfig | None:
        """Saved config file ``number`` (``show config N``), or None when there is none."""
        with self.lock:
            if number == (self.config_file or 0):
                return self.saved
            return self.other_files.get(number)

    def tunnel_status_lines(self, number: int, *, japanese: bool) -> list[str]:
        """``show status tunnel N``: connected when the block has an encapsulation, an endpoint
        and ``tunnel enable N`` (an ipip tunnel has no handshake), unless ``tunnel_down``."""
        if self.tunnel_status_text is not None:
            return list(self.tunnel_status_text)
        with self.lock:
            children = [line.strip() for line in self.running.block_lines("tunnel", number)[1:]]
        encapsulation = next(
            (line.split()[-1] for line in children if line.startswith("tunnel encapsulation ")),
            None,
        )
        endpoint = any(line.startswith("tunnel endpoint ") for line in children)
        enabled = f"tunnel enable {number}" in children
        connected = bool(encapsulation and endpoint and enabled) and not self.tunnel_down
        kind = (encapsulation or "none").upper()
        since = self.boot_time.strftime("%Y/%m/%d %H:%M:%S")
        if japanese:
            state = "接続されています" if connected else "接続されていません"
            lines = [
                f"TUNNEL[{number}]:",
                "説明:",
                f"  インタフェースの種類: {kind}",
                f"  トンネルインタフェースは{state}",
            ]
            if connected:
                lines += [
                    f"  開始: {since}",
                    "  受信: (IPv4) 0 パケット [0 オクテット]",
                    "        (IPv6) 0 パケット [0 オクテット]",
                    "  送信: (IPv4) 0 パケット [0 オクテット]",
                    "        (IPv6) 0 パケット [0 オクテット]",
                ]
            return lines
        state = "connected" if connected else "not connected"
        lines = [
            f"TUNNEL[{number}]:",
            "Description:",
            f"  Interface type: {kind}",
            f"  Tunnel interface is {state}",
        ]
        if connected:
            lines += [
                f"  Started: {since}",
                "  Received: (IPv4) 0 packets [0 octets]",
                "            (IPv6) 0 packets [0 octets]",
                "  Transmitted: (IPv4) 0 packets [0 octets]",
                "               (IPv6) 0 packets [0 octets]",
            ]
        return lines

    def ipv6_address_lines(self) -> list[str]:
        """``show ipv6 address`` (a layout modelled on the router's: per interface, its state,
        then its addresses with their kind): configured ``ipv6 lanN address`` lines, learned
        ones, and each LAN's link-local address from its MAC."""
        if self.ipv6_address_text is not None:
            return list(self.ipv6_address_text)
        with self.lock:
            configured: dict[str, list[str]] = {}
            for line in self.running.lines():
                m = re.fullmatch(r"ipv6 (lan\d+) address (\S+/\d+)", line)
                if m:
                    configured.setdefault(m[1], []).append(m[2])
        out = []
        for i, mac in enumerate(self.profile.macs[: self.profile.lan_count], start=1):
            lan = f"lan{i}"
            octets = [int(x, 16) for x in mac.split(":")]
            octets[0] ^= 2
            eui = octets[:3] + [0xFF, 0xFE] + octets[3:]
            groups = [f"{eui[j] << 8 | eui[j + 1]:x}" for j in range(0, 8, 2)]
            out.append(f"{lan.upper()} scope-id {i} [up]")
            for address in configured.get(lan, []):
                out.append(f"  global     {address}")
            if lan in self.learned_ipv6:
                out.append(f"  global     {self.learned_ipv6[lan]} (RA)")
            out.append(f"  link-local fe80::{':'.join(groups)}/64")
        return out

    def environment_lines(self) -> list[str]:
        p = self.profile
        now = self.now()
        up = now - self.boot_time
        hours, rest = divmod(int(up.total_seconds()) % 86400, 3600)
        minutes, seconds = divmod(rest, 60)
        fmt = "%Y/%m/%d %H:%M:%S +09:00"
        return [
            f"{p.model} BootROM Ver. 1.01",
            f"{p.model} FlashROM Table Ver. 1.00",
            p.version_line,
            f"  {p.main_line}",
            "CPU:   0%(5sec)   0%(1min)   0%(5min)    Memory:  17% used",
            "Packet Buffer:   0%(small)   0%(middle)   2%(large)   0%(huge) used",
            *self._environment_files(),
            f"Boot time: {self.boot_time.strftime(fmt)}",
            f"Current time: {now.strftime(fmt)}",
            f"Elapsed time from boot: {up.days}days {hours:02d}:{minutes:02d}:{seconds:02d}",
            "Security Class Level: 1, Forget: ON, Telnet: ON",
        ]


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def wrap(line: str, width: int) -> list[str]:
    """Hard-wrap ``line`` into pieces of at most ``width`` columns, even mid-word."""
    if display_width(line) <= width:
        return [line]
    out: list[str] = []
    cur, cur_w = "", 0
    for ch in line:
        w = 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        if cur_w + w > width:
            out.append(cur)
            cur, cur_w = "", 0
        cur += ch
        cur_w += w
    if cur:
        out.append(cur)
    return out


CRLF = "\r\n"


class CliSession:
    """One login's terminal. Feed it received bytes; it returns bytes to send and an action.

    Actions: ``None`` (carry on), ``"close"`` (``exit`` at ``>``: close the channel after
    sending), ``"drop"`` (cut the connection now: ``drop_on`` fault or ``restart``).
    """

    def __init__(self, device: Device, username: str = "") -> None:
        self.device = device
        self.username = username
        with device.lock:
            cfg = device.running
            self.charset = cfg.console("character") or device.default_character
            self.lines = cfg.console("lines") or "24"
            self.columns = int(cfg.console("columns") or 80)
            self.prompt_text = cfg.console("prompt") or ""
        self.admin = False
        self.context: Context = NO_CONTEXT
        self.state = "line"  # line | password | save_question | pager | closed
        self._buf = bytearray()
        self._col = 0
        self._out = bytearray()
        self._pending: list[str] = []
        self._esc = 0

    # ---- output helpers

    @property
    def encoding(self) -> str:
        return messages.CHARSETS[self.charset][1]

    def _msg(self, key: str) -> str:
        return messages.text(key, self.charset)

    def _emit(self, text: str) -> None:
        self._out += text.encode(self.encoding, errors="replace")

    def _line(self, text: str) -> None:
        """Print a line, hard-wrapped at (columns - 1)."""
        for piece in wrap(text, self.columns - 1):
            self._emit(piece + CRLF)
        self._col = 0

    def _error(self, code: str) -> None:
        self._line(self._msg(code))

    def prompt(self) -> str:
        return f"{self.prompt_text}{self.context.label}{'# ' if self.admin else '> '}"

    def _prompt(self) -> None:
        text = self.prompt()
        self._emit(text)
        self._col = display_width(text)

    def _take(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    # ---- public

    def start(self) -> bytes:
        """The banner, a blank line and the first prompt."""
        for line in self.device.banner_lines():
            self._line(line)
        self._emit(CRLF)
        self._prompt()
        return self._take()

    def feed(self, data: bytes) -> tuple[bytes, str | None]:
        action: str | None = None
        for b in data:
            if self.state == "closed":
                break
            if self.state == "line":
                action = self._key_line(b)
            elif self.state == "password":
                self._key_password(b)
            elif self.state == "save_question":
                self._key_save(b)
            elif self.state == "pager":
                self._key_pager(b)
            if action is not None:
                self.state = "closed"
                break
        return self._take(), action

    # ---- key handlers

    def _key_line(self, b: int) -> str | None:
        if self._esc:
            # swallow ANSI escape sequences (arrow keys and the like)
            if self._esc == 1:
                self._esc = 2 if b == 0x5B else 0
            elif 0x40 <= b <= 0x7E:
                self._esc = 0
            return None
        if b in (0x0D, 0x0A):  # CR or LF: each one is an Enter
            self._emit(CRLF)
            self._col = 0
            line = bytes(self._buf).decode(self.encoding, errors="replace")
            self._buf.clear()
            return self._run(line)
        if b in (0x08, 0x7F):
            if self._buf:
                self._buf.pop()
                if self._col > 0:
                    self._emit("\b \b")
                    self._col -= 1
            return None
        if b == 0x03:  # Ctrl-C: drop the line
            self._buf.clear()
            self._emit(CRLF)
            self._prompt()
            return None
        if b == 0x1B:
            self._esc = 1
            return None
        if b < 0x20:
            return None
        self._buf.append(b)
        if self._col >= self.columns - 1:  # the echo wraps like any output
            self._out += b"\r\n"
            self._col = 0
        self._out.append(b)
        self._col += 1
        return None

    def _key_password(self, b: int) -> None:
        if b in (0x0D, 0x0A):
            self._emit(CRLF)
            password = bytes(self._buf).decode(self.encoding, errors="replace")
            self._buf.clear()
            self.state = "line"
            if self.device.check_admin(password):
                self.admin = True
            else:
                self._line(self.device.wrong_password_text or self._msg("password"))
            self._prompt()
        elif b in (0x08, 0x7F):
            if self._buf:
                self._buf.pop()
        elif b >= 0x20:
            self._buf.append(b)

    def _saving(self) -> str:
        """`Saving ... CONFIGN Done .`, N the file a bare `save` writes."""
        return self._msg("saving").replace("CONFIG0", f"CONFIG{self.device.config_file or 0}")

    def _key_save(self, b: int) -> None:
        key = chr(b).upper()
        if key not in ("Y", "N"):
            return  # any other key (CR, LF, ...) is ignored: the question still waits
        self._emit(chr(b) + CRLF)
        self._col = 0
        if key == "Y":
            self.device.save()
            self._line(self._saving())
        self._leave_admin()
        self.state = "line"
        self._prompt()

    def _key_pager(self, b: int) -> None:
        if b == 0x20:
            self._erase_more()
            self._page(int(self.lines) - 1)
        elif b in (0x0D, 0x0A):
            self._erase_more()
            self._page(1)
        elif b in (ord("q"), ord("Q")):
            self._erase_more()
            self._pending.clear()
            self.state = "line"
            self._prompt()

    # ---- paging

    def _show(self, lines: list[str]) -> None:
        width = self.columns - 1
        self._pending = [piece for line in lines for piece in wrap(line, width)]
        if self.lines == "infinity":
            self._page(len(self._pending))
        else:
            self._page(int(self.lines) - 1)

    def _page(self, count: int) -> None:
        chunk, self._pending = self._pending[:count], self._pending[count:]
        for piece in chunk:
            self._emit(piece + CRLF)
        self._col = 0
        if self._pending:
            more = self._msg("more")
            self._emit(more)
            self._col = display_width(more)
            self.state = "pager"
        else:
            self.state = "line"
            self._prompt()

    def _erase_more(self) -> None:
        self._emit("\r" + " " * display_width(self._msg("more")) + "\r")
        self._col = 0

    # ---- commands

    def _leave_admin(self) -> None:
        self.admin = False
        self.context = NO_CONTEXT

    def _run(self, line: str) -> str | None:
        action = self._run_command(line)
        dev = self.device
        if action is None and dev.drop_after is not None and dev.drop_after.search(line.strip()):
            self._take()  # done, but the answer never leaves
            return "drop"
        return action

    def _run_command(self, line: str) -> str | None:
        dev = self.device
        cmd = line.strip()
        dev.record("admin" if self.admin else "user", self.context.label, cmd)
        if not cmd:
            self._prompt()
            return None
        if dev.drop_on is not None and dev.drop_on.search(cmd):
            return "drop"
        if dev.fail_command is not None and dev.fail_command.search(cmd):
            self._error("range")
            self._prompt()
            return None
        tokens = tokenize(cmd)
        head = tokens[0]
        if head == "console" and not self.admin and dev.console_needs_admin:
            self._error("admin_only")
            self._prompt()
            return None
        if head in ("exit", "quit"):
            return self._cmd_exit()
        if head == "administrator" and len(tokens) == 1:
            if not self.admin:
                self._emit("Password: ")
                self.state = "password"
                return None
            self._prompt()
            return None
        if head == "save":
            if not self.admin:
                self._error("admin_only")
            else:
                dev.save()
                self._line(self._saving())
            self._prompt()
            return None
        if head == "show":
            self._cmd_show(tokens[1:])
            return None
        if head == "restart":
            if not self.admin:
                self._error("admin_only")
                self._prompt()
                return None
            dev.reboot()
            return "drop"
        self._cmd_config(cmd)
        return None

    def _cmd_exit(self) -> str | None:
        if not self.admin:
            return "close"
        if self.device.dirty:
            question = self._msg("save_question")
            self._emit(question)
            self._col = display_width(question)
            self.state = "save_question"
            return None
        self._leave_admin()
        self._prompt()
        return None

    def _cmd_show(self, args: list[str]) -> None:
        dev = self.device
        if not args:
            self._error("params")
            self._prompt()
            return
        what, rest = args[0], args[1:]
        if what == "config":
            if dev.show_config_requires_admin and not self.admin:
                self._error("admin_only")
                self._prompt()
                return
            if not rest:
                self._show(dev.show_config_lines())
            elif len(rest) == 1 and rest[0].isdigit() and dev.saved_file(int(rest[0])) is not None:
                self._show(dev.header_lines() + dev.saved_file(int(rest[0])).lines())
            elif len(rest) == 2 and rest[0] in ("tunnel", "pp"):
                try:
                    kind = rest[0]
                    num, _ = dev.running.slot("tn" if kind == "tunnel" else "pn", rest[1])
                except CliError as e:
                    self._error(e.code)
                    self._prompt()
                    return
                with dev.lock:
                    self._show(dev.running.block_lines(kind, num))  # type: ignore[arg-type]
            else:
                self._error("params")
                self._prompt()
            return
        if what == "status" and len(rest) == 2 and rest[0] == "tunnel" and rest[1].isdigit():
            self._show(
                dev.tunnel_status_lines(
                    int(rest[1]), japanese=messages.CHARSETS[self.charset][0] == "ja"
                )
            )
            return
        if what == "ipv6" and rest == ["address"]:
            self._show(dev.ipv6_address_lines())
            return
        if what == "environment":
            if rest:
                self._error("params")
                self._prompt()
                return
            self._show(dev.environment_lines())
            return
        self._error("invalid")
        self._prompt()

    def _cmd_config(self, cmd: str) -> None:
        try:
            res = self.device.apply(cmd, self.context, admin=self.admin)
        except CliError as e:
            self._error(e.code)
            self._prompt()
            return
        self.context = res.context
        if res.console is not None:
            name, value = res.console
            if name == "character":
                self.charset = value or self.device.default_character
            elif name == "lines":
                self.lines = value or "24"
            elif name == "columns":
                self.columns = int(value or 80)
            elif name == "prompt":
                self.prompt_text = unquote(value or "")
        self._prompt()
