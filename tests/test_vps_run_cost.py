"""What a VPS run costs in commands: a no-op sends one (the deploy's one read), a first run a
small fixed number, however many home networks, port forwards, tunnels (home sites) and
allowed ports the data has. Through the real pyinfra CLI and deploy.py against pyinfra's
``@fake`` connector, whose answer to that read plays a VPS converged on the same data (its
files' sums computed here from the renderers) or a fresh one. The same counts on a real VPS:
tests/test_vps_vm.py."""

from __future__ import annotations

import hashlib
import ipaddress

import pytest
from pyinfra.api import Inventory

from ipip6.tunnels import TunnelInventory
from ipip6.vps import render
from lab.pyinfra_cli import run_pyinfra, write_inventory
from operations.vps import state_query
from tests.test_vps_packages import ALL_INSTALLED, executed

VPS = "2001:db8:1::1"
READ = "ipip6-headed"  # a word only the deploy's read has
#: A first run: the read; the tunnel's guarded change (4); the sysctls' (1); the firewall's
#: guarded change (5); the read again after each of the first two (2). Uploads (SFTP) are no
#: commands.
FIRST_RUN_COMMANDS = 13


def networks(count: int) -> list[str]:
    """``count`` documentation /27s (198.51.100.0/24, then 203.0.113.0/24, then 192.0.2.0/24)."""
    nets = [
        net
        for block in ("198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24")
        for net in ipaddress.ip_network(block).subnets(new_prefix=27)
    ]
    return [str(net) for net in nets[:count]]


def groups(count: int) -> dict[str, list[tuple[str, dict]]]:
    """A VPS with ``count`` allowed ports and port forwards, carrying ``count`` routers' tunnels
    with ``count`` home networks between them (never contacted: the runs are limited to the
    VPS)."""
    nets = networks(count)
    routers = []
    for i in range(count):
        routers.append(
            (
                f"@rtx/site{i}",
                {
                    "ssh_hostname": "127.0.0.1",
                    "ssh_port": 9,
                    "ssh_password": "S3cr3t-login-7f",
                    "rtx_admin_password": "Adm1n-pw-93c",
                    "vps_ipv6": VPS,
                    "router_ipv6": f"2001:db8:2::{i + 1:x}",
                    "home_networks": [nets[i]],
                    "tunnel_name": f"tun-site{i}",
                    "tunnel_inner_network": f"169.254.100.{4 * i}/30",
                },
            )
        )
    forwards = [
        {"proto": "tcp", "port": 10000 + i, "to": str(ipaddress.ip_network(nets[i])[1])}
        for i in range(count)
    ]
    vps = {
        "fake_delay": 0,
        "fake_delay_jitter": 0,
        "vps_ipv6": VPS,
        "firewall_allow_tcp": [8000 + i for i in range(count)],
        "port_forwards": forwards,
    }
    if count == 1:  # one router: its tunnel's keys are the VPS's own (group_data/all.py)
        vps.update({k: v for k, v in routers[0][1].items() if k in _SITE_KEYS})
    return {"vps": [("@fake/vps", vps)], "rtx": routers}


_SITE_KEYS = ("vps_ipv6", "router_ipv6", "home_networks", "tunnel_name", "tunnel_inner_network")


def converged_answer(data: dict[str, list[tuple[str, dict]]]) -> list[str]:
    """What the read prints on a VPS the deploy has converged on this data."""
    inventory = Inventory(
        ([name for group in data.values() for name, _ in group], {}),
        **{group: (hosts, {}) for group, hosts in data.items()},
    )
    model = TunnelInventory.build(inventory)
    settings, tunnels = model.vps_settings("@fake/vps"), model.vps_tunnels("@fake/vps")
    files = {
        **{p: c for t in tunnels for p, c in render.render_tunnel_units(t).files().items()},
        render.SYSCTL_FILE: render.render_sysctl(settings, tunnels),
        render.MODULES_FILE: render.render_modules_load(settings),
        **render.render_firewall(settings, tunnels),
    }
    assert set(files) <= set(state_query(settings, tunnels)["paths"])
    lines = [f"{hashlib.sha256(c.encode()).hexdigest()}  {p}" for p, c in files.items()]
    lines += [f"ipip6-missing {p}" for p in render.NFTABLES_FILES]
    for i, tunnel in enumerate(tunnels):
        lines.append(f"netdev /etc/systemd/network/60-ipip6-{tunnel.tunnel_name}.netdev")
        lines.append(f"link {i + 3}: {tunnel.tunnel_name}@NONE: <UP> mtu 1460 ip6tnl ip6ip")
    return [*fresh_answer(), *lines]


def fresh_answer() -> list[str]:
    """What the read prints on a VPS the deploy never touched: its packages, its uplink."""
    return [
        "ssh 192.0.2.9 50000 192.0.2.1 22",
        "link 2: ens3: <BROADCAST,UP> mtu 1500",
        *ALL_INSTALLED,
    ]


def run(tmp_path, data: dict, answer: list[str], *args: str):
    (name, vps), *_ = data["vps"]
    vps["fake_responses"] = {READ: answer}
    result = run_pyinfra(write_inventory(tmp_path, data), "-vv", "--limit", name, *args)
    assert result.returncode == 0, result.output
    return result


@pytest.mark.parametrize("count", [1, 20])
def test_a_no_op_sends_one_command(tmp_path, count):
    data = groups(count)
    result = run(tmp_path, data, converged_answer(data))
    assert result.changed() == []
    (command,) = executed(result)
    assert READ in command and "dpkg-query" in command
    # --dry --diff: the same one read, no file read for a diff.
    preview = run(tmp_path, data, converged_answer(data), "--dry", "--diff")
    assert [READ in c for c in executed(preview)] == [True]


@pytest.mark.parametrize(("count", "sudo"), [(1, False), (20, False), (20, True)])
def test_a_first_run_sends_a_fixed_small_number_of_commands(tmp_path, count, sudo):
    data = groups(count)
    data["vps"][0][1]["_sudo"] = sudo
    result = run(tmp_path, data, fresh_answer())
    commands = executed(result)
    assert len(commands) == FIRST_RUN_COMMANDS, "\n".join(commands)
    # Under sudo pyinfra's upload would copy and remove each file in commands of its own
    # (and look for a temporary directory first): the deploy's own steps install them.
    installs = sum(c.count("install -m ") for c in commands)
    assert installs == (2 * count + 1 + 2 + 4 + 1 if sudo else 0)
    assert not [c for c in commands if c.startswith(("cp ", "rm -f /tmp/pyinfra-"))]
    # Read once before the first change and again after each change, never twice in between.
    reads = [i for i, c in enumerate(commands) if READ in c]
    assert len(reads) == 3 and reads[0] == 0
    assert not [c for c in commands if c.startswith(("chmod ", "mkdir -p ", 'if [ -n "$TMPDIR'))]
    # Every tunnel made live and checked in the one command that restarts networkd.
    (apply,) = [c for c in commands if "systemctl restart systemd-networkd" in c]
    for i in range(count):
        assert f"ip -d link show dev tun-site{i} | grep -q 'encaplimit none'" in apply


def test_a_one_value_change_reads_again_only_after_the_change(tmp_path):
    """sysctls only (conntrack_max): read, one command for the change; nothing else."""
    data = groups(1)
    answer = converged_answer(data)
    data["vps"][0][1]["conntrack_max"] = 131072
    commands = executed(run(tmp_path, data, answer))
    assert len(commands) == 3, "\n".join(commands)  # the read, the change, the read again
    assert "sysctl -q -p /etc/sysctl.d/60-ipip6.conf" in commands[1]
