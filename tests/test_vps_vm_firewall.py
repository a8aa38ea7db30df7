"""The VPS firewall lives with the rest of the VPS: Docker's and fail2ban's rules survive a
deploy, a changed deploy, a rollback and a reboot, on the real VM.

Runs after test_vps_vm.py on the same VM. It first puts the VPS back as an earlier release
left it (its whole-ruleset /etc/iptables/rules.v4 and .v6, loaded as netfilter-persistent
does at boot), then starts Docker (a container publishing a port) and fail2ban (one ban), and
deploys: the move to the deploy's own chains is one guarded run like any other.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from ipip6.vps import render
from lab.firewall import owned_rules_live, owned_rules_on_disk
from lab.pyinfra_cli import run_pyinfra, write_inventory
from tests.tcp_proxy import TcpProxy
from tests.test_vps_vm import DATA, assert_deployed
from tests.test_vps_vm_safety import through_gate

pytestmark = pytest.mark.vm

#: /etc/iptables/rules.v4 and .v6 as the release before the IPIP6-* chains wrote them for DATA.
LEGACY_V4 = """# Managed by pyinfra-ipip6: a re-deploy overwrites local edits.
# Change the inventory or group_data instead.
# Loaded at boot by netfilter-persistent. This deploy owns the whole IPv4 ruleset.
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p icmp -j ACCEPT
# DHCP replies on the uplink (many VPSes lease their IPv4 address).
-A INPUT -i ens3 -p udp -m udp --sport 67 --dport 68 -j ACCEPT
-A INPUT -i tun-home -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
# From home, only with home source addresses (and the router's own inner address: its DNS
# proxy and clock leave by the tunnel too).
-A FORWARD -i tun-home -s 198.51.100.0/24 -j ACCEPT
-A FORWARD -i tun-home -s 203.0.113.254/32 -j ACCEPT
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
# The tunnel's MTU is 1460: clamp the MSS of forwarded SYNs so TCP never fragments.
-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -s 198.51.100.0/24 -o ens3 -j MASQUERADE
-A POSTROUTING -s 203.0.113.254/32 -o ens3 -j MASQUERADE
COMMIT
"""
LEGACY_V6 = """# Managed by pyinfra-ipip6: a re-deploy overwrites local edits.
# Change the inventory or group_data instead.
# Loaded at boot by netfilter-persistent. This deploy owns the whole IPv6 ruleset.
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
# Neighbour discovery and Packet Too Big: IPv6 breaks without ICMPv6.
-A INPUT -p ipv6-icmp -j ACCEPT
-A INPUT -s fe80::/10 -d fe80::/10 -p udp -m udp --sport 547 --dport 546 -j ACCEPT
# The tunnel itself: IPv4-in-IPv6 is protocol 4. Not "-p ipip", which means protocol 94.
-A INPUT -s 2001:db8:1::2/128 -d 2001:db8:1::1/128 -p 4 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT
COMMIT
"""

# The container's port, published by Docker; an outside host reaches it through FORWARD.
PUBLISHED = 8080
WAN_NS, WAN_VPS, WAN_HOST = "lab-wan", "203.0.113.129", "203.0.113.130"
BANNED = ("203.0.113.99", "203.0.113.98")  # documentation addresses: no packet is sent to them

NEIGHBOURS_UP = f"""
set -e
systemctl start docker fail2ban
for i in $(seq 1 100); do fail2ban-client ping >/dev/null 2>&1 && break; sleep 0.2; done
if ! docker image inspect lab/busybox >/dev/null 2>&1; then
  rm -rf /tmp/lab-img && mkdir -p /tmp/lab-img/www && cp /bin/busybox /tmp/lab-img/
  echo from-the-container > /tmp/lab-img/www/index.html
  tar -C /tmp/lab-img -c . | docker import - lab/busybox >/dev/null
fi
# The lab's kernel has AppArmor but the image no profile for Docker: run unconfined.
docker rm -f web >/dev/null 2>&1 || true
docker run -d --restart=always --security-opt apparmor=unconfined --name web \\
  -p {PUBLISHED}:80 lab/busybox /busybox httpd -f -p 80 -h /www >/dev/null
