"""The default tunnel, inner addresses and fallback included, through the real pyinfra CLI and
the project's deploy.py: the router is the RTX simulator over real SSH (a router whose IPv4
goes out by PPPoE today), the VPS pyinfra's ``@fake`` connector whose ``ping`` answers as
scripted. Real packets and a real failover: ``tests/test_e2e_vm.py``."""

from __future__ import annotations

import pytest

from lab.pyinfra_cli import run_pyinfra, write_inventory
from tests.simulators import CONFIGS
from tests.test_rtx_deploy import ROUTER, VPS, host_key_line, router
from tests.test_verify_by_traffic import NO_REPLY, REPLIES, pings
from tests.test_vps_packages import ALL_INSTALLED

pytestmark = pytest.mark.sim

VPS_HOST = "@fake/vps"
# busy.txt: the home's IPv4 by PPPoE (`ip route default gateway pp 1`), tunnel 2 used by a
# route, tunnel 1 free.
KEEPALIVE = "ip keepalive 1 icmp-echo 5 6 169.254.100.1"
ROUTE = "ip route default gateway tunnel 1 keepalive 1 gateway pp 1 weight 0"
INNER = [" ip tunnel address 169.254.100.2/30", " ip tunnel remote address 169.254.100.1"]


def deploy(tmp_path, sim, ping, *args, router_data=None):
    """deploy.py with the defaults: no tunnel_inner_network, no fallback keys."""
    known = tmp_path / "known_hosts"
    known.write_text(host_key_line(sim))
    name, data = router("home", sim, ssh_known_hosts_file=str(known), **(router_data or {}))
    data.pop("tunnel_inner_network")
    data["rtx_vps_managed_elsewhere"] = False
    vps = {
        "fake_delay": 0,
        "fake_delay_jitter": 0,
        "fake_responses": {"dpkg-query": ALL_INSTALLED, "ping -n": ping},
        "vps_ipv6": VPS,
        "router_ipv6": ROUTER,
        "home_networks": ["192.168.100.0/24"],
    }
    inventory = write_inventory(tmp_path, {"vps": [(VPS_HOST, vps)], "rtx": [(name, data)]})
    return run_pyinfra(inventory, "-vv", *args, timeout=180)


def config_commands(sim, since: int = 0) -> list[str]:
    """What the router was sent that is configuration (not show, console, the session's own)."""
    return [
        c
        for c in sim.commands[since:]
        if not c.startswith(("show ", "console ")) and c not in ("administrator", "exit")
    ]


def test_first_deploy_keeps_pppoe_as_the_fallback_and_verifies_across_the_inner_link(
    sims, tmp_path
):
    sim = sims("busy.txt")
    preview = deploy(tmp_path, sim, REPLIES, "--dry", "--diff")
    assert preview.ok, preview
    assert f"+ {KEEPALIVE}" in preview.output
    assert f"+ {ROUTE}" in preview.output and "- ip route default gateway pp 1" in preview.output
    assert "fallback: pp 1, the router's default route before this deploy" in preview.output
    assert config_commands(sim) == []

    run = deploy(tmp_path, sim, REPLIES)
    assert run.ok, run
    # The VPS pings the router's inner address: the tunnel itself, whatever NAT the VPS has.
    assert [line.split(">>> ")[1] for line in pings(run)] == [
        "ping -n -c 3 -i 0.5 -W 2 -I tun-home 169.254.100.2"
    ]
    saved = sim.saved_config_text.splitlines()
    for line in (ROUTE, KEEPALIVE, *INNER):
        assert line in saved
    assert "ip route default gateway pp 1" not in saved
    assert sim.saved_config_text == sim.running_config_text and not sim.dirty
    # The keepalive exists before the route names it.
    sent = config_commands(sim)
    assert sent.index(KEEPALIVE) < sent.index(ROUTE) < sent.index("save")

    mark = len(sim.commands)
    again = deploy(tmp_path, sim, REPLIES)
    assert again.ok, again
    assert again.changed("@rtx/home") == []  # (the @fake VPS has no files: always "changed")
    assert config_commands(sim, mark) == []  # reads only


def test_a_failed_check_puts_the_pppoe_route_back_and_removes_the_keepalive(sims, tmp_path):
    sim = sims("busy.txt")
    before = sim.saved_config_text
    run = deploy(tmp_path, sim, NO_REPLY)
    assert not run.ok
    assert "verification by traffic failed: ping 169.254.100.2" in run.output
    assert sim.running_config_text == sim.saved_config_text == before
    assert "ip route default gateway pp 1" in sim.running_config_text.splitlines()
    assert "ip keepalive" not in sim.running_config_text


def test_turning_the_fallback_off_removes_what_it_wrote(sims, tmp_path):
    sim = sims("busy.txt")
    assert deploy(tmp_path, sim, REPLIES).ok
    run = deploy(tmp_path, sim, REPLIES, router_data={"rtx_fallback_gateway": False})
    assert run.ok, run
    saved = sim.saved_config_text.splitlines()
    assert "ip route default gateway tunnel 1" in saved
    assert not any(line.startswith("ip keepalive") for line in saved)
    sent = config_commands(sim)
    assert sent[-3:] == ["ip route default gateway tunnel 1", "no ip keepalive 1", "save"]


def test_a_default_route_of_several_gateways_is_not_guessed_at(sims, tmp_path):
    text = (
        (CONFIGS / "busy.txt")
        .read_text()
        .replace(
            "ip route default gateway pp 1\n",
            "ip route default gateway pp 1 weight 2 gateway dhcp lan2 weight 1\n",
        )
    )
    sim = sims(text)
    run = deploy(tmp_path, sim, REPLIES)
    assert not run.ok
    assert "is not one plain gateway" in run.output and "rtx_fallback_gateway" in run.output
    assert config_commands(sim) == []

    fixed = deploy(tmp_path, sim, REPLIES, router_data={"rtx_fallback_gateway": "dhcp lan2"})
    assert fixed.ok, fixed
    assert (
        "ip route default gateway tunnel 1 keepalive 1 gateway dhcp lan2 weight 0"
        in sim.saved_config_text.splitlines()
    )
