"""One CLI session with a YAMAHA RTX router over an interactive SSH shell.

The router has no exec channel (RTX810), so this drives the shell the way a person at a
terminal would: send a line ended by CR, read until a prompt is *at the end* of what arrived,
answer the pager with a space, and treat any ``Error:`` / ``エラー:`` line as a failed command.

The pure helpers at the top (prompt matching, decoding, cleaning terminal output, finding the
error line) are what the tests exercise without a router; :class:`RTXSession` wires them to a
channel (anything with ``send``, ``recv`` and ``settimeout``, e.g. a paramiko ``Channel``).

Console settings. ``console lines infinity`` and ``console columns 200`` stop paging and
wrapping. At ``#`` they are config lines (changing the running config, maybe marking it
unsaved), so the session sets them at ``>``, before ``administrator``, where they can apply to
the session only (unconfirmed for real firmware); the ``show config`` at ``#`` that is the
running config's read checks that (no read is spent before). Only if the router refuses them at
``>``, or they did not last, or they turn out to have been stored, does the session change the
config, and then it puts back the previous lines before ``save`` and before leaving
administrator mode (so they are never written to flash). Stored or already there cannot be told
apart from the running config alone: such a line is checked against the saved config this
session read, and put back to it when they differ. The language (``console character``) is
left alone: Japanese messages are decoded and matched instead.

Config reads are exact (:mod:`ipip6.rtx.wrap`): a read that fills the console's width somewhere
is read again at other widths until every line end is certain, or the read fails; never a
guess. After ``save`` the console settings put back before it are set again, so the saved
config is read back unpaged at the session's width.

Config reads are kept. The ``show config`` read at ``#`` that checks the console settings is the
running config as well, and any later ``show config`` / ``show config N`` is kept too:
:meth:`RTXSession.read` hands the kept answer back instead of asking the router again, until a
command that is neither ``show …`` nor one of the session's console settings is sent. Then the
running config read is dropped; the saved ones (``show config N``) only survive lines the caller
vouches for as config lines, which change the running config only (never ``save``). So a deploy
with nothing to change reads the running config once at ``#`` and each saved config once,
whatever number of facts ask for them.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ipip6.rtx.config import DEFAULT_CONSOLE_COLUMNS, line_key, normalise_line
from ipip6.rtx.wrap import AmbiguousWrap, reconcile_reads, unwrap_exact, unwrap_greedy

logger = logging.getLogger(__name__)

# Console width the session asks for (what Yamaha's own Ansible collection sets).
SESSION_COLUMNS = 200
SESSION_SETTINGS = (
    ("console lines", "console lines infinity"),
    ("console columns", f"console columns {SESSION_COLUMNS}"),
)
# The heads of those settings: lines the session itself may change, never a change of the config.
SESSION_KEYS = tuple(key for key, _ in SESSION_SETTINGS)
_SESSION_HEADS = "|".join(re.escape(key) for key in SESSION_KEYS)
# Where a config read fills the console's width somewhere, it is read again at other widths to
# tell wraps from line ends (see ipip6.rtx.wrap): 79, 119, 159 and 199 share no small multiple.
OTHER_COLUMNS = (SESSION_COLUMNS, 160, 120)

# A prompt is the last line of the buffer and ends in "> " or "# ". Anchored at the very end
# (\Z): a "# " comment line in the middle of `show config` output must never count.
PROMPT = re.compile(rb"(?:^|\n)([^\n]*[>#] )\Z")
PASSWORD_PROMPT = re.compile(r"(?:Password|パスワード)\s*[:：]\s*\Z")
# "Save new configuration ? (Y/N)" / "新しい設定を保存しますか? (Y/N)": read as a single key.
YES_NO_QUESTION = re.compile(r"\(Y/N\)\s*[:：]?\s*\Z")
PAGER = re.compile(r"-{2,}\s*(?:more|つづく)\s*-{2,}[ \t]*\Z", re.IGNORECASE)
PAGER_TEXT = re.compile(r"-{2,}\s*(?:more|つづく)\s*-{2,}", re.IGNORECASE)
ERROR_LINE = re.compile(r"^(?:Error|エラー)\s*[:：]")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1b[=>]")
_TAIL = 256  # bytes looked at when matching prompts and questions
# The reads a session keeps (see RTXSession.read): the running config and a saved config file.
KEPT_READ = re.compile(r"show config(?: (\d+))?")
_CONSOLE_SETTING = re.compile(rf"(?:no )?(?:{_SESSION_HEADS})\b")


# --------------------------------------------------------------------------------------------
# Errors


class SessionError(Exception):
    """The router did not behave as the CLI is documented to (not a transport fault)."""


class AdministratorLoginError(SessionError):
    """``administrator`` did not lead to a ``#`` prompt (e.g. a wrong password)."""


