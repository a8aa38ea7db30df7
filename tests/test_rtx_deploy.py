"""The router end through the real pyinfra CLI, over real SSH, against the RTX simulator.

Each test starts simulators on 127.0.0.1, writes an inventory, a known_hosts file and a small
deploy (the project's ``operations.rtx``) into a temporary directory and runs ``pyinfra`` there
as a user would. Only the simulator's public API is used to look at the router afterwards.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from pathlib import Path

import paramiko
import pytest

from ipip6.rtx.session import SESSION_COLUMNS
from lab.pyinfra_cli import PYINFRA, REPO, DeployRun, run_pyinfra
from rtxsim import Simulator
from tests.simulators import ADMIN, CONFIGS, PASSWORD, USER
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.sim


VPS, ROUTER = "2001:db8:100::10", "2001:db8:200::1"

DEPLOY = """\
from pyinfra import host

from ipip6.settings import load_router_settings
from operations import rtx

settings = load_router_settings(host.name, host.data.dict())
changed = rtx.tunnel(name="Tunnel to the VPS", settings=settings)
rtx.save(name="Save the router config", _if=changed.did_change)
"""

OURS = [
    "ip route default gateway tunnel 1",
    "tunnel select 1",
    " tunnel encapsulation ipip",
    f" tunnel endpoint address {VPS}",
    " ip tunnel mtu 1460",
    " ip tunnel tcp mss limit auto",
    " tunnel enable 1",
]
# What a session may send besides the deploy's own commands.
SESSION_LINES = {
    ("user", "console lines infinity"),
    ("user", "console columns 200"),
    ("user", "administrator"),
    ("user", "exit"),
    ("admin", "exit"),
}


# -- helpers ---------------------------------------------------------------------------------


def host_key_line(sim: Simulator, key: paramiko.PKey | None = None) -> str:
    key = key or sim.host_key
    return f"[127.0.0.1]:{sim.port} {key.get_name()} {key.get_base64()}\n"


def router(name: str, sim: Simulator, **data) -> tuple[str, dict]:
    base = {
        "ssh_hostname": "127.0.0.1",
        "ssh_port": sim.port,
        "ssh_user": USER,
        "ssh_password": PASSWORD,
        "rtx_admin_password": ADMIN,
        "rtx_legacy_ssh": True,
        "vps_ipv6": VPS,
        "router_ipv6": ROUTER,
        "home_networks": ["192.168.100.0/24"],
        # These inventories hold routers only: the VPS end is someone else's.
        "rtx_vps_managed_elsewhere": True,
        # The tunnel without inner addresses (and so without fallback): what these tests were
        # written for. tests/test_rtx_fallback_sim.py drives the defaults.
        "tunnel_inner_network": False,
    }
    base.update(data)
    return f"@rtx/{name}", base


def pyinfra(
    tmp: Path,
    hosts: list[tuple[str, dict]],
    *args: str,
    known: list[Simulator] | None = None,
    target: str = "deploy.py",
    deploy_text: str = DEPLOY,
) -> DeployRun:
    """``pyinfra inventory.py TARGET -y ARGS`` in ``tmp``; known_hosts holds ``known``'s keys;
    deploy.py is ``deploy_text`` (default: a small deploy of ``operations.rtx``)."""
    known_hosts = tmp / "known_hosts"
    if known is not None:
        known_hosts.write_text("".join(host_key_line(sim) for sim in known))
    hosts = [(name, {"ssh_known_hosts_file": str(known_hosts), **data}) for name, data in hosts]
    (tmp / "inventory.py").write_text(f"rtx = {hosts!r}\n")
    (tmp / "deploy.py").write_text(deploy_text)
    return run_pyinfra(
        "inventory.py",
        *args,
        target=target,
        cwd=tmp,
        json_output=target == "deploy.py",
        env={"PYTHONPATH": str(REPO)},
        timeout=180,
    )


def owned_lines(sim: Simulator) -> list[str]:
    lines = sim.running_config_text.splitlines()
    out = [line for line in lines if line.startswith("ip route default")]
    if "tunnel select 1" in lines:
        i = lines.index("tunnel select 1")
        out.append(lines[i])
        for line in lines[i + 1 :]:
            if not line.startswith(" "):
                break
            out.append(line)
    return out


def not_owned(lines: list[str]) -> list[str]:
    """A config without the default route and the ``tunnel select 1`` block."""
    out, in_block = [], False
    for line in lines:
        if not line.startswith(" "):
            in_block = line == "tunnel select 1"
        if not in_block and not line.startswith("ip route default"):
            out.append(line)
    return out


def deploy_commands(sim: Simulator, since: int = 0) -> list[tuple[str, str]]:
    """(mode, command) sent beyond the session's own, from log entry ``since`` on."""
    entries = sim.command_log[since:]
    return [
        (e.mode, e.command)
        for e in entries
        if e.command and (e.mode, e.command) not in SESSION_LINES
    ]


