"""The RTX CLI session: prompt matching, decoding, cleaning, error lines (pure), and the
session state machine against a small scripted channel (no SSH)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import pytest

from ipip6.rtx.session import (
    AdministratorLoginError,
    RTXSession,
    SessionClosedError,
    SessionError,
    clean_output,
    decode_output,
    ends_with_pager,
    ends_with_password_prompt,
    ends_with_question,
    find_prompt,
    first_error,
    strip_echo,
)

# -- prompts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("buffer", "prompt"),
    [
        (b"> ", "> "),
        (b"RTX1210 Rev.14.01.29\r\nCopyright (c) Yamaha\r\n\r\n> ", "> "),
        (b"administrator\r\nPassword: \r\n# ", "# "),
        (b"tunnel select 1\r\ntunnel1# ", "tunnel1# "),
        (b"show status\r\nRTX830# ", "RTX830# "),
        (b"\r\nhome-rtx tunnel12> ", "home-rtx tunnel12> "),
        ("説明\r\n# ".encode("cp932"), "# "),
        ("説明\r\n# ".encode(), "# "),
    ],
)
def test_prompt_at_end_of_buffer(buffer, prompt):
    assert find_prompt(buffer) == prompt


@pytest.mark.parametrize(
    "buffer",
    [
        b"",
        b"show config\r\n# RTX1210 Rev.14.01.42 (Fri Jul  5 11:17:45 2024)\r\n",
        b"show config\r\n# RTX1210 Rev.14.01.42\r\n# Reporting Date: Dec 7\r\nip route",
        b"# \r\nip lan1 address 192.168.100.1/24\r\n",  # a prompt earlier is not the end
        b"\r\n#",  # no trailing space
        b"\r\n>",
        b"\r\n# x",
        b"show config\r\n---more---",
        b"administrator\r\nPassword: ",
        "\r\n新しい設定を保存しますか? (Y/N)".encode(),
    ],
)
def test_no_prompt(buffer):
    assert find_prompt(buffer) is None


def test_comment_line_cut_at_packet_boundary_looks_like_a_prompt():
    # Why the session waits a moment after a bare prompt in `show` output: the same bytes.
    assert find_prompt(b"show config\r\n# ") == "# "


def test_special_endings():
    assert ends_with_password_prompt(b"administrator\r\nPassword: ")
    assert ends_with_password_prompt(b"Password:")
    assert not ends_with_password_prompt(b"Password: \r\n# ")
    assert ends_with_pager(b"line\r\n---more---")
    assert ends_with_pager("line\r\n---つづく---".encode())
    assert ends_with_pager("line\r\n---つづく---".encode("cp932"))
    assert not ends_with_pager(b"---more---\r          \rnext line\r\n")
    assert ends_with_question(b"exit\r\nSave new configuration ? (Y/N)") == (
        "Save new configuration ? (Y/N)"
    )
    assert ends_with_question("exit\r\n新しい設定を保存しますか? (Y/N)".encode("cp932")) == (
        "新しい設定を保存しますか? (Y/N)"
    )
    assert ends_with_question(b"Save new configuration ? (Y/N)N\r\n> ") is None


# -- decoding and cleaning -------------------------------------------------------------------


def test_decode_output_tolerates_everything():
    assert decode_output(b"ip route default gateway pp 1") == "ip route default gateway pp 1"
    assert decode_output("エラー: コマンド名を確認してください".encode()) == (
        "エラー: コマンド名を確認してください"
    )
    assert decode_output("エラー: コマンド名を確認してください".encode("cp932")) == (
        "エラー: コマンド名を確認してください"
    )
    # Neither UTF-8 nor Shift_JIS: replaced, never an exception.
    assert "ok" in decode_output(b"\xff\xfe\x80ok\x81")


def test_clean_output_pager_and_terminal_controls():
    raw = (
        "show config\r\nline 1\r\n---more---\r          \rline 2 is long enough\r\n"
        + "---つづく---"
        + "\x08" * 9
        + " " * 9
        + "\x08" * 9
        + "line 3\r\n\x1b[Kline 4\r\n# "
    )
    assert clean_output(raw) == "show config\nline 1\nline 2 is long enough\nline 3\nline 4\n# "


def test_clean_output_keeps_indentation_and_pager_alone_on_a_line():
    raw = "tunnel select 1\r\n tunnel enable 1\r\n---more---\r\n  ipsec sa policy 1\r\n"
    assert clean_output(raw) == "tunnel select 1\n tunnel enable 1\n  ipsec sa policy 1\n"


def test_strip_echo():
    assert strip_echo("show config\n# header\nline", "show config") == "# header\nline"
    assert strip_echo("tunnel select 1\n", "tunnel select 1") == ""
    assert strip_echo("tunnel select 1", "tunnel select 1") == ""
    # Echo hard-wrapped by the console.
    command = "ipv6 filter 200040 pass 2001:db8:100::10 2001:db8:200::1 4"
    assert strip_echo(command[:30] + "\n" + command[30:] + "\nError: x", command) == "Error: x"
    # Not an echo: left alone.
    assert strip_echo("something else\nline", "show config") == "something else\nline"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("Error: Invalid command name", "Error: Invalid command name"),
        ("\nError:  Parameter out of range\nmore", "Error:  Parameter out of range"),
        ("Error : Administrator use only", "Error : Administrator use only"),
        ("エラー: コマンド名を確認してください", "エラー: コマンド名を確認してください"),
        ("エラー：パラメータの数が不適当です", "エラー：パラメータの数が不適当です"),
        ("ok\n description Error: not at column 0", None),
        ("Errors are fine", None),
        ("", None),
    ],
)
def test_first_error(text, error):
    assert first_error(text) == error


# -- the session against a scripted channel --------------------------------------------------

PAUSE = object()


class ScriptedChannel:
    """A channel whose far end is a few lines of Python: echo input, answer per line."""

    def __init__(self, on_line: Callable[[ScriptedChannel, str], None]):
        self.on_line = on_line
        self.queue: deque = deque()
        self.sent: list[bytes] = []
        self.lines: list[str] = []
        self.key_handler: Callable[[str], None] | None = None
        self.timeout: float | None = None
        self.closed = False
        self.echo = True
        self._line = b""

    # far end
    def out(self, *items) -> None:
        for item in items:
            self.queue.append(item.encode() if isinstance(item, str) else item)

    # channel API
    def settimeout(self, timeout):
        self.timeout = timeout

    def send(self, data: bytes) -> int:
        if self.closed:
            raise OSError("closed")
        self.sent.append(data)
        for byte in data:
            char = bytes([byte])
            if self.key_handler is not None:
                handler, self.key_handler = self.key_handler, None
                handler(char.decode())
                continue
            if char == b"\r":
                line = self._line.decode()
                self._line = b""
                self.lines.append(line)
                if self.echo:
                    self.out(line + "\r\n")
                self.on_line(self, line)
            else:
                self._line += char
        return len(data)

    def recv(self, n: int) -> bytes:
        while self.queue:
            item = self.queue[0]
            if isinstance(item, tuple) and item[0] is PAUSE:
                if self.timeout is not None and self.timeout < item[1]:
                    self.queue[0] = (PAUSE, item[1] - self.timeout)
                    raise TimeoutError
                self.queue.popleft()
                continue
            if item == b"":
                self.closed = True
                return b""
            self.queue.popleft()
            return item
        raise TimeoutError


HEADER = "# RTX830 Rev.15.02.30 (Mon Oct 16 2023)\r\n# Reporting Date: Dec 7 15:38:26 2024\r\n"


class FakeRouter:
    """Enough RTX behaviour for the session's state machine (not a simulator)."""

    def __init__(self, config_lines=(), admin_password="pw", page=None, user_console="refused"):
        self.config = list(config_lines)
        self.user_console = user_console  # console … at ">": refused, session or stored
        self.session_console: list[str] = []
        self.admin_password = admin_password
        self.mode = "user"
        self.dirty = False
        self.page = page
        self.saved: list[str] | None = None
        self.channel = ScriptedChannel(self.on_line)
        self.channel.out("RTX830 Rev.15.02.30\r\nCopyright (c) Yamaha\r\n\r\n> ")

    def prompt(self) -> str:
        return "# " if self.mode == "admin" else "> "

    def on_line(self, ch: ScriptedChannel, line: str) -> None:
        if self.mode == "password":
            ch.echo = True
            if line == self.admin_password:
                self.mode = "admin"
            else:
                self.mode = "user"
                ch.out("\r\n")
            ch.out("\r\n" + self.prompt())
            return
        words = line.split()
        if line == "administrator":
            self.mode = "password"
            ch.echo = False
            ch.out("Password: ")
        elif line == "show config":
            self.show_config(ch)
        elif line == "show config 0" and self.saved is not None:
            ch.out("".join(x + "\r\n" for x in [*HEADER.split("\r\n")[:-1], *self.saved]))
            ch.out(self.prompt())
        elif line == "exit":
            if self.mode == "admin":
                if self.dirty:
                    ch.out("Save new configuration ? (Y/N)")

                    def answer(key: str) -> None:
                        ch.out(key + "\r\n")
                        if key == "Y":
                            self.saved = list(self.config)
                        self.mode = "user"
                        ch.out("> ")

                    ch.key_handler = answer
                    return
                self.mode = "user"
                ch.out("> ")
            else:
                ch.out(b"")
        elif line == "save":
            self.saved = list(self.config)
            self.dirty = False
            ch.out("Saving ... CONFIG0 Done .\r\n" + self.prompt())
        elif self.mode == "user" and words[0] == "console" and self.user_console != "refused":
            if self.user_console == "stored":
                self.store(line)
            self.session_console.append(line)
            ch.out(self.prompt())
        elif self.mode != "admin":
            ch.out("Error: Administrator use only\r\n" + self.prompt())
        elif words[0] == "bogus":
            ch.out("Error: Invalid command name\r\n" + self.prompt())
        elif words[0] == "no":
            head = " ".join(words[1:])
            self.config = [c for c in self.config if not c.startswith(head)]
            self.dirty = True
            ch.out(self.prompt())
        else:
            self.store(line)
            ch.out(self.prompt())

    def store(self, line: str) -> None:
        head = " ".join(line.split()[:2])
        self.config = [c for c in self.config if not c.startswith(head)] + [line]
        self.dirty = True

    def show_config(self, ch: ScriptedChannel) -> None:
        lines = HEADER.split("\r\n")[:-1] + self.config
        settings = self.config + self.session_console
        paged = self.page and "console lines infinity" not in settings
        if not paged:
            ch.out("".join(line + "\r\n" for line in lines) + self.prompt())
            return
        chunk, rest = lines[: self.page], lines[self.page :]
        ch.out("".join(line + "\r\n" for line in chunk))
        self._more(ch, rest)

    def _more(self, ch: ScriptedChannel, rest: list[str]) -> None:
        if not rest:
            ch.out(self.prompt())
            return
        ch.out("---more---")

        def go_on(key: str) -> None:
            assert key == " "
            ch.out("\r          \r")
            ch.out("".join(line + "\r\n" for line in rest[: self.page]))
            self._more(ch, rest[self.page :])

        ch.key_handler = go_on


