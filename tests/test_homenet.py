"""The lab's router data plane, without a VM: what it makes of a config, and that it follows
the running config only when the data plane changes (each change costs an SSH round trip)."""

from __future__ import annotations

import subprocess

from lab.homenet import ROUTER_FACTORY_CONFIG, HomeNet, parse_router_config, router_script

TUNNEL = """\
ip route default gateway tunnel 1
tunnel select 1
 tunnel encapsulation ipip
 tunnel endpoint address 2001:db8:1::1
 ip tunnel mtu 1460
 ip tunnel tcp mss limit auto
 tunnel enable 1
"""


class RecordingVM:
    """Stands in for the lab VM: records the scripts the data plane would run there."""

    def __init__(self) -> None:
        self.scripts: list[str] = []

    def ssh(self, command, check=True, timeout=None, input=None, **kwargs):
        self.scripts.append(input)
        return subprocess.CompletedProcess(command, 0, "", "")


def test_a_tunnel_in_the_config_is_a_tunnel_and_a_route_in_the_router_namespace():
    script = router_script(parse_router_config(ROUTER_FACTORY_CONFIG + TUNNEL))
    assert (
        "ip -n rtx link add tunnel1 type ip6tnl mode ipip6 local 2001:db8:2::1 "
        "remote 2001:db8:1::1 encaplimit none"
    ) in script
    assert "ip -n rtx link set tunnel1 mtu 1460 up" in script
    assert "ip -n rtx route replace default dev tunnel1" in script
    assert "tcp option maxseg size set 1420" in script  # mss limit auto: 1460 - 40


def test_without_tunnel_enable_there_is_no_tunnel_and_no_default_route():
    script = router_script(
        parse_router_config(ROUTER_FACTORY_CONFIG + TUNNEL.replace(" tunnel enable 1\n", ""))
    )
    assert "tunnel1" not in script


def test_follow_runs_only_when_the_data_plane_changes():
    vm = RecordingVM()
    net = HomeNet(vm)
    net.follow(ROUTER_FACTORY_CONFIG + TUNNEL)  # not built yet: nothing to follow
    assert vm.scripts == []

    net.build(ROUTER_FACTORY_CONFIG)
    built = len(vm.scripts)
    lines = TUNNEL.splitlines(keepends=True)
    config = ROUTER_FACTORY_CONFIG
    for line in lines[1:-1]:  # the tunnel's block, line by line, before `tunnel enable 1`
        config += line
        net.follow(config)
    assert len(vm.scripts) == built  # nothing a packet would notice yet
    net.follow(config + lines[-1])
    net.follow(config + lines[-1] + lines[0])  # and the default route into it
    assert len(vm.scripts) == built + 2
    assert [t.ifname for t in net.plane.active_tunnels()] == ["tunnel1"]
    net.follow(ROUTER_FACTORY_CONFIG)  # rolled back
    assert len(vm.scripts) == built + 3 and net.plane.active_tunnels() == []
    assert net.follow_errors == []
