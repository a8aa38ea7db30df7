"""Validated settings for both ends of the tunnel.

Data flows one way: inventory host data and ``group_data/`` → these models → rendered files and
router lines → operations. Everything is checked here, once; renderers and operations trust it.

Two ends, two models: :class:`VpsSettings` for the Linux host reached over SSH, and
:class:`RouterSettings` for the YAMAHA RTX reached through the ``@rtx`` connector. The keys that
describe the tunnel itself (both addresses, the home networks, the MTU) are shared, so one
``group_data/all.py`` can feed both ends.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from ipip6.rtx.redact import is_secret_key

# Linux: at most 15 bytes, no '/', no whitespace, not '.' or '..'. We are stricter still: these
# names end up in file names, sysctl keys and shell commands, so only [A-Za-z0-9_-].
_IFNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,14}")
# A systemd .network file name netplan generates or a user picked: no path, no shell metachars.
_NETWORK_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,120}\.network")


def _interface_name(value: str) -> str:
    if not _IFNAME.fullmatch(value):
        raise ValueError(
            "expected an interface name of 1-15 characters from A-Z a-z 0-9 _ - "
            "(starting with a letter or digit)"
        )
    return value


def _tunnel_name(value: str) -> str:
    _interface_name(value)
    if value == "ip6tnl0":
        raise ValueError(
            "'ip6tnl0' is the fallback device the kernel creates when the ip6_tunnel module "
            "loads; choose another name"
        )
    return value


def _ipv6_unicast(value: ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    if value.is_unspecified or value.is_multicast or value.is_loopback or value.is_link_local:
        raise ValueError(
            "expected a global (or unique local) unicast IPv6 address, "
            "not unspecified, loopback, link-local or multicast"
        )
    if value.ipv4_mapped is not None:
        raise ValueError("expected an IPv6 address, not an IPv4-mapped one")
    return value


InterfaceName = Annotated[str, AfterValidator(_interface_name)]
TunnelName = Annotated[str, AfterValidator(_tunnel_name)]
IPv6Unicast = Annotated[ipaddress.IPv6Address, AfterValidator(_ipv6_unicast)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=False, str_strip_whitespace=False)


class TunnelSite(_Strict):
    """What both ends agree on: the tunnel's two addresses and what travels through it."""

    vps_ipv6: IPv6Unicast = Field(description="The VPS's IPv6 address: the tunnel's VPS end.")
    router_ipv6: IPv6Unicast = Field(
        description="The router's WAN IPv6 address (IPoE): the tunnel's home end."
    )
    home_networks: list[ipaddress.IPv4Network] = Field(
        min_length=1,
        description="IPv4 networks behind the router, routed into the tunnel on the VPS.",
    )
    tunnel_mtu: int = Field(
        default=1460,
        ge=1280,
        le=1500,
        description="Tunnel MTU on both ends: 1500 - 40 for the outer IPv6 header.",
    )

    @field_validator("home_networks", mode="before")
    @classmethod
    def _networks_not_hosts(cls, value: Any) -> Any:
        # ipaddress would accept "192.0.2.1/24" only with strict=False; a host address where a
        # network belongs is a typo worth reporting, so keep strict parsing and a clear message.
        if isinstance(value, str):
            raise ValueError("expected a list of IPv4 networks, e.g. ['192.168.100.0/24']")
        return value

    @field_validator("home_networks")
    @classmethod
    def _no_overlap(cls, value: list[ipaddress.IPv4Network]) -> list[ipaddress.IPv4Network]:
        for i, net in enumerate(value):
            for other in value[i + 1 :]:
                if net.overlaps(other):
                    raise ValueError(f"home networks {net} and {other} overlap")
            if net.prefixlen == 0:
                raise ValueError(
                    f"{net} would route all of IPv4 into the tunnel; list the home networks"
                )
        return value

    @model_validator(mode="after")
    def _distinct_ends(self) -> TunnelSite:
        if self.vps_ipv6 == self.router_ipv6:
            raise ValueError(
                f"vps_ipv6 and router_ipv6 (both {str(self.vps_ipv6)!r}) are the same address"
            )
        return self