def writes(sim: Simulator, since: int = 0) -> list[str]:
    return [c for _, c in deploy_commands(sim, since) if not c.startswith("show ")]


def reads(sim: Simulator, since: int = 0) -> Counter:
    """How often each ``show`` command was sent, by (mode, command), from entry ``since`` on."""
    return Counter(
        (e.mode, e.command) for e in sim.command_log[since:] if e.command.startswith("show ")
    )


def assert_clean(sim: Simulator) -> None:
    """Nothing unsaved: the session left no trace in the running config."""
    assert not sim.dirty
    assert sim.running_config_text == sim.saved_config_text


# -- applying --------------------------------------------------------------------------------


def test_apply_on_factory_config_then_nothing_to_do(sims, tmp_path):
    sim = sims("factory.txt")
    factory = sim.running_config_text
    run = pyinfra(tmp_path, [router("home", sim)], known=[sim])
    assert run.returncode == 0
    assert run.op("Tunnel to the VPS")["success"] == ["@rtx/home"]
    assert run.op("Save the router config")["success"] == ["@rtx/home"]
    assert owned_lines(sim) == OURS
    assert_clean(sim)  # saved, and the console settings are not in it
    assert "console" not in sim.saved_config_text
    assert set(factory.splitlines()) <= set(sim.saved_config_text.splitlines())

    since = len(sim.command_log)
    again = pyinfra(tmp_path, [router("home", sim)], known=[sim])
    assert again.returncode == 0
    assert again.op("Tunnel to the VPS")["no_change"] == ["@rtx/home"]
    assert again.op("Save the router config")["success"] == []
    assert writes(sim, since) == []
    assert "save" not in [c for _, c in deploy_commands(sim, since)]
    assert_clean(sim)


def test_booted_from_config1_saves_there_and_leaves_config0(sims, tmp_path):
    """Firmware with several config files prints `Config. file: config1` after the firmware
    field: a bare `save` writes file 1, so file 1 is what must be read back; file 0 (the
    factory config here) is never touched."""
    sim = sims("busy.txt", config_file=1)
    config0 = sim.device.saved_file(0).text()
    run = pyinfra(tmp_path, [router("home", sim)], known=[sim])
    assert run.returncode == 0, run.stderr[-3000:]
    assert owned_lines(sim) == OURS
    assert_clean(sim)  # running == config1, nothing unsaved
    assert ("admin", "show config 1") in reads(sim)
    assert ("admin", "show config 0") not in reads(sim)
    assert sim.device.saved_file(0).text() == config0

    since = len(sim.command_log)
    again = pyinfra(tmp_path, [router("home", sim)], known=[sim])
    assert again.returncode == 0
    assert writes(sim, since) == []
    assert sim.device.saved_file(0).text() == config0