fail2ban-client set sshd banip {BANNED[0]} >/dev/null
"""

WAN_UP = f"""
ip netns del {WAN_NS} 2>/dev/null || true
ip netns add {WAN_NS}
ip link add lab-wan type veth peer name eth0 netns {WAN_NS}
ip addr add {WAN_VPS}/26 dev lab-wan && ip link set lab-wan up
ip -n {WAN_NS} addr add {WAN_HOST}/26 dev eth0 && ip -n {WAN_NS} link set eth0 up
ip -n {WAN_NS} route add default via {WAN_VPS}
"""


def deployer(lab_vm, workdir):
    """``deploy(*args, gate=None, **data)``: the pyinfra CLI on DATA plus ``data``, as root,
    through ``gate`` when given."""

    def deploy(*args: str, gate: TcpProxy | None = None, **data):
        host_data = {**lab_vm.pyinfra_host_data(), **DATA, **data}
        if gate is not None:  # the deploy connects through it: one connection, no second
            host_data.update(through_gate(lab_vm, workdir, gate))
        inventory = write_inventory(workdir, {"vps": [("lab-vps", host_data)]})
        return run_pyinfra(inventory, *args)

    def check(*args: str):
        """The health check on the data of the last deploy."""
        return run_pyinfra(Path(workdir) / "inventory.py", *args, target="check.py")

    deploy.check = check
    return deploy


def neighbours_down(lab_vm) -> None:
    lab_vm.ssh(
        f"docker rm -f web >/dev/null 2>&1; systemctl disable --now --quiet docker.socket "
        f"docker fail2ban containerd; ip netns del {WAN_NS} 2>/dev/null; "
        "ip link del lab-wan 2>/dev/null; true",
        timeout=120,
    )


@pytest.fixture(scope="module")
def vps(lab_vm, tmp_path_factory):
    deploy = deployer(lab_vm, tmp_path_factory.mktemp("vps-firewall"))
    yield deploy
    neighbours_down(lab_vm)
    run = deploy()  # converged again for the next module
    assert run.returncode == 0, run.output


class BootCheck:
    """What tests.test_vps_vm.assert_deployed asks of its helper."""

    def __init__(self, vm) -> None:
        self.vm = vm

    def sh(self, command: str) -> str:
        return sh(self.vm, command)

    def link(self, name: str = "tun-home") -> str:
        return self.sh(f"ip -d link show dev {name}")


def sh(vm, command: str, **kwargs) -> str:
    return vm.ssh(command, timeout=120, **kwargs).stdout


def others(vm) -> list[str]:
    """Every rule that is not the deploy's (Docker's, fail2ban's...), counters aside."""
    out = []
    for line in sh(vm, "iptables-save; ip6tables-save").splitlines():
        if line.startswith("#") or "IPIP6-" in line:
            continue
        out.append(re.sub(r" \[[0-9:]*\]$", "", line))
    return out


def every_rule(vm) -> list[str]:
    """Every rule in its order, the deploy's and everyone else's, counters aside."""
    lines = sh(vm, "iptables-save; ip6tables-save").splitlines()
    return [re.sub(r" \[[0-9:]*\]$", "", line) for line in lines if not line.startswith("#")]


def bans(vm) -> str:
    """fail2ban's bans in the kernel, wherever its action puts them: iptables-multiport (the
    lab's jail on Debian 12) or its own nftables table (Debian 13's default action)."""
    return sh(
        vm, "iptables -S f2b-sshd 2>/dev/null; nft list table inet f2b-table 2>/dev/null; true"
    )


def canonical_rules(vm, v4: str, v6: str) -> list[str]:
    """The rules of two restore files as iptables-save prints them (loaded in a scratch
    namespace): the form to look for in the live rules."""
    lines = sh(
        vm,
        f"ip netns add lab-canon && ip netns exec lab-canon sh -c "
        f"'iptables-restore < {v4} && ip6tables-restore < {v6} && "
        "iptables-save && ip6tables-save'; ip netns del lab-canon",
    )
    return [line for line in lines.splitlines() if line.startswith("-A ")]


def reaches_container(vm, tries: int = 30) -> str:
    """What the outside host gets from the container's published port (a container just
    started, or started by Docker at boot, may take a few seconds to listen)."""
    return sh(
        vm,
        f"for i in $(seq 1 {tries}); do ip netns exec {WAN_NS} timeout 5 busybox wget -q -O - "
        f"http://{WAN_VPS}:{PUBLISHED}/ 2>/dev/null && break; sleep 1; done; true",
    ).strip()


def assert_neighbours_intact(vm, before: list[str]) -> None:
    assert others(vm) == before
    assert reaches_container(vm) == "from-the-container"
    rules = sh(vm, "iptables -S INPUT").splitlines()
    # fail2ban's jump comes before the deploy's: a banned host never reaches its accept of SSH.
    f2b = next(i for i, r in enumerate(rules) if "-j f2b-sshd" in r)
    assert f2b < rules.index("-A INPUT -j IPIP6-INPUT")
    assert f"-A f2b-sshd -s {BANNED[0]}/32 -j REJECT" in sh(vm, "iptables -S f2b-sshd")