class VpsSettings(TunnelSite):
    """The Linux end: systemd-networkd ip6tnl, sysctls, iptables."""

    tunnel_name: TunnelName = Field(
        default="tun-home", description="Name of the ip6tnl interface on the VPS."
    )
    uplink_interface: InterfaceName = Field(
        default="ens3", description="The VPS's uplink (carries the tunnel and the NATed IPv4)."
    )
    tunnel_attach: Literal["independent", "netplan-dropin"] = Field(
        default="independent",
        description=(
            "How networkd creates the ip6tnl: 'independent' (Independent=yes, uplink config "
            "untouched) or 'netplan-dropin' (Tunnel= in a drop-in on netplan's .network file)."
        ),
    )
    uplink_network_file: str | None = Field(
        default=None,
        description=(
            "With tunnel_attach=netplan-dropin: the uplink's .network file name "
            "(default 10-netplan-UPLINK.network; `networkctl status UPLINK` shows it)."
        ),
    )
    nat: Literal["auto"] | bool = Field(
        default="auto",
        description="MASQUERADE home networks on the uplink: 'auto' = when they are private.",
    )
    mss_clamp: bool = Field(default=True, description="Clamp TCP MSS to the path MTU.")
    ssh_port_allowed: int = Field(
        default=22, ge=1, le=65535, description="TCP port sshd listens on (opened in INPUT)."
    )
    firewall_allow_tcp: list[Annotated[int, Field(ge=1, le=65535)]] = Field(
        default_factory=list, description="More TCP ports to open on the VPS, e.g. [80, 443]."
    )
    conntrack_max: int = Field(
        default=65536, ge=1024, le=16_777_216, description="net.netfilter.nf_conntrack_max."
    )
    tunnel_rp_filter: Literal["unchanged", "strict", "loose"] = Field(
        default="unchanged",
        description=(
            "rp_filter on the tunnel. The kernel uses max(all, iface); with the home routes "
            "pointing at the tunnel, strict already passes. 'loose' only for asymmetric routing."
        ),
    )
    rollback_after_seconds: int = Field(
        default=90,
        ge=15,
        le=900,
        description=(
            "A firewall or tunnel change is rolled back by a timer on the VPS unless a new SSH "
            "connection proves the VPS still reachable within this many seconds."
        ),
    )
    replace_ufw: bool = Field(
        default=False,
        description="Let the deploy remove ufw (iptables-persistent conflicts with it).",
    )

    @field_validator("uplink_network_file")
    @classmethod
    def _network_file(cls, value: str | None) -> str | None:
        if value is not None and not _NETWORK_FILE.fullmatch(value):
            raise ValueError("expected a file name like '10-netplan-ens3.network' (no path)")
        return value

    @model_validator(mode="after")
    def _names_differ(self) -> VpsSettings:
        if self.tunnel_name == self.uplink_interface:
            raise ValueError(
                f"tunnel_name and uplink_interface (both {self.tunnel_name!r}) "
                "are the same interface"
            )
        return self

    @property
    def network_file_for_dropin(self) -> str:
        return self.uplink_network_file or f"10-netplan-{self.uplink_interface}.network"

    @property
    def masquerade(self) -> bool:
        if self.nat == "auto":
            return any(net.is_private for net in self.home_networks)
        return bool(self.nat)


class RouterSettings(TunnelSite):
    """The home end: the owned lines of a YAMAHA RTX config."""

    rtx_admin_password: SecretStr = Field(description="The router's administrator password.")

    @field_validator("rtx_admin_password")
    @classmethod
    def _typable_password(cls, value: SecretStr) -> SecretStr:
        # It is typed at the router's `Password:` prompt: a CR or LF inside would end it early
        # and send the rest as a command line.
        secret = value.get_secret_value()
        if not secret or not all("!" <= ch <= "~" for ch in secret):
            raise ValueError(
                "expected a non-empty password of printable ASCII characters without spaces "
                "or control characters"
            )
        return value

    rtx_tunnel_number: int = Field(default=1, ge=1, le=3000, description="tunnel select N.")
    rtx_default_route: bool = Field(
        default=True, description="Own `ip route default gateway tunnel N`."
    )
    rtx_ipv6_filter_number: int | None = Field(
        default=None,
        ge=1,
        le=2147483647,
        description=(
            "If set, own `ipv6 filter N pass VPS ROUTER 4` so protocol 4 from the VPS passes a "
            "WAN secure filter (add N to your `ipv6 IF secure filter in` list yourself)."
        ),
    )
    rtx_verify_ping: Literal["auto", False] | ipaddress.IPv4Address = Field(
        default="auto",
        description=(
            "Before a router change is saved, the VPS pings this home address through the "
            "tunnel; no reply rolls the change back. 'auto': the router's own LAN address "
            "inside home_networks (read from its config); false: save without a check by "
            "traffic."
        ),
    )

    @field_validator("rtx_verify_ping", mode="before")
    @classmethod
    def _verify_ping_choice(cls, value: Any) -> Any:
        # One clear message instead of one per member of the union (and true, an int to
        # pydantic, must not become the address 0.0.0.1).
        if value == "auto" or value is False or isinstance(value, ipaddress.IPv4Address):
            return value
        if isinstance(value, str):
            try:
                return ipaddress.IPv4Address(value)
            except ValueError:
                pass
        raise ValueError("expected 'auto', false or an IPv4 address inside home_networks")

    @model_validator(mode="after")
    def _verify_ping_at_home(self) -> RouterSettings:
        address = self.rtx_verify_ping
        if not isinstance(address, ipaddress.IPv4Address):
            return self
        inside = [net for net in self.home_networks if address in net]
        if not inside:
            raise ValueError(
                f"rtx_verify_ping {str(address)!r} is outside home_networks "
                f"({', '.join(map(str, self.home_networks))}): the VPS routes only those into "
                "the tunnel"
            )
        net = inside[0]
        if net.prefixlen < 31 and address in (net.network_address, net.broadcast_address):
            raise ValueError(
                f"rtx_verify_ping {str(address)!r} is the network or broadcast address of "
                f"{net}: expected a host that answers ping, e.g. the router's LAN address"
            )
        return self


