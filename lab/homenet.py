"""The rest of the world inside the lab VM: an "internet", the router's data plane, a home LAN.

The lab VM's root network namespace is the VPS. Everything else lives in network namespaces
inside the VM, with documentation prefixes only, so none of it exists outside the VM:

::

    home (netns)          rtx (netns): the router          VPS (VM root ns)        inet (netns)
    eth0 198.51.100.10 -- lan1 198.51.100.1                lab-inet 203.0.113.1 -- eth0 203.0.113.2
      default via .1      lan2 2001:db8:2::1 ------------- lab-rtx 2001:db8:2::fffe
                          tunnel1: ipip6 to 2001:db8:1::1  ens3 2001:db8:1::1 (netplan)
                          IPv4 default into tunnel1        tun-home (the deploy's)
                          pp1 192.0.2.66 (PPPoE, NAT) ----------------------------- eth1 192.0.2.65

    (rtx) isp2 fe80::1 ---------- eth0 2001:db8:4::1 (vps2 netns): a second VPS, on demand
                                  tun-home: ipip6 to the router    uplink 192.0.2.70 -- inet eth2

The ``pp1`` link is the home's old IPv4 over PPPoE: slow in the evening on a real line, and
the way out while the VPS is down. The internet host sees the router's PPPoE address on it
(192.0.2.66) and the VPS's (203.0.113.1) on the tunnel, so a test can tell the two paths apart.
``vps2`` is a backup VPS for the first router (one router, two VPSes;
:func:`backup_vps_script`): a namespace with a real ip6tnl, NATed to its own address
(192.0.2.70), a third way out the internet host tells apart.

The router's data plane is configured from the RTX simulator's config text (read here with a
small reader of its own, independent of the deploy's driver): all of it when the router boots,
and again each time its *running* config changes (:meth:`HomeNet.follow`, wired to the
simulator by :mod:`lab.e2e`), so traffic sees an applied change before it is saved:

- ``ip lanN address A/L``, ``ipv6 lanN address A/L``, ``ipv6 route default gateway G``;
- ``tunnel select N`` + ``tunnel encapsulation ipip`` + ``tunnel endpoint address [LOCAL] REMOTE``
  + ``tunnel enable N``: an ip6tnl ``mode ipip6 … encaplimit none`` (the router sends no
  Tunnel Encapsulation Limit option); ``ip tunnel mtu``; ``ip tunnel tcp mss limit auto|N``:
  the MSS of SYNs in and out of the tunnel clamped to MTU - 40 (or N);
- ``ip tunnel address A/M`` on the tunnel's interface (``ip tunnel remote address`` is the
  other end of that link, reached through it);
- ``pp select 1`` … ``pp enable 1``: the ``pp1`` link up, masqueraded when the block has
  ``ip pp nat descriptor``;
- ``ip route default gateway tunnel N`` (and ``ip route NET gateway tunnel N|pp N|ADDR``);
- ``ip keepalive K icmp-echo INTERVAL COUNT TARGET`` with a route ``gateway G1 keepalive K
  gateway G2 [keepalive K2] weight 0 …``: a process in the router's namespace pings each
  keepalive's TARGET every INTERVAL seconds; after COUNT misses in a row that keepalive is
  down, at the first answer up again, and the route goes to the first gateway, in written
  order, whose keepalive is up (or that has none); each change logged with its time
  (:meth:`HomeNet.keepalive_events`). A keepalive is up when it starts, and several
  ``weight 0`` gateways are an ordered list: the lab's assumptions (the RTX manual says
  neither).

And the RTX1200's quirk: incoming IPv6 packets that carry a Destination Options header are
dropped ("received malformed option"), by an nftables rule with a counter.

Usage (``vm`` is a running :class:`lab.vm.LabVM`)::

    net = HomeNet(vm)
    net.build(router_config_text)   # (re)creates every namespace: what a router boot does
    net.follow(running_config_text) # a config change on the running router (only the router's
                                    # tunnels, routes and filter are redone)
    net.ping().received, net.transfer().throughput_mbit, net.drop_counter()
    net.destroy()
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import time
from dataclasses import dataclass, field
from typing import Protocol

from lab.vm import SSHCommandError

# --- the lab's fixed wiring (what an ISP and the internet would provide) -----------------------

VPS_IPV6 = "2001:db8:1::1"  # on the VM's ens3 (lab netplan): the tunnel's VPS end
VPS_UPLINK = "lab-inet"  # the VPS's IPv4 uplink in the lab: the deploy's uplink_interface
VPS_UPLINK_IPV4 = "203.0.113.1"  # the VPS's public IPv4 address: what NAT makes home look like
INTERNET_HOST = "203.0.113.2"  # a host "on the internet", also the VPS's IPv4 gateway
VPS_TO_ROUTER = "lab-rtx"  # the VPS's side of the IPv6 path to the router
ISP_GATEWAY_IPV6 = "2001:db8:2::fffe"  # the router's IPv6 gateway (the VPS's side of that path)
ROUTER_WAN_IPV6 = "2001:db8:2::1"  # the router's WAN address when its config names none
HOME_HOST_INDEX = 10  # the LAN host is the 10th address of the router's lan1 network
PPPOE_IFNAME = "pp1"  # the router's PPPoE session, as a link of its own in the lab
PPPOE_ADDRESS = "192.0.2.66"  # the router's address on it (IPCP would assign it)
PPPOE_PEER = "192.0.2.65"  # the ISP's end of it, on the internet host
PPPOE_PREFIX = 30
KEEPALIVE_LOG = "/run/lab-rtx-keepalive.log"  # the first site's (Site.keepalive_log)
# A second VPS for the first site's router (one router, two VPSes): a namespace of its own.
BACKUP_VPS_NS = "vps2"
BACKUP_VPS_IPV6 = "2001:db8:4::1"
BACKUP_VPS_UPLINK_IPV4 = "192.0.2.70"  # what the internet host sees from the backup VPS
BACKUP_VPS_GATEWAY = "192.0.2.69"  # the internet host's end of the backup VPS's uplink
BACKUP_TUNNEL_NAME = "tun-home"  # its ip6tnl to the router (its own namespace: the same name)


@dataclass(frozen=True)
class Site:
    """One home site of the lab: a router's namespace, the home host's behind it, and the IPv6
    path between the router's WAN (lan2) and the VPS. The first site also has the lab's PPPoE
    link; a second site on the same VPS (several homes, one VPS) needs none."""

    router_ns: str = "rtx"
    home_ns: str = "home"
    vps_link: str = "lab-rtx"  # the VPS's side of the IPv6 path to this router
    isp_gateway: str = "2001:db8:2::fffe"  # the router's IPv6 gateway (on the VPS's side)
    wan: str = "2001:db8:2::1"  # the router's WAN address when its config names none
    pppoe: bool = True

    @property
    def keepalive_log(self) -> str:
        return f"/run/lab-{self.router_ns}-keepalive.log"

    @property
    def keepalive_pids(self) -> str:
        return f"/run/lab-{self.router_ns}-keepalive-*.pid"


SITE = Site()
#: A second home on the same VPS: its router at 2001:db8:3::1, no PPPoE.
SECOND_SITE = Site("rtx2", "home2", "lab-rtx2", "2001:db8:3::fffe", "2001:db8:3::1", pppoe=False)
SITES = (SITE, SECOND_SITE)
NAMESPACES = ("home", "rtx", "inet", "home2", "rtx2", BACKUP_VPS_NS)
QUIRK_TABLE = "rtx_quirk"
MSS_TABLE = "rtx_mss"
NAT_TABLE = "rtx_nat"
DEFAULT_TUNNEL_MTU = 1280  # an RTX tunnel's MTU without `ip tunnel mtu`

#: The router's config before the deploy: near factory settings, with the lab's LAN and WAN,
#: and the home's IPv4 over PPPoE (the default route the deploy's fallback keeps).
ROUTER_FACTORY_CONFIG = f"""\
# The lab's home router: an RTX close to factory settings, with an SSH login, the home LAN on
# lan1, the IPoE line on lan2 (the address an ISP's RA would give, written out) and IPv4 over
# PPPoE on the same line (pp 1).
login user admin *
ip route default gateway pp 1
ip lan1 address 198.51.100.1/24
ipv6 lan2 address {ROUTER_WAN_IPV6}/64
ipv6 route default gateway {ISP_GATEWAY_IPV6}
pp select 1
 pp always-on on
 pppoe use lan2
 pp auth accept pap chap
 pp auth myname lab-user@isp.example lab-pppoe-password
 ppp lcp mru on 1454
 ip pp mtu 1454
 ip pp nat descriptor 1000
 pp enable 1
