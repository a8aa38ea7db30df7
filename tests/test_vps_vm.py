"""The VPS end on a real Debian VM (QEMU), driven by the real pyinfra CLI.

The tests run in file order against one VM and build on each other, as a user's runs would:
preview, bad data, first deploy as a sudo user, a no-op re-run, changes that must reach the live
link, the netplan drop-in mode and a renamed tunnel. The reboot of the deployed VPS is in
test_vps_vm_firewall.py, with Docker and fail2ban running beside it.
"""

from __future__ import annotations

import pytest

from ipip6.vps.render import OWNED_FILES
from lab.firewall import owned_rules_live, owned_rules_on_disk
from lab.pyinfra_cli import run_pyinfra, write_inventory
from tests.test_vps_packages import executed
from tests.test_vps_run_cost import FIRST_RUN_COMMANDS

pytestmark = pytest.mark.vm

TUNNEL = "tun-home"
DATA = {
    "vps_ipv6": "2001:db8:1::1",  # on the VM's ens3 (lab netplan)
    "router_ipv6": "2001:db8:1::2",
    "home_networks": ["198.51.100.0/24"],
    "uplink_interface": "ens3",
    # Documentation addresses in the lab (the default inner link is 169.254.100.0/30).
    "tunnel_inner_network": "203.0.113.252/30",
}


@pytest.fixture(scope="module")
def vps(booted_vm, tmp_path_factory):
    """Deploy helper bound to the lab VM as it booted: ``vps.deploy(user, extra_args, **data)``."""
    lab_vm = booted_vm

    class Vps:
        vm = lab_vm
        workdir = tmp_path_factory.mktemp("vps-inventory")

        def deploy(self, *args: str, user: str = "root", **data):
            host_data = {**lab_vm.pyinfra_host_data(user=user), **DATA, **data}
            if user != "root":
                host_data["_sudo"] = True
            inventory = write_inventory(self.workdir, {"vps": [("lab-vps", host_data)]})
            return run_pyinfra(inventory, *args)

        def sh(self, command: str) -> str:
            return lab_vm.ssh(command).stdout

        def snapshot(self) -> str:
            """Everything the deploy could change, as one comparable text."""
            files = " ".join(OWNED_FILES)
            return self.sh(
                f"sha256sum {files} 2>/dev/null; ip -d link show; ip route; "
                # Chain counters move with every packet: compare the rules, not the counters.
                "{ iptables-save; ip6tables-save; } | grep -v '^#' | sed 's/ \\[[0-9:]*\\]$//'; "
                "sysctl net.ipv4.conf.all.forwarding; true"
            )

        def link(self, name: str = TUNNEL) -> str:
            return self.sh(f"ip -d link show dev {name}")

        def ifindex(self, name: str = TUNNEL) -> str:
            return self.sh(f"cat /sys/class/net/{name}/ifindex").strip()

    return Vps()


def assert_deployed(vps, remote: str = "2001:db8:1::2", mtu: int = 1460) -> None:
    link = vps.link()
    assert "encaplimit none" in link
    assert f"remote {remote}" in link and "local 2001:db8:1::1" in link
    assert f"mtu {mtu} " in link
    assert "scope link" in vps.sh(f"ip route show 198.51.100.0/24 dev {TUNNEL}")
    assert vps.sh("sysctl -n net.ipv4.conf.all.forwarding").strip() == "1"
    assert vps.sh("sysctl -n net.netfilter.nf_conntrack_max").strip() == "65536"
    v4 = vps.sh("iptables-save")
    assert ":INPUT DROP" in v4 and ":FORWARD DROP" in v4
    assert "-A IPIP6-POSTROUTING -s 198.51.100.0/24 -o ens3 -j MASQUERADE" in v4
    assert "--clamp-mss-to-pmtu" in v4
    assert f"-A IPIP6-FORWARD -s 198.51.100.0/24 -i {TUNNEL} -j ACCEPT" in v4
    for hook in ("-A INPUT -j IPIP6-INPUT", "-A POSTROUTING -j IPIP6-POSTROUTING"):
        assert v4.count(hook) == 1, v4
    v6 = vps.sh("ip6tables-save")
    assert ":INPUT DROP" in v6 and v6.count("-A INPUT -j IPIP6-INPUT") == 1
    # iptables-save prints protocol 4 by its /etc/protocols name.
    assert "-s 2001:db8:1::2/128 -d 2001:db8:1::1/128 -p ipencap -j ACCEPT" in v6 or (
        "-s 2001:db8:1::2/128 -d 2001:db8:1::1/128 -p 4 -j ACCEPT" in v6
    )
    # What is loaded is what is on disk (the files loaded into an empty namespace).
    assert owned_rules_live(vps.vm) == owned_rules_on_disk(vps.vm)