class SessionClosedError(ConnectionError):
    """The router closed the channel (an ``OSError``: a transport fault for pyinfra)."""


# --------------------------------------------------------------------------------------------
# Pure helpers


def find_prompt(buffer: bytes) -> str | None:
    """The prompt at the very end of ``buffer`` (e.g. ``"# "``, ``"tunnel1# "``), or None.

    Works on bytes: ``>``, ``#``, space and newline never occur inside a Shift_JIS or UTF-8
    multi-byte character, so a partly received Japanese character cannot confuse it.
    """
    last_line = buffer.rfind(b"\n")
    match = PROMPT.search(buffer[last_line:] if last_line >= 0 else buffer)
    if match is None:
        return None
    return decode_output(match.group(1)).lstrip("\r")


def decode_output(data: bytes) -> str:
    """Decode router output without ever failing: UTF-8 (ASCII included), then Shift_JIS
    (cp932, the router's ``ja.sjis``), then UTF-8 with replacement characters."""
    for encoding in ("utf-8", "cp932"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            pass
    return data.decode("utf-8", errors="replace")


def _tail_text(buffer: bytes) -> str:
    tail = buffer[-_TAIL:]
    # The cut may split a multi-byte character; drop what does not decode at the front.
    for start in range(4):
        for encoding in ("utf-8", "cp932"):
            try:
                return tail[start:].decode(encoding)
            except UnicodeDecodeError:
                pass
    return tail.decode("utf-8", errors="replace")


def ends_with_pager(buffer: bytes) -> bool:
    return PAGER.search(_tail_text(buffer)) is not None


def ends_with_password_prompt(buffer: bytes) -> bool:
    return PASSWORD_PROMPT.search(_tail_text(buffer)) is not None


def ends_with_question(buffer: bytes) -> str | None:
    """The question line when the buffer ends with a ``(Y/N)`` question, else None."""
    text = _tail_text(buffer)
    if YES_NO_QUESTION.search(text) is None:
        return None
    return clean_output(text).rstrip().rsplit("\n", 1)[-1].strip()


def _terminal_line(line: str) -> str:
    """What a terminal shows for one line: CR returns to column 0, BS steps back one column,
    later characters overwrite earlier ones (how the router erases its pager prompt)."""
    cells: list[str] = []
    column = 0
    for char in line:
        if char == "\r":
            column = 0
        elif char == "\b":
            column = max(0, column - 1)
        else:
            if column < len(cells):
                cells[column] = char
            else:
                cells.append(char)
            column += 1
    return "".join(cells)


def clean_output(text: str) -> str:
    """Terminal output → plain lines: LF line ends, escape sequences, CR/BS overwrites and
    pager prompts removed. Lines are not stripped (indentation and wrapping matter)."""
    text = _ANSI.sub("", text.replace("\r\n", "\n"))
    lines = []
    for line in text.split("\n"):
        touched = "\r" in line or "\b" in line or PAGER_TEXT.search(line)
        if touched:
            line = PAGER_TEXT.sub("", _terminal_line(line)).rstrip()
            if not line:
                continue  # only the pager prompt was on this line
        lines.append(line)
    return "\n".join(lines)


def strip_echo(text: str, command: str) -> str:
    """Drop the router's echo of ``command`` from the start of ``text``. The echo may be
    hard-wrapped (line breaks inside it); anything that is not the echo is kept as is."""
    i = 0
    for char in command:
        while i < len(text) and text[i] in "\r\n" and char not in "\r\n":
            i += 1
        if i >= len(text) or text[i] != char:
            return text
        i += 1
    end = text.find("\n", i)
    return "" if end < 0 else text[end + 1 :]


def first_error(text: str) -> str | None:
    """The first line reporting an error (``Error: …`` / ``エラー: …``), if any."""
    for line in text.splitlines():
        if ERROR_LINE.match(line):
            return line.strip()
    return None


def split_prompt(text: str) -> tuple[str, str]:
    """(output, prompt line) of a cleaned response that ends with a prompt."""
    body, _, prompt = text.rpartition("\n")
    return body, prompt


@dataclass(frozen=True)
class CommandResult:
    """One command's response. ``output`` has no echo and no prompt."""

    command: str
    output: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# --------------------------------------------------------------------------------------------
# The session


class Channel(Protocol):
    def send(self, data: bytes) -> int: ...

    def recv(self, nbytes: int) -> bytes: ...

    def settimeout(self, timeout: float | None) -> None: ...

    def close(self) -> None: ...


@dataclass
class _Read:
    """A config read as the router printed it (physical lines at ``columns``), and its logical
    lines once they are known for sure."""

    physical: list[str]
    columns: int
    error: str | None
    lines: list[str] | None = None


def _physical(output: str) -> list[str]:
    return output.split("\n") if output else []


@dataclass
class _Response:
    raw: bytes
    kind: str  # "prompt", "password" or "question"
    prompt: str = ""
    question: str = ""


class RTXSession:
    """A logged-in CLI session. Use :meth:`start` once, :meth:`run` per command, :meth:`save`,
    and :meth:`close` (which restores the console settings and answers the save question)."""

    def __init__(
        self,
        channel: Channel,
        *,
        name: str,
        timeout: float = 30.0,
        settle: float = 0.3,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.channel = channel
        self.name = name
        self.timeout = timeout
        # A bare "# " prompt looks like the start of a "# " comment line cut off at a packet
        # boundary; for output that can hold such lines, wait this long for more data.
        self.settle = settle
        self._clock = clock
        self.prompt = ""
        self.admin_prompt = ""
        self.columns = DEFAULT_CONSOLE_COLUMNS
        self._original_columns = DEFAULT_CONSOLE_COLUMNS
        self._session_set: set[str] = set()  # console settings accepted at ">"
        self._restore: list[str] = []  # config lines to put back, in order of change
        self.pages_answered = 0
        self._broken: str | None = None
        # Answers to KEPT_READ commands since the last command that could change them.
        self._reads: dict[str, _Read] = {}
        self._original_console: dict[str, str] = {}  # console lines of the config at login
        # Set at ">" and found in the config at "#": stored by the session, or there before?
        self._uncertain: set[str] = set()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, admin_password: str) -> None:
        """Wait for the first prompt, set up the console, enter administrator mode."""
        response = self._expect("login banner", settle=self.settle)
        self._take_prompt(response)
        self.prepare_console()
        self.become_administrator(admin_password)
        self.verify_console()

    @property
    def is_administrator(self) -> bool:
        return self.prompt.endswith("# ")

    @property
    def broken(self) -> str | None:
        """Why the session can no longer be used (a lost connection, a timeout), or None."""
        return self._broken

    def become_administrator(self, password: str) -> None:
        if self.is_administrator:
            return
        self._send_line("administrator")
        response = self._expect("administrator", accept_password=True)
        if response.kind == "prompt":
            self._take_prompt(response)
            if self.is_administrator:  # no administrator password set
                self.admin_prompt = self.prompt
                return
            text = strip_echo(clean_output(decode_output(response.raw)), "administrator")
            raise AdministratorLoginError(
                f"{self.name}: 'administrator' was refused: "
                f"{first_error(text) or 'no Password: prompt'}"
            )
        self._send(password.encode() + b"\r", shown="<administrator password>")
        response = self._expect("administrator password", accept_password=True)
        if response.kind == "password":
            # Asked again: wrong password. Give an empty answer to get back to ">".
            self._send(b"\r", shown="<empty line>")
            response = self._expect("administrator password", accept_password=True)
        if response.kind == "prompt":
            self._take_prompt(response)
        if not self.is_administrator:
            text = clean_output(decode_output(response.raw)).strip()
            detail = first_error(text) or (text.splitlines() or ["no '#' prompt"])[-1]
            raise AdministratorLoginError(
                f"{self.name}: administrator password rejected (expected a '#' prompt after "
                f"the password, got {detail!r})"
            )
        self.admin_prompt = self.prompt

    def prepare_console(self) -> None:
        """At ``>``: stop paging and wrapping for this session.

        Run before ``administrator``: at ``>`` the console commands are meant for the session,
        not the config. :meth:`verify_console` then checks that at ``#``, in the read of the
        running config (a read here, at ``>``, would be one more read of the whole config on
        every run, paged at that).
        """
        for key, wanted in SESSION_SETTINGS:
            if self.run(wanted).ok:
                self._session_set.add(key)
                if key == "console columns":
                    self.columns = SESSION_COLUMNS

    def verify_console(self) -> None:
        """At ``#``: make sure paging and wrapping are off without leaving the config changed.

        - A setting made at ``>`` that shows up in the config was stored, or was there before:
          settled against the saved config before ``save`` and at close
          (:meth:`restore_console`).
        - A setting refused at ``>``, or one that did not survive ``administrator`` (the pager
          still answered), is set as config now and put back at close.
        """
        pages = self.pages_answered
        result = self.run("show config", unwrap=False)
        if not result.ok:
            # Without the current values nothing could be put back: change nothing.
            logger.warning("%s: console left as is: show config: %s", self.name, result.error)
            return
        now = self._console_settings(result.output)
        read = _Read(_physical(result.output), self.columns, None)
        self._original_columns = _columns_value(now.get("console columns"))
        self._original_console = dict(now)
        paging_still_on = self.pages_answered > pages
        for key, wanted in SESSION_SETTINGS:
            current = now.get(key)
            if key in self._session_set and not paging_still_on:
                if current is not None and normalise_line(current) == wanted:
                    self._uncertain.add(key)
                continue
            if current is not None and normalise_line(current) == wanted:
                continue
            set_now = self.run(wanted)
            if not set_now.ok:
                # Old firmware may reject a value: paging is answered, wrapping undone anyway.
                logger.warning("%s: could not set %r: %s", self.name, wanted, set_now.error)
                continue
            self._restore.append(current or f"no {key}")
            if key == "console columns":
                self.columns = SESSION_COLUMNS
        # The running config as read at "#" (console lines never count as a change), kept with
        # the width it was printed at.
        self._reads["show config"] = read

    def restore_console(self) -> set[str]:
        """Put back the console config lines the session changed (newest first); returns the
        console keys put back."""
        self._settle_uncertain()
        restored: set[str] = set()
        while self._restore:
            command = self._restore.pop()
            restored.update(key for key, _ in SESSION_SETTINGS if key in command)
            result = self.run(command)
            if not result.ok:
                logger.warning("%s: could not restore %r: %s", self.name, command, result.error)
        if "console columns" in restored:
            self.columns = self._original_columns
        return restored

    def _settle_uncertain(self) -> None:
        """A setting made at ``>`` that the config at ``#`` showed: the router stored it, or it
        was there before. The saved config this session read tells: the same line there,
        nothing to do; another value or none, it is put back to the saved one (a hand-made,
        unsaved console line of exactly this value would be put back too: the one case the
        two cannot be told apart). Without a saved read it is left, and said."""
        if not self._uncertain:
            return
        saved = [
            kept
            for command, kept in self._reads.items()
            if (match := KEPT_READ.fullmatch(command))
            and match.group(1) is not None
            and kept.error is None
        ]
        if len(saved) != 1:
            # Only firmware that stores them at ">" makes this matter; a config that holds
            # them already (common) would make a warning on every fact-only run.
            logger.info(
                "%s: %s in the running config; without one saved config read in this session "
                "it cannot be told whether this session stored it: left as is",
                self.name,
                ", ".join(sorted(self._uncertain)),
            )
            self._uncertain.clear()
            return
        in_saved = self._console_settings("\n".join(saved[0].physical))
        for key, wanted in SESSION_SETTINGS:
            if key not in self._uncertain:
                continue
            previous = in_saved.get(key)
            if previous is None or normalise_line(previous) != wanted:
                self._restore.insert(0, previous or f"no {key}")
                self._original_console[key] = previous or ""
                if key == "console columns":
                    self._original_columns = _columns_value(previous)
        self._uncertain.clear()

    def _reapply_console(self, keys: set[str]) -> None:
        """Set again, as config, the console settings :meth:`restore_console` put back (for the
        reads after ``save``), to be put back again before leaving."""
        for key, wanted in SESSION_SETTINGS:
            if key not in keys:
                continue
            result = self.run(wanted)
            if not result.ok:
                logger.warning("%s: could not set %r again: %s", self.name, wanted, result.error)
                continue
            self._restore.append(self._original_console.get(key) or f"no {key}")
            if key == "console columns":
                self.columns = SESSION_COLUMNS

    def _set_columns(self, columns: int) -> bool:
        """Change the console width for a second read; the config's own value is put back
        before ``save`` and before leaving (it never counts as a change meanwhile)."""
        result = self.run(f"console columns {columns}", keeps_reads=True)
        if not result.ok:
            return False
        if not any("console columns" in command for command in self._restore):
            original = self._original_console.get("console columns")
            self._restore.append(original or "no console columns")
        self.columns = columns
        return True

    def close(self, save: bool = False) -> None:
        """Leave cleanly: restore the console, leave administrator mode answering the save
        question with ``N`` (``Y`` only if ``save``), log out. Never raises."""
        try:
            if self._broken is None and self.is_administrator:
                self.restore_console()
                if self.prompt != self.admin_prompt:
                    self.run("tunnel select none")  # leave any context before "exit"
                self._send_line("exit")
                response = self._expect("exit", accept_question=True)
                if response.kind == "question":
                    self._send(b"Y" if save else b"N", shown=f"{'Y' if save else 'N'} (one key)")
                    response = self._expect("exit")
                self._take_prompt(response)
            if self._broken is None:
                self._send_line("exit")
        except (OSError, SessionError) as exc:
            logger.debug("%s: error while logging out: %s", self.name, exc)
        finally:
            try:
                self.channel.close()
            except Exception:  # noqa: BLE001 - closing a dead channel must not mask anything
                pass

    # -- commands --------------------------------------------------------------------------

    def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        unwrap: bool = True,
        config_line: bool = False,
        keeps_reads: bool = False,
    ) -> CommandResult:
        """Send one command and return its :class:`CommandResult` (``error`` set when the
        router printed an error line). Transport faults raise ``OSError``/``TimeoutError``.

        Always asks the router (:meth:`read` may not). ``unwrap`` joins lines that fill the
        console's width with the next one: right for short outputs (status, environment), a
        guess for a line of exactly that width; config reads go through :meth:`read`, which
        never guesses. ``config_line``: the caller vouches that ``command`` only changes the
        running config (a config line, never ``save``, ``copy``, ``load`` or the like), so
        the kept saved-config reads stay valid; ``keeps_reads``: it changes no config line
        that is compared (the console's width)."""
        if "\n" in command or "\r" in command:
            raise ValueError(f"{self.name}: one command per call, got {command!r}")
        self._send_line(command, config_line=config_line, keeps_reads=keeps_reads)
        # Only output that can contain "# " comment lines (show config's header) needs the
        # settle delay, and only while nothing but such lines has arrived.
        settle = self.settle if command.split(" ", 1)[0] == "show" else 0.0
        response = self._expect(command, timeout=timeout, settle=settle, settle_in_header=True)
        self._take_prompt(response)
        text = strip_echo(clean_output(decode_output(response.raw)), command)
        body, _ = split_prompt("\n" + text)
        body = body[1:] if body.startswith("\n") else body
        if unwrap and body:
            body = "\n".join(unwrap_greedy(body.split("\n"), self.columns))
        return CommandResult(command, body, first_error(body))

    def read(self, command: str, *, timeout: float | None = None) -> CommandResult:
        """Like :meth:`run`, but a ``show config`` / ``show config N`` is exact and kept.

        Exact: where the output fills the console's width somewhere (a wrap, or a line that
        ends right at the edge), it is read again at other widths and the reads are reconciled
        (:func:`ipip6.rtx.wrap.reconcile_reads`); when even three widths cannot tell, or the
        width cannot be changed, :class:`SessionError` says so — never a guess. Kept: answered
        earlier in this session, with nothing sent since that could change it, it is handed
        back without asking the router again (errors too: firmware without ``show config N``
        says so once)."""
        if not KEPT_READ.fullmatch(command):
            return self.run(command, timeout=timeout)
        kept = self._reads.get(command)
        if kept is None:
            result = self.run(command, timeout=timeout, unwrap=False)
            kept = _Read(_physical(result.output), self.columns, result.error)
            self._reads[command] = kept
        else:
            logger.debug("%s: %s answered from this session's earlier read", self.name, command)
        if kept.error is None and kept.lines is None:
            kept.lines = self._exact_lines(command, kept, timeout)
        output = "\n".join(kept.lines) if kept.error is None else "\n".join(kept.physical)
        return CommandResult(command, output, kept.error)

    def _exact_lines(self, command: str, kept: _Read, timeout: float | None) -> list[str]:
        """The logical lines of a kept read, reading again at other widths if it must: first
        what this session has anyway (the ``>`` read at the router's own width; a read at the
        session's width when the kept one was made before it was set), then by changing the
        console's width for one more read, up to three reads in all."""
        lines = unwrap_exact(kept.physical, kept.columns)
        if lines is not None:
            return lines
        reads = [(kept.physical, kept.columns)]
        problem = "one read cannot tell"
        widths = [self.columns] if self.columns != kept.columns else []
        widths += [c for c in OTHER_COLUMNS if c not in (kept.columns, self.columns)]
        for columns in widths[:2]:
            second = self._read_at(command, columns, timeout)
            if second.error is not None:
                raise SessionError(f"{self.name}: {command} at {columns} columns: {second.error}")
            reads.append((_physical(second.output), columns))
            try:
                return _reconcile_without_console(reads)
            except AmbiguousWrap as exc:
                problem = str(exc)
        raise SessionError(
            f"{self.name}: {command}: cannot tell where the router's lines end: {problem}"
        )

    def _read_at(self, command: str, columns: int, timeout: float | None) -> CommandResult:
        """``command`` printed at ``columns`` (the console's width changed for it, then back)."""
        if columns == self.columns:
            return self.run(command, timeout=timeout, unwrap=False)
        logger.debug("%s: reading %s at %d columns too", self.name, command, columns)
        back = self.columns
        if not self._set_columns(columns):
            raise SessionError(
                f"{self.name}: {command} has a line that fills the console, and the router "
                f"refused 'console columns {columns}' to read it again: cannot tell where that "
                "line ends"
            )
        try:
            return self.run(command, timeout=timeout, unwrap=False)
        finally:
            self._set_columns(back)

    def forget_reads(self) -> None:
        """Drop every kept read: the next :meth:`read` asks the router."""
        self._reads.clear()

    def _forget_after(self, line: str, *, config_line: bool = False) -> None:
        """Before ``line`` is sent: drop the kept reads it could make stale. A ``show`` changes
        nothing; a config line changes the running config only; anything else, anything."""
        if line.split(" ", 1)[0] == "show" or _CONSOLE_SETTING.match(line):
            return  # reads nothing / changes only the session's own console lines
        if line == "administrator":
            return  # changes the session's level, not the config
        if config_line:
            self._reads = {
                command: result
                for command, result in self._reads.items()
                if (match := KEPT_READ.fullmatch(command)) and match.group(1) is not None
            }
        else:
            self._reads.clear()

    def save(self, *, timeout: float | None = None) -> CommandResult:
        """``save``, with the console settings put back first so they are not saved, and set
        again after it (the saved config is read back at the session's width, unpaged)."""
        restored = self.restore_console()
        try:
            return self.run("save", timeout=max(timeout or self.timeout, 60.0))
        finally:
            if self._broken is None:
                self._reapply_console(restored)

    # -- plumbing --------------------------------------------------------------------------

    def _console_settings(self, show_config: str) -> dict[str, str]:
        found = {}
        for line in show_config.splitlines():
            if line.startswith("console "):
                found.setdefault(line_key(line), line.strip())
        return found

    def _take_prompt(self, response: _Response) -> None:
        if response.kind == "prompt":
            self.prompt = response.prompt

    def _send_line(
        self, line: str, *, config_line: bool = False, keeps_reads: bool = False
    ) -> None:
        if not keeps_reads:
            self._forget_after(line, config_line=config_line)
        self._send(line.encode() + b"\r", shown=line)  # CR only: CR LF would be two Enters

    def _send(self, data: bytes, *, shown: str) -> None:
        if self._broken is not None:
            raise SessionClosedError(f"{self.name}: session unusable after {self._broken}")
        logger.debug("%s: send %s", self.name, shown)
        try:
            self.channel.send(data)
        except OSError as exc:
            self._broken = f"send failed: {exc}"
            raise SessionClosedError(f"{self.name}: could not send {shown!r}: {exc}") from exc

    def _recv(self, wait: float) -> bytes | None:
        """Up to one chunk within ``wait`` seconds (None: nothing came)."""
        self.channel.settimeout(max(wait, 0.001))
        try:
            data = self.channel.recv(65536)
        except TimeoutError:  # socket.timeout is TimeoutError since 3.10
            return None
        except OSError as exc:
            self._broken = f"receive failed: {exc}"
            raise SessionClosedError(f"{self.name}: connection lost: {exc}") from exc
        if not data:
            self._broken = "the router closed the connection"
            raise SessionClosedError(f"{self.name}: the router closed the connection")
        return data

    def _expect(
        self,
        what: str,
        *,
        timeout: float | None = None,
        settle: float = 0.0,
        settle_in_header: bool = False,
        accept_password: bool = False,
        accept_question: bool = False,
    ) -> _Response:
        """Read until a prompt (or an accepted question) ends the buffer; answer the pager."""
        deadline = self._clock() + (timeout or self.timeout)
        buffer = b""
        pager_checked = 0
        while True:
            if len(buffer) > pager_checked and ends_with_pager(buffer):
                self._send(b" ", shown="<space> (pager)")
                pager_checked = len(buffer)
                self.pages_answered += 1
            prompt = find_prompt(buffer)
            if prompt is not None:
                if settle > 0 and (not settle_in_header or _maybe_comment(buffer, prompt)):
                    more = self._recv(settle)
                    if more is not None:
                        buffer += more
                        continue
                return _Response(buffer, "prompt", prompt=prompt)
            # Only where one is expected; elsewhere it times out, showing the prompt.
            if accept_password and ends_with_password_prompt(buffer):
                return _Response(buffer, "password")
            question = ends_with_question(buffer)
            if question is not None:
                # A question waits for its key: if more output follows, it was just text.
                more = self._recv(min(self.settle, 0.2) or 0.05)
                if more is not None:
                    buffer += more
                    continue
                if accept_question:
                    return _Response(buffer, "question", question=question)
                # Never agree to something nobody asked for: answer no and report it.
                self._reads.clear()  # whatever it was about, nothing read before is sure now
                self._send(b"N", shown="N (one key)")
                self._expect(what, timeout=timeout)
                raise SessionError(f"{self.name}: {what!r} asked {question!r}; answered N")
            remaining = deadline - self._clock()
            if remaining <= 0:
                self._broken = f"a timeout waiting for {what!r}"
                last = clean_output(decode_output(buffer)).strip().splitlines()[-1:] or [""]
                raise TimeoutError(
                    f"{self.name}: no prompt within {timeout or self.timeout:g}s after {what!r} "
                    f"(last output: {last[0][:80]!r})"
                )
            chunk = self._recv(min(remaining, 1.0))
            if chunk is not None:
                buffer += chunk


