"""The inventory as one model: the two ends paired and checked against each other, keys
judged by where they are set, and all of it before pyinfra contacts any host, for every way
of starting it (deploy files, ``fact``, ``exec``, ``--limit``, ``--data``)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pyinfra.api.inventory import Inventory

from ipip6.tunnels import InventoryError, TunnelInventory
from lab.pyinfra_cli import REPO, run_pyinfra, write_inventory
from tests.test_bad_inputs import connection_counter  # noqa: F401 - a fixture

SHARED = {
    "vps_ipv6": "2001:db8:1::1",
    "router_ipv6": "2001:db8:2::1",
    "home_networks": ["198.51.100.0/24"],
}
DEPLOY = str(REPO / "deploy.py")  # run from elsewhere: the user's files by their paths
ROUTER_ONLY = {"rtx_admin_password": "Adm1n-pw-93c", "ssh_password": "S3cr3t-login-7f"}


def inventory(
    vps: dict | None = None,
    router: dict | None = None,
    *,
    shared: dict | None = None,
    vps_group: dict | None = None,
    extra_vps: list | None = None,
    extra_routers: list | None = None,
    override: dict | None = None,
) -> Inventory:
    vps_hosts = [("vps-a", vps or {}), *(extra_vps or [])]
    router_hosts = [("@rtx/home", {**ROUTER_ONLY, **(router or {})}), *(extra_routers or [])]
    return Inventory(
        ([name for name, _ in vps_hosts + router_hosts], {**SHARED, **(shared or {})}),
        override_data=override,
        vps=(vps_hosts, vps_group or {}),
        rtx=(router_hosts, {}),
    )


def problems(inv: Inventory) -> str:
    with pytest.raises(InventoryError) as info:
        TunnelInventory.build(inv)
    text = str(info.value)
    assert text.endswith("Nothing was changed.")
    return text


def test_a_router_and_its_vps_make_one_tunnel():
    model = TunnelInventory.build(inventory())
    assert [(t.router_host, t.vps_host) for t in model.tunnels] == [("@rtx/home", "vps-a")]
    assert model.vps_of("@rtx/home") == "vps-a"
    assert model.tunnels_of("vps-a") == model.tunnels
    assert model.vps_settings("vps-a").tunnel_name == "tun-home"


def test_a_router_without_its_vps_is_an_error_unless_managed_elsewhere():
    text = problems(inventory(router={"vps_ipv6": "2001:db8:9::1"}))
    assert "invalid data for host @rtx/home:" in text
    assert "vps_ipv6 (value '2001:db8:9::1'): no VPS host in the inventory has this" in text
    assert "rtx_vps_managed_elsewhere = True" in text

    model = TunnelInventory.build(
        inventory(router={"vps_ipv6": "2001:db8:9::1", "rtx_vps_managed_elsewhere": True})
    )
    assert model.vps_of("@rtx/home") is None
    # Said to be elsewhere, yet here: the check by traffic would be skipped for nothing.
    text = problems(inventory(router={"rtx_vps_managed_elsewhere": True}))
    assert "rtx_vps_managed_elsewhere (value True): but vps-a in this inventory" in text


def test_a_vps_alone_is_fine():
    inv = Inventory((["vps-a"], SHARED), vps=([("vps-a", {})], {}))
    assert TunnelInventory.build(inv).tunnels == ()


@pytest.mark.parametrize(
    ("vps", "router", "named"),
    [
        ({"tunnel_mtu": 1400}, {}, "tunnel_mtu: 1460 on @rtx/home but 1400 on vps-a"),
        (
            {"home_networks": ["198.51.100.0/25"]},
            {},
            "home_networks: ['198.51.100.0/24'] on @rtx/home but ['198.51.100.0/25'] on vps-a",
        ),
        (
            {"router_ipv6": "2001:db8:2::2"},
            {},
            "router_ipv6: '2001:db8:2::1' on @rtx/home but '2001:db8:2::2' on vps-a",
        ),
    ],
)
def test_the_two_ends_must_agree(vps, router, named):
    text = problems(inventory(vps, router))
    assert "invalid data for host @rtx/home, vps-a:" in text
    assert "expected the same on both ends of the tunnel" in text
    assert named in text


def test_home_networks_compare_as_sets():
    both = {"home_networks": ["198.51.100.0/24", "192.0.2.0/24"]}
    turned = {"home_networks": ["192.0.2.0/24", "198.51.100.0/24"]}
    assert TunnelInventory.build(inventory(both, turned)).tunnels


def test_two_routers_on_one_vps_need_tunnels_of_their_own():
    # Both inherit group_data/all.py's router_ipv6, home_networks and tunnel name.
    text = problems(inventory(extra_routers=[("@rtx/parents", ROUTER_ONLY)]))
    assert "invalid data for host vps-a:" in text
    assert (
        "tunnel_name (value 'tun-home'): the same for the tunnels to @rtx/home and "
        "@rtx/parents; expected one name per router" in text
    )
    assert "router_ipv6 (value '2001:db8:2::1'): the same for the tunnels" in text
    assert "home_networks: 198.51.100.0/24 (@rtx/home) and 198.51.100.0/24 (@rtx/parents)" in text
    # Networks of one site inside the other's inner link: refused too.
    parents = {
        **ROUTER_ONLY,
        "router_ipv6": "2001:db8:3::1",
        "home_networks": ["192.0.2.0/26"],
        "tunnel_name": "tun-parents",
        "tunnel_inner_network": "198.51.100.252/30",
    }
    text = problems(inventory(extra_routers=[("@rtx/parents", parents)]))
    assert (
        "tunnel_inner_network (value '198.51.100.252/30'): overlaps 198.51.100.0/24 of the "
        "tunnel to @rtx/home" in text
    )


def test_two_routers_on_one_vps_each_bring_their_tunnel():
    parents = {
        **ROUTER_ONLY,
        "router_ipv6": "2001:db8:3::1",
        "home_networks": ["192.0.2.0/26"],
        "tunnel_name": "tun-parents",
        "tunnel_inner_network": "169.254.100.4/30",
    }
    model = TunnelInventory.build(inventory(extra_routers=[("@rtx/parents", parents)]))
    tunnels = model.vps_tunnels("vps-a")
    assert [t.tunnel_name for t in tunnels] == ["tun-home", "tun-parents"]
    home, other = tunnels
    assert str(other.router_ipv6) == "2001:db8:3::1" and str(home.router_ipv6) == "2001:db8:2::1"
    assert [str(n) for n in other.home_networks] == ["192.0.2.0/26"]
    assert str(other.inner.vps) == "169.254.100.5/30"
    assert model.vps_tunnel_name("@rtx/parents") == "tun-parents"
    assert model.vps_tunnel_name("@rtx/home") == "tun-home"
    # The VPS's own keys are the same in every tunnel.
    assert home.uplink_interface == other.uplink_interface


def test_with_several_routers_a_tunnel_key_on_the_vps_itself_is_refused():
    parents = {
        **ROUTER_ONLY,
        "router_ipv6": "2001:db8:3::1",
        "home_networks": ["192.0.2.0/26"],
        "tunnel_name": "tun-parents",
        "tunnel_inner_network": "169.254.100.4/30",
    }
    text = problems(inventory(vps={"tunnel_mtu": 1400}, extra_routers=[("@rtx/parents", parents)]))
    assert (
        "tunnel_mtu (value 1400): set for this VPS, but 2 routers (@rtx/home, @rtx/parents) "
        "have their tunnel to it, each with its own; expected it in each router's host data"
    ) in text


def test_with_one_router_its_tunnel_name_names_the_vps_interface():
    model = TunnelInventory.build(inventory(router={"tunnel_name": "tun-b"}))
    assert model.vps_tunnels("vps-a")[0].tunnel_name == "tun-b"
    assert model.vps_tunnel_name("@rtx/home") == "tun-b"
    # Set on both ends, it must agree.
    text = problems(inventory(router={"tunnel_name": "tun-b"}, vps={"tunnel_name": "tun-c"}))
    assert "tunnel_name: 'tun-b' on @rtx/home but 'tun-c' on vps-a" in text
    # The VPS's name is checked against the VPS's uplink even when the router names it.
    text = problems(inventory(router={"tunnel_name": "ens3"}))
    assert "tunnel_name (value 'ens3'): tunnel_name and uplink_interface" in text


def test_one_vps_per_address():
    text = problems(inventory(extra_vps=[("vps-b", {})]))
    assert "invalid data for host vps-a, vps-b:" in text
    assert "vps_ipv6 (value '2001:db8:1::1'): the same on each" in text


def test_a_key_of_the_other_end_counts_where_it_is_set():
    # group_data/all.py is read by both ends: a router key there is fine for the VPS.
    assert TunnelInventory.build(inventory(shared={"rtx_tunnel_number": 2}))
    assert TunnelInventory.build(inventory(override={"tunnel_name": "tun-b"}))
    # The VPS group's data or the VPS's own: it would be silently ignored, so it is an error.
    text = problems(inventory(vps_group={"rtx_tunnel_number": 2}))
    assert "rtx_tunnel_number (value 2): a setting of the router end (@rtx hosts)" in text
    text = problems(inventory(vps={"rtx_default_route": False}))
    assert "rtx_default_route (value False): a setting of the router end" in text
    text = problems(inventory(router={"uplink_interface": "ens4"}))
    assert "uplink_interface (value 'ens4'): a setting of the VPS end" in text


def test_one_model_per_run():
    from pyinfra.api import State

    inv = inventory()
    state = State(inventory=inv)
    assert TunnelInventory.of(state) is TunnelInventory.of(state)


# --- through the CLI: nothing contacted ---------------------------------------------------


def cli_inventory(tmp_path, port: int, **bad) -> tuple:
    address = {"ssh_hostname": "127.0.0.1", "ssh_port": port}
    vps = {**SHARED, **address, **bad.get("vps", {})}
    router = {**SHARED, **ROUTER_ONLY, **address, "ssh_user": "admin", **bad.get("router", {})}
    return write_inventory(tmp_path, {"vps": [("vps-a", vps)], "rtx": [("@rtx/home", router)]})


@pytest.mark.parametrize(
    ("args", "target"),
    [
        ((), DEPLOY),
        (("--limit", "@rtx/home"), DEPLOY),
        (("--data", "tunnel_mtu=1400"), DEPLOY),
        (("--dry", "--diff"), DEPLOY),
        ((), "fact server.Hostname"),
        (("-y",), "exec -- true"),
    ],
    ids=["deploy", "limit", "data", "dry", "fact", "exec"],
)
def test_bad_data_stops_every_command_before_any_connection(
    tmp_path,
    connection_counter,  # noqa: F811
    args,
    target,
):
    port, count = connection_counter
    inv = cli_inventory(tmp_path, port, vps={"vps_ipv6": "2001:db8:1::1%x\n-A INPUT -j ACCEPT"})
    run = run_pyinfra(inv, *args, target=target, cwd=tmp_path, json_output=False, timeout=120)
    assert run.returncode == 1
    assert "invalid data for host vps-a:" in run.output
    assert "vps_ipv6 (value '2001:db8:1::1%x\\n-A INPUT -j ACCEPT')" in run.output
    assert "Connecting to hosts" not in run.output
    assert count["connections"] == 0


def test_unpaired_ends_stop_a_deploy_from_anywhere(tmp_path, connection_counter):  # noqa: F811
    port, count = connection_counter
    inv = cli_inventory(tmp_path, port, router={"tunnel_mtu": 1400})
    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    run = run_pyinfra(inv, target=str(REPO / "deploy.py"), cwd=elsewhere, timeout=120)
    assert run.returncode == 1
    assert "tunnel_mtu: 1400 on @rtx/home but 1460 on vps-a" in run.output
    assert "Nothing was changed." in run.output
    assert count["connections"] == 0


def test_the_shipped_example_is_one_valid_tunnel():
    """inventory.py and group_data/ as a new user finds them (no host is contacted). In a child
    process: importing pyinfra_cli monkey-patches the stdlib with gevent."""
    script = (
        "from pyinfra.api import State\n"
        "from pyinfra.api.inventory import Inventory\n"
        "from pyinfra.context import ctx_inventory, ctx_state\n"
        "from pyinfra_cli.inventory import make_inventory\n"
        "from ipip6.tunnels import TunnelInventory\n"
        "with ctx_state.use(State()), ctx_inventory.use(Inventory.empty()):\n"
        f"    inv = make_inventory({str(REPO / 'inventory.py')!r}, cwd={str(REPO)!r})\n"
        "for t in TunnelInventory.build(inv).tunnels:\n"
        "    print(t.router_host, t.vps_host)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["@rtx/192.0.2.1 203.0.113.10"]
