"""No lock-out on the real VM: a change that cuts SSH is rolled back, with or without us.

Runs after test_vps_vm.py on the same VM (one VM per session); starts from a converged deploy.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from lab.pyinfra_cli import run_pyinfra, write_inventory
from tests.test_vps_vm import DATA

pytestmark = pytest.mark.vm

FILES = "/etc/iptables/rules.v4 /etc/iptables/rules.v6"


@pytest.fixture(scope="module")
def vps(lab_vm, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("vps-safety")

    def deploy(*args: str, user: str = "root", **data):
        host_data = {**lab_vm.pyinfra_host_data(user=user), **DATA, **data}
        if user != "root":
            host_data["_sudo"] = True
        inventory = write_inventory(workdir, {"vps": [("lab-vps", host_data)]})
        return run_pyinfra(inventory, *args)

    run = deploy()
    assert run.returncode == 0, run.output
    return deploy


def firewall_state(vm) -> str:
    return vm.ssh(
        f"sha256sum {FILES}; ls /etc/iptables; "
        "{ iptables-save; ip6tables-save; } | grep -v '^#' | sed 's/ \\[[0-9:]*\\]$//'"
    ).stdout


def wait_for_ssh(vm, seconds: float) -> float:
    start = time.monotonic()
    while True:
        try:
            vm.ssh("true", timeout=15)
            return time.monotonic() - start
        except (subprocess.SubprocessError, OSError):
            if time.monotonic() - start > seconds:
                raise
            time.sleep(2)


def test_rules_that_would_drop_ssh_are_rolled_back_at_once(vps, lab_vm):
    before = firewall_state(lab_vm)
    # sshd listens on 22: the new rules would lock us out. The new connection is tried for
    # half the rollback delay, then the deploy rolls back at once, before the timer would.
    run = vps(ssh_port_allowed=2222, rollback_after_seconds=30)
    assert run.returncode != 0
    assert "no new SSH connection could be opened after the firewall change" in run.output
    assert "rolled back to the previous state" in run.output
    assert "Traceback" not in run.output
    lab_vm.ssh("true")  # a new connection works again
    assert firewall_state(lab_vm) == before  # files, no leftovers, live rules
    assert lab_vm.ssh("systemctl is-active ipip6-guard-firewall.timer || true").stdout.strip() in (
        "inactive",
        "failed",
        "unknown",
    )
    rerun = vps()
    assert rerun.returncode == 0, rerun.output
    assert rerun.changed() == []


def test_connection_cut_mid_change_the_timer_restores(vps, lab_vm):
    """The deploy's own connection dies while the bad rules are live: nobody is left to roll
    back but the timer on the VPS."""
    before = firewall_state(lab_vm)
    # Inside the VM: as soon as the guard is armed, kill the deploy's SSH session (user ubuntu).
    lab_vm.ssh(
        "nohup sh -c 'for i in $(seq 600); do "
        "systemctl is-active --quiet ipip6-guard-firewall.timer && break; sleep 0.1; done; "
        'sleep 1; pkill -KILL -f "sshd: ubuntu"\' >/dev/null 2>&1 &'
    )
    started = time.monotonic()
    run = vps(user="ubuntu", ssh_port_allowed=2222, rollback_after_seconds=20)
    assert run.returncode != 0  # pyinfra itself may stop on the lost connection
    # The unproven rules block new connections until the timer fires (20 s after arming).
    waited = time.monotonic() - started + wait_for_ssh(lab_vm, 90)
    assert waited < 90
    assert firewall_state(lab_vm) == before
    journal = lab_vm.ssh("journalctl -t pyinfra-ipip6 --no-pager -o cat").stdout
    assert "firewall change not confirmed: previous rules restored" in journal
    rerun = vps()
    assert rerun.returncode == 0, rerun.output
    assert rerun.changed() == []


def test_a_confirmed_change_is_persisted_and_the_timer_cancelled(vps, lab_vm):
    run = vps(firewall_allow_tcp=[8080], rollback_after_seconds=15)
    assert run.returncode == 0, run.output
    assert "--dport 8080" in lab_vm.ssh("cat /etc/iptables/rules.v4").stdout
    time.sleep(20)  # past the rollback delay: nothing may fire
    assert "--dport 8080" in lab_vm.ssh("iptables-save").stdout
    assert vps().returncode == 0
    assert "--dport 8080" not in lab_vm.ssh("iptables-save").stdout


def test_the_vps_password_is_never_printed(vps, lab_vm):
    """pyinfra logs its paramiko arguments at --debug, a password among them: hidden."""
    secret = "Vps-S3cret-pw-41d"
    runs = [
        vps("-vvv", "--debug", ssh_password=secret),
        vps("--dry", "--diff", "--debug", ssh_password=secret, firewall_allow_tcp=[8443]),
        vps("-vvv", user="ubuntu", ssh_password=secret, _sudo_password=secret),
    ]
    # The line that would carry it is there, with the value hidden.
    assert "'password': '<hidden>'" in runs[0].output
    for run in runs:
        assert run.returncode == 0, run.output
        assert secret not in run.output
    leftovers = lab_vm.ssh(f"grep -rl {secret} /etc /run /tmp 2>/dev/null || true").stdout
    assert leftovers.strip() == ""
