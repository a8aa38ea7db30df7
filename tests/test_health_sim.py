"""The health check (``check.py``) against the router end, over real SSH to the simulator.

A router-only inventory (the VPS managed elsewhere), deployed first by the project's own
``deploy.py``; then each drift a router sees in real life is made on the simulator as an operator
or the ISP would make it, and the check must name exactly that problem, exit non-zero, and send
the router nothing but ``show`` lines (and its session's console set-up).
"""

from __future__ import annotations

import json
import shutil

import pytest

from lab.homenet import ROUTER_FACTORY_CONFIG, ROUTER_WAN_IPV6
from lab.pyinfra_cli import REPO, run_pyinfra
from rtxsim.model import Context
from tests.simulators import ADMIN, PASSWORD, USER

pytestmark = pytest.mark.sim

VPS = "2001:db8:100::10"
# Lines a session may send that are not `show …`: its console set-up and its ways in and out.
SESSION = {"console lines infinity", "console columns 200", "administrator", "exit"}


@pytest.fixture
def router(sims, tmp_path):
    """A router as the deploy leaves it (deployed, saved), and a way to run check.py on it."""
    sim = sims(ROUTER_FACTORY_CONFIG)
    key = sim.host_key
    (tmp_path / "known_hosts").write_text(
        f"[127.0.0.1]:{sim.port} {key.get_name()} {key.get_base64()}\n"
    )
    data = {
        "ssh_hostname": "127.0.0.1",
        "ssh_port": sim.port,
        "ssh_user": USER,
        "ssh_password": PASSWORD,
        "rtx_admin_password": ADMIN,
        "rtx_legacy_ssh": True,
        "ssh_known_hosts_file": str(tmp_path / "known_hosts"),
        "vps_ipv6": VPS,
        "router_ipv6": ROUTER_WAN_IPV6,
        "home_networks": ["198.51.100.0/24"],
        "rtx_vps_managed_elsewhere": True,
        "tunnel_inner_network": False,
    }
    (tmp_path / "inventory.py").write_text(f"rtx = [('@rtx/home', {data!r})]\n")
    for name in ("deploy.py", "check.py"):
        shutil.copy(REPO / name, tmp_path / name)
    run = run_pyinfra("inventory.py", cwd=tmp_path, env={"PYTHONPATH": str(REPO)})
    assert run.ok, run
    assert not sim.dirty

    def check(*args: str):
        mark = len(sim.command_log)
        result = run_pyinfra(
            "inventory.py", *args, target="check.py", cwd=tmp_path, env={"PYTHONPATH": str(REPO)}
        )
        sent = [entry.command for entry in sim.command_log[mark:]]
        others = [line for line in sent if not line.startswith("show ") and line not in SESSION]
        assert others == [], f"the check sent {others}"
        return result

    return sim, check


def wrong(run) -> list[str]:
    """The checks pyinfra reports as failing (its own --json), by operation name."""
    return sorted(op["name"] for op in run.results["results"]["operations"] if op["error"])


def test_a_healthy_router_passes(router):
    sim, check = router
    run = check()
    assert run.returncode == 0, run
    assert wrong(run) == []
    table = run.stderr[run.stderr.index("--> Health check:") :]
    for row in ("identity", "owned lines", "unsaved changes", "tunnel status", "WAN IPv6"):
        assert row in table
    assert "RTX1200 Rev.10.01.78, booted from config file 0" in table
    assert f"{ROUTER_WAN_IPV6} (router_ipv6) is the router's" in table
    assert "No problem found." in table
    # Without a VPS in the inventory there is nothing to ping from: said, not counted as fine.
    assert "1 check(s) could not tell: @rtx/home ping through the tunnel" in table


def test_an_unsaved_change_by_hand_is_listed_with_its_secret_hidden(router):
    sim, check = router
    sim.device.apply(
        "pp auth myname lab-user@isp.example new-pppoe-secret", Context("pp", 1), admin=True
    )
    run = check()
    assert run.returncode == 1
    assert wrong(run) == ["Router: unsaved changes"]
    assert "new-pppoe-secret" not in run.stderr + run.stdout
    assert "in lines the deploy does not own" in run.stderr
    assert "+ pp auth <hidden>" in run.stderr  # the line is named, its secret is not
    assert "fix: save them on the router (`save`) or undo them" in run.stderr


def test_a_hand_edit_of_an_owned_line_is_named_with_the_deploy_as_its_fix(router):
    sim, check = router
    sim.device.apply("ip tunnel mtu 1280", Context("tunnel", 1), admin=True)
    run = check()
    assert run.returncode == 1
    assert wrong(run) == ["Router: owned lines", "Router: unsaved changes"]
    assert "-ip tunnel mtu 1280" in run.stderr.replace(" ip tunnel", "ip tunnel")
    assert "fix: pyinfra inventory.py deploy.py" in run.stderr


def test_a_changed_ipoe_prefix_is_named_with_what_to_set(router):
    sim, check = router
    # The ISP renumbered the line; another firmware's layout of `show ipv6 address` too.
    new = ROUTER_WAN_IPV6.replace("2001:db8:", "2001:db8:f", 1)
    sim.device.ipv6_address_text = [
        "LAN2 scope-id 2 [up]",
        f"  IPv6 address: {new}/64 (RA prefix, valid lifetime 2592000)",
        "  IPv6 address: fe80::2a0:deff:fe00:1202/64 (link-local)",
    ]
    run = check()
    assert run.returncode == 1
    assert wrong(run) == ["Across: WAN IPv6 address"]
    assert "the IPoE prefix changed" in run.stderr
    assert f'set router_ipv6 = "{new}"' in run.stderr


def test_a_tunnel_the_router_says_is_down(router):
    sim, check = router
    sim.device.tunnel_down = True
    run = check()
    assert run.returncode == 1
    assert wrong(run) == ["Router: tunnel status"]


def test_json_is_pyinfras_own_and_the_table_stays_off_stdout(router):
    sim, check = router
    sim.device.tunnel_down = True
    run = check()
    payload = json.loads(run.stdout)  # stdout is pure JSON
    assert payload["results"]["failed_hosts"] == ["@rtx/home"]
    names = [op["name"] for op in payload["results"]["operations"]]
    assert names[:4] == [
        "Router: identity",
        "Router: owned lines",
        "Router: unsaved changes",
        "Router: tunnel status",
    ]
    assert "--> Health check:" in run.stderr