def test_preview_shows_diffs_and_changes_nothing(vps):
    before = vps.snapshot()
    run = vps.deploy("--dry", "--diff")
    assert run.returncode == 0, run.output
    assert "+ EncapsulationLimit=none" in run.output
    assert "+ Remote=2001:db8:1::2" in run.output
    assert "+ -A IPIP6-POSTROUTING -s 198.51.100.0/24 -o ens3 -j MASQUERADE" in run.output
    assert vps.snapshot() == before
    assert vps.sh(f"ip link show dev {TUNNEL} 2>&1 || true").startswith("Device")


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"router_ipv6": "2001:db8:1::zz"}, ["router_ipv6", "'2001:db8:1::zz'", "IPv6"]),
        ({"home_networks": ["198.51.100.0/24", "198.51.100.128/25"]}, ["overlap"]),
        ({"tunnel_name": "tun;reboot"}, ["tunnel_name", "'tun;reboot'", "interface name"]),
        ({"tunel_name": "x"}, ["tunel_name", "did you mean 'tunnel_name'"]),
    ],
)
def test_bad_data_changes_nothing(vps, data, named):
    before = vps.snapshot()
    run = vps.deploy(**data)
    assert run.returncode != 0
    assert "invalid data for host lab-vps" in run.output
    for text in named:
        assert text in run.output
    assert "Nothing was changed" in run.output
    assert vps.snapshot() == before


def test_first_deploy_as_sudo_user(vps):
    run = vps.deploy("-vv", user="ubuntu")
    assert run.returncode == 0, run.output
    assert run.changed()  # something was done
    # The count of tests/test_vps_run_cost.py: under sudo too, no command per uploaded file.
    commands = executed(run)
    assert len(commands) == FIRST_RUN_COMMANDS, "\n".join(commands)
    assert vps.sh("ls /tmp | grep -c '^ipip6-upload-' || true").strip() == "0"  # none left
    assert_deployed(vps)
    netdev = vps.sh(f"cat /etc/systemd/network/60-ipip6-{TUNNEL}.netdev")
    assert netdev.startswith("# Managed by pyinfra-ipip6")
    assert "EncapsulationLimit=none" in netdev and "RTX1200" in netdev
    assert vps.sh("cat /etc/modules-load.d/ipip6.conf").rstrip().endswith("nf_conntrack")
    assert f"{TUNNEL}@NONE" in vps.sh("ip -o link show")


