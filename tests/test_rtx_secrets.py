"""Secrets never show: everything pyinfra prints (and any file the run writes) is searched.

The login password sits in the inventory's host data, the administrator password in
``group_data/rtx.py`` (pyinfra's ``--debug`` prints group data as it loads it) and a third
secret, pyinfra's own ``ssh_key_password``, in ``group_data/all.py``; one router is given a
wrong administrator password, itself a secret. Deploys (success, a rejected command, a dropped
connection, the wrong password), a ``--dry --diff`` run, ``fact`` and ``exec`` run through the
real pyinfra CLI against the simulator at every verbosity.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from rtxsim import Simulator
from tests.simulators import CONFIGS
from tests.test_rtx_deploy import PYINFRA, REPO, host_key_line

pytestmark = pytest.mark.sim

LOGIN = "S3cr3t-login-7f"
ADMIN = "Adm1n-pw-93c"
WRONG_ADMIN = "Wr0ng-admin-11d"
KEY_PASSPHRASE = "K3y-pass-55e"
SECRETS = (LOGIN, ADMIN, WRONG_ADMIN, KEY_PASSPHRASE)

TUNNEL = {
    "vps_ipv6": "2001:db8:100::10",
    "router_ipv6": "2001:db8:200::1",
    "home_networks": ["192.168.100.0/24"],
}


@pytest.fixture
def routers():
    """Four simulated routers: one that works, one rejecting a command half-way, one dropping
    the connection half-way, one reached with the wrong administrator password."""
    sims = {
        "good": Simulator((CONFIGS / "busy.txt").read_text()),
        "rejects": Simulator(None, fail_command=r"^ip tunnel mtu"),
        "drops": Simulator(None, drop_on=r"^tunnel endpoint address"),
        "wrong-admin": Simulator(None),
    }
    for sim in sims.values():
        sim.device.user, sim.device.password = "admin", LOGIN
        sim.device.admin_password = sim.device._saved_admin_password = ADMIN
        sim.start()
    yield sims
    for sim in sims.values():
        sim.stop()


def write_project(tmp: Path, sims: dict[str, Simulator]) -> None:
    """inventory.py (login password per host), group_data (administrator password, a key
    passphrase), known_hosts and the project's deploy.py."""
    known_hosts = tmp / "known_hosts"
    known_hosts.write_text("".join(host_key_line(sim) for sim in sims.values()))
    hosts = []
    for name, sim in sims.items():
        data = {
            "ssh_hostname": "127.0.0.1",
            "ssh_port": sim.port,
            "ssh_user": "admin",
            "ssh_password": LOGIN,
            "ssh_known_hosts_file": str(known_hosts),
            "rtx_legacy_ssh": True,
        }
        if name == "wrong-admin":
            data["rtx_admin_password"] = WRONG_ADMIN
        hosts.append((f"@rtx/{name}", data))
    (tmp / "inventory.py").write_text(f"rtx = {hosts!r}\n")
    group_data = tmp / "group_data"
    group_data.mkdir(exist_ok=True)
    (group_data / "all.py").write_text(
        "".join(f"{key} = {value!r}\n" for key, value in TUNNEL.items())
        + f"ssh_key_password = {KEY_PASSPHRASE!r}\n"
    )
    (group_data / "rtx.py").write_text(
        f"rtx_admin_password = {ADMIN!r}\nrtx_vps_managed_elsewhere = True\n"
    )
    (tmp / "deploy.py").write_text((REPO / "deploy.py").read_text())


INPUTS = {"inventory.py", "rtx.py", "all.py"}  # where the secrets are meant to be