# pyinfra's own keys: connector settings (ssh_*, winrm_*, ...) and global arguments (_sudo, ...).
_PYINFRA_PREFIXES = ("ssh_", "_", "docker_", "local_", "chroot_", "winrm_", "terraform_", "fake_")
# Keys of the @rtx connector that are not tunnel settings.
RTX_CONNECTOR_KEYS = frozenset(
    {"rtx_known_hosts_file", "rtx_trust_new_host_key", "rtx_timeout", "rtx_legacy_ssh"}
)


def known_keys() -> frozenset[str]:
    return (
        frozenset(VpsSettings.model_fields)
        | frozenset(RouterSettings.model_fields)
        | RTX_CONNECTOR_KEYS
    )


class SettingsError(ValueError):
    """Bad inventory/group data for one host. The message names host, key, value, expectation."""

    def __init__(self, host: str, problems: list[str]):
        self.host = host
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid data for host {host}:\n{lines}")


def _describe(value: Any, secret: bool) -> str:
    if secret:
        return "<hidden>"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _unknown_keys(host: str, data: Mapping[str, Any]) -> list[str]:
    known = known_keys()
    problems = []
    for key in sorted(data):
        if key in known or key.startswith(_PYINFRA_PREFIXES):
            continue
        # Names of group_data modules' imports are dropped by pyinfra; anything left is ours.
        hint = difflib.get_close_matches(key, known, n=1)
        expected = f"did you mean {hint[0]!r}?" if hint else "not a setting of this deploy"
        # A mistyped password key still holds the password: never show its value.
        secret = is_secret_key(key) or any(is_secret_key(h) for h in hint)
        problems.append(f"{key}: unknown key (value {_describe(data[key], secret)}): {expected}")
    return problems


def _load(model: type[_Strict], host: str, data: Mapping[str, Any], complete: bool) -> Any:
    problems = _unknown_keys(host, data)
    fields = {k: v for k, v in data.items() if k in model.model_fields}
    try:
        settings = model.model_validate(fields)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            key = ".".join(str(p) for p in err["loc"])
            top = str(err["loc"][0]) if err["loc"] else ""
            secret = is_secret_key(top)
            if err["type"] == "missing":
                if not complete:  # checking what is there, e.g. for `pyinfra @rtx/… exec`
                    continue
                problems.append(f"{key}: missing: {model.model_fields[top].description}")
                continue
            value = err.get("input") if err["loc"] else None
            msg = err["msg"].removeprefix("Value error, ")
            if not err["loc"]:  # a check across keys: its message names them and their values
                problems.append(msg)
                continue
            problems.append(f"{key} (value {_describe(value, secret)}): {msg}")
        settings = None
    if problems:
        raise SettingsError(host, problems)
    return settings


def load_vps_settings(host: str, data: Mapping[str, Any]) -> VpsSettings:
    """Validate one VPS host's merged data. Raises :class:`SettingsError` listing every problem."""
    return _load(VpsSettings, host, data, complete=True)


def load_router_settings(host: str, data: Mapping[str, Any]) -> RouterSettings:
    """Validate one router host's merged data. Raises :class:`SettingsError`."""
    return _load(RouterSettings, host, data, complete=True)


def check_present_keys(
    host: str, data: Mapping[str, Any], *, router: bool
) -> VpsSettings | RouterSettings | None:
    """Check only the keys present in ``data``, no "missing" errors: before pyinfra connects,
    where ``pyinfra @rtx/… exec -- show config`` has no tunnel data at all. Raises
    :class:`SettingsError`; returns the settings when the data happens to be complete."""
    return _load(RouterSettings if router else VpsSettings, host, data, complete=False)
