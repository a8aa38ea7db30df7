"""The packages decision (install only what is missing; ufw left alone unless replace_ufw),
through the real pyinfra CLI against pyinfra's ``@fake`` connector: the lab VM has no package
mirror to install from, so this is where the install path is exercised."""

from __future__ import annotations

import pytest

from lab.pyinfra_cli import run_pyinfra, write_inventory

ALL_INSTALLED = [
    "pkg iptables ii ",
    "pkg kmod ii ",
    "pkg iproute2 ii ",
    "pkg iputils-ping ii ",
]
NO_PING = [line for line in ALL_INSTALLED if "iputils-ping" not in line]


def deploy(tmp_path, dpkg_lines: list[str], **data):
    host = {
        "fake_delay": 0,
        "fake_delay_jitter": 0,
        "fake_responses": {"dpkg-query": dpkg_lines},
        "vps_ipv6": "2001:db8:1::1",
        "router_ipv6": "2001:db8:2::1",
        "home_networks": ["198.51.100.0/24"],
        **data,
    }
    inventory = write_inventory(tmp_path, {"vps": [("@fake/vps", host)]})
    return run_pyinfra(inventory, "-vv")


def executed(run) -> list[str]:
    return [line.split(">>> ", 1)[1] for line in run.output.splitlines() if ">>> " in line]


def test_nothing_missing_means_no_apt_at_all(tmp_path):
    run = deploy(tmp_path, ALL_INSTALLED)
    assert run.returncode == 0, run.output
    assert not [c for c in executed(run) if "apt-get" in c or "debconf" in c]


def test_missing_package_is_installed_after_an_update(tmp_path):
    run = deploy(tmp_path, NO_PING)
    assert run.returncode == 0, run.output
    commands = executed(run)
    update = commands.index("apt-get update")
    install = next(i for i, c in enumerate(commands) if c.endswith("install iputils-ping"))
    assert update < install
    assert "DEBIAN_FRONTEND=noninteractive" in commands[install]
    # The firewall is loaded by the deploy's own unit: no iptables-persistent, no questions.
    assert not [c for c in commands if "iptables-persistent" in c or "debconf" in c]


@pytest.mark.parametrize("ufw", ["ufw Status: active", "ufw Status: inactive", None])
def test_ufw_is_left_alone_without_replace_ufw(tmp_path, ufw):
    run = deploy(tmp_path, [*NO_PING, *([ufw] if ufw else [])])
    assert run.returncode == 0, run.output
    assert not [c for c in executed(run) if c.startswith("ufw")]


def test_replace_ufw_disables_an_active_one_first(tmp_path):
    run = deploy(tmp_path, [*NO_PING, "ufw Status: active"], replace_ufw=True)
    assert run.returncode == 0, run.output
    commands = executed(run)
    assert commands.index("ufw --force disable") < commands.index("apt-get update")


def test_replace_ufw_disables_it_with_every_package_in_place(tmp_path):
    run = deploy(tmp_path, [*ALL_INSTALLED, "ufw Status: active"], replace_ufw=True)
    assert run.returncode == 0, run.output
    commands = executed(run)
    assert "ufw --force disable" in commands
    assert not [c for c in commands if "apt-get" in c]
