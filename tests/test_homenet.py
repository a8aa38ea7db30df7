"""The lab's router data plane, without a VM: what it makes of a config, and that it follows
the running config only when the data plane changes (each change costs an SSH round trip)."""

from __future__ import annotations

import json
import shlex
import subprocess

from lab.homenet import (
    KEEPALIVE_LOG,
    ROUTER_FACTORY_CONFIG,
    SECOND_SITE,
    HomeNet,
    build_script,
    longest_outage,
    parse_router_config,
    router_script,
    teardown_script,
)

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


FALLBACK = """\
ip route default gateway tunnel 1 keepalive 1 gateway pp 1 weight 0
tunnel select 1
 tunnel encapsulation ipip
 tunnel endpoint address 2001:db8:1::1
 ip tunnel address 192.0.2.2/30
 ip tunnel remote address 192.0.2.1
 tunnel enable 1
ip keepalive 1 icmp-echo 1 3 192.0.2.1
"""


def test_the_factory_config_goes_out_by_pppoe_nated():
    plane = parse_router_config(ROUTER_FACTORY_CONFIG)
    assert plane.pppoe_up and plane.pp_nat == {1}
    script = router_script(plane)
    assert "ip -n rtx route replace default dev pp1" in script
    assert 'oifname "pp1" masquerade' in script


def test_a_keepalive_route_starts_on_the_tunnel_with_a_probe_that_can_fall_back():
    text = ROUTER_FACTORY_CONFIG.replace("ip route default gateway pp 1\n", "") + FALLBACK
    plane = parse_router_config(text)
    assert plane.keepalives[1].target == "192.0.2.1" and plane.keepalives[1].count == 3
    assert plane.routes4[0].fallback == "pp 1"
    script = router_script(plane)
    assert "ip -n rtx addr add 192.0.2.2/30 dev tunnel1" in script
    assert "ip -n rtx route replace default dev tunnel1" in script
    assert "ip netns exec rtx setsid python3 -c " in script
    spec = {
        "dest": "default",
        "hops": [["dev tunnel1", 1], ["dev pp1", None]],
        "keepalives": {"1": [1, 3, "192.0.2.1"]},
        "log": KEEPALIVE_LOG,
        "pidfile": "/run/lab-rtx-keepalive-1.pid",
    }
    assert script.rstrip().endswith("</dev/null >/dev/null 2>&1 &")
    assert probe_spec(script) == spec
    # A config without the keepalive stops the probe (every script kills the old ones first).
    assert (
        router_script(parse_router_config(ROUTER_FACTORY_CONFIG))
        .splitlines()[1]
        .startswith("for f in /run/lab-rtx-keepalive-*.pid")
    )


def probe_spec(script: str) -> dict:
    """The keepalive probe's one argument (JSON), as the script passes it."""
    command = script[script.index("ip netns exec rtx setsid python3") :]
    return json.loads(shlex.split(command.split(" </dev/null")[0])[-1])


CHAIN = """\
ip route default gateway tunnel 1 keepalive 1 gateway tunnel 3 keepalive 2 weight 0 \
gateway pp 1 weight 0
tunnel select 1
 tunnel encapsulation ipip
 tunnel endpoint address 2001:db8:1::1
 ip tunnel address 192.0.2.2/30
 tunnel enable 1
tunnel select 3
 tunnel encapsulation ipip
 tunnel endpoint address 2001:db8:4::1
 ip tunnel address 192.0.2.10/30
 tunnel enable 3
ip keepalive 1 icmp-echo 1 3 192.0.2.1
ip keepalive 2 icmp-echo 1 3 192.0.2.9
"""


def test_a_chain_of_gateways_is_probed_in_written_order_by_one_process():
    text = ROUTER_FACTORY_CONFIG.replace("ip route default gateway pp 1\n", "") + CHAIN
    plane = parse_router_config(text)
    (route,) = plane.routes4
    assert route.hops == [("tunnel 1", 1), ("tunnel 3", 2), ("pp 1", None)]
    script = router_script(plane)
    assert "ip -n rtx route replace default dev tunnel1" in script
    assert script.count("setsid python3") == 1
    spec = probe_spec(script)
    assert spec["hops"] == [["dev tunnel1", 1], ["dev tunnel3", 2], ["dev pp1", None]]
    assert spec["keepalives"] == {"1": [1, 3, "192.0.2.1"], "2": [1, 3, "192.0.2.9"]}
    # A route naming a keepalive the config lacks: that gateway is never valid.
    gone = parse_router_config(text.replace("ip keepalive 2 icmp-echo 1 3 192.0.2.9\n", ""))
    spec = probe_spec(router_script(gone))
    assert spec["hops"] == [["dev tunnel1", 1], ["dev pp1", None]]