def started(router: FakeRouter, **kwargs) -> RTXSession:
    session = RTXSession(router.channel, name="rtx1", timeout=2, settle=0.05, **kwargs)
    session.start(router.admin_password)
    return session


def test_start_sets_console_and_close_restores_it():
    router = FakeRouter(["console character ja.utf8", "console columns 80", "ip lan1 address x"])
    session = started(router)
    assert session.is_administrator
    assert "console lines infinity" in router.config
    assert "console columns 200" in router.config
    assert session.columns == 200
    session.close()
    # Exactly what was there before, and "N" to the save question.
    assert sorted(router.config) == sorted(
        ["console character ja.utf8", "console columns 80", "ip lan1 address x"]
    )
    assert b"N" in router.channel.sent
    assert router.saved is None
    assert "pw" not in " ".join(router.channel.lines[:1])


def test_console_set_for_the_session_only_leaves_config_alone():
    config = ["console character ja.utf8", "ip lan1 address x"]
    router = FakeRouter(config, page=1, user_console="session")
    session = started(router)
    assert router.session_console == ["console lines infinity", "console columns 200"]
    assert router.config == config and not router.dirty
    assert session.columns == 200
    session.close()
    assert router.config == config and not router.dirty
    assert b"N" not in router.channel.sent  # no save question: nothing changed