def test_reads_per_run_no_op_reads_each_config_once(sims, tmp_path):
    # "A no-op run is what users run most: keep it cheap. One config read per router."
    sim = sims("busy.txt")
    hosts = [router("home", sim)]
    project_deploy = (REPO / "deploy.py").read_text()
    run = pyinfra(tmp_path, hosts, known=[sim], deploy_text=project_deploy)
    assert run.returncode == 0
    assert run.op("Router: verify by traffic from the VPS, then save")["success"] == ["@rtx/home"]
    # A changing run: what confirm-or-roll-back needs, nothing twice for the same purpose.
    assert reads(sim) == {
        ("admin", "show config"): 2,  # the plan (and console check), the read-back after it
        ("admin", "show environment"): 1,  # N: the file `save` writes
        ("admin", "show config 0"): 2,  # unsaved changes elsewhere?, the read-back after save
        ("admin", "show status tunnel 1"): 1,  # the router's own view, before saving
    }

    since = len(sim.command_log)
    again = pyinfra(tmp_path, hosts, known=[sim], deploy_text=project_deploy)
    assert again.returncode == 0
    assert again.op("Router: ipip6 tunnel and default route")["no_change"] == ["@rtx/home"]
    assert again.op("Router: verify by traffic from the VPS, then save")["no_change"] == [
        "@rtx/home"
    ]
    # The no-op run: the running config once (the session's check of its console settings at
    # "#" is that read), the saved one once, for both operations; besides them only the
    # console set-up, logging in and out, and the config file the router booted from (no
    # output the session reads anyway names it).
    assert [(e.mode, e.command) for e in sim.command_log[since:]] == [
        ("user", "console lines infinity"),
        ("user", f"console columns {SESSION_COLUMNS}"),
        ("user", "administrator"),
        ("admin", "show config"),
        ("admin", "show environment"),
        ("admin", "show config 0"),
        ("admin", "exit"),
        ("user", "exit"),
    ]
    assert_clean(sim)


