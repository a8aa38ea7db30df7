"""The nftables backend on the real VM: the deploy's rules in ``table inet ipip6``, loaded by
nftables.service, beside Docker's and fail2ban's rules, through a switch of backend, a changed
deploy, a rollback and a reboot.

Runs after tests/test_vps_vm_firewall.py on the session's VM (it switches that module's
iptables layout to nftables, beside the Docker and fail2ban that module left running, and back
at the end): on Debian 12 in `make test`, on Debian 13 in `make test-trixie`.
"""

from __future__ import annotations

import pytest

from lab.firewall import owned_table_live, owned_table_on_disk
from tests.test_vps_vm_firewall import (
    BANNED,
    NEIGHBOURS_UP,
    WAN_NS,
    WAN_UP,
    bans,
    deployer,
    neighbours_down,
    others,
    reaches_container,
    reboot_with_neighbours,
    sh,
    state_of_the_firewall,
    unproven_change_with_a_ban_meanwhile,
)

pytestmark = pytest.mark.vm

NFT = {"firewall_backend": "nftables"}


@pytest.fixture(scope="module")
def vps(lab_vm, tmp_path_factory):
    iptables = deployer(lab_vm, tmp_path_factory.mktemp("vps-nftables"))
    lab_vm.ssh("bash -s", input=NEIGHBOURS_UP + WAN_UP, timeout=180)

    def deploy(*args: str, **data):
        return iptables(*args, **{**NFT, **data})

    deploy.check = iptables.check
    yield deploy
    # Back to iptables, as the next module expects: the table and the include line go.
    neighbours_down(lab_vm)
    run = iptables()
    assert run.returncode == 0, run.output
    assert owned_table_live(lab_vm) == ""
    assert "ipip6" not in sh(lab_vm, "cat /etc/nftables.conf")


def assert_table_loaded(vm) -> None:
    live = owned_table_live(vm)
    assert "table inet ipip6" in live and "policy drop" in live
    assert live == owned_table_on_disk(vm)


def rules(lines: list[str]) -> list[str]:
    """The rules of others, without the base chains' policies: with nftables the deploy's
    table holds the DROP policy, and the iptables policies it found at DROP are ACCEPT."""
    return [line for line in lines if line.startswith("-")]


def assert_neighbours_intact(vm, before: list[str]) -> None:
    assert rules(others(vm)) == rules(before)
    policies = sh(vm, "iptables -S INPUT; iptables -S FORWARD").splitlines()
    assert "-P INPUT ACCEPT" in policies and "-P FORWARD ACCEPT" in policies
    assert reaches_container(vm) == "from-the-container"
    assert BANNED[0] in bans(vm)


def test_switching_to_nftables_keeps_docker_and_fail2ban(vps, lab_vm):
    before = others(lab_vm)
    preview = vps("--dry", "--diff")
    assert preview.returncode == 0, preview.output
    assert "+ table inet ipip6 {" in preview.output
    assert 'include "/etc/ipip6/firewall.nft"' in preview.output

    run = vps()
    assert run.returncode == 0, run.output
    assert_table_loaded(lab_vm)
    assert 'include "/etc/ipip6/firewall.nft"' in sh(lab_vm, "cat /etc/nftables.conf")
    assert sh(lab_vm, "systemctl is-enabled nftables.service").strip() == "enabled"
    # The iptables layout is gone (if there was one): chains, files, unit.
    assert "IPIP6" not in sh(lab_vm, "iptables-save; ip6tables-save")
    assert sh(lab_vm, "ls /etc/ipip6").split() == ["firewall.nft"]
    assert sh(lab_vm, "ls /etc/systemd/system").count("ipip6-firewall") == 0
    assert_neighbours_intact(lab_vm, [r for r in before if "IPIP6" not in r])
    # The health check reads the table loaded = the file, beside Docker and fail2ban.
    health = vps.check()
    assert health.returncode == 0, health.output
    assert "table inet ipip6:" in health.stderr and "WRONG" not in health.stderr
    again = vps()
    assert again.returncode == 0, again.output
    assert again.changed() == []


def test_a_statement_nft_refuses_changes_nothing(vps, lab_vm):
    before = state_of_the_firewall(lab_vm)
    run = vps(firewall_extra_rules=["input udp dport 51820 acept"])
    assert run.returncode != 0
    assert "the kernel rejected the new rules; nothing was changed" in run.output
    assert state_of_the_firewall(lab_vm) == before


def test_a_changed_deploy_and_a_rollback_touch_the_table_only(vps, lab_vm):
    before = others(lab_vm)
    run = vps(
        firewall_allow_tcp=[8443],
        firewall_extra_rules=["input udp dport 51820 accept"],
        port_forwards=[{"proto": "tcp", "port": 2443, "to": "198.51.100.10", "to_port": 443}],
    )
    assert run.returncode == 0, run.output
    table = owned_table_live(lab_vm)
    assert "udp dport 51820 accept" in table
    assert "tcp dport 2443 dnat ip to 198.51.100.10:443" in table
    assert_table_loaded(lab_vm)
    assert_neighbours_intact(lab_vm, before)

    # No new SSH connection after the next change: the table comes back as it was, and a ban
    # made while the unproven rules were live stays.
    before_table = owned_table_live(lab_vm)
    run, _ = unproven_change_with_a_ban_meanwhile(vps, lab_vm)
    assert run.returncode != 0
    assert "rolled back to the previous state" in run.output
    assert owned_table_live(lab_vm) == before_table
    assert BANNED[1] in bans(lab_vm)
    after = [r for r in rules(others(lab_vm)) if BANNED[1] not in r]
    assert after == [r for r in rules(before) if BANNED[1] not in r]
    assert reaches_container(lab_vm) == "from-the-container"
    assert "8081" not in sh(lab_vm, "cat /etc/ipip6/firewall.nft")
    back = vps()
    assert back.returncode == 0, back.output
    assert "51820" not in owned_table_live(lab_vm)


def test_at_boot_nftables_loads_the_table_before_docker_and_fail2ban(vps, lab_vm):
    reboot_with_neighbours(lab_vm)
    order = sh(
        lab_vm,
        "systemctl show -p ActiveEnterTimestampMonotonic --value "
        "nftables.service docker.service fail2ban.service",
    ).split()
    assert int(order[0]) < int(order[1]) and int(order[0]) < int(order[2]), order
    assert_table_loaded(lab_vm)
    lab_vm.ssh("bash -s", input=WAN_UP)
    assert reaches_container(lab_vm) == "from-the-container"
    run = vps()
    assert run.returncode == 0, run.output
    assert run.changed() == []
    lab_vm.ssh(f"ip netns del {WAN_NS}; systemctl disable --quiet docker fail2ban")