def test_console_stored_at_user_level_is_put_back_as_the_saved_config_has_it():
    # No read at ">": the running config at "#" shows the session's values, the saved config
    # (read for the plan anyway) what they were.
    config = ["console columns 120", "ip lan1 address x"]
    router = FakeRouter(config, user_console="stored")
    router.saved = list(config)
    session = started(router)
    assert "console lines infinity" in router.config
    assert session.read("show config 0").ok
    session.close()
    assert sorted(router.config) == sorted(config)
    assert "no console lines" in router.channel.lines
    assert "console columns 120" in router.channel.lines


def test_console_stored_at_user_level_is_kept_out_of_a_save():
    config = ["ip lan1 address x"]
    router = FakeRouter(config, user_console="stored")
    router.saved = list(config)
    session = started(router)
    assert session.read("show config 0").ok
    session.run("ip lan2 address y", config_line=True)
    assert session.save().ok
    assert router.saved == ["ip lan1 address x", "ip lan2 address y"]
    session.close()
    assert sorted(router.config) == sorted(router.saved)


def test_console_stored_without_a_saved_read_is_left_and_said(caplog):
    caplog.set_level("INFO", logger="ipip6.rtx.session")
    router = FakeRouter(["ip lan1 address x"], user_console="stored")
    session = started(router)
    session.close()
    assert "console lines infinity" in router.config  # cannot be told from a user's own
    assert "cannot be told whether this session stored it" in caplog.text