def test_a_change_made_while_pyinfra_waits_for_confirmation_is_not_saved(sims, tmp_path):
    # Without -y pyinfra reads the router, shows the changes and waits for Enter: the reads
    # from before that wait must not decide what is saved after it.
    from rtxsim.model import NO_CONTEXT

    sim = sims("busy.txt")
    context = NO_CONTEXT
    for line in OURS:  # applied by an earlier run that never saved: this run only saves
        context = sim.device.apply(line.strip(), context, admin=True).context
    saved_before = sim.saved_config_text
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(host_key_line(sim))
    name, data = router("home", sim, ssh_known_hosts_file=str(known_hosts))
    (tmp_path / "inventory.py").write_text(f"rtx = {[(name, data)]!r}\n")
    (tmp_path / "deploy.py").write_text((REPO / "deploy.py").read_text())
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "w") as err, open(tmp_path / "stdout.txt", "w") as out:
        proc = subprocess.Popen(
            [PYINFRA, "inventory.py", "deploy.py"],
            cwd=tmp_path,
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=err,
            text=True,
            env=env,
        )
        try:
            deadline = time.monotonic() + 120
            while "Press enter to execute" not in stderr_path.read_text():
                assert proc.poll() is None, stderr_path.read_text()
                assert time.monotonic() < deadline, stderr_path.read_text()
                time.sleep(0.1)
            since = len(sim.command_log)
            # Meanwhile someone changes a line the deploy does not own, and does not save it.
            sim.device.apply("dns server 192.0.2.53", NO_CONTEXT, admin=True)
            proc.communicate("\n", timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    output = stderr_path.read_text() + (tmp_path / "stdout.txt").read_text()
    print(output)
    assert proc.returncode != 0
    assert "unsaved changes outside the lines this deploy owns" in output
    assert "+dns server 192.0.2.53" in output
    assert sim.saved_config_text == saved_before
    assert "save" not in [c for _, c in deploy_commands(sim, since)]
    # Read again after the wait, once: the running config and the saved one.
    assert reads(sim, since)[("admin", "show config")] == 1
    assert reads(sim, since)[("admin", "show config 0")] == 1


def test_apply_on_busy_config_longer_than_a_page(sims, tmp_path):
    sim = sims("busy.txt")
    before = sim.running_config_text.splitlines()
    assert len(before) > 40  # more than a 24-line page
    assert "ip route default gateway pp 1" in before
    run = pyinfra(tmp_path, [router("home", sim)], known=[sim])
    assert run.returncode == 0
    after = sim.running_config_text.splitlines()
    assert "ip route default gateway tunnel 1" in after
    assert "ip route default gateway pp 1" not in after
    # Everything that is not ours is exactly as it was, in the same order.
    assert not_owned(after) == not_owned(before)
    # The pp route was replaced, not removed first.
    assert not any(c.startswith("no ip route") for c in writes(sim))
    assert_clean(sim)


OTHER_ENDPOINT = (
    "ip route default gateway tunnel 1\n"
    "tunnel select 1\n"
    " tunnel encapsulation ipip\n"
    " tunnel endpoint address 2001:db8:999::1\n"
    " ip tunnel mtu 1460\n"
    " ip tunnel tcp mss limit auto\n"
    " tunnel enable 1\n"
)


def test_tunnel_to_another_endpoint_is_not_taken_by_default(sims, tmp_path):
    # Tunnel 1 goes somewhere else (another VPS, the ISP's AFTR): without a number the deploy
    # takes the lowest free one and leaves tunnel 1 as it is; the default route is owned.
    sim = sims((CONFIGS / "factory.txt").read_text() + OTHER_ENDPOINT)
    run = pyinfra(tmp_path, [router("home", sim)], "--diff", known=[sim])
    assert run.returncode == 0, run.output
    lines = sim.running_config_text.splitlines()
    assert "ip route default gateway tunnel 2" in lines
    assert " tunnel endpoint address 2001:db8:999::1" in lines  # tunnel 1 untouched
    assert writes(sim)[:2] == ["tunnel select 2", "tunnel encapsulation ipip"]
    assert_clean(sim)
    # The router's config is the record: the next run finds tunnel 2 again.
    since = len(sim.command_log)
    again = pyinfra(tmp_path, [router("home", sim)], known=[sim])
    assert again.returncode == 0
    assert writes(sim, since) == []


def test_tunnel_to_another_endpoint_named_in_data_is_refused(sims, tmp_path):
    sim = sims((CONFIGS / "factory.txt").read_text() + OTHER_ENDPOINT)
    before = sim.running_config_text
    run = pyinfra(tmp_path, [router("home", sim, rtx_tunnel_number=1)], known=[sim])
    assert run.returncode != 0
    assert "rtx_tunnel_number 1 is not free" in run.output
    assert "tunnel endpoint address 2001:db8:999::1" in run.output
    assert writes(sim) == []
    assert sim.running_config_text == sim.saved_config_text == before


def test_tunnel_taken_over_when_the_data_says_so(sims, tmp_path):
    sim = sims((CONFIGS / "factory.txt").read_text() + OTHER_ENDPOINT)
    hosts = [router("home", sim, rtx_tunnel_number=1, rtx_tunnel_takeover=True)]
    run = pyinfra(tmp_path, hosts, "--diff", known=[sim])
    assert run.returncode == 0, run.output
    assert writes(sim) == [
        "tunnel select 1",
        f"tunnel endpoint address {VPS}",
        "tunnel select none",
        "save",
    ]
    assert owned_lines(sim) == OURS
    assert "-  tunnel endpoint address 2001:db8:999::1" in run.output
    assert f"+  tunnel endpoint address {VPS}" in run.output
    assert_clean(sim)


def test_router_printing_another_ipv6_form_is_not_a_change(sims, tmp_path):
    expanded = "2001:0DB8:0100:0000:0000:0000:0000:0010"
    config = (CONFIGS / "factory.txt").read_text() + "\n".join(OURS).replace(VPS, expanded)
    sim = sims(config)
    assert expanded in sim.running_config_text
    run = pyinfra(tmp_path, [router("home", sim)], known=[sim])
    assert run.returncode == 0
    assert run.op("Tunnel to the VPS")["no_change"] == ["@rtx/home"]
    assert writes(sim) == []
    assert_clean(sim)


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"dirty_on_console_commands": True},
        {"show_config_requires_admin": True, "dirty_on_console_commands": True},
        {"user_console_commands_change_config": True},
    ],
    ids=["default", "dirty-on-console", "show-needs-admin", "user-console-stored"],
)
def test_dry_diff_sends_only_show_commands(sims, tmp_path, variant):
    sim = sims("busy.txt", **variant)
    before = sim.running_config_text
    run = pyinfra(tmp_path, [router("home", sim)], "--dry", "--diff", known=[sim])
    assert run.returncode == 0
    sent = writes(sim)
    if variant.get("user_console_commands_change_config"):
        # The router stored the session's console settings: put back, nothing else.
        assert sorted(sent) == ["no console columns", "no console lines"]
    else:
        assert sent == []
    assert sim.running_config_text == before
    assert_clean(sim)
    assert "Will change the router's tunnel section" in run.output
    assert "- ip route default gateway pp 1" in run.output  # pyinfra's own diff layout
    assert "+ ip route default gateway tunnel 1" in run.output
    assert ADMIN not in run.output and PASSWORD not in run.output


