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

import ipaddress
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ipip6.vps.render import OWNED_FILES
from lab.homenet import (
    BACKUP_VPS_IPV6,
    BACKUP_VPS_UPLINK_IPV4,
    BLOCK_BACKUP,
    INTERNET_HOST,
    PPPOE_ADDRESS,
    ROUTER_FACTORY_CONFIG,
    ROUTER_WAN_IPV6,
    SECOND_SITE,
    UNBLOCK_BACKUP,
    VPS_IPV6,
    VPS_UPLINK,
    VPS_UPLINK_IPV4,
    HomeNet,
    PingResult,
    TransferResult,
    backup_vps_script,
    longest_outage,
    parse_router_config,
    ssh,
    teardown_script,
)
from lab.pyinfra_cli import DeployRun, run_pyinfra

#: The MSS through the lab's PPPoE link: its veth's 1500 - 40 (the lab clamps nothing there).
PPPOE_MSS = 1460
VPS_HOST = "lab-vps"
ROUTER_HOST = "@rtx/127.0.0.1"
TUNNEL_NAME = "tun-home"
NETDEV = f"/etc/systemd/network/60-ipip6-{TUNNEL_NAME}.netdev"
ROUTER_USER, ROUTER_PASSWORD, ROUTER_ADMIN_PASSWORD = "admin", "lab-login", "lab-admin"

#: The tunnel's inner link in the lab: documentation addresses (the default, 169.254.100.0/30,
#: is for real tunnels), the VPS at .1 and the router at .2.
INNER_NETWORK = "192.0.2.0/30"
VPS_INNER, ROUTER_INNER = "192.0.2.1", "192.0.2.2"
#: Both ends' data (group_data/all.py keys), as a user's inventory would set them.
SHARED_DATA = {
    "vps_ipv6": VPS_IPV6,
    "router_ipv6": ROUTER_WAN_IPV6,
    "home_networks": [str(parse_router_config(ROUTER_FACTORY_CONFIG).lan.network)],
    "tunnel_inner_network": INNER_NETWORK,
}
#: A second home on the same VPS (several sites, one VPS): its router's config, near factory
#: settings, with no PPPoE (SECOND_SITE in lab.homenet), and its data.
SECOND_ROUTER_HOST = "@rtx/parents"
SECOND_TUNNEL_NAME = "tun-parents"
SECOND_ROUTER_CONFIG = f"""\
# The lab's second home: another RTX on another IPoE line, the same VPS.
login user admin *
ip lan1 address 192.0.2.129/26
ipv6 lan2 address {SECOND_SITE.wan}/64
ipv6 route default gateway {SECOND_SITE.isp_gateway}
dns host lan1
sshd service on
sshd host key generate *
"""
SECOND_SITE_DATA = {
    "router_ipv6": SECOND_SITE.wan,
    "home_networks": [str(parse_router_config(SECOND_ROUTER_CONFIG).lan.network)],
    "tunnel_name": SECOND_TUNNEL_NAME,
    "tunnel_inner_network": "192.0.2.4/30",
}

#: A second VPS for the first router (one router, two VPSes): a namespace of the lab VM with a
#: real ip6tnl, set up by the lab (a namespace is no host pyinfra can deploy), hence managed
#: elsewhere; its inner link is the lab's next documentation /30.
BACKUP_INNER_NETWORK = "192.0.2.8/30"
BACKUP_VPS_INNER, BACKUP_ROUTER_INNER = "192.0.2.9", "192.0.2.10"
BACKUP_DATA = {
    "rtx_backup_tunnel": {
        "vps_ipv6": BACKUP_VPS_IPV6,
        "tunnel_inner_network": BACKUP_INNER_NETWORK,
        "rtx_vps_managed_elsewhere": True,
    }
}