nat descriptor type 1000 masquerade
dns host lan1
sshd service on
sshd host key generate *
"""


class RouterConfigError(ValueError):
    pass


class _VM(Protocol):
    def ssh(self, command, user=..., check=..., timeout=..., input=..., connect_timeout=...): ...


def ssh(vm: _VM, command: str, check: bool = True, **kwargs):
    """``vm.ssh`` with one retry when the connection itself fails (exit 255): a restart of
    systemd-networkd (the deploy does one) re-configures the VM's uplink for a moment."""
    proc = vm.ssh(command, check=False, **kwargs)
    if proc.returncode == 255:
        time.sleep(3)
        proc = vm.ssh(command, check=False, **kwargs)
    if check and proc.returncode != 0:
        raise SSHCommandError(proc.returncode, f"ssh root@vm {command}", proc.stdout, proc.stderr)
    return proc


# --- the router's config, read independently of the deploy's driver --------------------------


@dataclass
class Tunnel:
    number: int
    encapsulation: str | None = None
    local: str | None = None
    remote: str | None = None
    mtu: int = DEFAULT_TUNNEL_MTU
    tcp_mss: str = "off"  # "auto", "off" or a number
    enabled: bool = False
    inner: ipaddress.IPv4Interface | None = None  # ip tunnel address

    @property
    def ifname(self) -> str:
        return f"tunnel{self.number}"

    @property
    def is_ipip6(self) -> bool:
        """IPv4 inside IPv6: what the lab builds (other tunnels are reported, not built)."""
        return (
            self.encapsulation == "ipip"
            and self.remote is not None
            and ipaddress.ip_address(self.remote).version == 6
        )

    @property
    def mss_limit(self) -> int | None:
        if self.tcp_mss == "auto":
            return self.mtu - 40
        if self.tcp_mss.isdigit():
            return int(self.tcp_mss)
        return None


@dataclass
class Keepalive:
    number: int
    interval: int
    count: int
    target: str


@dataclass
class Route4:
    """``ip route DEST gateway G1 [keepalive K1] [gateway G2 [keepalive K2] weight 0] …``."""

    dest: str
    gateway: str  # "tunnel 1", "pp 1" or an address
    keepalive: int | None = None
    later: list[tuple[str, int | None]] = field(default_factory=list)
    """The ``weight 0`` gateways after the first, in written order, each with its keepalive."""

    @property
    def hops(self) -> list[tuple[str, int | None]]:
        return [(self.gateway, self.keepalive), *self.later]

    @property
    def fallback(self) -> str | None:
        """The last way out (the first gateway's when there is no other)."""
        return self.later[-1][0] if self.later else None


