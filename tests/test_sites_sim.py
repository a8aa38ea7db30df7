"""Several home sites on one VPS through the real pyinfra CLI and the project's deploy.py: two
RTX simulators over real SSH, one VPS (pyinfra's ``@fake`` connector, whose ``ping`` answers as
scripted). Each router gets its own tunnel on the VPS, and each is verified through its own."""

from __future__ import annotations

import pytest

from lab.pyinfra_cli import run_pyinfra, write_inventory
from tests.test_rtx_deploy import VPS, host_key_line, router
from tests.test_verify_by_traffic import REPLIES, pings
from tests.test_vps_packages import ALL_INSTALLED

pytestmark = pytest.mark.sim

PARENTS = {
    "router_ipv6": "2001:db8:300::1",
    "home_networks": ["192.168.200.0/24"],
    "tunnel_name": "tun-parents",
    "tunnel_inner_network": "169.254.100.4/30",
}


def deploy(tmp_path, home, parents, *args, vps_data=None):
    known = tmp_path / "known_hosts"
    known.write_text(host_key_line(home) + host_key_line(parents))
    routers = []
    for name, sim, extra in (("home", home, {}), ("parents", parents, PARENTS)):
        host, data = router(name, sim, ssh_known_hosts_file=str(known), **extra)
        if not extra:
            del data["tunnel_inner_network"]  # the default, 169.254.100.0/30
        data["rtx_vps_managed_elsewhere"] = False
        routers.append((host, data))
    vps = {
        "fake_delay": 0,
        "fake_delay_jitter": 0,
        "fake_responses": {"dpkg-query": ALL_INSTALLED, "ping -n": REPLIES},
        "vps_ipv6": VPS,
        **(vps_data or {}),
    }
    inventory = write_inventory(tmp_path, {"vps": [("@fake/vps", vps)], "rtx": routers})
    return run_pyinfra(inventory, "-vv", *args, timeout=240)


def test_two_routers_on_one_vps_each_get_a_tunnel_and_a_check_of_their_own(sims, tmp_path):
    home, parents = sims("factory.txt"), sims("busy.txt")
    preview = deploy(tmp_path, home, parents, "--dry", "--diff")
    assert preview.ok, preview
    for path in (
        "/etc/systemd/network/60-ipip6-tun-home.netdev",
        "/etc/systemd/network/60-ipip6-tun-parents.netdev",
    ):
        assert path in preview.output
    assert "+ Remote=2001:db8:300::1" in preview.output
    assert "+ -A IPIP6-FORWARD -i tun-parents -s 192.168.200.0/24 -j ACCEPT" in preview.output
    assert "VPS: tunnel tun-home, tun-parents" in preview.output

    run = deploy(tmp_path, home, parents)
    assert run.ok, run
    assert sorted(line.split(">>> ")[1] for line in pings(run)) == [
        "ping -n -c 3 -i 0.5 -W 2 -I tun-home 169.254.100.2",
        "ping -n -c 3 -i 0.5 -W 2 -I tun-parents 169.254.100.6",
    ]
    assert "tunnel endpoint address 2001:db8:100::10" in parents.saved_config_text
    assert " ip tunnel address 169.254.100.6/30" in parents.saved_config_text.splitlines()
    assert " ip tunnel address 169.254.100.2/30" in home.saved_config_text.splitlines()


def test_two_routers_with_the_same_tunnel_name_change_nothing(sims, tmp_path):
    home, parents = sims("factory.txt"), sims("busy.txt")
    before = (home.saved_config_text, parents.saved_config_text)
    parents_same = {k: v for k, v in PARENTS.items() if k != "tunnel_name"}
    known = tmp_path / "known_hosts"
    known.write_text(host_key_line(home) + host_key_line(parents))
    routers = [
        router("home", home, ssh_known_hosts_file=str(known), rtx_vps_managed_elsewhere=False),
        router(
            "parents",
            parents,
            ssh_known_hosts_file=str(known),
            rtx_vps_managed_elsewhere=False,
            **parents_same,
        ),
    ]
    del routers[0][1]["tunnel_inner_network"]
    inventory = write_inventory(
        tmp_path, {"vps": [("@fake/vps", {"vps_ipv6": VPS})], "rtx": routers}
    )
    run = run_pyinfra(inventory, timeout=120)
    assert not run.ok
    assert "tunnel_name (value 'tun-home'): the same for the tunnels to @rtx/home and " in (
        run.output
    )
    assert "Nothing was changed." in run.output
    assert (home.saved_config_text, parents.saved_config_text) == before
    assert home.commands == [] and parents.commands == []
