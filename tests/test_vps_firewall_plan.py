"""What the firewall operation sends for each state a VPS can be in: a first deploy, a no-op,
a switch of backend either way, an earlier release's whole ruleset. Through the real pyinfra
CLI against pyinfra's ``@fake`` connector, whose answer to the deploy's one read (the
``VpsState`` fact) plays the VPS's state; what those commands do to a kernel is proven on the
lab VM."""

from __future__ import annotations

import hashlib

from ipip6.settings import load_vps_settings
from ipip6.vps import render
from lab.pyinfra_cli import run_pyinfra, write_inventory
from tests.test_vps_packages import ALL_INSTALLED, executed

DATA = {
    "vps_ipv6": "2001:db8:1::1",
    "router_ipv6": "2001:db8:2::1",
    "home_networks": ["198.51.100.0/24"],
}
MARK = "ipip6-headed"  # only the deploy's read asks for headers


def sums(files: dict[str, str]) -> list[str]:
    return [f"{hashlib.sha256(c.encode()).hexdigest()}  {p}" for p, c in files.items()]


def deploy(tmp_path, fact_lines: list[str], **data):
    host = {
        "fake_delay": 0,
        "fake_delay_jitter": 0,
        "fake_responses": {MARK: [*ALL_INSTALLED, "pkg nftables ii ", *fact_lines]},
        **DATA,
        **data,
    }
    inventory = write_inventory(tmp_path, {"vps": [("@fake/vps", host)]})
    run = run_pyinfra(inventory, "-vv")
    assert run.returncode == 0, run.output
    return [c for c in executed(run) if MARK not in c]


def confirm_of(commands: list[str]) -> str:
    """The command that commits (or rolls back) the firewall change over the old connection."""
    return next(
        c for c in commands if c.startswith("if [ -e /tmp/ipip6-confirm-") and "firewall" in c
    )


def apply_of(commands: list[str]) -> str:
    """The one command that loads the change (and rolls back at once if that fails)."""
    return next(c for c in commands if c.startswith("{ { "))


def firewall_files(**data) -> dict[str, str]:
    return render.render_firewall(load_vps_settings("vps", {**DATA, **data}))


def test_a_converged_firewall_sends_nothing(tmp_path):
    for backend, extra in (("iptables", []), ("nftables", ["ipip6-line-found"])):
        files = firewall_files(firewall_backend=backend)
        commands = deploy(tmp_path, [*sums(files), *extra], firewall_backend=backend)
        assert not [c for c in commands if "ipip6/firewall" in c or "ipip6-guard-firewall" in c]


def test_nftables_without_its_include_line_gets_it_after_the_proof(tmp_path):
    files = firewall_files(firewall_backend="nftables")
    commands = deploy(tmp_path, sums(files), firewall_backend="nftables")
    confirm = confirm_of(commands)
    committed = confirm.split(" else ")[0]
    assert 'include "/etc/ipip6/firewall.nft"\' >> /etc/nftables.conf' in committed
    assert "systemctl enable --quiet nftables.service" in committed


def test_switching_to_nftables_removes_the_iptables_layout_after_the_proof(tmp_path):
    old = firewall_files()  # the iptables layout is in place
    commands = deploy(
        tmp_path, [*sums(old), f"ipip6-missing {render.FIREWALL_NFT}"], firewall_backend="nftables"
    )
    check = next(c for c in commands if "nft -c -f" in c)
    assert "/etc/ipip6/firewall.nft.ipip6-new" in check and "nothing was changed" in check
    apply = apply_of(commands)
    assert apply.startswith("{ { nft -f /etc/ipip6/firewall.nft.ipip6-new; }")
    # Loaded, then the old chains go, in one command that rolls back at once if either fails.
    assert apply.index("nft -f") < apply.index("drop_owned iptables filter nat mangle")
    assert "the previous ones are back" in apply
    confirm = confirm_of(commands)
    committed, rolled_back = confirm.split(" else ", 1)
    assert "systemctl disable --quiet ipip6-firewall.service" in committed
    assert "rm -f /etc/ipip6/firewall.v4 /etc/ipip6/firewall.v6" in committed
    assert "firewall.restore" in rolled_back


def test_switching_back_to_iptables_removes_the_table_and_the_include_line(tmp_path):
    old = firewall_files(firewall_backend="nftables")
    missing = [f"ipip6-missing {p}" for p in render.IPTABLES_FILES]
    commands = deploy(tmp_path, [*sums(old), *missing, "ipip6-line-found"])
    check = next(c for c in commands if "ip netns add ipip6-check" in c)
    assert "ip netns exec ipip6-check sh /etc/ipip6/firewall-load.ipip6-new" in check
    apply = apply_of(commands)
    assert "nft delete table inet ipip6" in apply
    confirm = confirm_of(commands)
    committed = confirm.split(" else ")[0]
    assert "rm -f /etc/ipip6/firewall.nft" in committed
    assert "sed -i '\\|^include \"/etc/ipip6/firewall.nft\"$|d' /etc/nftables.conf" in committed
    assert "systemctl enable --quiet ipip6-firewall.service" in committed


def test_an_earlier_releases_ruleset_is_replaced_in_the_same_guarded_run(tmp_path):
    commands = deploy(
        tmp_path, [f"{MARK} {render.LEGACY_RULES_V4}", f"{MARK} {render.LEGACY_RULES_V6}"]
    )
    apply = apply_of(commands)
    assert 'iptables -w -t "$t" -D ${line#-A }' in apply and "< /etc/iptables/rules.v4" in apply
    assert 'ip6tables -w -t "$t" -D ${line#-A }' in apply
    confirm = confirm_of(commands)
    assert "rm -f /etc/iptables/rules.v4 /etc/iptables/rules.v6" in confirm.split(" else ")[0]