def test_console_already_set_is_not_touched():
    config = ["console lines infinity", "console columns 200"]
    for user_console in ("refused", "session", "stored"):
        router = FakeRouter(config, user_console=user_console)
        router.saved = list(config)
        session = started(router)
        assert session.read("show config 0").ok
        session.close()
        assert router.config == config, user_console
        assert not router.dirty or user_console == "stored"  # the same value stored again
        assert not any(line.startswith("no console") for line in router.channel.lines)
        # At ">" only, once each: nothing is set or put back as config.
        assert router.channel.lines.count("console lines infinity") == 1, user_console


def test_paged_show_config_is_read_whole():
    config = [f"ip filter {i} pass * * * * *" for i in range(60)]
    router = FakeRouter(config, page=20)
    session = RTXSession(router.channel, name="rtx1", timeout=2, settle=0.05)
    session.start("pw")
    # The set-up read was paged (answered with spaces), the next one is not.
    assert router.channel.sent.count(b" ") >= 3
    result = session.run("show config")
    assert result.ok
    lines = result.output.splitlines()
    assert lines[0].startswith("# RTX830")
    assert [x for x in lines if x.startswith("ip filter")] == config
    assert not any("more" in x for x in lines)


def test_error_line_fails_the_command():
    router = FakeRouter()
    session = started(router)
    result = session.run("bogus command")
    assert not result.ok
    assert result.error == "Error: Invalid command name"
    assert session.run("tunnel select 1").ok