@dataclass
class RouterPlane:
    """What the router's data plane needs from its config."""

    ipv4: dict[str, ipaddress.IPv4Interface] = field(default_factory=dict)  # lan1 → 198.51.100.1/24
    ipv6: dict[str, ipaddress.IPv6Interface] = field(default_factory=dict)
    routes4: list[Route4] = field(default_factory=list)
    routes6: list[tuple[str, str]] = field(default_factory=list)
    tunnels: dict[int, Tunnel] = field(default_factory=dict)
    keepalives: dict[int, Keepalive] = field(default_factory=dict)
    pp_enabled: set[int] = field(default_factory=set)
    pp_nat: set[int] = field(default_factory=set)
    ignored: list[str] = field(default_factory=list)  # owned by the router, not the data plane

    @property
    def wan_ipv6(self) -> str:
        return self.wan_ipv6_of(SITE)

    def wan_ipv6_of(self, site: Site) -> str:
        wan = self.ipv6.get("lan2")
        return str(wan.ip) if wan is not None else site.wan

    @property
    def lan(self) -> ipaddress.IPv4Interface:
        try:
            return self.ipv4["lan1"]
        except KeyError:
            raise RouterConfigError("the router config has no `ip lan1 address`") from None

    @property
    def home_host(self) -> ipaddress.IPv4Interface:
        net = self.lan.network
        return ipaddress.IPv4Interface(f"{net[HOME_HOST_INDEX]}/{net.prefixlen}")

    def active_tunnels(self) -> list[Tunnel]:
        return [t for t in self.tunnels.values() if t.enabled and t.is_ipip6]

    @property
    def pppoe_up(self) -> bool:
        """The lab wires one PPPoE session: pp 1."""
        return 1 in self.pp_enabled

    def device_of(self, gateway: str) -> list[str] | None:
        """``ip route`` words for an RTX gateway (None: nothing the data plane has)."""
        if gateway.startswith("tunnel "):
            tunnels = {f"tunnel {t.number}": t.ifname for t in self.active_tunnels()}
            return ["dev", tunnels[gateway]] if gateway in tunnels else None
        if gateway.startswith("pp "):
            return ["dev", PPPOE_IFNAME] if gateway == "pp 1" and self.pppoe_up else None
        return ["via", gateway]


_TUNNEL_KEYS = (
    "tunnel encapsulation",
    "tunnel endpoint",
    "ip tunnel mtu",
    "ip tunnel tcp mss limit",
    "ip tunnel address",
    "tunnel enable",
)


# One gateway of a route: `gateway tunnel 1 [keepalive 1] [weight 0]`.
_HOP = r"gateway ((?:tunnel|pp) \d+|[0-9.]+)(?: keepalive (\d+))?(?: weight (\d+))?"


def parse_router_config(text: str) -> RouterPlane:
    """Read a ``show config`` text (as the simulator saves it) into a :class:`RouterPlane`."""
    plane = RouterPlane()
    current: Tunnel | None = None
    pp: int | None = None

    def tunnel(number: str) -> Tunnel:
        n = int(number)
        return plane.tunnels.setdefault(n, Tunnel(n))

    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        indented = raw[:1] in (" ", "\t")
        words = raw.split()
        line = " ".join(words)
        if not indented:
            current = pp = None
        if words[:2] == ["tunnel", "select"]:
            current = None if words[2] == "none" else tunnel(words[2])
            continue
        if words[:2] == ["pp", "select"]:
            pp = None if words[2] == "none" else int(words[2])
            continue
        if words[:2] == ["pp", "enable"] and len(words) == 3:
            plane.pp_enabled.add(int(words[2]))
            continue
        if pp is not None and words[:4] == ["ip", "pp", "nat", "descriptor"]:
            plane.pp_nat.add(pp)
            continue
        if words[:2] == ["tunnel", "enable"] and len(words) == 3:
            tunnel(words[2]).enabled = True  # valid anywhere, shown inside the block
            continue
        if current is not None and line.startswith(_TUNNEL_KEYS):
            if words[:2] == ["tunnel", "encapsulation"]:
                current.encapsulation = words[2]
            elif words[:3] == ["tunnel", "endpoint", "address"]:
                if len(words) == 5:
                    current.local, current.remote = words[3], words[4]
                else:
                    current.remote = words[3]
            elif words[:4] == ["tunnel", "endpoint", "local", "address"]:
                current.local = words[4]
            elif words[:4] == ["tunnel", "endpoint", "remote", "address"]:
                current.remote = words[4]
            elif words[:3] == ["ip", "tunnel", "mtu"]:
                current.mtu = int(words[3])
            elif words[:5] == ["ip", "tunnel", "tcp", "mss", "limit"]:
                current.tcp_mss = words[5]
            elif words[:3] == ["ip", "tunnel", "address"]:
                current.inner = ipaddress.IPv4Interface(words[3])
            else:
                plane.ignored.append(line)
            continue
        m = re.fullmatch(r"ip (lan\d+) address (\S+/\d+)", line)
        if m:
            plane.ipv4[m[1]] = ipaddress.IPv4Interface(m[2])
            continue
        m = re.fullmatch(r"ipv6 (lan\d+) address ([0-9a-fA-F:]+/\d+)", line)
        if m:
            plane.ipv6[m[1]] = ipaddress.IPv6Interface(m[2])
            continue
        m = re.fullmatch(rf"ip route (\S+)((?: {_HOP})+)", line)
        if m:
            hops = [(h[1], int(h[2]) if h[2] else None, h[3]) for h in re.finditer(_HOP, m[2])]
            (first, k, weight), rest = hops[0], hops[1:]
            if weight is None and all(w == "0" for _, _, w in rest):
                later = [(g, kk) for g, kk, _ in rest]
                plane.routes4.append(Route4(m[1], first, k, later))
                continue
        m = re.fullmatch(r"ip keepalive (\d+) icmp-echo (\d+) (\d+) ([0-9.]+)", line)
        if m:
            k = int(m[1])
            plane.keepalives[k] = Keepalive(k, int(m[2]), int(m[3]), m[4])
            continue
        m = re.fullmatch(r"ipv6 route (\S+) gateway ([0-9a-fA-F:]+)(?:%\S+)?", line)
        if m:
            plane.routes6.append((m[1], m[2]))
            continue
        plane.ignored.append(line)
    return plane


# --- building the namespaces -------------------------------------------------------------------


def _q(*words: object) -> str:
    return " ".join(shlex.quote(str(w)) for w in words)


def teardown_script(site: Site | None = None) -> str:
    """Shell that removes every namespace and VPS-side link of the lab, or only those of one
    ``site`` other than the first (idempotent)."""
    sites = SITES if site is None or site == SITE else (site,)
    lines = ["set +e", *(f"rm -f {s.keepalive_pids}" for s in sites)]
    namespaces = [ns for s in sites for ns in (s.home_ns, s.router_ns)]
    links = [s.vps_link for s in sites]
    if site is None or site == SITE:  # the first site's build makes the world anew
        namespaces += [BACKUP_VPS_NS, "inet"]
        links.append(VPS_UPLINK)
    for ns in namespaces:
        lines.append(f"ip netns pids {ns} 2>/dev/null | xargs -r kill -9 2>/dev/null")
        lines.append(f"ip netns del {ns} 2>/dev/null")
    for link in links:
        lines.append(f"ip link del {link} 2>/dev/null")
    if site is None or site == SITE:
        lines.append(f"ip route del default via {INTERNET_HOST} 2>/dev/null")
    lines.append("true")
    return "\n".join(lines) + "\n"