def test_deploy_with_dirty_on_console_commands_saves_only_the_tunnel(sims, tmp_path):
    sim = sims("factory.txt", dirty_on_console_commands=True)
    run = pyinfra(tmp_path, [router("home", sim)], known=[sim])
    assert run.returncode == 0
    assert owned_lines(sim) == OURS
    assert "console" not in sim.saved_config_text
    assert_clean(sim)


def test_japanese_and_modern_profile(sims, tmp_path):
    sim = sims("busy.txt", profile="rtx830", default_character="ja.utf8", normalise_ipv6=True)
    run = pyinfra(tmp_path, [router("home", sim, rtx_legacy_ssh=False)], known=[sim])
    assert run.returncode == 0
    assert owned_lines(sim) == OURS
    assert_clean(sim)


# -- failures are contained per host ---------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        "wrong_admin_password",
        "rejected_command",
        "unknown_host_key",
        "changed_host_key",
        "dropped_connection",
    ],
)
def test_failure_on_one_router_does_not_stop_the_other(sims, tmp_path, fault):
    options = {}
    if fault == "rejected_command":
        options["fail_command"] = r"^ip tunnel mtu"
    if fault == "dropped_connection":
        options["drop_on"] = r"^tunnel endpoint address"
    bad = sims("factory.txt", **options)
    good = sims("busy.txt")
    saved_before = bad.saved_config_text
    bad_data = {"rtx_admin_password": "not-the-password"} if fault.startswith("wrong") else {}
    known = [good] if fault.endswith("host_key") else [bad, good]
    if fault == "changed_host_key":
        other = paramiko.RSAKey.generate(2048)
        (tmp_path / "known_hosts").write_text(host_key_line(good) + host_key_line(bad, other))
        known = None
    hosts = [router("bad", bad, **bad_data), router("good", good)]

    run = pyinfra(tmp_path, hosts, known=known)

    assert run.returncode != 0
    assert "@rtx/bad" in run.failed_hosts or "@rtx/bad" in run.output
    expected = {
        "wrong_admin_password": "administrator password rejected",
        "rejected_command": "router rejected 'ip tunnel mtu 1460'",
        "unknown_host_key": "unknown host key",
        "changed_host_key": "CHANGED",
        "dropped_connection": "closed the connection",
    }[fault]
    bad_lines = [line for line in run.output.splitlines() if "@rtx/bad" in line]
    assert any(expected in line for line in bad_lines), bad_lines
    # The bad router: nothing saved.
    assert "save" not in bad.commands
    assert bad.saved_config_text == saved_before
    # The good router: deployed and saved.
    assert owned_lines(good)[0] == "ip route default gateway tunnel 1"
    assert run.op("Tunnel to the VPS")["success"] == ["@rtx/good"]
    assert_clean(good)
    assert "not-the-password" not in run.output and ADMIN not in run.output
    if fault.endswith("host_key"):
        assert bad.command_log == []  # never logged in
        assert host_key_line(bad) not in (tmp_path / "known_hosts").read_text()


@pytest.mark.parametrize(
    "setting",
    [{"rtx_trust_new_host_key": True}, {"ssh_strict_host_key_checking": "accept-new"}],
    ids=["rtx_trust_new_host_key", "accept-new"],
)
def test_new_host_key_is_trusted_only_when_asked(sims, tmp_path, setting):
    sim = sims("factory.txt")
    run = pyinfra(tmp_path, [router("home", sim, **setting)], known=[])
    assert run.returncode == 0
    assert host_key_line(sim) in (tmp_path / "known_hosts").read_text()
    # Recorded: the next run checks against it.
    again = pyinfra(tmp_path, [router("home", sim)], known=None)
    assert again.returncode == 0
    assert "Trusted new host key" not in again.output


