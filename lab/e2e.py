"""The whole tunnel in a local lab: the lab VM as the VPS, the RTX simulator as the router.

Shared by ``make demo`` (:mod:`lab.demo`) and the end-to-end tests (``tests/test_e2e_vm.py``)::

    lab = E2ELab(vm, workdir)        # vm: a running lab.vm.LabVM; workdir: a private temp dir
    lab.start_router()               # rtxsim on 127.0.0.1, factory-like config, saved in workdir
    lab.net.build(ROUTER_FACTORY_CONFIG)  # the namespaces (lab.homenet)
    run = lab.deploy("--dry", "--diff")   # the project's deploy.py through the real pyinfra CLI
    run = lab.deploy()               # the router's data plane follows its running config as the
                                     # deploy changes it (the VPS's ping before the save sees it)
    check = lab.traffic()            # ping + TCP transfer home → internet, drop counter
    assert check.problems() == []
    lab.stop()

The inventory (VPS and ``@rtx/127.0.0.1``) and the router's known_hosts live in ``workdir``;
``group_data/`` of the repository applies as for a user, host data overriding it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ipip6.vps.render import OWNED_FILES
from lab.homenet import (
    INTERNET_HOST,
    ROUTER_FACTORY_CONFIG,
    ROUTER_WAN_IPV6,
    VPS_IPV6,
    VPS_UPLINK,
    VPS_UPLINK_IPV4,
    HomeNet,
    PingResult,
    TransferResult,
    parse_router_config,
    ssh,
    teardown_script,
)
from lab.pyinfra_cli import DeployRun, run_pyinfra

VPS_HOST = "lab-vps"
ROUTER_HOST = "@rtx/127.0.0.1"
TUNNEL_NAME = "tun-home"
NETDEV = f"/etc/systemd/network/60-ipip6-{TUNNEL_NAME}.netdev"
ROUTER_USER, ROUTER_PASSWORD, ROUTER_ADMIN_PASSWORD = "admin", "lab-login", "lab-admin"

#: Both ends' data (group_data/all.py keys), as a user's inventory would set them.
SHARED_DATA = {
    "vps_ipv6": VPS_IPV6,
    "router_ipv6": ROUTER_WAN_IPV6,
    "home_networks": [str(parse_router_config(ROUTER_FACTORY_CONFIG).lan.network)],
}

#: What a router session sends that is no configuration: reading, and the session's own lines.
_NOT_CONFIG = ("show ", "console ")
_SESSION = {"administrator", "exit", "quit", ""}


def config_commands(entries) -> list[str]:
    """The commands of a simulator command log that are configuration (anything that is not
    ``show …``, ``console …`` or entering and leaving administrator mode)."""
    return [
        e.command
        for e in entries
        if e.command not in _SESSION and not e.command.startswith(_NOT_CONFIG)
    ]


@dataclass
class TrafficCheck:
    """Ping and a TCP transfer from the home host to the internet host, and how many packets
    the router dropped for their Destination Options header meanwhile."""

    ping: PingResult
    transfer: TransferResult
    drops: int
    expected_mss: int

    def problems(self) -> list[str]:
        """What is wrong with traffic that should pass (empty: nothing)."""
        p, t, out = self.ping, self.transfer, []
        if not p.ok:
            out.append(f"ping {INTERNET_HOST}: {p.received}/{p.sent} replies\n{p.output}")
        if not t.ok:
            out.append(f"TCP transfer of {t.size} bytes failed: {t.error or t.client}")
        elif t.source_seen != VPS_UPLINK_IPV4:
            out.append(f"the internet host saw {t.source_seen}, not the VPS's {VPS_UPLINK_IPV4}")
        mss = {
            "SYN at the internet host": t.syn_mss,
            "SYN-ACK sent into the VPS's tunnel": t.synack_vps_mss,
            "SYN-ACK at the home host": t.synack_mss,
        }
        for where, value in mss.items():
            if value != self.expected_mss:
                out.append(f"MSS of the {where}: {value}, expected {self.expected_mss}")
        if t.fragmentation():
            out.append(f"fragmentation counters moved: {t.fragmentation()}")
        if self.drops:
            out.append(f"the router dropped {self.drops} packets with a Destination Options header")
        return out

    def trap_problems(self) -> list[str]:
        """What is wrong with traffic that the router should drop (the trap)."""
        out = []
        if self.ping.received:
            out.append(f"ping got {self.ping.received}/{self.ping.sent} replies through the trap")
        if self.transfer.ok:
            out.append("the TCP transfer passed through the trap")
        if self.drops < self.ping.sent:
            out.append(f"the router's drop counter rose by {self.drops} only")
        return out


class E2ELab:
    """The lab VM (the VPS), the RTX simulator (the router) and the namespaces in between."""

    def __init__(self, vm, workdir: str | os.PathLike, profile: str = "rtx1200") -> None:
        self.vm = vm
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.profile = profile
        self.net = HomeNet(vm, profile=profile)
        self.sim = None

    # --- the router ---------------------------------------------------------------------------
    def start_router(self, config: str = ROUTER_FACTORY_CONFIG):
        from rtxsim import Simulator

        self.sim = Simulator(
            config,
            profile=self.profile,
            user=ROUTER_USER,
            password=ROUTER_PASSWORD,
            admin_password=ROUTER_ADMIN_PASSWORD,
            state_dir=self.workdir / "router-state",
        )
        self.sim.start()
        # The data plane follows the running config, line by line, as a real router applies it
        # (nothing happens until the namespaces are built).
        self.sim.on_running_change = self.net.follow
        key = self.sim.host_key
        self.router_known_hosts.write_text(
            f"[127.0.0.1]:{self.sim.port} {key.get_name()} {key.get_base64()}\n"
        )
        return self.sim

    @property
    def router_known_hosts(self) -> Path:
        return self.workdir / "router_known_hosts"

    def router_config(self) -> str:
        """The router's saved config: what it runs after a boot."""
        return self.sim.saved_config_text

    def restart_router(self) -> None:
        """Power-cycle the router: running config := saved config, sessions dropped, and its
        data plane built anew from it (also after a reboot of the VM took the namespaces)."""
        self.sim.on_running_change = None
        try:
            self.sim.restart()
            self.net.build(self.router_config())
        finally:
            self.sim.on_running_change = self.net.follow

    def router_log_mark(self) -> int:
        return len(self.sim.command_log)

    def router_config_commands(self, since: int = 0) -> list[str]:
        return config_commands(self.sim.command_log[since:])

    def stop_router(self) -> None:
        if self.sim is not None:
            self.sim.stop()

    # --- the deploy -----------------------------------------------------------------------------
    def inventory(self, **vps_data) -> Path:
        vps = {**self.vm.pyinfra_host_data(), **SHARED_DATA, "uplink_interface": VPS_UPLINK}
        vps.update(vps_data)
        router = {
            "ssh_hostname": "127.0.0.1",
            "ssh_port": self.sim.port,
            "ssh_user": ROUTER_USER,
            "ssh_password": ROUTER_PASSWORD,
            "rtx_admin_password": ROUTER_ADMIN_PASSWORD,
            "ssh_known_hosts_file": str(self.router_known_hosts),
            **SHARED_DATA,
        }
        if self.sim.profile.name == "rtx1200":
            router["rtx_legacy_ssh"] = True  # RTX1200 offers only group1 kex and ssh-rsa
        path = self.workdir / "inventory.py"
        path.write_text(
            "# The lab: the VPS is the lab VM, the router the RTX simulator (written by lab.e2e)\n"
            f"vps = [({VPS_HOST!r}, {vps!r})]\n"
            f"rtx = [({ROUTER_HOST!r}, {router!r})]\n"
        )
        return path

    def deploy(
        self, *args: str, echo: Callable[[str], None] | None = None, timeout: float = 900
    ) -> DeployRun:
        """``pyinfra INVENTORY deploy.py [-y] --json ARGS`` from the repository, like a user.

        ``echo`` receives pyinfra's progress lines as they come (for the demo).
        """
        return run_pyinfra(self.inventory(), *args, echo=echo, timeout=timeout)

    # --- the VPS --------------------------------------------------------------------------------
    def vps_sh(self, command: str, **kwargs) -> str:
        return ssh(self.vm, command, **kwargs).stdout

    def vps_tunnel(self) -> str:
        return self.vps_sh(f"ip -d link show dev {TUNNEL_NAME}")

    def vps_snapshot(self) -> str:
        """What the deploy manages on the VPS, as one comparable text (the link's index too:
        a re-created link would show)."""
        return self.vps_sh(
            f"sha256sum {' '.join(OWNED_FILES)} 2>/dev/null; "
            f"cat /sys/class/net/{TUNNEL_NAME}/ifindex; ip -d link show dev {TUNNEL_NAME}; "
            # chain counters move with every packet: compare the rules, not the counters
            "{ iptables-save; ip6tables-save; } | grep -v '^#' | sed 's/ \\[[0-9:]*\\]$//'; "
            "sysctl net.ipv4.conf.all.forwarding; true"
        )

    def hand_made_tunnel(self) -> str:
        """Turn the VPS's tunnel into the blog's first, hand-made one: its ``.netdev`` without
        ``EncapsulationLimit=none``, the link re-created by networkd. Returns ``ip -d link``."""
        return self.vps_sh(
            f"sed -i '/^EncapsulationLimit=/d' {NETDEV} && "
            f"ip link del dev {TUNNEL_NAME} && systemctl restart systemd-networkd && "
            f"for i in $(seq 1 100); do ip link show dev {TUNNEL_NAME} 2>/dev/null | grep -q ',UP' "
            "&& break; sleep 0.1; done; "
            # networkd re-configures ens3 on a restart: let SSH's address settle
            "/lib/systemd/systemd-networkd-wait-online -q -i ens3 --timeout=30; "
            f"ip -d link show dev {TUNNEL_NAME}",
            timeout=120,
        )

    # --- traffic ------------------------------------------------------------------------------
    @property
    def expected_mss(self) -> int:
        """The MSS both ends clamp to: the tunnel's MTU - 40 (IPv4 and TCP headers)."""
        plane = self.net.plane or parse_router_config(self.router_config())
        limits = [t.mss_limit for t in plane.active_tunnels() if t.mss_limit]
        return min(limits) if limits else 0

    def traffic(self, size: int = 4 << 20, timeout: float = 5) -> TrafficCheck:
        before = self.net.drop_counter()
        ping = self.net.ping()
        transfer = self.net.transfer(size=size, timeout=timeout, vps_tunnel=TUNNEL_NAME)
        drops = self.net.drop_counter() - before
        return TrafficCheck(ping, transfer, drops, self.expected_mss)

    def undeploy_vps(self) -> None:
        """Remove the lab network and everything the deploy placed on the VPS, leaving the VM
        as it booted (for the next user of a shared VM)."""
        ssh(
            self.vm,
            "bash -s",
            input=teardown_script()
            + """
set +e
systemctl stop 'ipip6-guard-*.timer' 2>/dev/null
rm -f /etc/systemd/network/60-ipip6-* /etc/systemd/network/*.network.d/60-ipip6-*.conf
rmdir --ignore-fail-on-non-empty /etc/systemd/network/*.network.d 2>/dev/null
rm -f /etc/sysctl.d/60-ipip6.conf /etc/modules-load.d/ipip6.conf
rm -f /etc/iptables/rules.v4 /etc/iptables/rules.v6 /etc/iptables/*.ipip6-new
rm -rf /run/ipip6-guard
for link in $(ip -o link show type ip6tnl | awk -F': ' '{print $2}' | cut -d@ -f1); do
  [ "$link" = ip6tnl0 ] || ip link del dev "$link"
done
networkctl reload 2>/dev/null
nft flush ruleset
sysctl -qw net.ipv4.conf.all.forwarding=0
true
""",
            timeout=120,
        )

    def stop(self) -> None:
        self.stop_router()