def test_a_keepalive_whose_fallback_is_down_is_no_fallback():
    text = ROUTER_FACTORY_CONFIG.replace(" pp enable 1\n", "") + FALLBACK
    script = router_script(parse_router_config(text))
    assert "setsid" not in script


def test_the_longest_outage_is_between_answers_inside_the_window():
    samples = [(0.0, True), (1.0, True), (2.0, False), (3.0, False), (4.5, True), (9.0, True)]
    assert longest_outage(samples, 0.5, 5.0) == 3.5  # 1.0 → 4.5
    assert longest_outage(samples, 4.0, 5.0) == 0.5  # 4.0 → 4.5, then 4.5 → 5.0
    assert longest_outage([(1.0, False)], 0.0, 2.0) == 2.0  # no answer at all


def test_a_second_site_has_namespaces_and_a_path_of_its_own_and_leaves_the_first_alone():
    config = (
        "ip lan1 address 192.0.2.129/26\n"
        "ipv6 lan2 address 2001:db8:3::1/64\n"
        "ipv6 route default gateway 2001:db8:3::fffe\n"
    )
    plane = parse_router_config(
        config
        + FALLBACK.replace(
            "ip route default gateway tunnel 1 keepalive 1 gateway pp 1 weight 0",
            "ip route default gateway tunnel 1",
        )
    )
    script = build_script(plane, site=SECOND_SITE)
    assert "ip netns add rtx2" in script and "ip netns add home2" in script
    assert "ip link add lab-rtx2 type veth peer name lan2 netns rtx2" in script
    assert "ip -n home2 addr add 192.0.2.138/26 dev eth0" in script
    assert "local 2001:db8:3::1 remote 2001:db8:1::1" in script
    # Nothing of the first site or the world: no inet, no rtx, no PPPoE.
    for word in ("netns add inet", " rtx ", "-n rtx ", "pp1", "lab-inet", "netns del rtx\n"):
        assert word not in script, word
    assert "ip netns del rtx2" in teardown_script(SECOND_SITE)
    assert "ip netns del rtx " not in teardown_script(SECOND_SITE) + " "
    assert "ip netns del rtx2" in teardown_script()  # the whole lab


def test_the_probe_moves_the_route_along_the_chain_and_back(tmp_path):
    """The lab's keepalive program itself, run here with a `ping` that answers for the targets
    marked up and an `ip` that records what it is asked: the route goes to the first gateway
    whose keepalive is up, in written order, and back."""
    import os
    import subprocess
    import sys
    import time

    from lab.homenet import _KEEPALIVE

    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "ping").write_text(f'#!/bin/sh\nfor a; do t=$a; done\ntest -e "{tmp_path}/up-$t"\n')
    (bin_ / "ip").write_text(f'#!/bin/sh\necho "$*" >> "{tmp_path}/ip.log"\n')
    for tool in ("ping", "ip"):
        (bin_ / tool).chmod(0o755)
    for target in ("192.0.2.1", "192.0.2.9"):
        (tmp_path / f"up-{target}").touch()
    log = tmp_path / "keepalive.log"
    spec = {
        "dest": "default",
        "hops": [["dev tunnel1", 1], ["dev tunnel3", 2], ["dev pp1", None]],
        "keepalives": {"1": [1, 1, "192.0.2.1"], "2": [1, 1, "192.0.2.9"]},
        "log": str(log),
        "pidfile": str(tmp_path / "pid"),
    }
    env = {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}"}
    probe = subprocess.Popen([sys.executable, "-c", _KEEPALIVE, json.dumps(spec)], env=env)

    def routes() -> list[str]:
        path = tmp_path / "ip.log"
        return path.read_text().splitlines() if path.exists() else []

    def wait_for(count: int) -> list[str]:
        deadline = time.monotonic() + 15
        while len(routes()) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return routes()

    try:
        time.sleep(1.5)
        assert routes() == []  # both up: the route stays on the first gateway
        (tmp_path / "up-192.0.2.1").unlink()
        assert wait_for(1) == ["route replace default dev tunnel3"]
        (tmp_path / "up-192.0.2.9").unlink()
        assert wait_for(2)[-1] == "route replace default dev pp1"
        # The backup answers again: back to it, the first one still down.
        (tmp_path / "up-192.0.2.9").touch()
        assert wait_for(3)[-1] == "route replace default dev tunnel3"
        (tmp_path / "up-192.0.2.1").touch()
        assert wait_for(4)[-1] == "route replace default dev tunnel1"
    finally:
        probe.kill()
        probe.wait()
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["event"], e["keepalive"]) for e in events] == [
        ("start", 1),
        ("start", 2),
        ("down", 1),
        ("down", 2),
        ("up", 2),
        ("up", 1),
    ]
    assert [e.get("route") for e in events[2:]] == [
        "dev tunnel3",
        "dev pp1",
        "dev tunnel3",
        "dev tunnel1",
    ]