# -- SSH algorithms --------------------------------------------------------------------------


def test_rtx1200_needs_rtx_legacy_ssh(sims, tmp_path):
    sim = sims("factory.txt", profile="rtx1200")
    run = pyinfra(tmp_path, [router("home", sim, rtx_legacy_ssh=False)], known=[sim])
    assert run.returncode != 0
    assert "rtx_legacy_ssh: True" in run.output
    assert sim.command_log == []


def agreed_kex(caplog) -> list[str]:
    return [r.getMessage()[5:] for r in caplog.records if r.getMessage().startswith("Kex: ")]


def test_legacy_algorithms_only_for_that_router(sims, tmp_path, caplog):
    from ipip6.rtx.connector import open_ssh

    caplog.set_level("DEBUG", logger="paramiko")

    legacy_sim = sims("factory.txt", profile="rtx1200")
    modern_sim = sims("factory.txt", profile="rtx830")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(host_key_line(legacy_sim) + host_key_line(modern_sim))
    class_defaults = {
        name: getattr(paramiko.Transport, name)
        for name in ("_preferred_kex", "_preferred_keys", "_preferred_ciphers", "_preferred_macs")
    }

    legacy = open_ssh(
        "127.0.0.1",
        legacy_sim.port,
        user=USER,
        password=PASSWORD,
        known_hosts=str(known_hosts),
        legacy=True,
    )
    transport = legacy
    assert set(agreed_kex(caplog)) == {"diffie-hellman-group1-sha1"}
    assert transport.host_key_type == "ssh-rsa"
    # Offered last, after everything modern.
    assert transport.preferred_kex[-1] == "diffie-hellman-group1-sha1"
    keys = transport.preferred_keys
    assert keys.index("ssh-rsa") > keys.index("rsa-sha2-256") > keys.index("rsa-sha2-512")

    # A plain paramiko client in the same process, to a modern host: defaults untouched.
    for name, value in class_defaults.items():
        assert getattr(paramiko.Transport, name) == value
    caplog.clear()
    plain = paramiko.Transport(("127.0.0.1", modern_sim.port))
    plain.start_client(timeout=10)
    try:
        assert plain.preferred_kex == paramiko.Transport._preferred_kex
        assert agreed_kex(caplog)[0] not in ("diffie-hellman-group1-sha1",)
        assert "sha1" not in agreed_kex(caplog)[0]
        assert plain.host_key_type != "ssh-rsa"
    finally:
        plain.close()
        legacy.close()

    # The connector to a modern router does not even offer the legacy algorithms.
    modern = open_ssh(
        "127.0.0.1",
        modern_sim.port,
        user=USER,
        password=PASSWORD,
        known_hosts=str(known_hosts),
        legacy=False,
    )
    try:
        t = modern
        assert "diffie-hellman-group1-sha1" not in t.preferred_kex
        assert "ssh-rsa" not in t.preferred_keys
        assert t.host_key_type != "ssh-rsa"
    finally:
        modern.close()


# -- other entry points ----------------------------------------------------------------------


