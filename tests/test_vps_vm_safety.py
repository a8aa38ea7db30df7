"""No lock-out on the real VM: a change that cuts SSH is rolled back, with or without us.

Runs after test_vps_vm.py on the same VM (one VM per session); starts from a converged deploy.
The rollback at once when no new connection gets through is in test_vps_vm_firewall.py (with
Docker and fail2ban beside it).
"""

from __future__ import annotations

import time

import pytest

from lab.pyinfra_cli import run_pyinfra, write_inventory
from tests.tcp_proxy import TcpProxy
from tests.test_vps_packages import executed
from tests.test_vps_vm import DATA

pytestmark = pytest.mark.vm

FILES = "/etc/ipip6/firewall.v4 /etc/ipip6/firewall.v6"


def through_gate(lab_vm, workdir, gate: TcpProxy) -> dict:
    """Host data that connects to the VM through ``gate``, its host key recorded for it."""
    known = workdir / "known_hosts_gate"
    known.write_text(
        lab_vm.known_hosts.read_text().replace(
            f"[127.0.0.1]:{lab_vm.ssh_port} ", f"[127.0.0.1]:{gate.port} "
        )
    )
    return {"ssh_port": gate.port, "ssh_known_hosts_file": str(known)}


@pytest.fixture(scope="module")
def vps(lab_vm, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("vps-safety")

    def deploy(*args: str, user: str = "root", gate: TcpProxy | None = None, **data):
        host_data = {**lab_vm.pyinfra_host_data(user=user), **DATA, **data}
        if user != "root":
            host_data["_sudo"] = True
        if gate is not None:  # the deploy connects through it: one connection, no second
            host_data.update(through_gate(lab_vm, workdir, gate))
        inventory = write_inventory(workdir, {"vps": [("lab-vps", host_data)]})
        return run_pyinfra(inventory, *args)

    run = deploy()
    assert run.returncode == 0, run.output
    return deploy


def firewall_state(vm) -> str:
    return vm.ssh(
        f"sha256sum {FILES}; ls /etc/ipip6; "
        "{ iptables-save; ip6tables-save; } | grep -v '^#' | sed 's/ \\[[0-9:]*\\]$//'"
    ).stdout


def guard_timer_state(vm) -> str:
    return vm.ssh("systemctl is-active ipip6-guard-firewall.timer || true").stdout.strip()


def test_rules_that_would_close_this_connections_port_change_nothing(vps, lab_vm):
    """Checked before any change: sshd answers on 22 (behind the lab's port forward), so a
    firewall opening only 2222 is refused with nothing sent, not applied and rolled back."""
    before = firewall_state(lab_vm)
    # As root, and as a sudo user (sudo drops $SSH_CONNECTION: it is found all the same).
    for user in ("root", "ubuntu"):
        run = vps("-vv", ssh_port_allowed=2222, user=user)
        assert run.returncode != 0
        assert "invalid data for host lab-vps:" in run.output
        assert "ssh_port_allowed (value 2222): this SSH connection arrived on port 22" in (
            run.output
        )
        assert "Nothing was changed." in run.output
        (read,) = executed(run)  # the deploy's one read, nothing else
        assert "dpkg-query" in read and "iptables-restore" not in read
        assert firewall_state(lab_vm) == before
    # The same port opened as an extra one keeps this connection: accepted.
    assert vps("--dry", ssh_port_allowed=2222, firewall_allow_tcp=[22]).returncode == 0


def test_connection_cut_mid_change_the_timer_restores(vps, lab_vm):
    """The deploy's own connection dies while the unproven rules are live: nobody is left to
    roll back but the timer on the VPS."""
    before = firewall_state(lab_vm)
    since = lab_vm.ssh("date +%s").stdout.strip()
    # Inside the VM: as soon as the guard is armed, kill the deploy's SSH session (user ubuntu).
    lab_vm.ssh(
        "nohup sh -c 'for i in $(seq 600); do "
        "systemctl is-active --quiet ipip6-guard-firewall.timer && break; sleep 0.1; done; "
        'sleep 1; pkill -KILL -f "sshd: ubuntu"\' >/dev/null 2>&1 &'
    )
    gate = TcpProxy(lab_vm.ssh_port, allow=1)  # and no proof can get through
    try:
        run = vps(user="ubuntu", gate=gate, firewall_allow_tcp=[8081], rollback_after_seconds=20)
    finally:
        gate.close()
    assert run.returncode != 0  # pyinfra itself may stop on the lost connection
    assert "--dport 8081" not in lab_vm.ssh("cat /etc/ipip6/firewall.v4").stdout  # not persisted
    deadline = time.monotonic() + 60
    journal = ""
    while "firewall change not confirmed" not in journal and time.monotonic() < deadline:
        time.sleep(2)
        journal = lab_vm.ssh(
            f"journalctl -t pyinfra-ipip6 --no-pager -o cat --since @{since}"
        ).stdout
    assert "firewall change not confirmed: previous rules restored" in journal
    assert firewall_state(lab_vm) == before
    rerun = vps()
    assert rerun.returncode == 0, rerun.output
    assert rerun.changed() == []


def test_a_confirmed_change_is_persisted_and_the_timer_cancelled(vps, lab_vm):
    run = vps(firewall_allow_tcp=[8080], rollback_after_seconds=15)
    assert run.returncode == 0, run.output
    assert "--dport 8080" in lab_vm.ssh("cat /etc/ipip6/firewall.v4").stdout
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
