"""The packages decision (install only what is missing; never let apt remove an active ufw),
through the real pyinfra CLI against pyinfra's ``@fake`` connector: the lab VM has no package
mirror to install from, so this is where the install path is exercised."""

from __future__ import annotations

import pytest

from lab.pyinfra_cli import run_pyinfra, write_inventory

ALL_INSTALLED = [
    "pkg iptables ii ",
    "pkg iptables-persistent ii ",
    "pkg kmod ii ",
    "pkg iproute2 ii ",
    "pkg iputils-ping ii ",
]
NO_PERSISTENT = [line for line in ALL_INSTALLED if "iptables-persistent" not in line]


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


def test_missing_package_is_installed_with_preseeded_answers(tmp_path):
    run = deploy(tmp_path, NO_PERSISTENT)
    assert run.returncode == 0, run.output
    commands = executed(run)
    preseed = next(i for i, c in enumerate(commands) if "debconf-set-selections" in c)
    update = commands.index("apt-get update")
    install = next(i for i, c in enumerate(commands) if c.endswith("install iptables-persistent"))
    assert preseed < update < install
    assert "autosave_v4 boolean false" in commands[preseed]
    assert "DEBIAN_FRONTEND=noninteractive" in commands[install]


def test_active_ufw_stops_the_deploy_before_apt_removes_it(tmp_path):
    run = deploy(tmp_path, [*NO_PERSISTENT, "ufw Status: active"])
    assert run.returncode != 0
    assert "ufw is active" in run.output and "replace_ufw" in run.output
    assert not [c for c in executed(run) if "apt-get" in c or c.startswith("ufw")]


@pytest.mark.parametrize("ufw", ["ufw Status: inactive", None])
def test_inactive_or_absent_ufw_does_not_stop_it(tmp_path, ufw):
    run = deploy(tmp_path, [*NO_PERSISTENT, *([ufw] if ufw else [])])
    assert run.returncode == 0, run.output


def test_replace_ufw_disables_it_first(tmp_path):
    run = deploy(tmp_path, [*NO_PERSISTENT, "ufw Status: active"], replace_ufw=True)
    assert run.returncode == 0, run.output
    commands = executed(run)
    assert commands.index("ufw --force disable") < commands.index("apt-get update")