#: The lab's router probes every second and falls back after 3 misses (the default is 5 x 6 s:
#: the same mechanism, ten times slower).
KEEPALIVE_DATA = {"rtx_keepalive_interval": 1, "rtx_keepalive_count": 3}

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
    expected_source: str = VPS_UPLINK_IPV4

    def problems(self) -> list[str]:
        """What is wrong with traffic that should pass (empty: nothing)."""
        p, t, out = self.ping, self.transfer, []
        if not p.ok:
            out.append(f"ping {INTERNET_HOST}: {p.received}/{p.sent} replies\n{p.output}")
        if not t.ok:
            out.append(f"TCP transfer of {t.size} bytes failed: {t.error or t.client}")
        elif t.source_seen != self.expected_source:
            out.append(f"the internet host saw {t.source_seen}, not {self.expected_source}")
        mss = {
            "SYN at the internet host": t.syn_mss,
            "SYN-ACK sent into the VPS's tunnel": t.synack_vps_mss,
            "SYN-ACK at the home host": t.synack_mss,
        }
        for where, value in mss.items():
            if self.expected_source != VPS_UPLINK_IPV4 and "VPS" in where:
                continue  # by PPPoE: the VPS sees none of it
            if value != self.expected_mss:
                out.append(f"MSS of the {where}: {value}, expected {self.expected_mss}")
        if t.fragmentation():
            out.append(f"fragmentation counters moved: {t.fragmentation()}")
        if self.drops:
            out.append(f"the router dropped {self.drops} packets with a Destination Options header")
        return out

    def trap_problems(self) -> list[str]:
        """What is wrong with traffic that the router should drop (the trap): nothing may come
        back through the tunnel, and the router's drop counter must show why. (With the
        fallback the home's traffic leaves by PPPoE meanwhile: :meth:`problems` with
        ``expected_source`` the PPPoE address checks that.)"""
        out = []
        if self.transfer.source_seen == VPS_UPLINK_IPV4:
            out.append("the TCP transfer passed through the trap (the VPS's address was seen)")
        if self.drops < 1:
            out.append(f"the router's drop counter rose by {self.drops} only")
        return out


#: The VPS "goes down" for the home: it sends nothing into the tunnel (a firewall mistake, a
#: stopped tunnel); a table of its own, beside the ones iptables-nft makes for the deploy.
BLOCK_TUNNEL = (
    "nft -f - <<'NFT'\n"
    "table ip6 lab_block {\n"
    "  chain output { type filter hook output priority 0; meta l4proto 4 counter drop; }\n"
    "}\n"
    "NFT"
)
UNBLOCK_TUNNEL = "nft delete table ip6 lab_block"


@dataclass
class Failover:
    """One VPS outage as the home saw it (VM clock seconds)."""

    switched_after: float  # VPS down → the router's default route on the fallback
    back_after: float  # VPS back → the route on the tunnel again
    without_ipv4: float  # the home's longest time without an answer during the outage
    without_ipv4_back: float  # ... and while switching back
    during: TrafficCheck  # traffic while the VPS is down (by PPPoE)
    after: TrafficCheck  # traffic once it is back (by the tunnel)

    def problems(self) -> list[str]:
        return [f"during the outage: {p}" for p in self.during.problems()] + [
            f"after it: {p}" for p in self.after.problems()
        ]

    def summary(self) -> str:
        return (
            f"fell back to PPPoE {self.switched_after:.1f} s after the VPS went down (the home "
            f"was without IPv4 for {self.without_ipv4:.1f} s), back on the tunnel "
            f"{self.back_after:.1f} s after it returned ({self.without_ipv4_back:.1f} s without)"
        )


@dataclass
class ChainFailover:
    """Both VPSes of one router going down one after the other, then coming back (VM clock
    seconds): the home's IPv4 on the first VPS, the backup, PPPoE, then the first again."""

    to_backup_after: float  # the first VPS down → the route on the backup's tunnel
    to_pppoe_after: float  # the backup down too → the route on PPPoE
    back_after: float  # both back → the route on the first VPS's tunnel
    without_ipv4: dict[str, float]  # per step, the home's longest time without an answer
    on_backup: TrafficCheck
    on_pppoe: TrafficCheck
    after: TrafficCheck

    def problems(self) -> list[str]:
        out = []
        for name, check in (
            ("on the backup VPS", self.on_backup),
            ("on PPPoE", self.on_pppoe),
            ("after both came back", self.after),
        ):
            out += [f"{name}: {p}" for p in check.problems()]
        return out

    def summary(self) -> str:
        gaps = ", ".join(f"{k} {v:.1f} s" for k, v in self.without_ipv4.items())
        return (
            f"to the backup VPS {self.to_backup_after:.1f} s after the first went down, to "
            f"PPPoE {self.to_pppoe_after:.1f} s after the backup did, back on the first "
            f"{self.back_after:.1f} s after both returned (longest without IPv4: {gaps})"
        )