def run(tmp: Path, *args: str) -> tuple[int, str]:
    """Run pyinfra in ``tmp``; return its exit code and everything it printed or wrote:
    stdout, stderr and every file in ``tmp`` other than the inputs (pyinfra-debug.log…)."""
    before = {p: p.stat().st_mtime for p in tmp.rglob("*") if p.is_file()}
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    proc = subprocess.run(
        [PYINFRA, *args],
        cwd=tmp,
        input="\n",  # "hosts failed to connect, continue?" in a dry run: yes
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    written = [
        p
        for p in tmp.rglob("*")
        if p.is_file() and p.name not in INPUTS and before.get(p) != p.stat().st_mtime
    ]
    files = "".join(f"\n=== {p}\n{p.read_text(errors='replace')}" for p in written)
    everything = proc.stdout + proc.stderr + files
    print(f"$ pyinfra {' '.join(args)}\n--- exit {proc.returncode}\n{everything[-4000:]}")
    return proc.returncode, everything


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        leaks = [line for line in text.splitlines() if secret in line]
        assert not leaks, f"{secret!r} printed: {leaks[:3]}"


@pytest.mark.parametrize(
    "flags",
    [["-v"], ["-vv", "--diff"], ["-vvv", "--debug"], ["-vvv", "--debug-all", "--diff"]],
    ids=["v", "vv-diff", "vvv-debug", "vvv-debug-all-diff"],
)
def test_deploy_prints_no_secret(routers, tmp_path, flags):
    write_project(tmp_path, routers)
    code, text = run(tmp_path, "inventory.py", "deploy.py", "-y", *flags)

    assert code != 0  # three routers fail, each with its own error
    assert_no_secret(text)
    # It did run: what happened on each router is there.
    assert "router rejected 'ip tunnel mtu 1460'" in text
    assert "closed the connection" in text
    assert "administrator password rejected" in text
    assert "wrong-admin" in text
    assert "save" in routers["good"].commands
    if "--debug" in flags or "--debug-all" in flags:
        # pyinfra does print the group data; with the values hidden.
        assert "Adding data to group rtx: {'rtx_admin_password': '<hidden>'," in text


def test_dry_run_diff_prints_no_secret(routers, tmp_path):
    write_project(tmp_path, routers)
    code, text = run(tmp_path, "inventory.py", "deploy.py", "--dry", "--diff", "-vvv", "--debug")
    assert "Will change the router's tunnel section" in text
    assert_no_secret(text)
    assert code != 0  # the wrong password still fails that router


def test_fact_and_exec_print_no_secret(routers, tmp_path):
    write_project(tmp_path, routers)
    fact = ["fact", "ipip6.rtx.facts.RunningConfig", "-vvv", "--debug"]
    code, text = run(tmp_path, "inventory.py", *fact)
    assert "ip route default gateway pp 1" in text  # the busy router's config was read
    assert_no_secret(text)

    code, text = run(tmp_path, "inventory.py", "exec", "-y", "-vvv", "--debug", "--", "show config")
    assert "ip route default gateway pp 1" in text
    assert_no_secret(text)

    # Everything on the command line, as --data: pyinfra logs override data with --debug.
    good = routers["good"]
    data = {
        "ssh_port": good.port,
        "ssh_user": "admin",
        "ssh_password": LOGIN,
        "rtx_admin_password": ADMIN,
        "ssh_known_hosts_file": str(tmp_path / "known_hosts"),
        "rtx_legacy_ssh": "true",
    }
    cli_data = [arg for key, value in data.items() for arg in ("--data", f"{key}={value}")]
    code, text = run(
        tmp_path, "@rtx/127.0.0.1", "exec", "-y", "-vvv", "--debug", *cli_data, "--", "show config"
    )
    assert code == 0
    assert "ip route default gateway pp 1" in text
    assert_no_secret(text)


def test_wrong_password_errors_print_no_secret(routers, tmp_path):
    # The login password itself wrong: the SSH layer's error, at --debug-all.
    write_project(tmp_path, {"wrong-admin": routers["wrong-admin"]})
    routers["wrong-admin"].device.password = "something-else"
    code, text = run(tmp_path, "inventory.py", "deploy.py", "-y", "-vvv", "--debug-all")
    assert code != 0
    assert "SSH login to 127.0.0.1" in text and "rejected" in text
    assert_no_secret(text)


def test_redaction_rules():
    import logging

    from ipip6.rtx import redact

    # Hidden by key wherever a mapping or key=value text is logged; by value when the value
    # cannot be mistaken for a word of the router's config (router output is parsed).
    assert redact.redact({"ssh_password": "pw", "nested": {"ssh_key_password": "k", "n": 1}}) == {
        "ssh_password": "<hidden>",
        "nested": {"ssh_key_password": "<hidden>", "n": 1},
    }
    assert redact.scrub("rtx_admin_password='x y' port=22") == (
        "rtx_admin_password='<hidden>' port=22"
    )
    assert [redact.scrubbable(v) for v in ("auto", "1460", "tunnel", LOGIN, "pw-1")] == [
        False,
        False,
        False,
        True,
        True,
    ]
    redact.register_secret(KEY_PASSPHRASE)
    record = logging.LogRecord("pyinfra", logging.INFO, __file__, 1, "%s and %r", None, None)
    record.args = (f"passphrase {KEY_PASSPHRASE}", {"rtx_admin_password": ADMIN})
    assert redact.RedactingFilter().filter(record)
    assert record.getMessage() == "passphrase <hidden> and {'rtx_admin_password': '<hidden>'}"


HELPER = "H3lper-const-8a1"  # a helper constant in group_data holding a password
MISSPELT = "M1sspelt-pw-2b7"  # under a misspelt password key
UNKNOWN = "Unkn0wn-key-4c9"  # under a key that means nothing to this deploy
SHORT = "pw12"  # short: never scrubbed by value, only hidden by key


def test_debug_shows_no_value_of_keys_not_known_harmless(routers, tmp_path):
    """Helper constants, misspelt and unknown keys in group_data: refused before any host is
    contacted, and neither the refusal nor --debug's group data dump shows their values."""
    write_project(tmp_path, {"good": routers["good"]})
    group_data = tmp_path / "group_data"
    (group_data / "rtx.py").write_text(
        f"ADMIN_PW = {HELPER!r}\n"
        "rtx_admin_password = ADMIN_PW\n"
        f"rtx_admin_pasword = {MISSPELT!r}\n"
        f"router_pw = {UNKNOWN!r}\n"
        f"home_pin = {SHORT!r}\n"
        "rtx_vps_managed_elsewhere = True\n"
    )
    before = len(routers["good"].command_log)
    code, text = run(tmp_path, "inventory.py", "deploy.py", "-y", "-vvv", "--debug")
    assert code == 1
    assert "invalid data for host @rtx/good:" in text
    assert "ADMIN_PW: unknown key (value <hidden>)" in text
    assert "rtx_admin_pasword: unknown key (value <hidden>): did you mean" in text
    assert "Adding data to group rtx: {'ADMIN_PW': '<hidden>'" in text
    assert "'rtx_vps_managed_elsewhere': True" in text  # harmless values still show
    for secret in (*SECRETS, HELPER, MISSPELT, UNKNOWN, SHORT):
        assert secret not in text
    assert len(routers["good"].command_log) == before  # not contacted

    # The same helper named with a leading underscore is no data of this deploy: it runs.
    (group_data / "rtx.py").write_text(
        f"_ADMIN_PW = {HELPER!r}\n"
        "rtx_admin_password = _ADMIN_PW\n"
        "rtx_vps_managed_elsewhere = True\n"
    )
    routers["good"].device.admin_password = HELPER
    code, text = run(tmp_path, "inventory.py", "deploy.py", "-y", "-vvv", "--debug")
    assert code == 0, text[-3000:]
    assert "'_ADMIN_PW': '<hidden>'" in text
    for secret in (*SECRETS, HELPER):
        assert secret not in text
