"""Smoke test of the lab VM itself (lab.vm / lab.image): the guest the VPS tests rely on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PYINFRA = str(Path(sys.executable).parent / "pyinfra")

# The VM as it booted, whatever the modules before did with it.
pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("booted_vm")]


def test_kernel_has_ip6tnl_with_encaplimit_none(lab_vm):
    lab_vm.ssh("modprobe ip6_tunnel")
    lab_vm.ssh(
        "ip link add t1 type ip6tnl mode ipip6 local 2001:db8:1::1 remote 2001:db8:1::2 "
        "encaplimit none"
    )
    try:
        details = lab_vm.ssh("ip -d link show t1").stdout
        assert "encaplimit none" in details
        assert "ipip6" in details
    finally:
        lab_vm.ssh("ip link del t1")
    assert lab_vm.ssh("ip link show t1", check=False).returncode != 0


def test_ens3_has_static_ipv6_and_dhcp_v4(lab_vm):
    addrs = lab_vm.ssh("ip -o addr show dev ens3").stdout
    assert "inet6 2001:db8:1::1/64" in addrs
    assert "inet 10.0.2.15/" in addrs


def test_netplan_generated_networkd_file(lab_vm):
    lab_vm.ssh("test -f /run/systemd/network/10-netplan-ens3.network")
    status = lab_vm.ssh("networkctl status ens3 --no-pager").stdout
    assert "10-netplan-ens3.network" in status


def test_no_default_route(lab_vm):
    """restrict=on: the guest reaches nothing outside this machine."""
    assert lab_vm.ssh("ip -4 route show default").stdout.strip() == ""
    assert lab_vm.ssh("ip -6 route show default").stdout.strip() == ""


def test_ubuntu_has_passwordless_sudo(lab_vm):
    out = lab_vm.ssh("sudo -n id -u && id -un", user="ubuntu").stdout.split()
    assert out == ["0", "ubuntu"]


def test_root_login_is_key_only(lab_vm):
    cfg = lab_vm.ssh("sshd -T").stdout.lower().splitlines()
    assert "passwordauthentication no" in cfg
    assert "permitrootlogin without-password" in cfg


def test_no_firewall_rules_and_no_apt_timers(lab_vm):
    assert lab_vm.ssh("nft list ruleset").stdout.strip() == ""
    assert lab_vm.ssh("test -e /etc/iptables/rules.v4", check=False).returncode != 0
    timers = lab_vm.ssh("systemctl is-enabled apt-daily.timer apt-daily-upgrade.timer", check=False)
    assert timers.stdout.split() == ["masked", "masked"]
    active = lab_vm.ssh("systemctl list-timers --no-legend").stdout
    assert "apt-daily" not in active


@pytest.mark.parametrize(("user", "sudo"), [("root", False), ("ubuntu", True)])
def test_pyinfra_cli_connects_strictly(lab_vm, tmp_path, user, sudo):
    """The SSH data of pyinfra_host_data() work for the real pyinfra CLI, host key checked."""
    inventory = lab_vm.write_pyinfra_inventory(tmp_path / "inventory.py", user=user)
    cmd = [PYINFRA, str(inventory), "-y", *(["--sudo"] if sudo else []), "exec", "--", "id -un"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "[vps] root" in output


def test_pyinfra_cli_refuses_unknown_host_key(lab_vm, tmp_path):
    inventory = lab_vm.write_pyinfra_inventory(tmp_path / "inventory.py")
    (tmp_path / "empty_known_hosts").write_text("")
    text = inventory.read_text().replace(
        str(lab_vm.known_hosts), str(tmp_path / "empty_known_hosts")
    )
    inventory.write_text(text)
    cmd = [PYINFRA, str(inventory), "-y", "exec", "--", "true"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode != 0
    assert "No host key" in proc.stdout + proc.stderr
