"""The VPS firewall as the lab sees it: the deploy's part of the live rules, and the same part
as the files on disk would load it (into an empty network namespace, so both come out of
iptables-save in its canonical form and compare line by line, counters aside)."""

from __future__ import annotations

from lab.vm import LabVM

# The deploy's chains, the jumps to them, and the policies of the filter table's base chains.
_OWNED = r"grep -E '^(:(INPUT|FORWARD) |-A IPIP6-|-A [A-Z]+ -j IPIP6-)' | sed 's/ \[[0-9:]*\]$//'"


def _owned(vm: LabVM, prefix: str = "") -> str:
    return vm.ssh(f"{{ {prefix}iptables-save; {prefix}ip6tables-save; }} | {_OWNED}").stdout


def owned_rules_live(vm: LabVM) -> str:
    """The deploy's part of the rules the kernel has now."""
    return _owned(vm)


def owned_rules_on_disk(vm: LabVM) -> str:
    """The deploy's part of the rules as /etc/ipip6's files load them at boot."""
    ns = "ipip6-disk-check"
    vm.ssh(f"ip netns add {ns} && ip netns exec {ns} sh /etc/ipip6/firewall-load")
    try:
        return _owned(vm, prefix=f"ip netns exec {ns} ")
    finally:
        vm.ssh(f"ip netns del {ns}")


def owned_table_live(vm: LabVM) -> str:
    """The deploy's nftables table as the kernel has it now ('' when there is none)."""
    return vm.ssh("nft list table inet ipip6 2>/dev/null || true").stdout


def owned_table_on_disk(vm: LabVM) -> str:
    """The same table as /etc/ipip6/firewall.nft loads it, in an empty namespace."""
    ns = "ipip6-disk-check"
    vm.ssh(f"ip netns add {ns} && ip netns exec {ns} nft -f /etc/ipip6/firewall.nft")
    try:
        return vm.ssh(f"ip netns exec {ns} nft list table inet ipip6").stdout
    finally:
        vm.ssh(f"ip netns del {ns}")