def router_nft(plane: RouterPlane, quirk: bool) -> str:
    """The router's packet filter: the RTX1200's quirk and the tunnels' MSS limits."""
    out = []
    if quirk:
        out += [
            f"table ip6 {QUIRK_TABLE} {{",
            "  chain prerouting {",
            "    type filter hook prerouting priority -300; policy accept;",
            '    exthdr dst exists counter drop comment "RTX1200: received malformed option"',
            "  }",
            "}",
        ]
    if plane.pppoe_up and 1 in plane.pp_nat:
        # `ip pp nat descriptor 1000` with `nat descriptor type 1000 masquerade`: the home's
        # addresses leave as the PPPoE address.
        out += [
            f"table ip {NAT_TABLE} {{",
            "  chain postrouting {",
            "    type nat hook postrouting priority srcnat; policy accept;",
            f'    oifname "{PPPOE_IFNAME}" masquerade',
            "  }",
            "}",
        ]
    clamps = [(t.ifname, t.mss_limit) for t in plane.active_tunnels() if t.mss_limit]
    if clamps:
        out += [
            f"table ip {MSS_TABLE} {{",
            "  chain forward {",
            "    type filter hook forward priority mangle; policy accept;",
        ]
        for ifname, mss in clamps:
            for direction in ("iifname", "oifname"):
                out.append(
                    f'    {direction} "{ifname}" tcp flags & (syn | rst) == syn '
                    f"tcp option maxseg size > {mss} tcp option maxseg size set {mss}"
                )
        out += ["  }", "}"]
    return "\n".join(out) + "\n"


def build_script(plane: RouterPlane, quirk: bool = True, site: Site = SITE) -> str:
    """Shell (run as root in the VM) that (re)creates the lab's namespaces from ``plane``: the
    whole lab for the first site, only its own namespaces for another."""
    r, h = site.router_ns, site.home_ns
    rtx = f"ip -n {r}"
    ip_rtx = ("ip", "-n", r)
    lan = plane.lan
    home = plane.home_host
    lines = [teardown_script(site), "set -e"]
    if site == SITE:
        lines += [
            "ip netns add inet",
            "ip -n inet link set lo up",
            # the internet, behind the VPS's IPv4 uplink
            f"ip link add {VPS_UPLINK} type veth peer name eth0 netns inet",
            f"ip addr add {VPS_UPLINK_IPV4}/24 dev {VPS_UPLINK}",
            f"ip link set {VPS_UPLINK} up",
            f"ip -n inet addr add {INTERNET_HOST}/24 dev eth0",
            "ip -n inet link set eth0 up",
            f"ip route replace default via {INTERNET_HOST} dev {VPS_UPLINK}",
        ]
    lines += [
        *(f"ip netns add {ns}" for ns in (h, r)),
        *(f"ip -n {ns} link set lo up" for ns in (h, r)),
        f": > {site.keepalive_log}",
    ]
    if site.pppoe:
        lines += [
            # the PPPoE session: the router's old way to the internet, NATed to its address
            f"ip link add {PPPOE_IFNAME} netns {r} type veth peer name eth1 netns inet",
            f"{rtx} addr add {PPPOE_ADDRESS}/{PPPOE_PREFIX} dev {PPPOE_IFNAME}",
            f"{rtx} link set {PPPOE_IFNAME} up",
            f"ip -n inet addr add {PPPOE_PEER}/{PPPOE_PREFIX} dev eth1",
            "ip -n inet link set eth1 up",
        ]
    lines += [
        # the IPv6 path between the VPS and the router's WAN (lan2)
        f"ip link add {site.vps_link} type veth peer name lan2 netns {r}",
        f"ip addr add {site.isp_gateway}/64 dev {site.vps_link} nodad",
        f"ip link set {site.vps_link} up",
        # the home LAN (lan1) and its host
        f"{rtx} link add lan1 type veth peer name eth0 netns {h}",
        f"ip -n {h} addr add {home} dev eth0",
        f"ip -n {h} link set eth0 up",
        f"ip -n {h} route add default via {lan.ip}",
        # the router: the kernel's defaults, its interfaces' addresses, then the rest
        f"ip netns exec {r} sysctl -qw net.ipv4.conf.all.forwarding=1",
        f"ip netns exec {r} sysctl -qw net.ipv6.conf.all.accept_ra=0",
        f"{rtx} link set lan1 up",
        f"{rtx} link set lan2 up",
    ]
    for ifname, addr in plane.ipv4.items():
        if ifname in ("lan1", "lan2"):
            lines.append(_q(*ip_rtx, "addr", "add", addr, "dev", ifname))
    if "lan2" not in plane.ipv6:  # no address in the config: the one the ISP's RA would give
        lines.append(_q(*ip_rtx, "addr", "add", f"{site.wan}/64", "dev", "lan2", "nodad"))
    for ifname, addr6 in plane.ipv6.items():
        if ifname in ("lan1", "lan2"):
            lines.append(_q(*ip_rtx, "addr", "add", addr6, "dev", ifname, "nodad"))
    return "\n".join(lines) + "\n" + router_script(plane, quirk, site)