class E2ELab:
    """The lab VM (the VPS), the RTX simulator (the router) and the namespaces in between."""

    def __init__(self, vm, workdir: str | os.PathLike, profile: str = "rtx1200") -> None:
        self.vm = vm
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.profile = profile
        self.net = HomeNet(vm, profile=profile)
        self.sim = None
        #: The second site, once :meth:`start_second_router` ran (and while in the inventory).
        self.second_net = HomeNet(vm, profile=profile, site=SECOND_SITE)
        self.second_sim = None
        self.with_second_site = False
        #: The first router's backup VPS, once :meth:`start_backup_vps` ran (and while in the
        #: router's data).
        self.with_backup = False
        #: More VPS data for the next runs (e.g. port_forwards), on top of the lab's.
        self.vps_data: dict = {}

    # --- the router ---------------------------------------------------------------------------
    def _simulator(self, config: str, state: str, net: HomeNet):
        """A started RTX simulator whose data plane ``net`` follows its running config, line
        by line, as a real router applies it (nothing happens until the namespaces are built);
        its host key recorded in :attr:`router_known_hosts`."""
        from rtxsim import Simulator

        sim = Simulator(
            config,
            profile=self.profile,
            user=ROUTER_USER,
            password=ROUTER_PASSWORD,
            admin_password=ROUTER_ADMIN_PASSWORD,
            state_dir=self.workdir / state,
        )
        sim.start()
        sim.on_running_change = net.follow
        key = sim.host_key
        with self.router_known_hosts.open("a") as known:
            known.write(f"[127.0.0.1]:{sim.port} {key.get_name()} {key.get_base64()}\n")
        return sim

    def start_router(self, config: str = ROUTER_FACTORY_CONFIG):
        self.router_known_hosts.unlink(missing_ok=True)
        self.sim = self._simulator(config, "router-state", self.net)
        return self.sim

    def start_second_router(self, config: str = SECOND_ROUTER_CONFIG):
        """A second home router on its own simulator, data plane and IPv6 path; in the
        inventory from now on (see :attr:`with_second_site`)."""
        self.second_sim = self._simulator(config, "router2-state", self.second_net)
        self.second_net.build(config)
        self.with_second_site = True
        return self.second_sim

    def start_backup_vps(self) -> None:
        """The first router's second VPS (its namespace, IPv6 path, uplink and ip6tnl); the
        router's data names it from now on (see :attr:`with_backup`). Again after any
        ``net.build``, which takes the router's side of its path away."""
        inner = ipaddress.IPv4Interface(f"{BACKUP_VPS_INNER}/30")
        script = backup_vps_script(ROUTER_WAN_IPV6, list(SHARED_DATA["home_networks"]), inner)
        ssh(self.vm, "bash -s", input=script, timeout=120)
        self.with_backup = True

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
        for sim in (self.sim, self.second_sim):
            if sim is not None:
                sim.stop()

    # --- the deploy -----------------------------------------------------------------------------
    def inventory_data(self) -> dict:
        """The VPS's data as :meth:`inventory` writes it."""
        vps = {**self.vm.pyinfra_host_data(), **SHARED_DATA, "uplink_interface": VPS_UPLINK}
        return {**vps, **self.vps_data}

    def inventory(self, **vps_data) -> Path:
        vps = {**self.vm.pyinfra_host_data(), **SHARED_DATA, "uplink_interface": VPS_UPLINK}
        vps.update(self.vps_data)
        vps.update(vps_data)
        router = {
            "ssh_hostname": "127.0.0.1",
            "ssh_port": self.sim.port,
            "ssh_user": ROUTER_USER,
            "ssh_password": ROUTER_PASSWORD,
            "rtx_admin_password": ROUTER_ADMIN_PASSWORD,
            "ssh_known_hosts_file": str(self.router_known_hosts),
            **SHARED_DATA,
            **KEEPALIVE_DATA,
        }
        if self.sim.profile.name == "rtx1200":
            router["rtx_legacy_ssh"] = True  # RTX1200 offers only group1 kex and ssh-rsa
        routers = [(ROUTER_HOST, {**router, **(BACKUP_DATA if self.with_backup else {})})]
        if self.with_second_site and self.second_sim is not None:
            # Several routers on one VPS: each tunnel's keys are its router's, not the VPS's.
            for key in ("router_ipv6", "home_networks", "tunnel_inner_network"):
                vps.pop(key, None)
            second = {**router, "ssh_port": self.second_sim.port, **SECOND_SITE_DATA}
            routers.append((SECOND_ROUTER_HOST, second))
        path = self.workdir / "inventory.py"
        path.write_text(
            "# The lab: the VPS is the lab VM, the router the RTX simulator (written by lab.e2e)\n"
            f"vps = [({VPS_HOST!r}, {vps!r})]\n"
            f"rtx = {routers!r}\n"
        )
        return path

    def deploy(
        self, *args: str, echo: Callable[[str], None] | None = None, timeout: float = 900
    ) -> DeployRun:
        """``pyinfra INVENTORY deploy.py [-y] --json ARGS`` from the repository, like a user.

        ``echo`` receives pyinfra's progress lines as they come (for the demo).
        """
        return run_pyinfra(self.inventory(), *args, echo=echo, timeout=timeout)

    def restore(self, *args: str, timeout: float = 300) -> DeployRun:
        """``pyinfra INVENTORY restore.py -y --json ARGS``, like a user."""
        return run_pyinfra(self.inventory(), *args, target="restore.py", timeout=timeout)

    def check(self, *args: str, timeout: float = 300) -> DeployRun:
        """The health check, ``pyinfra INVENTORY check.py -y --json ARGS``, like a user."""
        return run_pyinfra(self.inventory(), *args, target="check.py", timeout=timeout)

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

    def traffic(
        self, size: int = 4 << 20, timeout: float = 5, by: str = "tunnel", site: int = 1
    ) -> TrafficCheck:
        """Ping and a TCP transfer from home to the internet host, expected ``by`` the
        ``tunnel`` (the VPS's address seen, MSS clamped to the tunnel's) or by ``pppoe`` (the
        router's PPPoE address seen, the PPPoE link's own MSS). ``site=2``: from the second
        home."""
        net = self.net if site == 1 else self.second_net
        tunnel = TUNNEL_NAME if site == 1 else SECOND_TUNNEL_NAME
        before = net.drop_counter()
        ping = net.ping()
        transfer = net.transfer(size=size, timeout=timeout, vps_tunnel=tunnel)
        drops = net.drop_counter() - before
        if by == "pppoe":
            return TrafficCheck(ping, transfer, 0, PPPOE_MSS, expected_source=PPPOE_ADDRESS)
        if by == "backup":  # the backup VPS's tunnel: its address, the router's tunnel clamp
            return TrafficCheck(
                ping, transfer, drops, self.expected_mss, expected_source=BACKUP_VPS_UPLINK_IPV4
            )
        return TrafficCheck(ping, transfer, drops, self.expected_mss)

    def failover(self, timeout: float = 90) -> Failover:
        """The VPS stops answering through the tunnel, then comes back; the home host pings the
        internet host all along. Needs the deploy with a fallback in place."""
        net = self.net
        net.start_probe()
        try:
            down_at = net.now()
            self.vps_sh(BLOCK_TUNNEL)
            try:
                switched = net.wait_keepalive("down", down_at, timeout=timeout)
                during = self.traffic(size=1 << 20, by="pppoe")
            finally:
                up_at = net.now()
                self.vps_sh(UNBLOCK_TUNNEL)
            back = net.wait_keepalive("up", up_at, timeout=timeout)
            after = self.traffic()
            end = net.now()
        finally:
            samples = net.stop_probe()
        return Failover(
            switched_after=switched["time"] - down_at,
            back_after=back["time"] - up_at,
            without_ipv4=longest_outage(samples, down_at, up_at),
            without_ipv4_back=longest_outage(samples, up_at, end),
            during=during,
            after=after,
        )

    def failover_chain(self, timeout: float = 90) -> ChainFailover:
        """The first VPS stops answering, then the backup too, then both come back; the home
        host pings the internet host all along. Needs the deploy with a backup VPS in place."""
        net = self.net
        (route,) = [r for r in net.plane.routes4 if r.dest == "default"]
        first, backup = (k for _, k in route.hops[:2])
        net.start_probe()
        try:
            t0 = net.now()
            self.vps_sh(BLOCK_TUNNEL)
            try:
                to_backup = net.wait_keepalive("down", t0, timeout=timeout, keepalive=first)
                on_backup = self.traffic(size=1 << 20, by="backup")
                t1 = net.now()
                self.vps_sh(BLOCK_BACKUP)
                try:
                    to_pppoe = net.wait_keepalive("down", t1, timeout=timeout, keepalive=backup)
                    on_pppoe = self.traffic(size=1 << 20, by="pppoe")
                finally:
                    t2 = net.now()
                    self.vps_sh(UNBLOCK_BACKUP)
            finally:
                self.vps_sh(UNBLOCK_TUNNEL)
            back = net.wait_keepalive("up", t2, timeout=timeout, keepalive=first)
            after = self.traffic()
            end = net.now()
        finally:
            samples = net.stop_probe()
        return ChainFailover(
            to_backup_after=to_backup["time"] - t0,
            to_pppoe_after=to_pppoe["time"] - t1,
            back_after=back["time"] - t2,
            without_ipv4={
                "to the backup": longest_outage(samples, t0, t1),
                "to PPPoE": longest_outage(samples, t1, t2),
                "back": longest_outage(samples, t2, end),
            },
            on_backup=on_backup,
            on_pppoe=on_pppoe,
            after=after,
        )

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
systemctl disable --quiet ipip6-firewall.service 2>/dev/null
rm -rf /etc/ipip6 /etc/systemd/system/ipip6-firewall.service*
systemctl daemon-reload
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
