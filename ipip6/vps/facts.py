"""Facts about the VPS, each a single round trip so a no-op deploy stays cheap.

pyinfra's ``files.put`` asks two facts per file (stat, then checksum); these ask one command for
all the files an operation manages, and one for the packages plus the state of ufw.
:class:`VpsState` asks all of it at once: the one read a no-op deploy makes.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from pyinfra.api import FactBase

_MISSING = "ipip6-missing"
_OWNED = "ipip6-owned"
_PENDING = "ipip6-pending"
_HEADED = "ipip6-headed"
_LINE = "ipip6-line-found"
#: How every file this project writes starts (ipip6.vps.render.HEADER).
_HEADER = "# Managed by pyinfra-ipip6"


class ManagedFiles(FactBase):
    """SHA-256 of each given path (``None`` when absent), which files match ``owned_globs``,
    which of the ``timers`` (systemd timer units) are armed, which of the ``headed`` paths
    start with this project's header (written by it), and whether the file of ``line_in``
    (path, line) holds that line as a whole line.

    Returns ``{"sums": {path: sha256 | None}, "owned": [path, ...], "pending": [unit, ...],
    "headed": [path, ...], "line_found": bool}``.
    The globs find files this project placed earlier under other names (a renamed tunnel), so
    they can be removed; an armed rollback timer means an earlier run died unconfirmed.
    """

    @staticmethod
    def default() -> dict:
        return {"sums": {}, "owned": [], "pending": [], "headed": [], "line_found": False}

    def command(
        self,
        paths: Iterable[str],
        owned_globs: Iterable[str] = (),
        timers: Iterable[str] = (),
        headed: Iterable[str] = (),
        line_in: tuple[str, str] | None = None,
    ) -> str:
        quoted = " ".join(shlex.quote(p) for p in paths)
        # Globs are ours (fixed prefixes + validated names): left unquoted on purpose.
        globs = " ".join(owned_globs)
        script = (
            f"for f in {quoted}; do "
            f'if [ -f "$f" ]; then sha256sum "$f"; else echo "{_MISSING} $f"; fi; done'
        )
        if globs:
            script += f'; for f in {globs}; do [ -e "$f" ] && echo "{_OWNED} $f"; done'
        for path in headed:
            quoted = shlex.quote(path)
            mark = f"grep -q '^{_HEADER}' && echo {_HEADED} {quoted}"
            script += f"; head -n 1 {quoted} 2>/dev/null | {mark}"
        if line_in is not None:
            path, line = (shlex.quote(x) for x in line_in)
            script += f"; grep -qxF {line} {path} 2>/dev/null && echo {_LINE}"
        for unit in timers:
            quoted = shlex.quote(unit)
            script += f"; systemctl is-active --quiet {quoted}.timer && echo {_PENDING} {quoted}"
        return script + "; true"

    def process(self, output: list[str]) -> dict:
        sums: dict[str, str | None] = {}
        owned: list[str] = []
        pending: list[str] = []
        headed: list[str] = []
        line_found = False
        for line in output:
            head, _, path = line.partition(" ")
            if head == _MISSING:
                sums[path] = None
            elif head == _OWNED:
                owned.append(path)
            elif head == _PENDING:
                pending.append(path)
            elif head == _HEADED:
                headed.append(path)
            elif head == _LINE:
                line_found = True
            elif path:
                # sha256sum prints "<sum>  <path>": two spaces, the partition kept one.
                sums[path.lstrip(" ")] = head
        return {
            "sums": sums,
            "owned": owned,
            "pending": pending,
            "headed": headed,
            "line_found": line_found,
        }


class DebPackagesAndUfw(FactBase):
    """Which of the given Debian packages are installed, and whether ufw is active.

    Returns ``{"installed": {name: bool}, "ufw_active": bool}``.
    """

    @staticmethod
    def default() -> dict:
        return {"installed": {}, "ufw_active": False}

    def command(self, packages: Iterable[str]) -> str:
        names = " ".join(shlex.quote(p) for p in packages)
        return (
            f"dpkg-query -W -f='pkg ${{Package}} ${{db:Status-Abbrev}}\\n' {names} 2>/dev/null; "
            "if command -v ufw >/dev/null 2>&1; then "
            "ufw status 2>/dev/null | head -n 1 | sed 's/^/ufw /'; fi; true"
        )

    def process(self, output: list[str]) -> dict:
        installed: dict[str, bool] = {}
        ufw_active = False
        for line in output:
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "pkg":
                # db:Status-Abbrev is "ii " for installed; "rc", "un" etc. are not.
                installed[parts[1]] = len(parts) >= 3 and parts[2].startswith("ii")
            elif parts[:1] == ["ufw"]:
                ufw_active = "active" in parts and "inactive" not in parts
        return {"installed": installed, "ufw_active": ufw_active}


# The connection this command came over, "client port server port". sudo (and su) reset the
# environment, so then it is read from the nearest ancestor that still has it: the login
# shell or sudo itself, both this session's processes (reading their environ takes root,
# which is what sudo gave).
_SSH_CONNECTION = (
    'c=$SSH_CONNECTION; p=$PPID; while [ -z "$c" ] && [ "${p:-0}" -gt 1 ]; do '
    "c=$(tr '\\0' '\\n' < /proc/$p/environ 2>/dev/null | sed -n 's/^SSH_CONNECTION=//p'); "
    "p=$(sed -n 's/^PPid:[[:space:]]*//p' /proc/$p/status 2>/dev/null); done; "
    'echo "ssh $c"'
)


class VpsNetwork(FactBase):
    """What the VPS's network looks like before any change, in one round trip (no root needed).

    Returns ``{"links": {name: kind}, "ipv4": [address], "ipv4_links": {address: link},
    "gateways": [address],
    "owned_netdevs": [tunnel name], "ssh_server_port": int | None}``: every interface with its
    kind (``ip -d``'s word: ``ip6tnl``, ``veth``…, ``""`` for plain devices), the VPS's own IPv4
    addresses and default gateways, the tunnels this project placed a ``.netdev`` for, and the
    port the SSH connection running this command arrived on (``$SSH_CONNECTION``: run it
    without sudo, which drops that variable).
    """

    @staticmethod
    def default() -> dict:
        return {
            "links": {},
            "ipv4": [],
            "ipv4_links": {},
            "gateways": [],
            "owned_netdevs": [],
            "ssh_server_port": None,
        }

    def command(self, netdev_glob: str) -> str:
        # The glob is ours (a fixed path and prefix): left unquoted on purpose.
        return (
            f"{_SSH_CONNECTION}; "
            "ip -o -d link show | sed 's/^/link /'; "
            "ip -o -4 addr show | sed 's/^/addr /'; "
            "ip -4 route show default | sed 's/^/route /'; "
            f'for f in {netdev_glob}; do [ -e "$f" ] && echo "netdev $f"; done; true'
        )

    def process(self, output: list[str]) -> dict:
        found = self.default()
        for line in output:
            head, _, rest = line.partition(" ")
            words = rest.split()
            if head == "ssh" and len(words) == 4 and words[3].isdigit():
                found["ssh_server_port"] = int(words[3])
            elif head == "link" and len(words) >= 2:
                # "5: tun-home@NONE: <...> ... \    link/tunnel6 ... ip6tnl ip6ip ..."
                name = words[1].rstrip(":").split("@", 1)[0]
                kind = next((w for w in words if w in _LINK_KINDS), "")
                found["links"][name] = kind
            elif head == "addr" and "inet" in words:
                address = words[words.index("inet") + 1].split("/", 1)[0]
                found["ipv4"].append(address)
                # "4: tun-home    inet 169.254.100.1/30 scope global tun-home"
                found["ipv4_links"][address] = words[1].rstrip(":").split("@", 1)[0]
            elif head == "route" and "via" in words:
                found["gateways"].append(words[words.index("via") + 1])
            elif head == "netdev" and rest.endswith(".netdev"):
                name = rest.rsplit("/", 1)[-1].removesuffix(".netdev")
                found["owned_netdevs"].append(name.removeprefix("60-ipip6-"))
        return found


# Link kinds `ip -d link` names (enough to tell a tunnel or a container link in a message).
_LINK_KINDS = frozenset(
    {
        "ip6tnl",
        "ipip",
        "sit",
        "gre",
        "gretap",
        "ip6gre",
        "vti",
        "vti6",
        "veth",
        "bridge",
        "vlan",
        "bond",
        "wireguard",
        "vxlan",
        "tun",
        "dummy",
        "macvlan",
        "ipvlan",
    }
)


_HEALTH_NS = "ipip6-health"
# The deploy's part of iptables-save: the filter policies, its chains and the jumps to them.
_OWNED_IPTABLES = r"grep -E '^(:(INPUT|FORWARD) |-A IPIP6-|-A [A-Z]+ -j IPIP6-)'"


class TunnelHealth(FactBase):
    """What the health check compares, in one round trip, changing nothing: each tunnel's link
    (``ip -o -d link``) and IPv4 routes, the live value of each sysctl key, and the deploy's
    firewall twice, as the kernel has it and as its files on disk load it (into a throwaway
    network namespace, so both come out in the kernel's canonical form).

    Returns ``{"links": {name: line | None}, "routes": {name: [line]}, "sysctl": {key: value},
    "live": [line], "disk": [line] | None}`` (``disk`` None: the files did not load).
    """

    @staticmethod
    def default() -> dict:
        return {"links": {}, "routes": {}, "sysctl": {}, "live": [], "disk": None}

    def command(
        self, tunnels: Iterable[str], sysctl_keys: Iterable[str], backend: str, loader: str
    ) -> str:
        names = " ".join(shlex.quote(t) for t in tunnels)
        keys = " ".join(shlex.quote(k) for k in sysctl_keys)
        ns = _HEALTH_NS
        if backend == "nftables":
            live = "nft list table inet ipip6 2>/dev/null"
            disk = f"ip netns exec {ns} nft -f {shlex.quote(loader)} && " + (
                f"ip netns exec {ns} nft list table inet ipip6"
            )
        else:
            live = f"{{ iptables-save; ip6tables-save; }} 2>/dev/null | {_OWNED_IPTABLES}"
            disk = (
                f"ip netns exec {ns} sh {shlex.quote(loader)} >/dev/null 2>&1 && "
                f"{{ ip netns exec {ns} iptables-save; ip netns exec {ns} ip6tables-save; }} "
                f"| {_OWNED_IPTABLES}"
            )
        return (
            f"for t in {names}; do "
            'l=$(ip -o -d link show dev "$t" 2>/dev/null) && echo "link $t $l"; '
            'ip -o -4 route show dev "$t" 2>/dev/null | sed "s|^|route $t |"; done; '
            f'for k in {keys}; do echo "sysctl $k $(sysctl -n "$k" 2>/dev/null)"; done; '
            f"{live} | sed 's/^/live /'; "
            f"ip netns del {ns} 2>/dev/null; "
            f"if ip netns add {ns}; then "
            f'd=$({disk} 2>/dev/null) && {{ echo "$d" | sed "s/^/disk /"; echo disk-loaded; }}; '
            f"ip netns del {ns}; fi; true"
        )

    def process(self, output: list[str]) -> dict:
        found = self.default()
        disk: list[str] = []
        loaded = False
        for line in output:
            head, _, rest = line.partition(" ")
            if head == "link":
                name, _, text = rest.partition(" ")
                found["links"][name] = text
            elif head == "route":
                name, _, text = rest.partition(" ")
                found["routes"].setdefault(name, []).append(text)
            elif head == "sysctl":
                key, _, value = rest.partition(" ")
                found["sysctl"][key] = value
            elif head == "live":
                found["live"].append(rest)
            elif head == "disk":
                disk.append(rest)
            elif line == "disk-loaded":
                loaded = True
        found["disk"] = disk if loaded else None
        return found


class PingThrough(FactBase):
    """``ping`` run on the VPS (a command made by :class:`ipip6.tunnel_ping.TunnelPing`):
    its output, stdout and stderr together, whatever its exit status (no reply is an answer).

    Returns ``{"output": str}``.
    """

    @staticmethod
    def default() -> dict:
        return {"output": ""}

    def command(self, ping: str) -> str:
        return f"{ping} 2>&1; echo ipip6-ping-done"

    def process(self, output: list[str]) -> dict:
        return {"output": "\n".join(line for line in output if line != "ipip6-ping-done")}


_NETWORK_HEADS = frozenset({"ssh", "link", "addr", "route", "netdev"})
_PACKAGE_HEADS = frozenset({"pkg", "ufw"})


class VpsState(FactBase):
    """All the deploy's operations compare on the VPS, in one round trip: the network
    (:class:`VpsNetwork`), the packages and ufw (:class:`DebPackagesAndUfw`) and the managed
    files, rollback timers, headers and include line (:class:`ManagedFiles`).

    Returns ``{"network": …, "packages": …, "files": …}``, each part as its own fact returns
    it. Every line of the three commands says by its first word whose it is, so one command's
    output is told apart without markers.
    """

    @staticmethod
    def default() -> dict:
        return {
            "network": VpsNetwork.default(),
            "packages": DebPackagesAndUfw.default(),
            "files": ManagedFiles.default(),
        }

    def command(
        self,
        netdev_glob: str,
        packages: Iterable[str],
        paths: Iterable[str],
        owned_globs: Iterable[str] = (),
        timers: Iterable[str] = (),
        headed: Iterable[str] = (),
        line_in: tuple[str, str] | None = None,
    ) -> str:
        return "; ".join(
            [
                VpsNetwork().command(netdev_glob),
                DebPackagesAndUfw().command(packages),
                ManagedFiles().command(paths, owned_globs, timers, headed, line_in),
            ]
        )

    def process(self, output: list[str]) -> dict:
        parts: dict[str, list[str]] = {"network": [], "packages": [], "files": []}
        for line in output:
            head = line.partition(" ")[0]
            if head in _NETWORK_HEADS:
                parts["network"].append(line)
            elif head in _PACKAGE_HEADS:
                parts["packages"].append(line)
            else:
                parts["files"].append(line)
        return {
            "network": VpsNetwork().process(parts["network"]),
            "packages": DebPackagesAndUfw().process(parts["packages"]),
            "files": ManagedFiles().process(parts["files"]),
        }
