"""One router with two VPSes (``rtx_backup_tunnel``), through the real pyinfra CLI and the
project's deploy.py: the router is the RTX simulator over real SSH (IPv4 by PPPoE today), the
two VPSes pyinfra's ``@fake`` connector, whose ``ping`` answers as scripted. Each tunnel is
checked by traffic from its own VPS before anything is saved."""

from __future__ import annotations

import pytest

from lab.pyinfra_cli import run_pyinfra, write_inventory
from tests.test_rtx_deploy import ROUTER, VPS, host_key_line, router
from tests.test_rtx_fallback_sim import config_commands
from tests.test_verify_by_traffic import NO_REPLY, REPLIES, pings
from tests.test_vps_packages import ALL_INSTALLED

pytestmark = pytest.mark.sim

BACKUP_VPS = "2001:db8:4::1"
# busy.txt: tunnel 2 is named by a route, so the first free tunnels are 1 and 3.
ROUTE = (
    "ip route default gateway tunnel 1 keepalive 1 gateway tunnel 3 keepalive 2 weight 0 "
    "gateway pp 1 weight 0"
)
KEEPALIVES = [
    "ip keepalive 1 icmp-echo 5 6 169.254.100.1",
    "ip keepalive 2 icmp-echo 5 6 169.254.100.5",
]


def deploy(tmp_path, sim, *args, ping_a=REPLIES, ping_b=REPLIES, backup=None):
    known = tmp_path / "known_hosts"
    known.write_text(host_key_line(sim))
    name, data = router("home", sim, ssh_known_hosts_file=str(known))
    data.pop("tunnel_inner_network")  # the default, 169.254.100.0/30
    data["rtx_vps_managed_elsewhere"] = False
    if backup is not False:
        data["rtx_backup_tunnel"] = backup or {"vps_ipv6": BACKUP_VPS}

    def vps(address, ping):
        return {
            "fake_delay": 0,
            "fake_delay_jitter": 0,
            "fake_responses": {"dpkg-query": ALL_INSTALLED, "ping -n": ping},
            "vps_ipv6": address,
        }

    first = vps(VPS, ping_a) | {"router_ipv6": ROUTER, "home_networks": ["192.168.100.0/24"]}
    inventory = write_inventory(
        tmp_path,
        {
            "vps": [("@fake/vps-a", first), ("@fake/vps-b", vps(BACKUP_VPS, ping_b))],
            "rtx": [(name, data)],
        },
    )
    return run_pyinfra(inventory, "-vv", *args, timeout=240)


def test_two_vpses_one_router_each_tunnel_checked_from_its_own_vps(sims, tmp_path):
    sim = sims("busy.txt")
    preview = deploy(tmp_path, sim, "--dry", "--diff")
    assert preview.ok, preview
    assert f"+ {ROUTE}" in preview.output and "- ip route default gateway pp 1" in preview.output
    for line in KEEPALIVES:
        assert f"+ {line}" in preview.output
    assert f"+  tunnel endpoint address {BACKUP_VPS}" in preview.output
    # The backup VPS's end: its own tunnel to the same router, on the backup's inner link.
    assert "+ Address=169.254.100.5/30" in preview.output
    assert f"+ Remote={ROUTER}" in preview.output
    assert config_commands(sim) == []

    run = deploy(tmp_path, sim)
    assert run.ok, run
    assert [line.split(">>> ")[1] for line in pings(run)] == [
        "ping -n -c 3 -i 0.5 -W 2 -I tun-home 169.254.100.2",
        "ping -n -c 3 -i 0.5 -W 2 -I tun-home 169.254.100.6",
    ]
    saved = sim.saved_config_text.splitlines()
    for line in (ROUTE, *KEEPALIVES, "tunnel select 3", " ip tunnel address 169.254.100.6/30"):
        assert line in saved
    assert f" tunnel endpoint address {BACKUP_VPS}" in saved
    assert "ip route default gateway pp 1" not in saved
    assert sim.saved_config_text == sim.running_config_text and not sim.dirty
    sent = config_commands(sim)
    # Keepalives and both tunnels before the route that names them; the route before save.
    assert max(sent.index(k) for k in KEEPALIVES) < sent.index(ROUTE) < sent.index("save")
    assert sent.index("tunnel select 3") < sent.index(ROUTE)

    mark = len(sim.commands)
    again = deploy(tmp_path, sim)
    assert again.ok, again
    assert again.changed("@rtx/home") == []
    assert config_commands(sim, mark) == []


def test_a_backup_vps_that_does_not_answer_saves_nothing(sims, tmp_path):
    sim = sims("busy.txt")
    before = sim.saved_config_text
    run = deploy(tmp_path, sim, ping_b=NO_REPLY)
    assert not run.ok
    assert "verification by traffic failed" in run.output and "169.254.100.6" in run.output
    assert sim.running_config_text == sim.saved_config_text == before
    assert "ip route default gateway pp 1" in sim.running_config_text.splitlines()
    assert "ip keepalive" not in sim.running_config_text
    assert "tunnel select 3" not in sim.running_config_text


def test_dropping_the_backup_removes_its_gateway_and_keepalive(sims, tmp_path):
    sim = sims("busy.txt")
    assert deploy(tmp_path, sim).ok
    run = deploy(tmp_path, sim, backup=False)
    assert run.ok, run
    saved = sim.saved_config_text.splitlines()
    assert "ip route default gateway tunnel 1 keepalive 1 gateway pp 1 weight 0" in saved
    assert KEEPALIVES[0] in saved and KEEPALIVES[1] not in saved
    # Its tunnel block is left, said so: no route uses it any more.
    assert "tunnel select 3" in saved
    assert "tunnel 3 is no longer this deploy's" in run.output


def test_the_backup_numbers_can_be_named(sims, tmp_path):
    sim = sims("busy.txt")
    run = deploy(
        tmp_path,
        sim,
        backup={"vps_ipv6": BACKUP_VPS, "rtx_tunnel_number": 7, "rtx_keepalive_number": 9},
    )
    assert run.ok, run
    saved = sim.saved_config_text.splitlines()
    assert (
        "ip route default gateway tunnel 1 keepalive 1 gateway tunnel 7 keepalive 9 weight 0 "
        "gateway pp 1 weight 0"
    ) in saved
    assert "ip keepalive 9 icmp-echo 5 6 169.254.100.5" in saved


def test_a_backup_tunnel_number_someone_else_uses_is_refused_before_anything_is_sent(
    sims, tmp_path
):
    sim = sims("busy.txt")
    run = deploy(tmp_path, sim, backup={"vps_ipv6": BACKUP_VPS, "rtx_tunnel_number": 2})
    assert not run.ok
    assert "rtx_backup_tunnel.rtx_tunnel_number 2 is not free" in run.output
    assert config_commands(sim) == []


def test_a_router_printing_the_chains_options_in_another_order_is_not_a_change(sims, tmp_path):
    sim = sims("busy.txt")
    assert deploy(tmp_path, sim).ok
    # The same router, booted from a config that prints the backup gateway's options the other
    # way round (the manual fixes no order).
    reordered = sim.saved_config_text.replace(
        "gateway tunnel 3 keepalive 2 weight 0", "gateway tunnel 3 weight 0 keepalive 2"
    )
    assert reordered != sim.saved_config_text
    again = sims(reordered)
    run = deploy(tmp_path, again)
    assert run.ok, run
    assert run.changed("@rtx/home") == []
    assert config_commands(again) == []