def assert_owned_loaded(vm) -> None:
    assert owned_rules_live(vm) == owned_rules_on_disk(vm)
    # Each jump once, per table and family (a reload appends none).
    for command, table, base, chain in render.FIREWALL_HOOKS:
        rules = sh(vm, f"{command} -t {table} -S {base}").splitlines()
        assert rules.count(f"-A {base} -j {chain}") == 1, (command, table, rules)


def unproven_change_with_a_ban_meanwhile(vps, lab_vm):
    """A change after which no new SSH connection gets through (a gate in front of the VM lets
    the deploy's own connection through, no other), and a fail2ban ban made while the
    unproven rules are live. Returns the run and the gate."""
    lab_vm.ssh(
        "nohup sh -c 'for i in $(seq 1 600); do systemctl is-active --quiet "
        "ipip6-guard-firewall.timer && break; sleep 0.1; done; "
        f"fail2ban-client set sshd banip {BANNED[1]}' >/dev/null 2>&1 &"
    )
    gate = TcpProxy(lab_vm.ssh_port, allow=1)
    try:
        return vps(gate=gate, firewall_allow_tcp=[8081], rollback_after_seconds=30), gate
    finally:
        gate.close()


def reboot_with_neighbours(lab_vm) -> None:
    """Reboot with Docker and fail2ban enabled; back once the container runs and the ban is
    restored (they come up after SSH)."""
    lab_vm.ssh("systemctl enable --quiet docker fail2ban")
    lab_vm.reboot()
    for _ in range(120):
        up = lab_vm.ssh("docker ps --format '{{.Names}}'", check=False)
        if "web" in up.stdout and BANNED[0] in bans(lab_vm):
            return
        time.sleep(1)


def test_an_earlier_release_is_moved_to_its_own_chains_keeping_docker_and_fail2ban(vps, lab_vm):
    # The VPS as an earlier release left it, booted: the whole ruleset, then Docker, fail2ban.
    lab_vm.ssh(
        "systemctl disable --quiet ipip6-firewall.service; "
        "rm -rf /etc/ipip6 /etc/systemd/system/ipip6-firewall.service; "
        "systemctl daemon-reload; mkdir -p /etc/iptables; "
        "cat > /etc/iptables/rules.v4",
        input=LEGACY_V4,
    )
    lab_vm.ssh("cat > /etc/iptables/rules.v6", input=LEGACY_V6)
    lab_vm.ssh(
        "iptables-restore < /etc/iptables/rules.v4 && ip6tables-restore < /etc/iptables/rules.v6"
    )
    lab_vm.ssh("bash -s", input=NEIGHBOURS_UP + WAN_UP, timeout=180)
    assert reaches_container(lab_vm) == "from-the-container"
    legacy = set(canonical_rules(lab_vm, "/etc/iptables/rules.v4", "/etc/iptables/rules.v6"))
    before = [r for r in others(lab_vm) if r not in legacy]

    preview = vps("--dry", "--diff")
    assert preview.returncode == 0, preview.output
    assert "Will replace /etc/iptables/rules.v4" in preview.output
    assert "+ -A IPIP6-INPUT -i lo -j ACCEPT" in preview.output

    run = vps()
    assert run.returncode == 0, run.output
    assert sh(lab_vm, "ls /etc/iptables").split() == []
    # Not one rule of the earlier ruleset is left in the base chains; the rest is untouched.
    base = sh(lab_vm, "iptables -S INPUT; iptables -t nat -S POSTROUTING")
    assert "-A INPUT -i lo -j ACCEPT" not in base
    assert "-A POSTROUTING -s 198.51.100.0/24 -o ens3 -j MASQUERADE" not in base
    assert_neighbours_intact(lab_vm, before)
    assert_owned_loaded(lab_vm)
    assert sh(lab_vm, "systemctl is-enabled ipip6-firewall.service").strip() == "enabled"
    again = vps()
    assert again.returncode == 0, again.output
    assert again.changed() == []


def test_a_changed_deploy_keeps_docker_and_fail2ban(vps, lab_vm):
    before = others(lab_vm)
    run = vps(
        firewall_allow_tcp=[8443],
        firewall_extra_rules=["-A IPIP6-INPUT -p udp -m udp --dport 51820 -j ACCEPT"],
        port_forwards=[{"proto": "tcp", "port": 2443, "to": "198.51.100.10", "to_port": 443}],
    )
    assert run.returncode == 0, run.output
    v4 = sh(lab_vm, "iptables-save")
    assert "-A IPIP6-INPUT -p udp -m udp --dport 51820 -j ACCEPT" in v4
    assert "--dport 2443 -j DNAT --to-destination 198.51.100.10:443" in v4
    assert "-A IPIP6-INPUT -p udp -m udp --dport 51820 -j ACCEPT" in sh(lab_vm, "ip6tables-save")
    assert_neighbours_intact(lab_vm, before)
    assert_owned_loaded(lab_vm)
    # The health check agrees, Docker's and fail2ban's rules beside the deploy's.
    health = vps.check()
    assert health.returncode == 0, health.output
    assert "firewall loaded" in health.stderr and "WRONG" not in health.stderr
    back = vps()
    assert back.returncode == 0, back.output
    assert "51820" not in sh(lab_vm, "iptables-save")
    assert_neighbours_intact(lab_vm, before)