def router_script(plane: RouterPlane, quirk: bool = True, site: Site = SITE) -> str:
    """Shell that sets the router namespace's tunnels, routes and filter to what ``plane`` says,
    from whatever they were (its interfaces and their addresses stay): a config change taking
    effect on a running router."""
    r = site.router_ns
    ip_rtx = ("ip", "-n", r)
    lines = [
        "set -e",
        # what an earlier config made: keepalives, tunnels (their routes go with them), routes
        f'for f in {site.keepalive_pids}; do [ -e "$f" ] && '
        'kill "$(cat "$f")" 2>/dev/null; rm -f "$f"; done',
        f"for t in $(ip -n {r} -o link show type ip6tnl | awk -F': ' '{{print $2}}' | cut -d@ -f1)"
        f'; do [ "$t" = ip6tnl0 ] || ip -n {r} link del dev "$t"; done',
        f"ip -n {r} -4 route flush scope global 2>/dev/null || true",  # none yet: not an error
        f"ip netns exec {r} nft flush ruleset",
    ]
    routes6 = list(plane.routes6)
    if not any(dest == "default" for dest, _ in routes6):
        routes6.append(("default", site.isp_gateway))
    for dest, gateway in routes6:
        lines.append(_q(*ip_rtx, "-6", "route", "replace", dest, "via", gateway))
    # The filter first: no packet reaches a tunnel of the router unfiltered.
    lines.append(f"ip netns exec {r} nft -f - <<'NFT'\n{router_nft(plane, quirk)}NFT")
    for t in plane.active_tunnels():
        local = t.local or plane.wan_ipv6_of(site)
        lines.append(
            _q(*ip_rtx, "link", "add", t.ifname, "type", "ip6tnl", "mode", "ipip6")
            + " "
            + _q("local", local, "remote", t.remote, "encaplimit", "none")
        )
        lines.append(_q(*ip_rtx, "link", "set", t.ifname, "mtu", t.mtu, "up"))
        if t.inner is not None:
            lines.append(_q(*ip_rtx, "addr", "add", t.inner, "dev", t.ifname))
    for route in plane.routes4:
        # The gateways the data plane has, each with its keepalive (a missing keepalive line:
        # the gateway counts as down, as on the RTX, where it is never valid).
        hops = []
        for gateway, number in route.hops:
            device = plane.device_of(gateway)
            if device is None:
                continue
            keepalive = plane.keepalives.get(number) if number is not None else None
            if number is not None and keepalive is None:
                continue
            hops.append((" ".join(device), keepalive))
        if not hops:
            continue
        lines.append(_q(*ip_rtx, "route", "replace", route.dest, *hops[0][0].split()))
        probes = {k.number: k for _, k in hops if k is not None}
        if probes and len(hops) > 1:
            spec = {
                "dest": route.dest,
                "hops": [[device, k.number if k else None] for device, k in hops],
                "keepalives": {n: [k.interval, k.count, k.target] for n, k in probes.items()},
                "log": site.keepalive_log,
                "pidfile": site.keepalive_pids.replace("*", str(min(probes))),
            }
            lines.append(
                _q("ip", "netns", "exec", r, "setsid", "python3", "-c", _KEEPALIVE)
                + " "
                + _q(json.dumps(spec, sort_keys=True))
                + " </dev/null >/dev/null 2>&1 &"
            )
    return "\n".join(lines) + "\n"


# The router's `ip keepalive`, run in its namespace for one route: every keepalive the route
# names pings its target every INTERVAL seconds; COUNT misses in a row and it is down, one
# answer and it is up. The route goes to the first gateway, in written order, whose keepalive
# is up (or that has none): the RTX manual's "weight 0 only while no other is valid", with the
# lab's reading of several weight-0 gateways as an ordered list (the manual does not say).
_KEEPALIVE = r"""
import json, os, subprocess, sys, time
spec = json.loads(sys.argv[1])
dest, hops, log = spec["dest"], spec["hops"], spec["log"]
probes = {int(n): v for n, v in spec["keepalives"].items()}
with open(spec["pidfile"], "w") as f:
    f.write(str(os.getpid()))
def say(event, number, **more):
    entry = dict(time=time.time(), keepalive=number, event=event, **more)
    with open(log, "a") as f:
        f.write(json.dumps(entry) + "\n")
up = {n: True for n in probes}
misses = {n: 0 for n in probes}
def chosen():
    return next((d for d, n in hops if n is None or up[n]), hops[-1][0])
route = chosen()
for n, (_, _, target) in sorted(probes.items()):
    say("start", n, target=target)
interval = min(v[0] for v in probes.values())
while True:
    t0 = time.monotonic()
    pings = {n: subprocess.Popen(["ping", "-n", "-q", "-c", "1", "-W", str(max(1, v[0])), v[2]],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for n, v in probes.items()}
    changed = []
    for n, p in sorted(pings.items()):
        ok = p.wait() == 0
        misses[n] = 0 if ok else misses[n] + 1
        if up[n] and misses[n] >= probes[n][1]:
            up[n] = False
            changed.append(("down", n))
        elif ok and not up[n]:
            up[n] = True
            changed.append(("up", n))
    if changed:
        new = chosen()
        if new != route:
            subprocess.run(["ip", "route", "replace", dest] + new.split())
            route = new
        for event, n in changed:
            say(event, n, route=route)
    time.sleep(max(0.0, interval - (time.monotonic() - t0)))
"""


# --- probes --------------------------------------------------------------------------------------