# The session's own console settings may differ between two reads (another `console columns`
# for the second one, settings stored at ">"): those lines, and only those, are set aside.
_SESSION_CONSOLE_LINE = re.compile(rf"(?:{_SESSION_HEADS}) \S+")


def _reconcile_without_console(reads: list[tuple[list[str], int]]) -> list[str]:
    """:func:`ipip6.rtx.wrap.reconcile_reads` with the console width and paging lines set aside
    in every read; the first read's are put back after the header (they never count as a
    change, wherever they stand)."""
    console = [line for line in reads[0][0] if _SESSION_CONSOLE_LINE.fullmatch(line)]
    lines = reconcile_reads(
        [
            ([line for line in physical if not _SESSION_CONSOLE_LINE.fullmatch(line)], columns)
            for physical, columns in reads
        ]
    )
    header = 0
    while header < len(lines) and lines[header].lstrip().startswith("#"):
        header += 1
    return lines[:header] + console + lines[header:]


def _maybe_comment(buffer: bytes, prompt: str) -> bool:
    """Whether the prompt ending ``buffer`` could be the start of a ``# `` comment line cut at a
    packet boundary: only a bare ``# ``, and only while every line after the echo is a ``#``
    line (``show config`` prints them as its header, before anything else)."""
    if prompt != "# ":
        return False
    lines = clean_output(decode_output(buffer)).split("\n")[1:-1]
    return all(not line.strip() or line.lstrip().startswith("#") for line in lines)


def _columns_value(line: str | None) -> int:
    try:
        return int(line.split()[-1]) if line else DEFAULT_CONSOLE_COLUMNS
    except ValueError:
        return DEFAULT_CONSOLE_COLUMNS