def state_of_the_firewall(vm) -> str:
    """The deploy's files (candidates too) and every live rule, counters aside."""
    return sh(
        vm,
        "ls /etc/ipip6 /etc/iptables 2>&1; sha256sum /etc/ipip6/* 2>/dev/null; "
        "{ iptables-save; ip6tables-save; nft list ruleset; } | grep -v '^#' | "
        "sed 's/ \\[[0-9:]*\\]$//; s/packets [0-9]* bytes [0-9]*//'",
    )


def test_a_rule_the_kernel_refuses_changes_nothing(vps, lab_vm):
    """Valid on paper, refused by the kernel (a misspelled target, which iptables-nft's
    --test would pass): nothing loaded, nothing written, nothing left behind."""
    before = state_of_the_firewall(lab_vm)
    run = vps(firewall_extra_rules=["-A IPIP6-INPUT -p udp -m udp --dport 51820 -j ACCPET"])
    assert run.returncode != 0
    assert "the kernel rejected the new rules; nothing was changed" in run.output
    assert state_of_the_firewall(lab_vm) == before


def test_a_rollback_restores_the_deploys_part_only(vps, lab_vm):
    """No new SSH connection after the change: the deploy's chains come back as they were,
    and a ban fail2ban made while the unproven rules were live stays."""
    # (The second ban may be there from an earlier module: fail2ban keeps its bans.)
    before_owned = owned_rules_live(lab_vm)
    before_others = [r for r in others(lab_vm) if BANNED[1] not in r]
    before_all = [r for r in every_rule(lab_vm) if BANNED[1] not in r]
    run, gate = unproven_change_with_a_ban_meanwhile(vps, lab_vm)
    assert run.returncode != 0
    assert gate.refused >= 1
    assert "no new SSH connection could be opened after the firewall change" in run.output
    assert "rolled back to the previous state" in run.output
    assert "Traceback" not in run.output
    timer = sh(lab_vm, "systemctl is-active ipip6-guard-firewall.timer || true").strip()
    assert timer in ("inactive", "failed", "unknown")
    assert owned_rules_live(lab_vm) == before_owned
    assert sh(lab_vm, "ls /etc/ipip6").split() == [
        "firewall-load",
        "firewall.v4",
        "firewall.v6",
    ]  # no candidate left
    bans = sh(lab_vm, "iptables -S f2b-sshd")
    assert f"-s {BANNED[1]}/32" in bans and f"-s {BANNED[0]}/32" in bans
    after = [r for r in others(lab_vm) if BANNED[1] not in r]
    assert after == before_others
    # Nobody's rule moved: the jumps stayed where they were among Docker's and fail2ban's.
    assert [r for r in every_rule(lab_vm) if BANNED[1] not in r] == before_all
    assert reaches_container(lab_vm) == "from-the-container"
    assert "--dport 8081" not in sh(lab_vm, "cat /etc/ipip6/firewall.v4")


def test_at_boot_the_chains_come_first_and_docker_and_fail2ban_add_theirs(vps, lab_vm):
    """The session's reboot of the deployed VPS (test_vps_vm.py's deploy, this module's
    neighbours): everything comes back, the chains before Docker and fail2ban."""
    reboot_with_neighbours(lab_vm)
    # Everything the deploy placed is back (the tunnel and its routes, sysctls, the chains).
    assert_deployed(BootCheck(lab_vm))
    assert sh(lab_vm, "systemctl is-active ipip6-firewall.service").strip() == "active"
    order = sh(
        lab_vm,
        "systemctl show -p ActiveEnterTimestampMonotonic --value "
        "ipip6-firewall.service docker.service fail2ban.service",
    ).split()
    assert int(order[0]) < int(order[1]) and int(order[0]) < int(order[2]), order
    assert_owned_loaded(lab_vm)
    lab_vm.ssh("bash -s", input=WAN_UP)
    assert reaches_container(lab_vm) == "from-the-container"
    rules = sh(lab_vm, "iptables -S INPUT").splitlines()
    assert next(i for i, r in enumerate(rules) if "-j f2b-sshd" in r) < rules.index(
        "-A INPUT -j IPIP6-INPUT"
    )
    run = vps()
    assert run.returncode == 0, run.output
    assert run.changed() == []