# Runs as root in the VM (python3 of the image): counters, captures, a TCP transfer from the home
# host to the internet host, all in one SSH round trip.
_TRANSFER_PROBE = r"""
import hashlib, json, os, re, subprocess, sys, time

size, port, timeout = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
ROUTER_NS, HOME_NS = sys.argv[6], sys.argv[7]
NS = ["", ROUTER_NS, HOME_NS, "inet"]

def in_ns(ns, argv):
    return (["ip", "netns", "exec", ns] if ns else []) + argv

def counters():
    out = {}
    for ns in NS:
        text = subprocess.run(in_ns(ns, ["cat", "/proc/net/snmp", "/proc/net/snmp6"]),
                              capture_output=True, text=True).stdout
        values = {}
        lines = text.splitlines()
        for head, vals in zip(lines, lines[1:]):
            if head.startswith("Ip: ") and vals.startswith("Ip: "):
                values.update(zip(head.split()[1:], map(int, vals.split()[1:])))
        for line in lines:
            parts = line.split()
            if len(parts) == 2 and parts[0].startswith("Ip6"):
                values[parts[0]] = int(parts[1])
        keep = ("FragCreates", "FragFails", "ReasmReqds", "Ip6FragCreates", "Ip6FragFails",
                "Ip6ReasmReqds")
        out[{"": "vps", ROUTER_NS: "rtx", HOME_NS: "home"}.get(ns, ns)] = {
            k: values.get(k, 0) for k in keep}
    return out

def capture(ns, ifname, expr):
    p = subprocess.Popen(in_ns(ns, ["tcpdump", "-i", ifname, "-nn", "-l", "-c", "1", expr]),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = p.stderr.readline()
        if "listening on" in line or not line:
            break
    return p

def finish(p, deadline):
    try:
        out, _ = p.communicate(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        return None
    return out.strip() or None

SERVER = r'''
import hashlib, json, socket, sys, time
port, timeout = int(sys.argv[1]), float(sys.argv[2])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port)); s.listen(1); s.settimeout(timeout)
print("ready", flush=True)
try:
    c, peer = s.accept()
    c.settimeout(timeout)
    mss = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
    h, n = hashlib.sha256(), 0
    while True:
        b = c.recv(1 << 16)
        if not b:
            break
        h.update(b); n += len(b)
    c.sendall(h.hexdigest().encode()); c.close()
    print(json.dumps({"peer": peer[0], "bytes": n, "sha256": h.hexdigest(), "mss": mss}))
except Exception as exc:
    print(json.dumps({"error": "%s: %s" % (type(exc).__name__, exc)}))
'''

CLIENT = r'''
import hashlib, json, os, socket, sys, time
host, port, size, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
data = os.urandom(size)
res = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": size}
t0 = time.monotonic()
try:
    c = socket.create_connection((host, port), timeout=timeout)
    t1 = time.monotonic()
    res["connect_ms"] = (t1 - t0) * 1000
    res["mss"] = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
    c.settimeout(timeout + size / 1e6)
    c.sendall(data); c.shutdown(socket.SHUT_WR)
    reply = b""
    while True:
        b = c.recv(128)
        if not b:
            break
        reply += b
    res["seconds"] = time.monotonic() - t1
    res["echo_sha256"] = reply.decode()
except Exception as exc:
    res["error"] = "%s: %s" % (type(exc).__name__, exc)
print(json.dumps(res))
'''

before = counters()
SYN = "tcp dst port %d and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn" % port
SYNACK = "tcp src port %d and tcp[tcpflags] & (tcp-syn|tcp-ack) == (tcp-syn|tcp-ack)" % port
syn = capture("inet", "any", SYN)  # by the VPS (eth0) or by PPPoE (eth1)
synack = capture(HOME_NS, "eth0", SYNACK)
synack_vps = capture("", sys.argv[5], SYNACK)
server = subprocess.Popen(in_ns("inet", ["python3", "-c", SERVER, str(port), str(timeout + 2)]),
                          stdout=subprocess.PIPE, text=True)
server.stdout.readline()
client = subprocess.run(
    in_ns(HOME_NS, ["python3", "-c", CLIENT, sys.argv[4], str(port), str(size), str(timeout)]),
    capture_output=True, text=True)
try:
    server_out = server.communicate(timeout=timeout + 10)[0]
except subprocess.TimeoutExpired:
    server.kill(); server_out = server.communicate()[0]
deadline = time.monotonic() + 3  # the captures have seen their packet by now, or never will
result = {
    "client": json.loads(client.stdout) if client.stdout.strip() else {"error": client.stderr},
    "server": json.loads(server_out) if server_out.strip() else {"error": "no output"},
    "syn": finish(syn, deadline), "synack": finish(synack, deadline),
    "synack_vps": finish(synack_vps, deadline),
    "counters_before": before, "counters_after": counters(),
}
print(json.dumps(result))
"""


def longest_outage(samples: list[tuple[float, bool]], start: float, end: float) -> float:
    """The longest time without an answer between ``start`` and ``end`` (VM times): from the
    last answer before the gap (or ``start``) to the first one after it (or ``end``)."""
    answered = [t for t, ok in samples if ok and start <= t <= end]
    marks = [start, *answered, end]
    return max(b - a for a, b in zip(marks, marks[1:], strict=False))


@dataclass
class PingResult:
    sent: int
    received: int
    rtt_avg_ms: float | None
    output: str

    @property
    def ok(self) -> bool:
        return self.sent > 0 and self.received == self.sent


@dataclass
class TransferResult:
    size: int
    client: dict
    server: dict
    syn: str | None  # the SYN as the internet host saw it (tcpdump line)
    synack: str | None  # the SYN-ACK as the home host saw it
    synack_vps: str | None  # the SYN-ACK as the VPS sent it into the tunnel
    counters_before: dict
    counters_after: dict

    @property
    def ok(self) -> bool:
        c, s = self.client, self.server
        return (
            "error" not in c
            and "error" not in s
            and c.get("echo_sha256") == c.get("sha256") == s.get("sha256")
            and s.get("bytes") == self.size
        )

    @property
    def error(self) -> str | None:
        return self.client.get("error") or self.server.get("error")

    @property
    def source_seen(self) -> str | None:
        """The source address the internet host saw: the VPS's, through NAT."""
        return self.server.get("peer")

    @property
    def seconds(self) -> float | None:
        return self.client.get("seconds")

    @property
    def throughput_mbit(self) -> float | None:
        if not self.ok or not self.seconds:
            return None
        return self.size * 8 / self.seconds / 1e6

    @staticmethod
    def _mss(line: str | None) -> int | None:
        m = re.search(r"\bmss (\d+)", line or "")
        return int(m[1]) if m else None

    @property
    def syn_mss(self) -> int | None:
        """MSS option of the home host's SYN on arrival at the internet host."""
        return self._mss(self.syn)

    @property
    def synack_mss(self) -> int | None:
        """MSS option of the internet host's SYN-ACK on arrival at the home host."""
        return self._mss(self.synack)

    @property
    def synack_vps_mss(self) -> int | None:
        """MSS option of the SYN-ACK as the VPS sends it into its tunnel (its own clamp)."""
        return self._mss(self.synack_vps)

    def fragmentation(self) -> dict[str, dict[str, int]]:
        """Per namespace, the fragmentation counters that moved during the transfer."""
        moved: dict[str, dict[str, int]] = {}
        for ns, after in self.counters_after.items():
            before = self.counters_before.get(ns, {})
            diff = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
            if diff:
                moved[ns] = diff
        return moved


