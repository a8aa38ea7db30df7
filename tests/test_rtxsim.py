"""Tests of the RTX simulator: the config model without I/O, then real SSH sessions.

The SSH tests (marked ``sim``) use paramiko as the client and talk to 127.0.0.1 only.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import paramiko
import pytest

from rtxsim import (
    CliError,
    CliSession,
    ConfigParseError,
    Context,
    Device,
    RouterConfig,
    Simulator,
    sample_config,
)
from rtxsim.cli import wrap
from rtxsim.model import compress_ipv6

ROOT = Path(__file__).resolve().parents[1]
USER, PASSWORD, ADMIN = "admin", "login-pw", "admin-pw"
SJIS_INVALID = "エラー: コマンド名を確認してください"

# --------------------------------------------------------------------------------------------
# Model (no I/O)


def cfg_of(text: str = "", **kw) -> RouterConfig:
    return RouterConfig.from_text(text, **kw)


def apply_all(cfg: RouterConfig, *lines: str, ctx: Context | None = None) -> Context:
    ctx = ctx or Context()
    for line in lines:
        ctx = cfg.apply(line, ctx).context
    return ctx


def body(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("name", ["factory", "busy"])
def test_samples_parse_and_render_unchanged(name):
    text = sample_config(name)
    cfg = cfg_of(text)
    assert cfg.lines() == body(text)


def test_busy_sample_is_longer_than_a_page_and_has_what_the_driver_meets():
    lines = cfg_of(sample_config("busy")).lines()
    assert len(lines) > 24
    for needle in (
        "ip route default gateway pp 1",
        "pp select 1",
        "tunnel select 2",
        " ip pp nat descriptor 1000",
        "nat descriptor type 1000 masquerade",
        "dhcp scope 1 192.168.100.2-192.168.100.191/24",
        "console prompt RTX1200",
    ):
        assert needle in lines
    assert any(len(line) > 79 for line in lines)


def _units(text: str) -> list[list[str]]:
    """Top-level lines, with each select block kept together (block + children)."""
    units: list[list[str]] = []
    for line in body(text):
        if line.startswith(" "):
            units[-1].append(line.strip())
        else:
            units.append([line])
    for unit in units:
        if unit[0].startswith(("tunnel select", "pp select")):
            unit.append(unit[0].split()[0] + " select none")
    return units


def test_show_config_uses_the_routers_order_not_input_order():
    text = sample_config("busy")
    for seed in range(3):
        units = _units(text)
        random.Random(seed).shuffle(units)
        cfg = RouterConfig()
        for unit in units:
            # block children typed in reverse too: the order shown is the router's, not ours
            typed = [unit[0], *reversed(unit[1:-1]), unit[-1]] if len(unit) > 2 else unit
            ctx = Context()
            for line in typed:
                ctx = cfg.apply(line, ctx).context
        assert cfg.lines() == body(text)


def test_tunnel_block_children_order_and_one_space_indent():
    cfg = RouterConfig()
    apply_all(
        cfg,
        "tunnel select 1",
        "tunnel enable 1",
        "ip tunnel tcp mss limit auto",
        "ip tunnel nat descriptor 20",
        "ip tunnel secure filter in 300 301",
        "ip tunnel mtu 1460",
        "tunnel endpoint address 2001:db8::1 2001:db8::10",
        "tunnel encapsulation ipip",
        "tunnel select none",
        "ip route default gateway tunnel 1",
    )
    assert cfg.lines() == [
        "ip route default gateway tunnel 1",
        "tunnel select 1",
        " tunnel encapsulation ipip",
        " tunnel endpoint address 2001:db8::1 2001:db8::10",
        " ip tunnel mtu 1460",
        " ip tunnel secure filter in 300 301",
        " ip tunnel nat descriptor 20",
        " ip tunnel tcp mss limit auto",
        " tunnel enable 1",
    ]


def test_blocks_ordered_by_number_and_filters_by_number():
    cfg = RouterConfig()
    apply_all(
        cfg,
        "ipv6 filter 5 pass * * 4",
        "ip filter 300 pass * * * * *",
        "tunnel select 3",
        "tunnel encapsulation ipip",
        "tunnel select 1",
        "tunnel encapsulation ipip",
        "ip filter 20 reject * * * * *",
        "pp select 1",
        "pp always-on on",
    )
    assert cfg.lines() == [
        "pp select 1",
        " pp always-on on",
        "tunnel select 1",
        " tunnel encapsulation ipip",
        "tunnel select 3",
        " tunnel encapsulation ipip",
        "ip filter 20 reject * * * * *",
        "ip filter 300 pass * * * * *",
        "ipv6 filter 5 pass * * 4",
    ]


def test_interface_lines_grouped_per_interface_and_routes_default_first():
    cfg = RouterConfig()
    apply_all(
        cfg,
        "ipv6 lan2 dhcp service client ir=on",
        "ip route 192.0.2.0/24 gateway 192.168.100.254",
        "ipv6 lan1 address ra-prefix@lan2::1/64",
        "ip lan2 address dhcp",
        "ip lan1 address 192.168.100.1/24",
        "ipv6 prefix 1 ra-prefix@lan2::/64",
        "ip route default gateway pp 1",
        "console character ja.utf8",
    )
    assert cfg.lines() == [
        "console character ja.utf8",
        "ip route default gateway pp 1",
        "ip route 192.0.2.0/24 gateway 192.168.100.254",
        "ipv6 prefix 1 ra-prefix@lan2::/64",
        "ip lan1 address 192.168.100.1/24",
        "ipv6 lan1 address ra-prefix@lan2::1/64",
        "ip lan2 address dhcp",
        "ipv6 lan2 dhcp service client ir=on",
    ]


@pytest.mark.parametrize(
    ("first", "second", "ctx"),
    [
        ("ip route default gateway pp 1", "ip route default gateway tunnel 1", None),
        ("ip route 192.0.2.0/24 gateway pp 1", "ip route 192.0.2.0/24 gateway tunnel 2", None),
        ("ip filter 10 pass * * * * *", "ip filter 10 reject * * * * *", None),
        ("ipv6 filter 10 pass * * 4", "ipv6 filter 10 pass 2001:db8::1 * 4", None),
        ("ip lan1 address 192.168.100.1/24", "ip lan1 address 192.168.1.1/24", None),
        ("console character ja.utf8", "console character ascii", None),
        ("console prompt A", "console prompt B", None),
        ("tunnel endpoint address 2001:db8::1", "tunnel endpoint address 2001:db8::2", "tunnel"),
        ("tunnel encapsulation ipip", "tunnel encapsulation ipsec", "tunnel"),
        ("ip tunnel mtu 1460", "ip tunnel mtu 1280", "tunnel"),
        ("ip tunnel tcp mss limit auto", "ip tunnel tcp mss limit 1400", "tunnel"),
        ("ip pp mtu 1454", "ip pp mtu 1400", "pp"),
        ("pp auth myname a b", "pp auth myname c d", "pp"),
    ],
)
def test_replace_semantics_keyed_by_head(first, second, ctx):
    cfg = RouterConfig()
    context = Context(ctx, 1) if ctx else Context()
    cfg.apply(first, context)
    res = cfg.apply(second, context)
    assert res.changed
    assert second in [line.strip() for line in cfg.lines()]
    assert first not in [line.strip() for line in cfg.lines()]
    again = cfg.apply(second, context)
    assert not again.changed


def test_different_keys_coexist():
    cfg = RouterConfig()
    apply_all(cfg, "ip filter 1 pass * * * * *", "ip filter 2 pass * * * * *")
    apply_all(cfg, "ip route default gateway pp 1", "ip route 192.0.2.0/24 gateway pp 1")
    assert len(cfg.lines()) == 4


@pytest.mark.parametrize(
    ("setup", "negation"),
    [
        ("ip route default gateway tunnel 1", "no ip route default"),
        ("ip route default gateway tunnel 1", "no ip route default gateway tunnel 1"),
        ("ip filter 200000 reject 10.0.0.0/8 * * * *", "no ip filter 200000"),
        ("ip filter 200000 reject 10.0.0.0/8 * * * *", "no ip filter 200000 reject 10.0.0.0/8"),
        ("console lines infinity", "no console lines"),
        ("sshd service on", "no sshd service"),
    ],
)
def test_no_deletes_with_or_without_trailing_args(setup, negation):
    cfg = RouterConfig()
    cfg.apply(setup)
    assert cfg.lines()
    res = cfg.apply(negation)
    assert res.kind == "delete" and res.changed
    assert cfg.lines() == []
    assert not cfg.apply(negation).changed  # deleting what is absent: nothing, no error


def test_no_inside_tunnel_and_empty_block_disappears():
    cfg = RouterConfig()
    ctx = apply_all(cfg, "tunnel select 1", "tunnel endpoint address 2001:db8::1")
    cfg.apply("no tunnel endpoint address", ctx)
    assert cfg.lines() == []
    ctx = apply_all(cfg, "tunnel select 1", "tunnel encapsulation ipip", "tunnel enable 1")
    cfg.apply("tunnel disable 1", ctx)
    assert cfg.lines() == ["tunnel select 1", " tunnel encapsulation ipip"]


def test_enable_lines_go_to_their_own_block_from_anywhere():
    cfg = RouterConfig()
    cfg.apply("tunnel enable 2")
    cfg.apply("pp enable 1", Context("tunnel", 5))
    assert cfg.lines() == ["pp select 1", " pp enable 1", "tunnel select 2", " tunnel enable 2"]


@pytest.mark.parametrize(
    ("line", "default_line"),
    [
        ("console lines 30", "console lines 24"),
        ("console columns 200", "console columns 80"),
        ("sshd service on", "sshd service off"),
        ("dns private address spoof on", "dns private address spoof off"),
        ("telnetd service off", "telnetd service on"),
    ],
)
def test_defaults_are_omitted(line, default_line):
    cfg = RouterConfig()
    cfg.apply(line)
    assert cfg.lines() == [line]
    cfg.apply(default_line)
    assert cfg.lines() == []


def test_default_inside_tunnel_omitted():
    cfg = RouterConfig()
    ctx = apply_all(cfg, "tunnel select 1", "ip tunnel tcp mss limit auto")
    cfg.apply("ip tunnel tcp mss limit off", ctx)
    assert cfg.lines() == []


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("frobnicate", "invalid"),
        ("tunnel encap ipip", "invalid"),
        ("show-config", "invalid"),
        ("ip filter", "params"),
        ("ip route default gateway", "params"),
        ("console lines", "params"),
        ("tunnel select", "params"),
        ("tunnel select 0", "range"),
        ("tunnel select 101", "range"),
        ("console lines 0", "range"),
        ("console columns 20", "range"),
        ("ip filter 0 pass * * * * *", "range"),
        ("ip lan1 address 300.1.1.1/24", "range"),
        ("ip lan9 address 192.0.2.1/24", "range"),
        ("console character klingon", "keyword"),
        ("ip filter 1 allow * * * * *", "keyword"),
        ("tunnel encapsulation ipip", "no_tunnel"),
        ("tunnel endpoint address 2001:db8::1", "no_tunnel"),
        ("ip tunnel mtu 1460", "no_tunnel"),
        ("ip tunnel tcp mss limit auto", "no_tunnel"),
        ("pp always-on on", "no_pp"),
        ("ip pp mtu 1454", "no_pp"),
        ("no tunnel select 1", "invalid"),
    ],
)
def test_refusals(line, code):
    cfg = RouterConfig()
    with pytest.raises(CliError) as e:
        cfg.apply(line)
    assert e.value.code == code
    assert cfg.lines() == []


def test_tunnel_commands_in_pp_context_and_back():
    cfg = RouterConfig()
    with pytest.raises(CliError) as e:
        cfg.apply("tunnel encapsulation ipip", Context("pp", 1))
    assert e.value.code == "no_tunnel"
    with pytest.raises(CliError) as e:
        cfg.apply("pp always-on on", Context("tunnel", 1))
    assert e.value.code == "no_pp"
    # global commands stay valid while a tunnel is selected
    assert cfg.apply("ip route default gateway tunnel 1", Context("tunnel", 1)).kind == "set"


def test_select_commands_change_context():
    cfg = RouterConfig()
    assert cfg.apply("tunnel select 7").context == Context("tunnel", 7)
    assert cfg.apply("tunnel select none", Context("tunnel", 7)).context == Context()
    assert cfg.apply("pp select 1").context.label == "pp1"
    assert cfg.apply("pp select none", Context("pp", 1)).context.label == ""


def test_user_level_allows_console_only():
    cfg = RouterConfig()
    with pytest.raises(CliError) as e:
        cfg.apply("ip route default gateway tunnel 1", admin=False)
    assert e.value.code == "admin_only"
    with pytest.raises(CliError) as e:
        cfg.apply("tunnel select 1", admin=False)
    assert e.value.code == "admin_only"
    with pytest.raises(CliError) as e:
        cfg.apply("no-such-thing", admin=False)
    assert e.value.code == "invalid"
    res = cfg.apply("console lines infinity", admin=False, commit=False)
    assert res.console == ("lines", "infinity") and cfg.lines() == []
    with pytest.raises(CliError) as e:
        cfg.apply("console lines 0", admin=False, commit=False)
    assert e.value.code == "range"


def test_passwords_shown_as_star_and_remembered():
    cfg = RouterConfig()
    apply_all(
        cfg, "administrator password s3cret", "login user admin pw1", "sshd host key generate"
    )
    assert cfg.lines() == [
        "administrator password *",
        "login user admin *",
        "sshd host key generate *",
    ]
    assert cfg.secret("administrator password") == "s3cret"
    assert cfg.login_users() == {"admin": "pw1"}
    again = cfg_of(cfg.text())  # a config re-read from show config knows no passwords
    assert again.lines() == cfg.lines() and again.secret("administrator password") is None


def test_login_password_is_not_typed_with_an_argument():
    cfg = RouterConfig()
    with pytest.raises(CliError) as e:  # real-device transcript: "Invalid command name"
        cfg.apply("login password hunter2")
    assert e.value.code == "invalid"
    cfg.apply("login password *")  # as show config prints it
    assert cfg.lines() == ["login password *"]


def test_busy_home_config_commands_accepted():
    cfg = RouterConfig()
    ctx = apply_all(
        cfg,
        "pp select 1",
        "pp always-on on",
        "pppoe use lan2",
        "pp auth accept pap chap",
        "pp auth myname USER PASS",
        "ppp lcp mru on 1454",
        "ppp ipcp ipaddress on",
        "ppp ipcp msext on",
        "ip pp mtu 1454",
        "ip pp secure filter in 200003 200020",
        "ip pp nat descriptor 1000",
        "pp enable 1",
        "pp select none",
        "ip lan1 address 192.168.100.1/24",
        "ipv6 prefix 1 ra-prefix@lan2::/64",
        "ipv6 lan1 address ra-prefix@lan2::1/64",
        "ipv6 lan2 dhcp service client ir=on",
        "ipv6 lan2 secure filter in 101000 101001 101002",
        "ipv6 filter 101000 pass * * icmp6 * *",
        "ip filter 200000 reject 10.0.0.0/8 * * * *",
        "nat descriptor type 1000 masquerade",
        "nat descriptor address outer 1000 primary",
        "dhcp service server",
        "dhcp scope 1 192.168.100.2-192.168.100.191/24",
        "dns server pp 1",
        "dns private address spoof on",
        "sshd service on",
        "sshd host key generate",
        "login user admin PASS",
        "administrator password PASS",
        "tunnel select 1",
        "tunnel encapsulation ipip",
        "tunnel endpoint address 2001:db8::1 2001:db8::10",
        "ip tunnel mtu 1460",
        "ip tunnel tcp mss limit auto",
        "ip tunnel secure filter in 300",
        "tunnel enable 1",
        "tunnel disable 1",
        "ip route default gateway tunnel 1",
        "console character ja.sjis",
        "console columns 200",
        "console lines infinity",
        "console prompt HOME",
    )
    assert ctx == Context("tunnel", 1)
    assert cfg.lines()[0] == "administrator password *"
    assert "console lines infinity" in cfg.lines()


def test_profile_features_and_limits():
    old, new = RouterConfig("rtx1200"), RouterConfig("rtx830")
    t1 = Context("tunnel", 1)
    with pytest.raises(CliError) as e:
        old.apply("tunnel endpoint local address 2001:db8::1", t1)
    assert e.value.code == "invalid"
    new.apply("tunnel endpoint local address 2001:db8::1", t1)
    new.apply("tunnel endpoint remote address 2001:db8::2", t1)
    assert new.block_lines("tunnel", 1)[1:] == [
        " tunnel endpoint local address 2001:db8::1",
        " tunnel endpoint remote address 2001:db8::2",
    ]
    old.apply("tunnel select 100")
    with pytest.raises(CliError):
        new.apply("tunnel select 21")
    with pytest.raises(CliError):
        new.apply("ip lan3 address 192.168.3.1/24")


@pytest.mark.parametrize("normalise", [False, True])
def test_ipv6_as_typed_or_compressed(normalise):
    cfg = RouterConfig(normalise_ipv6=normalise)
    ctx = apply_all(
        cfg,
        "tunnel select 1",
        "tunnel endpoint address 2001:0db8:0000:0000:0000:0000:0000:0010",
        "tunnel select none",
        "ipv6 filter 1 pass 2001:DB8:0:0::10 * 4",
        "ipv6 lan1 address ra-prefix@lan2::1/64",
    )
    assert ctx == Context()
    lines = cfg.lines()
    if normalise:
        assert " tunnel endpoint address 2001:db8::10" in lines
        assert "ipv6 filter 1 pass 2001:db8::10 * 4" in lines
    else:
        assert " tunnel endpoint address 2001:0db8:0000:0000:0000:0000:0000:0010" in lines
        assert "ipv6 filter 1 pass 2001:DB8:0:0::10 * 4" in lines
    assert "ipv6 lan1 address ra-prefix@lan2::1/64" in lines
    # either way the key is the address, not its spelling
    cfg.apply("ipv6 route 2001:db8:0::/48 gateway pp 1")
    cfg.apply("ipv6 route 2001:db8::/48 gateway tunnel 1")
    assert sum(line.startswith("ipv6 route") for line in cfg.lines()) == 1


def test_compress_ipv6_leaves_other_tokens():
    assert compress_ipv6("2001:0db8::0001/64") == "2001:db8::1/64"
    for token in ("192.0.2.1", "*", "ra-prefix@lan2::1/64", "ir=on", "tunnel"):
        assert compress_ipv6(token) == token


def test_parse_error_names_the_line():
    with pytest.raises(ConfigParseError) as e:
        cfg_of("ip lan1 address 192.168.100.1/24\nbogus command here\n")
    assert e.value.line_no == 2 and e.value.code == "invalid"


def test_flat_typed_config_parses_like_the_blog_post():
    cfg = cfg_of(
        "tunnel select 1\ntunnel encapsulation ipip\ntunnel endpoint address 2001:db8::10\n"
        "ip tunnel tcp mss limit auto\ntunnel enable 1\nip route default gateway tunnel 1\n"
    )
    assert cfg.lines() == [
        "ip route default gateway tunnel 1",
        "tunnel select 1",
        " tunnel encapsulation ipip",
        " tunnel endpoint address 2001:db8::10",
        " ip tunnel tcp mss limit auto",
        " tunnel enable 1",
    ]


# --------------------------------------------------------------------------------------------
# Terminal session without SSH


def test_wrap_is_hard_at_the_width_even_mid_token():
    line = "# ip lan3/2 secure filter out 2100 2101 2102 2103 2104 dynamic 3000 3001 3010 3011 3020"
    assert wrap(line, 79) == [line[:79], line[79:]]
    assert wrap("x" * 79, 79) == ["x" * 79]
    assert wrap("あ" * 50, 79) == ["あ" * 39, "あ" * 11]


def _session(config: str = "", **kw) -> tuple[Device, CliSession]:
    kw.setdefault("default_character", "ascii")
    dev = Device(config, admin_password=ADMIN, **kw)
    s = CliSession(dev)
    s.start()
    return dev, s


def test_session_echo_wraps_at_79_columns_like_the_real_console():
    dev, s = _session()
    s.feed(b"administrator\r")
    s.feed(ADMIN.encode() + b"\r")
    cmd = b"dhcp scope 10 192.168.128.100-192.168.128.199/24 gateway 192.168.128.1 expire 12"
    out, _ = s.feed(cmd)
    # prompt "# " + 77 characters fill 79 columns, then the echo continues on a new line
    assert out == cmd[:77] + b"\r\n" + cmd[77:]


def test_session_crlf_gives_two_prompts_and_logs_an_empty_line():
    dev, s = _session()
    out, action = s.feed(b"show environment\r\n")
    assert action is None
    assert out.endswith(b"> \r\n> ")
    assert [e.command for e in dev.command_log] == ["show environment", ""]


def test_session_backspace_and_arrow_keys():
    dev, s = _session()
    out, _ = s.feed(b"shox\x7fw environment\x1b[A\r")
    assert b"Config. file: 0" in out
    assert dev.command_log[-1].command == "show environment"


def test_running_hook_sees_each_change_before_the_prompt_and_each_reboot():
    dev, s = _session("ip lan1 address 192.168.100.1/24\n")
    seen: list[str] = []
    dev.running_hook = seen.append
    s.feed(b"administrator\r")
    s.feed(ADMIN.encode() + b"\r")
    s.feed(b"tunnel select 1\r")  # a selection: no change
    s.feed(b"tunnel encapsulation ipip\r")
    s.feed(b"tunnel encapsulation ipip\r")  # the same value again: no change
    s.feed(b"console lines infinity\r")  # the session's own setting
    s.feed(b"show config\r")
    assert len(seen) == 1 and " tunnel encapsulation ipip" in seen[0].splitlines()
    s.feed(b"no tunnel encapsulation\r")  # the block empties, and goes
    assert len(seen) == 2 and "tunnel select 1" not in seen[1]
    dev.reboot()  # nothing was saved: the running config is the saved one again
    assert seen[2] == dev.saved.text()
    assert "tunnel" not in seen[2]


# --------------------------------------------------------------------------------------------
# Over SSH

PROMPT = re.compile(rb"(?:^|\n)[^\n]*[>#] \Z")


@pytest.fixture(scope="module")
def host_key_path(tmp_path_factory):
    return tmp_path_factory.mktemp("rtxsim") / "host_rsa"


@pytest.fixture
def make_sim(host_key_path):
    sims: list[Simulator] = []

    def make(config: str | None = None, **kw) -> Simulator:
        kw.setdefault("user", USER)
        kw.setdefault("password", PASSWORD)
        kw.setdefault("admin_password", ADMIN)
        kw.setdefault("default_character", "ascii")
        sim = Simulator(config, host_key_path=host_key_path, **kw)
        sim.start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        sim.stop()


class Shell:
    """A paramiko interactive shell with prompt matching at the end of the buffer only."""

    def __init__(
        self,
        sim_or_port,
        user: str = USER,
        password: str = PASSWORD,
        *,
        kex: tuple[str, ...] | None = None,
        key_types: tuple[str, ...] | None = None,
        disabled_algorithms: dict | None = None,
        encoding: str = "ascii",
        shell: bool = True,
    ) -> None:
        port = sim_or_port.port if isinstance(sim_or_port, Simulator) else sim_or_port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.t = paramiko.Transport(self.sock, disabled_algorithms=disabled_algorithms)
        opts = self.t.get_security_options()
        if kex is not None:
            opts.kex = kex
        if key_types is not None:
            opts.key_types = key_types
        self.encoding = encoding
        self.buf = b""
        try:
            self.t.connect(username=user, password=password)
        except Exception:
            self.t.close()
            raise
        self.chan: paramiko.Channel | None = None
        if shell:
            self.open()

    def open(self) -> bytes:
        self.chan = self.t.open_session()
        self.chan.get_pty(width=80, height=24)
        self.chan.invoke_shell()
        self.chan.settimeout(5)
        return self.read_until(PROMPT)

    def read_until(self, pattern: re.Pattern[bytes] | bytes, timeout: float = 5) -> bytes:
        if isinstance(pattern, bytes):
            pattern = re.compile(re.escape(pattern) + rb"\Z")
        deadline = time.monotonic() + timeout
        while True:
            if pattern.search(self.buf) and not self.chan.recv_ready():
                out, self.buf = self.buf, b""
                return out
            if time.monotonic() > deadline:
                raise TimeoutError(f"waiting for {pattern.pattern!r}; got {self.buf!r}")
            try:
                data = self.chan.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise EOFError(self.buf)
            self.buf += data

    def send(self, data: bytes | str) -> None:
        self.chan.sendall(data.encode(self.encoding) if isinstance(data, str) else data)

    def cmd(self, line: str, expect=PROMPT) -> str:
        """Send ``line`` + CR and return the decoded output up to the next prompt."""
        self.send(line + "\r")
        return self.read_until(expect).decode(self.encoding)

    def admin(self, password: str = ADMIN) -> str:
        self.send("administrator\r")
        self.read_until(b"Password: ")
        return self.cmd(password)

    def wait_closed(self, timeout: float = 5) -> bytes:
        """Read until the server ends the channel; return what came before."""
        deadline = time.monotonic() + timeout
        data = b""
        while time.monotonic() < deadline:
            try:
                chunk = self.chan.recv(65536)
            except TimeoutError:
                continue
            except (OSError, EOFError):
                return data
            if not chunk:
                return data
            data += chunk
        raise TimeoutError(data)

    def close(self) -> None:
        self.t.close()
        self.sock.close()


def output_lines(text: str) -> list[str]:
    """Output between the echoed command and the prompt, as lines."""
    return text.split("\r\n")[1:-1]


def wait_for(predicate, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.02)


@pytest.mark.sim
def test_banner_blank_line_then_prompt(make_sim):
    sim = make_sim()
    sh = Shell(sim, shell=False)
    first = sh.open()
    assert first.startswith(b"RTX1200 Rev.10.01.78 (")
    assert first.endswith(b"Memory 128Mbytes, 3LAN, 1BRI\r\n\r\n> ")
    assert b"Copyright (c) " in first and b"00:a0:de:" in first
    sh.close()


@pytest.mark.sim
def test_input_echoed_and_cr_is_one_enter(make_sim):
    sim = make_sim()
    sh = Shell(sim)
    out = sh.cmd("show environment")
    assert out.startswith("show environment\r\n")
    assert "Config. file: 0" in out
    assert out.endswith("\r\n> ") and out.count("> ") == 1
    sh.close()


@pytest.mark.sim
def test_crlf_is_two_enters_and_lf_alone_is_one(make_sim):
    sim = make_sim()
    sh = Shell(sim)
    sh.send("show environment\r\n")
    out = sh.read_until(re.compile(rb"> \r\n> \Z")).decode()
    assert out.count("Config. file: 0") == 1
    assert sim.command_log[-2:] == [("user", "", "show environment"), ("user", "", "")]
    sh.send("show environment\n")
    out = sh.read_until(PROMPT).decode()
    assert out.endswith("Security Class Level: 1, Forget: ON, Telnet: ON\r\n> ")
    sh.close()


@pytest.mark.sim
def test_administrator_good_password_gives_hash_prompt_without_echo(make_sim):
    sim = make_sim()
    sh = Shell(sim)
    sh.send("administrator\r")
    assert sh.read_until(b"Password: ") == b"administrator\r\nPassword: "
    out = sh.cmd(ADMIN)
    assert out == "\r\n# "
    assert ADMIN not in out
    assert all(ADMIN not in e.command for e in sim.command_log)
    sh.close()


@pytest.mark.sim
@pytest.mark.parametrize("custom", [None, "Password incorrect."])
def test_administrator_wrong_password_stays_at_user_prompt(make_sim, custom):
    sim = make_sim(**({} if custom is None else {"wrong_password_text": custom}))
    sh = Shell(sim)
    sh.send("administrator\r")
    sh.read_until(b"Password: ")
    out = sh.cmd("wrong")
    assert out == f"\r\n{custom or 'Error: Incorrect password'}\r\n> "
    assert "Error: Administrator use only" in sh.cmd("ip route default gateway tunnel 1")
    sh.close()


@pytest.mark.sim
def test_config_commands_at_user_level_are_admin_only(make_sim):
    sim = make_sim()
    before = sim.running_config_text
    sh = Shell(sim)
    for line in ("ip route default gateway tunnel 1", "tunnel select 1", "save"):
        out = sh.cmd(line)
        assert output_lines(out) == ["Error: Administrator use only"], line
    assert "Error: Invalid command name" in sh.cmd("frobnicate")
    assert sim.running_config_text == before and not sim.dirty
    sh.close()


@pytest.mark.sim
def test_error_texts_and_silent_success(make_sim):
    sim = make_sim()
    sh = Shell(sim)
    sh.admin()
    cases = {
        "frobnicate": "Error: Invalid command name",
        "ip filter": "Error: Insufficient or too many parameters",
        "tunnel select 0": "Error: Parameter out of range",
        "console lines 0": "Error: Parameter out of range",
        "tunnel endpoint address 2001:db8::1": None,  # no tunnel selected: some error
        "ip tunnel mtu 1460": None,
    }
    for line, text in cases.items():
        got = output_lines(sh.cmd(line))
        assert len(got) == 1 and re.match(r"^(Error|エラー)\s*[:：]", got[0]), (line, got)
        if text:
            assert got == [text]
    # success prints nothing, and re-entering the same value prints nothing
    for _ in range(2):
        assert sh.cmd("ip route default gateway tunnel 1") == (
            "ip route default gateway tunnel 1\r\n# "
        )
    sh.close()


@pytest.mark.sim
def test_prompt_shows_context_and_console_prompt_at_once(make_sim):
    sim = make_sim()
    sh = Shell(sim)
    sh.admin()
    assert sh.cmd("tunnel select 1").endswith("\r\ntunnel1# ")
    assert sh.cmd("console prompt RT").endswith("\r\nRTtunnel1# ")
    assert sh.cmd("tunnel select none").endswith("\r\nRT# ")
    assert sh.cmd("pp select 1").endswith("\r\nRTpp1# ")
    assert sh.cmd("pp select none").endswith("\r\nRT# ")
    assert "console prompt RT" in sim.running_config_text
    sh.close()


@pytest.mark.sim
def test_replace_and_no_over_ssh(make_sim):
    sim = make_sim("")
    sh = Shell(sim)
    sh.admin()
    for line in (
        "ip route default gateway pp 1",
        "ip route default gateway tunnel 1",
        "tunnel select 1",
        "tunnel encapsulation ipip",
        "tunnel endpoint address 2001:db8::1",
        "tunnel endpoint address 2001:db8::2",
        "tunnel enable 1",
        "tunnel select none",
        "ip filter 10 pass * * * * *",
        "no ip filter 10 pass * * * * *",
    ):
        assert output_lines(sh.cmd(line)) == [], line
    assert sim.running_config_text == (
        "ip route default gateway tunnel 1\n"
        "tunnel select 1\n"
        " tunnel encapsulation ipip\n"
        " tunnel endpoint address 2001:db8::2\n"
        " tunnel enable 1\n"
    )
    sh.cmd("no ip route default")
    sh.cmd("tunnel select 1")
    sh.cmd("no tunnel endpoint address 2001:db8::2")
    assert (
        sim.running_config_text == "tunnel select 1\n tunnel encapsulation ipip\n tunnel enable 1\n"
    )
    sh.close()


def _flat_show_config(sh: Shell) -> list[str]:
    return output_lines(sh.cmd("show config"))


@pytest.mark.sim
def test_show_config_header_and_routers_order(make_sim):
    ticks = iter(range(10_000))
    base = dt.datetime(2024, 12, 7, 15, 38, 0, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    sim = make_sim("", clock=lambda: base + dt.timedelta(seconds=next(ticks)))
    sh = Shell(sim)
    sh.admin()
    sh.cmd("console lines infinity")
    sh.cmd("console columns 200")
    typed = [
        "tunnel select 1",
        "tunnel enable 1",
        "ip tunnel tcp mss limit auto",
        "tunnel endpoint address 2001:db8::10",
        "tunnel encapsulation ipip",
        "tunnel select none",
        "ipv6 filter 200031 pass * * 4",
        "ip filter 200030 pass * 192.168.100.0/24 icmp * *",
        "ipv6 lan2 dhcp service client ir=on",
        "ip lan1 address 192.168.100.1/24",
        "ipv6 prefix 1 ra-prefix@lan2::/64",
        "ip route default gateway tunnel 1",
        "console character ascii",
    ]
    for line in typed:
        assert output_lines(sh.cmd(line)) == [], line
    first = _flat_show_config(sh)
    header = [line for line in first if line.startswith("#")]
    assert header[0].startswith("# RTX1200 Rev.10.01.78 (")
    assert header[1].startswith("# MAC Address : 00:a0:de:")
    assert header[2] == "# Memory 128Mbytes, 3LAN, 1BRI"
    assert header[3].startswith("# main:  RTX1200 ver=")
    assert re.fullmatch(r"# Reporting Date: Dec 7 15:38:\d\d 2024", header[4])
    assert [line for line in first if not line.startswith("#")] == [
        "console character ascii",
        "console columns 200",
        "console lines infinity",
        "ip route default gateway tunnel 1",
        "ipv6 prefix 1 ra-prefix@lan2::/64",
        "ip lan1 address 192.168.100.1/24",
        "ipv6 lan2 dhcp service client ir=on",
        "tunnel select 1",
        " tunnel encapsulation ipip",
        " tunnel endpoint address 2001:db8::10",
        " ip tunnel tcp mss limit auto",
        " tunnel enable 1",
        "ip filter 200030 pass * 192.168.100.0/24 icmp * *",
        "ipv6 filter 200031 pass * * 4",
    ]
    second = _flat_show_config(sh)
    assert first[4] != second[4] and first[:4] == second[:4] and first[5:] == second[5:]
    sh.close()


@pytest.mark.sim
def test_show_config_of_one_tunnel_and_of_the_saved_file(make_sim):
    sim = make_sim(sample_config("busy"))
    sh = Shell(sim)
    sh.admin()
    sh.cmd("console lines infinity")
    assert output_lines(sh.cmd("show config tunnel 2")) == [
        "tunnel select 2",
        " tunnel encapsulation ipip",
        " tunnel endpoint address 2001:db8:2::1 2001:db8:1::2",
        " ip tunnel mtu 1460",
        " ip tunnel tcp mss limit auto",
        " tunnel enable 2",
    ]
    sh.cmd("no ip route 198.51.100.0/24")
    assert "ip route 198.51.100.0/24 gateway tunnel 2" not in sh.cmd("show config")
    assert "ip route 198.51.100.0/24 gateway tunnel 2" in sh.cmd("show config 0")
    sh.close()


@pytest.mark.sim
def test_wrapping_and_paging_until_console_is_set(make_sim):
    sim = make_sim(sample_config("busy"))
    sh = Shell(sim)
    more = re.compile(rb"---more---\Z")
    sh.send("show config\r")
    page1 = sh.read_until(more).decode().split("\r\n")
    # echo line, then 23 lines (console lines 24 - 1), then the pager prompt
    assert page1[0] == "show config" and len(page1) == 1 + 23 + 1
    assert all(len(line) <= 79 for line in page1)
    assert any(len(line) == 79 for line in page1)  # the long "# main:" header line
    sh.send(" ")
    page2 = sh.read_until(more).decode()
    assert page2.startswith("\r") and len(page2.split("\r\n")) == 23 + 1
    sh.send("q")
    assert sh.read_until(PROMPT).decode().endswith("RTX1200> ")
    # console settings at ">" apply to this session
    sh.cmd("console lines infinity")
    out = sh.cmd("show config")
    assert "---more---" not in out
    lines = output_lines(out)
    assert max(len(line) for line in lines) == 79
    assert " 200032" in lines  # the tail of a wrapped pp secure filter line
    sh.cmd("console columns 200")
    lines = output_lines(sh.cmd("show config"))
    assert body("\n".join(lines)) == body(sample_config("busy"))
    # at ">" console settings are the session's own: the config is untouched
    assert not sim.dirty and sim.running_config_text == sim.saved_config_text
    assert "console lines" not in sim.running_config_text
    sh.close()


@pytest.mark.sim
def test_pager_space_runs_to_the_end(make_sim):
    sim = make_sim(sample_config("busy"))
    sh = Shell(sim)
    sh.send("show config\r")
    got = b""
    while True:
        chunk = sh.read_until(re.compile(rb"(---more---|RTX1200> )\Z"))
        got += chunk
        if chunk.endswith(b"RTX1200> "):
            break
        sh.send(" ")
    text = re.sub(r"---more---\r *\r", "", got.decode())
    lines = output_lines(text)
    joined: list[str] = []
    for line in lines:  # undo the hard wrap: pieces of exactly 79 are continued
        if joined and len(joined[-1]) % 79 == 0 and len(joined[-1]) >= 79:
            joined[-1] += line
        else:
            joined.append(line)
    assert body("\n".join(joined)) == body(sample_config("busy"))
    sh.close()


@pytest.mark.sim
def test_japanese_messages_in_shift_jis_by_default(make_sim):
    sim = make_sim(sample_config("busy"), default_character="ja.sjis")
    sh = Shell(sim, encoding="cp932")
    raw = sh.cmd("frobnicate").encode("cp932")
    assert SJIS_INVALID.encode("cp932") in raw
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert "エラー: パラメータの数が不適当です" in sh.cmd("show")
    sh.send("show config\r")
    page = sh.read_until("---つづく---".encode("cp932"))
    assert page.endswith("---つづく---".encode("cp932"))
    sh.send("q")
    sh.read_until(PROMPT)
    sh.admin()
    sh.cmd("ip route default gateway tunnel 1")
    sh.send("exit\r")
    q = sh.read_until("新しい設定を保存しますか? (Y/N)".encode("cp932"))
    assert q.endswith("新しい設定を保存しますか? (Y/N)".encode("cp932"))
    sh.send("Y")
    out = sh.read_until(PROMPT).decode("cp932")
    assert "セーブ中... CONFIG0 終了" in out
    sh.close()


@pytest.mark.sim
def test_japanese_messages_in_utf8_and_back_to_ascii(make_sim):
    sim = make_sim(default_character="ja.sjis")
    sh = Shell(sim, encoding="utf-8")
    sh.cmd("console character ja.utf8")
    out = sh.cmd("frobnicate")
    assert output_lines(out) == [SJIS_INVALID]
    assert "エラー: このコマンドは" in sh.cmd("ip route default gateway pp 1")
    sh.cmd("console character ascii")
    assert output_lines(sh.cmd("frobnicate")) == ["Error: Invalid command name"]
    # at ">" the console settings were the session's only
    assert "console" not in sim.running_config_text
    sh.close()


def _change_then_exit(sh: Shell) -> bytes:
    sh.admin()
    sh.cmd("ip route default gateway tunnel 1")
    sh.send("exit\r")
    return sh.read_until(b"Save new configuration ? (Y/N)")


@pytest.mark.sim
def test_exit_with_unsaved_changes_answer_n(make_sim):
    sim = make_sim()
    sh = Shell(sim)
    assert _change_then_exit(sh).endswith(b"exit\r\nSave new configuration ? (Y/N)")
    sh.send("\n")  # not a Y/N key: the question keeps waiting
    time.sleep(0.1)
    assert not sh.chan.recv_ready()
    sh.send("N")
    assert sh.read_until(PROMPT) == b"N\r\n> "
    assert sim.dirty
    assert "ip route default gateway tunnel 1" in sim.running_config_text
    assert "ip route default" not in sim.saved_config_text
    # asked again the next time, since the changes are still unsaved
    sh.admin()
    sh.send("exit\r")
    sh.read_until(b"Save new configuration ? (Y/N)")
    sh.send("n")
    sh.read_until(PROMPT)
    sh.close()


@pytest.mark.sim
def test_exit_with_unsaved_changes_answer_y_saves(make_sim):
    sim = make_sim()
    sh = Shell(sim)
    _change_then_exit(sh)
    sh.send("Y")
    out = sh.read_until(PROMPT).decode()
    assert out == "Y\r\nSaving ... CONFIG0 Done .\r\n> "
    assert not sim.dirty and sim.saved_config_text == sim.running_config_text
    sh.admin()
    assert sh.cmd("exit") == "exit\r\n> "  # nothing unsaved: no question
    sh.close()


@pytest.mark.sim
def test_save_then_restart_keeps_saved_and_drops_sessions(make_sim):
    sim = make_sim("")
    sh = Shell(sim)
    sh.admin()
    sh.cmd("ip route default gateway pp 1")
    assert output_lines(sh.cmd("save")) == ["Saving ... CONFIG0 Done ."]
    sh.cmd("ip route default gateway tunnel 1")
    assert sim.dirty and sim.saved_config_text != sim.running_config_text
    sim.restart()
    sh.wait_closed()
    assert sim.running_config_text == "ip route default gateway pp 1\n"
    assert not sim.dirty
    sh2 = Shell(sim)
    sh2.cmd("console lines infinity")
    assert "ip route default gateway pp 1" in sh2.cmd("show config")
    sh2.close()
    sh.close()


@pytest.mark.sim
def test_exit_at_user_level_closes_the_channel(make_sim):
    sim = make_sim()
    sh = Shell(sim)
    sh.send("exit\r")
    assert sh.wait_closed() == b"exit\r\n"
    sh.close()


@pytest.mark.sim
def test_quit_leaves_admin_and_restart_command_reboots(make_sim):
    sim = make_sim("")
    sh = Shell(sim)
    sh.admin()
    sh.cmd("ip route default gateway pp 1")
    sh.send("quit\r")
    sh.read_until(b"Save new configuration ? (Y/N)")
    sh.send("N")
    sh.read_until(PROMPT)
    assert output_lines(sh.cmd("restart")) == ["Error: Administrator use only"]
    sh.admin()
    sh.send("restart\r")
    sh.wait_closed()
    assert sim.running_config_text == "" and not sim.dirty
    sh.close()


@pytest.mark.sim
def test_exec_is_refused_shell_works(make_sim):
    sim = make_sim()
    sh = Shell(sim, shell=False)
    chan = sh.t.open_session()
    with pytest.raises(paramiko.SSHException):
        chan.exec_command("show config")
    assert sim.exec_requests_refused == 1
    assert sh.open().endswith(b"\r\n\r\n> ")
    sh.close()


@pytest.mark.sim
def test_rtx1200_offers_only_group1_kex_and_ssh_rsa(make_sim):
    sim = make_sim()
    # a legacy-capable client (paramiko 4 default lists) gets in, with ssh-rsa
    sh = Shell(sim, kex=("diffie-hellman-group1-sha1",), key_types=("ssh-rsa",))
    assert sh.t.host_key_type == "ssh-rsa"
    assert sh.t.remote_cipher.endswith("-cbc") and sh.t.remote_mac == "hmac-sha1"
    sh.close()
    default = Shell(sim)
    assert default.t.host_key_type == "ssh-rsa"
    default.close()
    # a modern-only client fails
    with pytest.raises(paramiko.SSHException):
        Shell(sim, disabled_algorithms={"kex": ["diffie-hellman-group1-sha1"]})
    with pytest.raises(paramiko.SSHException):
        Shell(sim, key_types=("rsa-sha2-512", "rsa-sha2-256"))


@pytest.mark.sim
def test_rtx830_profile_is_modern(make_sim):
    sim = make_sim(profile="rtx830")
    sh = Shell(sim, disabled_algorithms={"kex": ["diffie-hellman-group1-sha1"]}, shell=False)
    assert sh.t.host_key_type in ("rsa-sha2-512", "rsa-sha2-256")
    assert sh.open().startswith(b"RTX830 Rev.15.02.")
    sh.close()
    with pytest.raises(paramiko.SSHException):
        Shell(sim, kex=("diffie-hellman-group1-sha1",))


@pytest.mark.sim
def test_password_auth_only(make_sim):
    sim = make_sim()
    with pytest.raises(paramiko.AuthenticationException):
        Shell(sim, password="nope")
    sock = socket.create_connection(("127.0.0.1", sim.port), timeout=5)
    t = paramiko.Transport(sock)
    t.connect()
    with pytest.raises(paramiko.AuthenticationException):
        t.auth_publickey(USER, paramiko.RSAKey.generate(1024))
    assert t.auth_password(USER, PASSWORD) == []
    t.close()


@pytest.mark.sim
def test_login_user_from_config_with_known_password(make_sim):
    sim = make_sim("login user alice wonderland\nsshd service on\n", user=None, password=None)
    Shell(sim, "alice", "wonderland").close()
    with pytest.raises(paramiko.AuthenticationException):
        Shell(sim, USER, PASSWORD)


@pytest.mark.sim
def test_fault_fail_command(make_sim):
    sim = make_sim("", fail_command=r"^ip tunnel mtu")
    sh = Shell(sim)
    sh.admin()
    sh.cmd("tunnel select 1")
    assert output_lines(sh.cmd("ip tunnel mtu 1460")) == ["Error: Parameter out of range"]
    assert output_lines(sh.cmd("ip tunnel tcp mss limit auto")) == []
    assert sim.running_config_text == "tunnel select 1\n ip tunnel tcp mss limit auto\n"
    sh.close()


@pytest.mark.sim
def test_fault_drop_on_cuts_the_connection_before_applying(make_sim):
    sim = make_sim("", drop_on=r"^tunnel enable")
    sh = Shell(sim)
    sh.admin()
    sh.cmd("tunnel select 1")
    sh.cmd("tunnel encapsulation ipip")
    sh.send("tunnel enable 1\r")
    with pytest.raises(EOFError):
        sh.read_until(PROMPT)
    assert sim.running_config_text == "tunnel select 1\n tunnel encapsulation ipip\n"
    assert sim.command_log[-1] == ("admin", "tunnel1", "tunnel enable 1")
    wait_for(lambda: sim.active_sessions == 0)
    Shell(sim).close()  # the router itself is fine
    sh.close()


@pytest.mark.sim
@pytest.mark.parametrize("dirty_on_console", [False, True])
def test_console_commands_dirty_flag_is_configurable(make_sim, dirty_on_console):
    sim = make_sim(dirty_on_console_commands=dirty_on_console)
    sh = Shell(sim)
    sh.admin()
    sh.cmd("console lines infinity")
    sh.cmd("console columns 200")
    # at "#" the settings are config too, whichever way the flag goes
    assert "console columns 200\nconsole lines infinity\n" in sim.running_config_text
    assert sim.dirty is dirty_on_console
    sh.send("exit\r")
    if dirty_on_console:
        sh.read_until(b"Save new configuration ? (Y/N)")
        sh.send("N")
    assert sh.read_until(PROMPT).endswith(b"> ")
    # a careful driver restores the previous values (defaults: no line at all)
    sh.admin()
    sh.cmd("no console lines")
    sh.cmd("no console columns")
    assert "console" not in sim.running_config_text
    sh.close()


@pytest.mark.sim
def test_state_dir_keeps_the_saved_config_across_processes(make_sim, tmp_path):
    sim = make_sim("", state_dir=tmp_path)
    sh = Shell(sim)
    sh.admin()
    sh.cmd("ip route default gateway tunnel 1")
    sh.cmd("save")
    sh.cmd("ip filter 1 pass * * * * *")  # unsaved: lost
    sh.close()
    sim.stop()
    again = make_sim(sample_config("busy"), state_dir=tmp_path)
    assert again.running_config_text == "ip route default gateway tunnel 1\n"
    assert (tmp_path / "config0.txt").read_text() == "ip route default gateway tunnel 1\n"


@pytest.mark.sim
def test_command_log_of_a_read_only_session(make_sim):
    sim = make_sim(sample_config("busy"))
    sh = Shell(sim)
    sh.cmd("console character ascii")
    sh.cmd("console lines infinity")
    sh.cmd("console columns 200")
    sh.cmd("show config")
    sh.cmd("show environment")
    sh.send("exit\r")
    sh.wait_closed()
    assert all(e.mode == "user" for e in sim.command_log)
    assert all(c.startswith(("show ", "console ", "exit")) for c in sim.commands)
    assert not sim.dirty and sim.running_config_text == sim.saved_config_text
    sh.close()


@pytest.mark.sim
def test_show_config_requires_admin_option(make_sim):
    sim = make_sim(show_config_requires_admin=True)
    sh = Shell(sim)
    assert output_lines(sh.cmd("show config")) == ["Error: Administrator use only"]
    sh.admin()
    assert "sshd service on" in sh.cmd("show config")
    sh.close()


@pytest.mark.sim
def test_two_sessions_share_the_router(make_sim):
    sim = make_sim("")
    a, b = Shell(sim), Shell(sim)
    a.admin()
    a.cmd("ip route default gateway tunnel 1")
    assert "ip route default gateway tunnel 1" in b.cmd("show config")
    a.close()
    b.close()


@pytest.mark.sim
def test_python_m_rtxsim_prints_listening_line(tmp_path, host_key_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rtxsim",
            "--config",
            str(ROOT / "rtxsim" / "configs" / "busy.txt"),
            "--port",
            "0",
            "--profile",
            "rtx1200",
            "--user",
            USER,
            "--password",
            PASSWORD,
            "--admin-password",
            ADMIN,
            "--state-dir",
            str(tmp_path),
            "--host-key",
            str(host_key_path),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        m = re.fullmatch(r"rtxsim listening on 127\.0\.0\.1:(\d+)\n", line)
        assert m, line
        sh = Shell(int(m.group(1)), encoding="cp932")
        sh.admin()
        assert sh.cmd("exit").endswith("RTX1200> ")
        sh.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert (tmp_path / "config0.txt").exists()


def test_several_config_files_boot_save_and_show_each():
    """Firmware with several files: `show environment` names the booted file after the
    firmware field, a bare `save` writes that file, `show config N` shows file N, a restart
    loads the booted file; the other file stays as it was."""
    dev, s = _session("ip route default gateway pp 1\n", config_file=1)
    out, _ = s.feed(b"show environment\r")
    assert b"Firmware: exec0  Config. file: config1\r\n" in out
    s.feed(b"administrator\r")
    s.feed(ADMIN.encode() + b"\r")
    s.feed(b"ip route default gateway tunnel 1\r")
    out, _ = s.feed(b"save\r")
    assert b"CONFIG1" in out
    assert "gateway tunnel 1" in dev.saved_file(1).text()
    assert "gateway tunnel 1" not in dev.saved_file(0).text()
    out, _ = s.feed(b"show config 0\r")
    assert b"gateway tunnel 1" not in out
    out, _ = s.feed(b"show config 1\r")
    assert b"ip route default gateway tunnel 1" in out
    out, _ = s.feed(b"show config 2\r")
    assert b"Error" in out
    assert dev.environment_lines()[6:8] == [
        "Firmware: exec0  Config. file: config1",
        "Default firmware: exec0  Default config. file: config1",
    ]
    dev.reboot()
    assert "gateway tunnel 1" in dev.running.text()


def _admin(s: CliSession) -> None:
    s.feed(b"administrator\r")
    s.feed(ADMIN.encode() + b"\r")


def test_show_status_tunnel_follows_the_block_and_the_fault():
    dev, s = _session()
    _admin(s)
    out, _ = s.feed(b"show status tunnel 1\r")
    assert b"Tunnel interface is not connected" in out
    for line in (
        b"tunnel select 1",
        b"tunnel encapsulation ipip",
        b"tunnel endpoint address 2001:db8::1",
        b"tunnel enable 1",
        b"tunnel select none",
    ):
        s.feed(line + b"\r")
    out, _ = s.feed(b"show status tunnel 1\r")
    assert b"Interface type: IPIP" in out and b"Tunnel interface is connected" in out
    dev.tunnel_down = True
    out, _ = s.feed(b"show status tunnel 1\r")
    assert b"Tunnel interface is not connected" in out


def test_show_status_tunnel_in_japanese():
    dev, s = _session(default_character="ja.utf8")
    out, _ = s.feed(b"show status tunnel 1\r")
    assert "トンネルインタフェースは接続されていません".encode() in out


def test_console_commands_can_need_administrator():
    dev, s = _session(console_needs_admin=True)
    out, _ = s.feed(b"console columns 200\r")
    assert b"Error: Administrator use only" in out
    _admin(s)
    out, _ = s.feed(b"console columns 200\r")
    assert b"Error" not in out
    assert "console columns 200" in dev.running.text()


def test_drop_after_carries_the_command_out_and_sends_no_answer():
    dev, s = _session("ip route default gateway pp 1\n", drop_after=r"^save$")
    _admin(s)
    s.feed(b"ip route default gateway tunnel 1\r")
    out, action = s.feed(b"save\r")
    assert action == "drop"
    assert b"Saving" not in out and b"# " not in out.split(b"save")[-1]
    assert "gateway tunnel 1" in dev.saved.text()


def test_map_e_ipsec_bridges_vlans_and_embedded_files_are_kept():
    text = (
        "bridge member bridge1 lan1 lan2\n"
        "ip bridge1 address 192.168.100.254/24\n"
        "ip lan1.1 address 192.168.10.1/24\n"
        "tunnel select 1\n tunnel encapsulation map-e\n tunnel map-e type v6plus\n"
        " tunnel enable 1\n"
        "tunnel select 2\n tunnel encapsulation ipsec\n ipsec tunnel 101\n tunnel enable 2\n"
        "embedded file a.lua <<EOF\n-- lua\n\n  x = 1\nEOF\n"
    )
    cfg = cfg_of(text)
    rendered = cfg.text()
    for line in text.splitlines():
        assert line in rendered.splitlines()
    assert rendered.endswith("embedded file a.lua <<EOF\n-- lua\n\n  x = 1\nEOF\n")