def test_second_run_changes_nothing(vps):
    before = vps.snapshot()
    run = vps.deploy("-vv")  # as root this time: both logins converge on the same state
    assert run.returncode == 0, run.output
    assert run.changed() == []
    assert vps.snapshot() == before
    (read,) = executed(run)  # one command: the deploy's one read
    assert "dpkg-query" in read and "sha256sum" in read


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (
            {"tunnel_name": "lab-dummy"},
            "tunnel_name (value 'lab-dummy'): the VPS already has an interface lab-dummy (dummy)",
        ),
        ({"uplink_interface": "ens9"}, "uplink_interface (value 'ens9'): no such interface"),
        (
            # QEMU's user network: the VM's own 10.0.2.15 and its gateway 10.0.2.2 (data only)
            {"home_networks": ["198.51.100.0/24", "10.0.2.0/24"]},
            "home_networks (value '10.0.2.0/24'): holds the VPS's own IPv4 address 10.0.2.15",
        ),
    ],
)
def test_data_that_conflicts_with_the_vps_changes_nothing(vps, data, named):
    """Valid on paper, wrong for this host: found after connecting, before any change."""
    vps.sh("ip link add lab-dummy type dummy")  # an interface this deploy did not create
    try:
        before = vps.snapshot()
        run = vps.deploy("-vv", **data)
        assert run.returncode != 0
        assert "invalid data for host lab-vps:" in run.output
        assert named in run.output
        assert "Nothing was changed." in run.output
        assert vps.snapshot() == before
        assert "ip link del" not in run.output and "systemctl restart" not in run.output
    finally:
        vps.sh("ip link del lab-dummy")


def test_changed_remote_and_mtu_reach_the_live_link(vps):
    preview = vps.deploy("--dry", "--diff", router_ipv6="2001:db8:1::3", tunnel_mtu=1400)
    assert "- Remote=2001:db8:1::2" in preview.output
    assert "+ Remote=2001:db8:1::3" in preview.output
    assert "remote 2001:db8:1::2" in vps.link()

    run = vps.deploy(router_ipv6="2001:db8:1::3", tunnel_mtu=1400)
    assert run.returncode == 0, run.output
    link = vps.link()
    assert "remote 2001:db8:1::3" in link and "mtu 1400 " in link
    assert "encaplimit none" in link

    run = vps.deploy()
    assert run.returncode == 0, run.output
    assert_deployed(vps)


def test_network_only_change_keeps_the_link(vps):
    index = vps.ifindex()
    run = vps.deploy(home_networks=["198.51.100.0/24", "192.0.2.0/24"])
    assert run.returncode == 0, run.output
    assert "scope link" in vps.sh(f"ip route show 192.0.2.0/24 dev {TUNNEL}")
    assert vps.ifindex() == index  # reloaded, not re-created
    run = vps.deploy()
    assert run.returncode == 0, run.output
    assert vps.sh(f"ip route show 192.0.2.0/24 dev {TUNNEL}").strip() == ""


def test_netplan_dropin_mode_and_back(vps):
    run = vps.deploy(tunnel_attach="netplan-dropin")
    assert run.returncode == 0, run.output
    dropin = f"/etc/systemd/network/10-netplan-ens3.network.d/60-ipip6-{TUNNEL}.conf"
    assert f"Tunnel={TUNNEL}" in vps.sh(f"cat {dropin}")
    assert f"{TUNNEL}@ens3" in vps.sh("ip -o link show")
    assert "encaplimit none" in vps.link()
    # netplan's own addresses are still there: the drop-in added, it did not replace.
    assert "2001:db8:1::1/64" in vps.sh("ip -6 addr show dev ens3")
    assert vps.deploy().returncode == 0
    assert vps.sh(f"test -e {dropin} && echo present || echo gone").strip() == "gone"
    assert f"{TUNNEL}@NONE" in vps.sh("ip -o link show")


def test_renamed_tunnel_removes_the_old_one(vps):
    run = vps.deploy(tunnel_name="tun-rtx")
    assert run.returncode == 0, run.output
    links = vps.sh("ip -o link show")
    assert "tun-rtx@NONE" in links and f"{TUNNEL}@" not in links
    assert vps.sh("ls /etc/systemd/network/").split() == [
        "60-ipip6-tun-rtx.netdev",
        "60-ipip6-tun-rtx.network",
    ]
    assert vps.deploy().returncode == 0
    assert "tun-rtx" not in vps.sh("ip -o link show")
    assert_deployed(vps)