def backup_vps_script(
    router_wan: str, home_networks: list[str], inner: ipaddress.IPv4Interface, mtu: int = 1460
) -> str:
    """Shell that (re)creates the lab's second VPS: a namespace with an IPv6 path to the first
    site's router, an IPv4 uplink to the internet host (NATed to its own address) and a real
    ip6tnl to the router, set up the way the deploy sets up a VPS (``encaplimit none``, the
    inner address, the home networks routed into it, the MSS clamped). Its path to the router
    is the lab's wiring, like ``lab-rtx``: the ISP's network, written as a route in the
    router's namespace, not a line of the router's config."""
    v, r = BACKUP_VPS_NS, SITE.router_ns
    mss = mtu - 40
    lines = [
        "set +e",
        f"ip netns pids {v} 2>/dev/null | xargs -r kill -9 2>/dev/null",
        f"ip netns del {v} 2>/dev/null",
        f"ip -n {r} link del isp2 2>/dev/null",
        "ip -n inet link del eth2 2>/dev/null",
        "set -e",
        f"ip netns add {v}",
        f"ip -n {v} link set lo up",
        f"ip netns exec {v} sysctl -qw net.ipv4.conf.all.forwarding=1",
        # the IPv6 path: the router reaches 2001:db8:4::/64 over its isp2 link
        f"ip link add isp2 netns {r} type veth peer name eth0 netns {v}",
        f"ip -n {r} addr add fe80::1/64 dev isp2 nodad",
        f"ip -n {r} link set isp2 up",
        f"ip -n {v} addr add {BACKUP_VPS_IPV6}/64 dev eth0 nodad",
        f"ip -n {v} addr add fe80::2/64 dev eth0 nodad",
        f"ip -n {v} link set eth0 up",
        f"ip -n {r} -6 route replace 2001:db8:4::/64 via fe80::2 dev isp2",
        f"ip -n {v} -6 route replace default via fe80::1 dev eth0",
        # its IPv4 uplink to the internet host
        f"ip link add eth2 netns inet type veth peer name uplink netns {v}",
        f"ip -n inet addr add {BACKUP_VPS_GATEWAY}/30 dev eth2",
        "ip -n inet link set eth2 up",
        f"ip -n {v} addr add {BACKUP_VPS_UPLINK_IPV4}/30 dev uplink",
        f"ip -n {v} link set uplink up",
        f"ip -n {v} route replace default via {BACKUP_VPS_GATEWAY}",
        # the tunnel, a real ip6tnl
        _q("ip", "-n", v, "link", "add", BACKUP_TUNNEL_NAME, "type", "ip6tnl", "mode", "ipip6")
        + " "
        + _q("local", BACKUP_VPS_IPV6, "remote", router_wan, "encaplimit", "none"),
        _q("ip", "-n", v, "link", "set", BACKUP_TUNNEL_NAME, "mtu", mtu, "up"),
        _q("ip", "-n", v, "addr", "add", inner, "dev", BACKUP_TUNNEL_NAME),
        *(
            _q("ip", "-n", v, "route", "replace", net, "dev", BACKUP_TUNNEL_NAME)
            for net in home_networks
        ),
        f"ip netns exec {v} nft -f - <<'NFT'",
        "table ip backup_vps {",
        "  chain postrouting {",
        "    type nat hook postrouting priority srcnat; policy accept;",
        '    oifname "uplink" masquerade',
        "  }",
        "  chain forward {",
        "    type filter hook forward priority mangle; policy accept;",
        f'    oifname "{BACKUP_TUNNEL_NAME}" tcp flags & (syn | rst) == syn '
        f"tcp option maxseg size > {mss} tcp option maxseg size set {mss}",
        "  }",
        "}",
        "NFT",
    ]
    return "\n".join(lines) + "\n"


#: The backup VPS "goes down": it sends nothing into its tunnel (like BLOCK_TUNNEL on the VPS).
BLOCK_BACKUP = (
    f"ip netns exec {BACKUP_VPS_NS} nft -f - <<'NFT'\n"
    "table ip6 lab_block {\n"
    "  chain output { type filter hook output priority 0; meta l4proto 4 counter drop; }\n"
    "}\n"
    "NFT"
)
UNBLOCK_BACKUP = f"ip netns exec {BACKUP_VPS_NS} nft delete table ip6 lab_block"