def test_fact_and_exec_from_the_cli(sims, tmp_path):
    sim = sims("busy.txt")
    run = pyinfra(
        tmp_path, [router("home", sim)], known=[sim], target="fact ipip6.rtx.facts.RunningConfig"
    )
    assert run.returncode == 0
    assert '"ip route default gateway pp 1"' in run.output
    assert "Reporting Date" not in run.output
    assert writes(sim) == []
    assert_clean(sim)

    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(host_key_line(sim))
    data = [
        f"ssh_port={sim.port}",
        f"ssh_user={USER}",
        f"ssh_password={PASSWORD}",
        f"rtx_admin_password={ADMIN}",
        f"ssh_known_hosts_file={known_hosts}",
        "rtx_legacy_ssh=true",
    ]
    cmd = [PYINFRA, "@rtx/127.0.0.1", "exec", "-y"]
    for item in data:
        cmd += ["--data", item]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [*cmd, "--", "show", "config"], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert "ip route default gateway pp 1" in proc.stdout + proc.stderr

    # Shell-only arguments and session commands: a clear error, not a crash.
    sudo = subprocess.run(
        [*cmd, "--sudo", "--", "show", "config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert sudo.returncode != 0
    assert "_sudo not supported by the @rtx connector" in sudo.stdout + sudo.stderr
    assert "Traceback" not in sudo.stdout + sudo.stderr
    admin = subprocess.run(
        [*cmd, "--", "exit"], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert admin.returncode != 0
    assert "refusing 'exit'" in admin.stdout + admin.stderr
    assert_clean(sim)


def test_shell_operations_fail_clearly(sims, tmp_path):
    # pyinfra's own operations and facts speak POSIX shell: refused before anything is sent.
    sim = sims("factory.txt")
    good = sims("factory.txt")
    (tmp_path / "shell_deploy.py").write_text(
        "from pyinfra import host\n"
        "from pyinfra.facts.files import File\n"
        "from pyinfra.operations import server\n"
        "if host.name == '@rtx/home':\n"
        "    host.get_fact(File, path='/etc/hosts')\n"
        "    server.shell(name='Shell', commands=['test -e /tmp/x || touch /tmp/x'])\n"
    )
    run = pyinfra(
        tmp_path,
        [router("home", sim), router("other", good)],
        known=[sim, good],
        target="shell_deploy.py",
    )
    assert run.returncode != 0
    assert 'refusing "! (test -e /etc/hosts' in run.output
    assert "that is POSIX shell" in run.output
    assert "ipip6" not in run.output  # no exception from the connector
    assert writes(sim) == []
    assert_clean(sim)


def test_fact_during_dry_run_refuses_writes(sims, tmp_path):
    # A fact whose command would change the router: refused while not executing.
    sim = sims("factory.txt")
    (tmp_path / "evil_fact.py").write_text(
        "from pyinfra.api import FactBase\n"
        "class Write(FactBase):\n"
        "    def command(self):\n"
        "        return 'ip route default gateway tunnel 9'\n"
    )
    run = pyinfra(tmp_path, [router("home", sim)], known=[sim], target="fact evil_fact.Write")
    assert "refusing 'ip route default gateway tunnel 9' while pyinfra is not executing" in (
        run.output
    )
    assert writes(sim) == []
    assert_clean(sim)


# -- parallel --------------------------------------------------------------------------------


def test_two_routers_are_driven_in_parallel(sims, tmp_path):
    a, b = sims("factory.txt"), sims("factory.txt")
    proxies = [TcpProxy(sim.port, delay=0.15) for sim in (a, b)]
    try:
        hosts = []
        known = tmp_path / "known_hosts"
        known.write_text(
            "".join(
                f"[127.0.0.1]:{proxy.port} {sim.host_key.get_name()} {sim.host_key.get_base64()}\n"
                for proxy, sim in zip(proxies, (a, b), strict=True)
            )
        )
        for name, proxy, sim in (("a", proxies[0], a), ("b", proxies[1], b)):
            hosts.append(router(name, sim, ssh_port=proxy.port))
        start = time.monotonic()
        run = pyinfra(tmp_path, hosts, known=None)
        elapsed = time.monotonic() - start
    finally:
        for proxy in proxies:
            proxy.close()
    assert run.returncode == 0
    assert owned_lines(a) == OURS and owned_lines(b) == OURS

    # The same deploy on one router, for comparison.
    c = sims("factory.txt")
    proxy = TcpProxy(c.port, delay=0.15)
    try:
        known.write_text(
            f"[127.0.0.1]:{proxy.port} {c.host_key.get_name()} {c.host_key.get_base64()}\n"
        )
        start = time.monotonic()
        single = pyinfra(tmp_path, [router("c", c, ssh_port=proxy.port)], known=None)
        one = time.monotonic() - start
    finally:
        proxy.close()
    assert single.returncode == 0
    # Serial would take about twice as long as one router.
    print(f"two routers: {elapsed:.1f}s, one router: {one:.1f}s")
    assert elapsed < one * 1.5, (elapsed, one)