def test_save_restores_console_first():
    router = FakeRouter(["ip lan1 address x"])
    session = started(router)
    session.run("tunnel select 1")
    result = session.save()
    assert result.ok and "Done" in result.output
    assert router.saved == ["ip lan1 address x", "tunnel select 1"]


def test_wrong_administrator_password():
    router = FakeRouter(admin_password="right")
    session = RTXSession(router.channel, name="rtx1", timeout=2, settle=0.05)
    with pytest.raises(AdministratorLoginError) as excinfo:
        session.start("wrong-password")
    assert "rtx1" in str(excinfo.value) and "rejected" in str(excinfo.value)
    assert "wrong-password" not in str(excinfo.value)


def test_comment_line_split_after_hash_is_not_a_prompt():
    router = FakeRouter()
    session = started(router)

    def show(ch: ScriptedChannel, line: str) -> None:
        ch.out("# ", (PAUSE, 0.02), "RTX830 Rev.15\r\nip lan1 address x\r\n# ")

    router.channel.on_line = show
    result = session.run("show config")
    assert result.output == "# RTX830 Rev.15\nip lan1 address x"


def test_timeout_and_closed_connection():
    router = FakeRouter()
    session = started(router)
    router.channel.on_line = lambda ch, line: None  # the router goes silent
    with pytest.raises(TimeoutError, match="rtx1.*'show status'"):
        session.run("show status", timeout=0.2)
    with pytest.raises(SessionClosedError):
        session.run("show status")

    router = FakeRouter()
    session = started(router)
    router.channel.on_line = lambda ch, line: ch.out(b"")
    with pytest.raises(OSError, match="closed the connection"):
        session.run("show status")


def test_unexpected_question_is_answered_no():
    router = FakeRouter()
    session = started(router)

    def ask(ch: ScriptedChannel, line: str) -> None:
        ch.out("Restart? (Y/N)")
        ch.key_handler = lambda key: ch.out(key + "\r\n# ")

    router.channel.on_line = ask
    with pytest.raises(SessionError, match="answered N"):
        session.run("clear something")
    assert router.channel.sent[-1] == b"N"


def test_config_reads_are_kept_until_something_could_change_them():
    router = FakeRouter(["ip lan1 address x"], user_console="session")
    plain = router.channel.on_line

    def on_line(ch: ScriptedChannel, line: str) -> None:
        if line == "show config 0":  # the saved config: what FakeRouter last saved
            ch.out("".join(c + "\r\n" for c in router.saved or router.config) + "# ")
        else:
            plain(ch, line)

    router.channel.on_line = on_line
    session = started(router)

    def sent(command: str) -> int:
        return router.channel.lines.count(command)

    # Start-up reads it once, at "#": the check of the console settings is the running config.
    assert sent("show config") == 1
    running = session.read("show config")
    assert sent("show config") == 1  # the check at "#" is handed out
    assert running.ok and "ip lan1 address x" in running.output.splitlines()
    assert session.read("show config 0").ok and session.read("show config 0").ok
    assert sent("show config 0") == 1
    assert session.run("show config").output == running.output
    assert sent("show config") == 2  # run() always asks

    # A config line: the running config is read again, the saved one is still good.
    assert session.run("tunnel select 1", config_line=True).ok
    assert "tunnel select 1" in session.read("show config").output.splitlines()
    session.read("show config 0")
    assert (sent("show config"), sent("show config 0")) == (3, 1)

    # Anything else (even a rejected line) and save: nothing read before is used.
    assert not session.run("bogus command").ok
    session.read("show config")
    session.read("show config 0")
    assert (sent("show config"), sent("show config 0")) == (4, 2)
    assert session.save().ok
    session.read("show config 0")
    assert sent("show config 0") == 3
    session.read("show config")
    session.forget_reads()
    session.read("show config")
    assert sent("show config") == 6