class HomeNet:
    """The lab's namespaces in a running lab VM (see the module's docstring)."""

    def __init__(self, vm: _VM, profile: str = "rtx1200", site: Site = SITE) -> None:
        self.vm = vm
        self.site = site
        #: The RTX1200 drops IPv6 packets with a Destination Options header; newer models do not.
        self.quirk = profile == "rtx1200"
        self.plane: RouterPlane | None = None
        self._router_script: str | None = None
        #: Config changes the data plane could not follow (see :meth:`follow`): for tests to
        #: assert on, since they happen in the simulator's session thread.
        self.follow_errors: list[str] = []

    def _sh(self, script: str, timeout: float = 120, check: bool = True):
        return ssh(self.vm, "bash -s", input=script, timeout=timeout, check=check)

    def build(self, router_config: str) -> RouterPlane:
        """(Re)create every namespace, the router's data plane from ``router_config``."""
        plane = parse_router_config(router_config)
        self._sh(build_script(plane, quirk=self.quirk, site=self.site))
        self.plane = plane
        self._router_script = router_script(plane, quirk=self.quirk, site=self.site)
        return plane

    def follow(self, router_config: str) -> None:
        """Make the router's data plane what ``router_config`` (its running config, just
        changed) says, the way a router applies a config line at once. Only when the change
        matters to the data plane (most lines of a tunnel's block do not until ``tunnel
        enable``); nothing before :meth:`build`. Errors are kept in :attr:`follow_errors`."""
        if self.plane is None:
            return
        try:
            plane = parse_router_config(router_config)
            script = router_script(plane, quirk=self.quirk, site=self.site)
            if script != self._router_script:
                self._sh(script, timeout=60)
                self._router_script = script
            self.plane = plane
        except Exception as exc:  # the simulator's session thread must not die of it
            self.follow_errors.append(f"{type(exc).__name__}: {exc}")

    def destroy(self) -> None:
        self._sh(teardown_script(self.site), check=False)
        self.plane = None
        self._router_script = None

    @property
    def home_host(self) -> str:
        plane = self.plane or parse_router_config(ROUTER_FACTORY_CONFIG)
        return str(plane.home_host.ip)

    def ping(self, count: int = 3, target: str = INTERNET_HOST, wait: float = 2) -> PingResult:
        """``ping`` from the home host."""
        proc = ssh(
            self.vm,
            f"ip netns exec {self.site.home_ns} ping -n -c {count} -i 0.2 -W {wait:g} "
            f"{shlex.quote(target)}",
            check=False,
            timeout=60 + count * wait,
        )
        out = proc.stdout + proc.stderr
        m = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", out)
        sent, received = (int(m[1]), int(m[2])) if m else (count, 0)
        rtt = re.search(r"= [\d.]+/([\d.]+)/", out)
        return PingResult(sent, received, float(rtt[1]) if rtt else None, out.strip())

    def transfer(
        self,
        size: int = 4 << 20,
        port: int = 5001,
        timeout: float = 5,
        target: str = INTERNET_HOST,
        vps_tunnel: str = "tun-home",
    ) -> TransferResult:
        """Send ``size`` random bytes over TCP from the home host to the internet host; capture
        the handshake's MSS options where they arrive (and where the VPS sends them into
        ``vps_tunnel``) and the fragmentation counters of every namespace around it."""
        proc = ssh(
            self.vm,
            _q(
                "python3",
                "-",
                size,
                port,
                timeout,
                target,
                vps_tunnel,
                self.site.router_ns,
                self.site.home_ns,
            ),
            input=_TRANSFER_PROBE,
            timeout=120 + size / 1e5,
        )
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        return TransferResult(
            size=size,
            client=data["client"],
            server=data["server"],
            syn=data["syn"],
            synack=data["synack"],
            synack_vps=data["synack_vps"],
            counters_before=data["counters_before"],
            counters_after=data["counters_after"],
        )

    def drop_counter(self) -> int:
        """Packets the router dropped for carrying a Destination Options header."""
        if not self.quirk:
            return 0
        out = ssh(
            self.vm,
            f"ip netns exec {self.site.router_ns} nft -j list chain ip6 {QUIRK_TABLE} prerouting",
            timeout=60,
        ).stdout
        for item in json.loads(out)["nftables"]:
            for expr in item.get("rule", {}).get("expr", []):
                if "counter" in expr:
                    return int(expr["counter"]["packets"])
        raise RuntimeError(f"no counter in the router's quirk chain: {out}")

    # --- the fallback: keepalive events and the home's view of an outage ----------------------
    def keepalive_events(self, since: float = 0.0) -> list[dict]:
        """The keepalives' log since VM time ``since``: ``{"time", "keepalive", "event":
        "start" | "down" | "up", "route"}``."""
        log = self.site.keepalive_log
        out = ssh(self.vm, f"cat {log} 2>/dev/null; true", timeout=60).stdout
        events = [json.loads(line) for line in out.splitlines() if line.strip()]
        return [e for e in events if e["time"] >= since]

    def wait_keepalive(
        self, event: str, since: float, timeout: float = 90, keepalive: int | None = None
    ) -> dict:
        """The first keepalive ``event`` after VM time ``since`` (of keepalive number
        ``keepalive``, or any; polled; AssertionError with the log and the namespaces when it
        does not come within ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [
                e
                for e in self.keepalive_events(since)
                if e["event"] == event and keepalive in (None, e["keepalive"])
            ]
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no keepalive {event!r} within {timeout:g} s: "
                    f"{self.keepalive_events()}\n{self.describe()}"
                )
            time.sleep(0.5)

    def now(self) -> float:
        """The VM's clock (the keepalive log and the probe use it)."""
        return float(ssh(self.vm, "date +%s.%N", timeout=60).stdout.strip())

    def start_probe(self, interval: float = 0.2, target: str = INTERNET_HOST) -> None:
        """From the home host, one ping every ``interval`` seconds until :meth:`stop_probe`,
        each a new process: a new ICMP id, so a new flow for the router's NAT, as a new
        connection from home would be."""
        script = (
            f"while :; do if ip netns exec {self.site.home_ns} ping -n -q -c 1 -W 1 "
            f"{shlex.quote(target)} "
            '>/dev/null 2>&1; then r=ok; else r=miss; fi; echo "$r $(date +%s.%N)"; '
            f"sleep {interval:g}; done"
        )
        log, pid = self._probe_files
        ssh(
            self.vm,
            f"rm -f {log}; setsid bash -c {shlex.quote(script)} >{log} "
            f"2>/dev/null </dev/null & echo $! > {pid}",
            timeout=60,
        )

    @property
    def _probe_files(self) -> tuple[str, str]:
        stem = f"/run/lab-{self.site.home_ns}-probe"
        return f"{stem}.log", f"{stem}.pid"

    def stop_probe(self) -> list[tuple[float, bool]]:
        """Stop the probe; its samples as (VM time, answered)."""
        log, pid = self._probe_files
        out = ssh(
            self.vm,
            f'kill -- -"$(cat {pid})" 2>/dev/null; sleep 0.3; cat {log}; rm -f {pid} {log}',
            timeout=60,
        ).stdout
        samples = []
        for line in out.splitlines():
            words = line.split()
            if len(words) == 2 and words[0] in ("ok", "miss"):
                samples.append((float(words[1]), words[0] == "ok"))
        return samples

    def describe(self) -> str:
        """The namespaces' links and routes, for error messages."""
        return ssh(
            self.vm,
            'for ns in rtx home rtx2 home2 inet; do echo "== $ns"; ip -n $ns -br addr; '
            "ip -n $ns -d link show type ip6tnl 2>/dev/null | grep -E 'ip6tnl|encap'; "
            "ip -n $ns route; ip -n $ns -6 route; done; echo '== vps'; "
            "ip -d link show type ip6tnl | grep -E 'ip6tnl|encap'; ip route",
            check=False,
            timeout=60,
        ).stdout
