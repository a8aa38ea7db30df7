"""Validated settings for both ends of the tunnel.

Data flows one way: inventory host data and ``group_data/`` → these models → rendered files and
router lines → operations. Everything is checked here, once; renderers and operations trust it.

Two ends, two models: :class:`VpsSettings` for the Linux host reached over SSH, and
:class:`RouterSettings` for the YAMAHA RTX reached through the ``@rtx`` connector. The keys that
describe the tunnel itself (both addresses, the home networks, the MTU) are shared, so one
``group_data/all.py`` can feed both ends. :mod:`ipip6.tunnels` builds the whole inventory's model
from these and checks the two ends against each other.

Strict on purpose: no bool↔int↔str coercion (``True`` is not the port 1), an explicit prefix
length on every network, no zone id, whitespace or control character in any value that reaches
a file, a shell command or the router CLI.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SecretStr,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from ipip6 import safe_text
from ipip6.rtx.redact import is_secret_key

# --------------------------------------------------------------------------------------------
# Values


def _text(value: Any, expected: str) -> str:
    """A string with no whitespace or control character (else ValueError naming ``expected``)."""
    if not isinstance(value, str):
        raise ValueError(f"expected {expected} as a string, not {type(value).__name__}")
    why = safe_text.problem(value)
    if why is not None:
        raise ValueError(f"expected {expected}; the value {why}")
    return value


# Refused as a tunnel end, with why (first match wins: the specific before the general).
_IPV6_REFUSED = tuple(
    (ipaddress.IPv6Network(net), why)
    for net, why in (
        ("::/128", "the unspecified address"),
        ("::1/128", "the loopback address"),
        ("::ffff:0:0/96", "an IPv4-mapped address"),
        ("::/96", "an IPv4-compatible address (deprecated)"),
        ("64:ff9b::/96", "in the NAT64 well-known prefix"),
        ("64:ff9b:1::/48", "in the NAT64 local-use prefix"),
        ("100::/64", "in the discard-only prefix"),
        ("2001::/32", "a Teredo address"),
        ("2001::/23", "an IETF protocol assignment (benchmarking, ORCHID), not a host"),
        ("2002::/16", "a 6to4 address"),
        ("fc00::/7", "a unique local address (fc00::/7), which the internet does not route"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated)"),
        ("ff00::/8", "multicast"),
    )
)
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")


def _tunnel_end(value: Any) -> ipaddress.IPv6Address:
    if isinstance(value, ipaddress.IPv6Address):
        address = value
    else:
        text = _text(value, "an IPv6 address, e.g. '2001:db8:1::1'")
        if "%" in text:
            raise ValueError("expected an IPv6 address without a zone id ('%…')")
        if "/" in text:
            raise ValueError("expected an IPv6 address, not a network (no '/')")
        try:
            address = ipaddress.IPv6Address(text)
        except ValueError:
            raise ValueError(
                "not a valid IPv6 address: expected a global unicast IPv6 address, "
                "e.g. '2001:db8:1::1'"
            ) from None
    if address.scope_id is not None:
        raise ValueError("expected an IPv6 address without a zone id ('%…')")
    for network, why in _IPV6_REFUSED:
        if address in network:
            raise ValueError(f"expected a global unicast IPv6 address, not {why}")
    if address not in _GLOBAL_UNICAST:
        raise ValueError(
            "expected a global unicast IPv6 address (inside 2000::/3), "
            "not unspecified, loopback, link-local or multicast"
        )
    return address


# Never a home network (or part of one), with why. Documentation prefixes stay allowed (labs).
_IPV4_REFUSED = tuple(
    (ipaddress.IPv4Network(net), why)
    for net, why in (
        ("0.0.0.0/8", "'this network' (0.0.0.0/8)"),
        ("127.0.0.0/8", "loopback (127.0.0.0/8)"),
        ("169.254.0.0/16", "link-local (169.254.0.0/16, where clouds keep their metadata service)"),
        ("100.64.0.0/10", "the ISPs' shared address space (100.64.0.0/10, carrier-grade NAT)"),
        ("192.0.0.0/24", "IETF protocol assignments (192.0.0.0/24, e.g. DS-Lite's 192.0.0.0/29)"),
        ("224.0.0.0/4", "multicast (224.0.0.0/4)"),
        ("240.0.0.0/4", "reserved (240.0.0.0/4, with the broadcast address)"),
    )
)
MIN_HOME_PREFIX = 8


def _ipv4_network(value: Any, example: str) -> ipaddress.IPv4Network:
    """An IPv4 network with an explicit prefix length and no host bits (else ValueError)."""
    if isinstance(value, ipaddress.IPv4Network):
        return value
    text = _text(value, example)
    if "/" not in text:
        raise ValueError(f"expected {example}: the prefix length is missing")
    try:
        return ipaddress.IPv4Network(text)
    except ValueError:
        try:
            loose = ipaddress.IPv4Network(text, strict=False)
        except ValueError:
            raise ValueError(f"not a valid IPv4 network: expected {example}") from None
        raise ValueError(
            f"not a valid IPv4 network: host bits are set (did you mean '{loose}'?)"
        ) from None


def _home_network(value: Any) -> ipaddress.IPv4Network:
    network = _ipv4_network(
        value, "an IPv4 network with its prefix length, e.g. '192.168.100.0/24'"
    )
    for refused, why in _IPV4_REFUSED:
        if network.subnet_of(refused):
            raise ValueError(f"expected a private or global unicast network, not {why}")
    if network.prefixlen < MIN_HOME_PREFIX:
        raise ValueError(
            f"{network} would route a large part of IPv4 into the tunnel: expected home "
            f"networks of /{MIN_HOME_PREFIX} or longer"
        )
    for refused, why in _IPV4_REFUSED:
        if network.overlaps(refused):
            raise ValueError(f"expected a private or global unicast network, not {why}")
    return network


def _ipv4_host(value: Any) -> ipaddress.IPv4Address:
    if isinstance(value, ipaddress.IPv4Address):
        return value
    text = _text(value, "an IPv4 address")
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise ValueError("not a valid IPv4 address") from None


# Never a tunnel's inner link network, with why (the documentation prefixes stay allowed: labs).
_INNER_REFUSED = (
    *_IPV4_REFUSED[:2],
    (ipaddress.IPv4Network("169.254.0.0/24"), "reserved by RFC 3927 (169.254.0.0/24)"),
    (ipaddress.IPv4Network("169.254.255.0/24"), "reserved by RFC 3927 (169.254.255.0/24)"),
    (
        ipaddress.IPv4Network("169.254.168.0/22"),
        "next to the clouds' metadata and time services (169.254.169.254, 169.254.169.123, "
        "169.254.170.2)",
    ),
    *_IPV4_REFUSED[3:],
)
#: The default inner link network: link-local space (RFC 3927), which no router forwards, so a
#: probe to the VPS's inner address can only ever be answered through the tunnel.
DEFAULT_INNER_NETWORK = ipaddress.IPv4Network("169.254.100.0/30")


def _inner_network(value: Any) -> ipaddress.IPv4Network | Literal[False]:
    if value is False:
        return False
    network = _ipv4_network(value, "a /30 or /31 IPv4 network, e.g. '169.254.100.0/30', or false")
    if network.prefixlen not in (30, 31):
        raise ValueError(
            "expected a /30 or /31 (one address for each end of the tunnel), "
            f"not /{network.prefixlen}"
        )
    for refused, why in _INNER_REFUSED:
        if network.overlaps(refused):
            raise ValueError(f"expected link-local or private addresses, not {why}")
    if network.is_global:
        raise ValueError(
            "expected link-local (169.254.0.0/16) or private addresses: the keepalive probes "
            "the VPS's inner address, which must never be reachable except through the tunnel"
        )
    return network


@dataclass(frozen=True)
class InnerAddresses:
    """The tunnel's inner link: the VPS end and the router end of its /30 or /31."""

    network: ipaddress.IPv4Network

    @property
    def vps(self) -> ipaddress.IPv4Interface:
        return ipaddress.IPv4Interface(f"{self._hosts[0]}/{self.network.prefixlen}")

    @property
    def router(self) -> ipaddress.IPv4Interface:
        return ipaddress.IPv4Interface(f"{self._hosts[1]}/{self.network.prefixlen}")

    @property
    def _hosts(self) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
        if self.network.prefixlen == 31:  # RFC 3021: both addresses are hosts
            return self.network[0], self.network[1]
        return self.network[1], self.network[2]


# A gateway an RTX default route can name: `pp N`, `tunnel N`, `dhcp lanN`, an IPv4 address.
_GATEWAY = re.compile(r"(?:pp|tunnel) ([1-9][0-9]{0,3})|dhcp lan[1-9][0-9]?(?:\.[1-9][0-9]{0,3})?")


def _fallback_gateway(value: Any) -> Literal["auto", False] | str:
    expected = (
        "'auto', false or one gateway of an RTX route, e.g. 'pp 1', 'tunnel 1', "
        "'dhcp lan2' or an IPv4 address"
    )
    if value is False or (value == "auto" and isinstance(value, str)):
        return value
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected {expected}")
    if safe_text.problem(value.replace(" ", "")) is not None or value != " ".join(value.split()):
        raise ValueError(f"expected {expected} (single spaces, no control characters)")
    if _GATEWAY.fullmatch(value):
        return value
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"expected {expected}") from None
    if address.is_unspecified or address.is_loopback or address.is_multicast:
        raise ValueError(f"expected {expected}, not {address}")
    return str(address)


# Linux: at most 15 bytes, no '/', no whitespace. Stricter still: these names end up in file
# names, sysctl keys and shell commands, so only [A-Za-z0-9_-].
_IFNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,14}")
# Words the kernel or sysctl give a meaning of their own.
_RESERVED_IFNAMES = {
    "lo": "the loopback interface",
    "all": "a sysctl keyword (net.ipv4.conf.all applies to every interface)",
    "default": "a sysctl keyword (net.ipv4.conf.default applies to new interfaces)",
}
# Fallback devices the kernel creates when a tunnel module loads.
_FALLBACK_DEVICES = frozenset(
    {"ip6tnl0", "tunl0", "sit0", "gre0", "gretap0", "erspan0", "ip_vti0", "ip6_vti0", "ip6gre0"}
)


def _interface_name(value: Any) -> str:
    text = _text(value, "an interface name")
    if not _IFNAME.fullmatch(text):
        raise ValueError(
            "expected an interface name of 1-15 characters from A-Z a-z 0-9 _ - "
            "(starting with a letter or digit)"
        )
    if text in _RESERVED_IFNAMES:
        raise ValueError(f"{text!r} is {_RESERVED_IFNAMES[text]}: choose another name")
    if text in _FALLBACK_DEVICES:
        raise ValueError(
            f"{text!r} is a fallback device the kernel creates when a tunnel module loads "
            "(ip6tnl0 for ip6_tunnel): choose another name"
        )
    return text


# A systemd .network file name netplan generates or a user picked: no path, no shell metachars.
_NETWORK_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,120}\.network")


def _network_file(value: Any) -> str:
    text = _text(value, "a .network file name")
    if not _NETWORK_FILE.fullmatch(text) or ".." in text:
        raise ValueError("expected a file name like '10-netplan-ens3.network' (no path)")
    return text


def _list_of(what: str):
    """A list (or tuple) as is; one string or anything else refused with a clear message."""

    def check(value: Any) -> Any:
        if isinstance(value, tuple):
            return list(value)
        if not isinstance(value, list):
            raise ValueError(f"expected a list of {what}")
        return value

    return BeforeValidator(check)


def _printable_password(value: Any) -> SecretStr:
    # It is typed at the router's `Password:` prompt: a CR or LF inside would end it early and
    # send the rest as a command line. The message never repeats the value.
    secret = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not isinstance(secret, str):
        raise ValueError("expected a string")
    if not secret or not all("!" <= ch <= "~" for ch in secret):
        raise ValueError(
            "expected a non-empty password of printable ASCII characters without spaces "
            "or control characters"
        )
    return SecretStr(secret)


_as_text = PlainSerializer(str, return_type=str)
TunnelEnd = Annotated[ipaddress.IPv6Address, PlainValidator(_tunnel_end), _as_text]
HomeNetwork = Annotated[ipaddress.IPv4Network, PlainValidator(_home_network), _as_text]
IPv4Host = Annotated[ipaddress.IPv4Address, PlainValidator(_ipv4_host), _as_text]
InterfaceName = Annotated[str, PlainValidator(_interface_name)]
NetworkFile = Annotated[str, PlainValidator(_network_file)]
Port = Annotated[StrictInt, Field(ge=1, le=65535)]
Password = Annotated[SecretStr, PlainValidator(_printable_password)]


def _known_keys_only(value: Mapping, known: Iterable[str]) -> Mapping:
    """``value`` as it is, or ValueError for its first unknown key, with a "did you mean"
    (else the keys expected): for the mappings inside the data."""
    known = list(known)
    for key in value:
        if key not in known:
            hint = difflib.get_close_matches(str(key), known, n=1)
            expected = (
                f"did you mean {hint[0]!r}?" if hint else ("expected one of " + ", ".join(known))
            )
            raise ValueError(f"unknown key {str(key)!r}: {expected}")
    return value


_PORT_RANGE = re.compile(r"([0-9]{1,5})-([0-9]{1,5})")


def _public_ports(value: Any) -> tuple[int, int]:
    """One port (an integer) or a range ``'8000-8010'``: returned as (first, last)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= 65535:
            raise ValueError("expected a port 1-65535")
        return (value, value)
    if isinstance(value, str):
        match = _PORT_RANGE.fullmatch(value)
        if match:
            first, last = int(match[1]), int(match[2])
            if not (1 <= first < last <= 65535):
                raise ValueError(
                    "expected a range 'FIRST-LAST' with 1 <= FIRST < LAST <= 65535"
                    + (f" (one port: write {first} as a number)" if first == last else "")
                )
            return (first, last)
        if value.isdigit():
            raise ValueError(f"expected a number, not the string {value!r} (write {value})")
        if re.fullmatch(r"[0-9]+:[0-9]+", value):
            raise ValueError(
                f"expected a range written 'FIRST-LAST', e.g. {value.replace(':', '-')!r}"
            )
    raise ValueError("expected a port (a number 1-65535) or a range such as '8000-8010'")


class PortForward(BaseModel):
    """One published service: ``proto``/``port`` on the VPS's public IPv4 address, forwarded
    through the tunnel to ``to`` (``to_port``) at home."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    proto: Literal["tcp", "udp"] = Field(description="'tcp' or 'udp'.")
    port: Annotated[tuple[int, int], PlainValidator(_public_ports)] = Field(
        description="The public port on the VPS, or a range such as '8000-8010'."
    )
    to: IPv4Host = Field(description="The home host's IPv4 address, inside home_networks.")
    to_port: Port | None = Field(
        default=None,
        description="The home host's port (default: the public one). A range keeps its ports.",
    )

    @model_validator(mode="before")
    @classmethod
    def _a_mapping_of_known_keys(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise ValueError(
                "expected a mapping such as {'proto': 'tcp', 'port': 443, 'to': '192.168.100.10'}"
            )
        return _known_keys_only(value, cls.model_fields)

    @model_validator(mode="after")
    def _range_keeps_ports(self) -> PortForward:
        first, last = self.port
        if first != last and self.to_port not in (None, first):
            raise ValueError(
                f"port {self.ports_text!r} is a range: it is forwarded to the same ports "
                f"(to_port left out), not to {self.to_port}"
            )
        return self

    @property
    def ports_text(self) -> str:
        first, last = self.port
        return str(first) if first == last else f"{first}-{last}"

    @property
    def target_port(self) -> int | None:
        """The home port when it differs from the public one (DNAT keeps it otherwise)."""
        return None if self.to_port in (None, self.port[0]) else self.to_port

    def overlaps(self, other: PortForward) -> bool:
        return self.proto == other.proto and not (
            self.port[1] < other.port[0] or other.port[1] < self.port[0]
        )

    def covers(self, proto: str, port: int) -> bool:
        return self.proto == proto and self.port[0] <= port <= self.port[1]


# An extra rule of the user's, in the language of the firewall's backend: an iptables-restore
# line appending to one of the deploy's chains, or an nft statement for one of its table's.
_EXTRA_RULE = re.compile(r"(-[46] )?-A (IPIP6-(INPUT|FORWARD|PREROUTING|POSTROUTING)) \S.*")
_EXTRA_NFT_RULE = re.compile(r"(input|forward|prerouting|postrouting) \S.*")
#: The chains a rule of ``firewall_extra_rules`` may append to, by table (iptables).
EXTRA_RULE_CHAINS = {
    "IPIP6-INPUT": "filter",
    "IPIP6-FORWARD": "filter",
    "IPIP6-PREROUTING": "nat",
    "IPIP6-POSTROUTING": "nat",
}
#: The same for nftables: the chains of ``table inet ipip6``.
EXTRA_NFT_CHAINS = ("input", "forward", "prerouting", "postrouting")


def _extra_rule(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(
            "expected a rule as a string, e.g. '-A IPIP6-INPUT -p udp --dport 51820 -j ACCEPT' "
            "(iptables) or 'input udp dport 51820 accept' (nftables)"
        )
    for ch in value:
        if not ch.isprintable():
            raise ValueError(
                f"contains {ch!r}: expected one rule on one line (one list item per rule)"
            )
    if value != value.strip() or "  " in value:
        raise ValueError("expected single spaces between words, none around the rule")
    return value


def _iptables_rule_problem(rule: str) -> str | None:
    match = _EXTRA_RULE.fullmatch(rule)
    if not match:
        return (
            "expected a rule that appends to one of the deploy's chains: '-A CHAIN ...' with "
            "CHAIN one of "
            + ", ".join(EXTRA_RULE_CHAINS)
            + " ('-4 ' or '-6 ' first for one address family only)"
        )
    if match[1] == "-6 " and EXTRA_RULE_CHAINS[match[2]] == "nat":
        return f"{match[2]} is an IPv4 chain (the nat table): drop the '-6'"
    return None


def _nft_rule_problem(rule: str) -> str | None:
    if not _EXTRA_NFT_RULE.fullmatch(rule):
        return (
            "expected 'CHAIN STATEMENT' for one of the chains of table inet ipip6 ("
            + ", ".join(EXTRA_NFT_CHAINS)
            + "), e.g. 'input udp dport 51820 accept'"
        )
    # One statement inside its chain: a ';' or '#' would end it, an unbalanced brace would
    # close the chain or the table and let the rest define anything.
    if ";" in rule or "#" in rule:
        return "expected one statement: no ';' and no '#' comment (use comment \"...\")"
    # Directives of the file, not statements of a chain: another file read in, or a variable.
    words = set(re.split(r"[\s{},]+", rule))
    for directive in ("include", "define", "redefine", "undefine"):
        if directive in words:
            return f"expected a statement of the chain, not the file directive {directive!r}"
    depth = 0
    for ch in rule:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return "a '}' closes more than the rule opened"
    if depth:
        return "a '{' is not closed"
    return None


ExtraRule = Annotated[str, PlainValidator(_extra_rule)]


# --------------------------------------------------------------------------------------------
# Models


class _Settings(BaseModel):
    # Strict: no coercion between bool, int and str. Unknown keys are reported by _load, which
    # knows which end and which data source they come from.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class TunnelSite(_Settings):
    """What both ends agree on: the tunnel's two addresses and what travels through it."""

    vps_ipv6: TunnelEnd = Field(
        description="The VPS's IPv6 address: the tunnel's VPS end (global unicast)."
    )
    router_ipv6: TunnelEnd = Field(
        description="The router's WAN IPv6 address (IPoE): the tunnel's home end (global unicast)."
    )
    home_networks: Annotated[list[HomeNetwork], _list_of("IPv4 networks")] = Field(
        min_length=1,
        description=(
            "IPv4 networks behind the router, routed into the tunnel on the VPS: a list of "
            "networks with their prefix length (/8 or longer, no host bits, no overlap)."
        ),
    )
    tunnel_mtu: StrictInt = Field(
        default=1460,
        ge=1280,
        le=1500,
        description="Tunnel MTU on both ends: 1500 - 40 for the outer IPv6 header.",
    )
    tunnel_name: InterfaceName = Field(
        default="tun-home",
        description=(
            "Name of the tunnel's ip6tnl interface on the VPS: 1-15 of A-Z a-z 0-9 _ -, not lo, "
            "all, default or a kernel fallback device (ip6tnl0, sit0…), not an interface the "
            "VPS already has that this deploy did not create. With several routers on one "
            "VPS, set one per router."
        ),
    )
    tunnel_inner_network: Annotated[
        ipaddress.IPv4Network | Literal[False], PlainValidator(_inner_network), _as_text
    ] = Field(
        default=DEFAULT_INNER_NETWORK,
        description=(
            "The tunnel's inner link, a /30 or /31: the VPS end takes the first address, the "
            "router the second (`ip tunnel address`). The keepalive and the check by traffic "
            "ping across it. Link-local or private, inside no home network; false: none."
        ),
    )

    @field_validator("home_networks", mode="before")
    @classmethod
    def _networks_not_one_string(cls, value: Any) -> Any:
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
        return value

    @model_validator(mode="after")
    def _distinct_ends(self) -> TunnelSite:
        if self.vps_ipv6 == self.router_ipv6:
            raise ValueError(
                f"vps_ipv6 and router_ipv6 (both {str(self.vps_ipv6)!r}) are the same address"
            )
        return self

    @model_validator(mode="after")
    def _inner_outside_home(self) -> TunnelSite:
        inner = self.tunnel_inner_network
        for net in self.home_networks if inner is not False else ():
            if net.overlaps(inner):
                raise ValueError(
                    f"tunnel_inner_network {str(inner)!r} overlaps the home network {net}: "
                    "expected a link network of its own (e.g. '169.254.100.0/30')"
                )
        return self

    @property
    def inner(self) -> InnerAddresses | None:
        """The inner link's two addresses (None: the tunnel has none)."""
        if self.tunnel_inner_network is False:
            return None
        return InnerAddresses(self.tunnel_inner_network)


class VpsSettings(TunnelSite):
    """The Linux end: systemd-networkd ip6tnl, sysctls, iptables."""

    uplink_interface: InterfaceName = Field(
        default="ens3",
        description=(
            "The VPS's uplink (carries the tunnel and the NATed IPv4): an interface that "
            "exists on the VPS."
        ),
    )
    tunnel_attach: Literal["independent", "netplan-dropin"] = Field(
        default="independent",
        description=(
            "How networkd creates the ip6tnl: 'independent' (Independent=yes, uplink config "
            "untouched) or 'netplan-dropin' (Tunnel= in a drop-in on netplan's .network file)."
        ),
    )
    uplink_network_file: NetworkFile | None = Field(
        default=None,
        description=(
            "With tunnel_attach=netplan-dropin: the uplink's .network file name "
            "(default 10-netplan-UPLINK.network; `networkctl status UPLINK` shows it)."
        ),
    )
    nat: Literal["auto"] | StrictBool = Field(
        default="auto",
        description="MASQUERADE home networks on the uplink: 'auto' = when they are private.",
    )
    mss_clamp: StrictBool = Field(default=True, description="Clamp TCP MSS to the path MTU.")
    route_between_sites: StrictBool = Field(
        default=False,
        description=(
            "With several routers on this VPS: forward between their home networks. Off, a "
            "site reaches the internet through the VPS but never another site's networks."
        ),
    )
    ssh_port_allowed: Port = Field(
        default=22,
        description=(
            "TCP port sshd listens on, opened in INPUT. Default: the ssh_port pyinfra connects "
            "on (22). Set it when a port forward maps another port to sshd's; before any "
            "change the deploy checks that the port its own connection arrived on stays open."
        ),
    )
    firewall_allow_tcp: Annotated[list[Port], _list_of("TCP ports")] = Field(
        default_factory=list, description="More TCP ports to open on the VPS, e.g. [80, 443]."
    )
    port_forwards: Annotated[list[PortForward], _list_of("port forwards")] = Field(
        default_factory=list,
        description=(
            "Services at home published on the VPS's IPv4 address, e.g. [{'proto': 'tcp', "
            "'port': 443, 'to': '192.168.100.10'}]: DNAT on the uplink into the tunnel of the "
            "home network holding 'to' (and hairpin for the home's own hosts)."
        ),
    )
    firewall_backend: Literal["iptables", "nftables"] = Field(
        default="iptables",
        description=(
            "Where the deploy's rules live: 'iptables' (chains IPIP6-*, ipip6-firewall.service) "
            "or 'nftables' (table inet ipip6, loaded by nftables.service)."
        ),
    )
    firewall_extra_rules: Annotated[list[ExtraRule], _list_of("rule lines")] = Field(
        default_factory=list,
        description=(
            "Your own rules inside the deploy's chains, in the backend's language: iptables "
            "'-A IPIP6-INPUT -p udp --dport 51820 -j ACCEPT' (v4 and v6; '-4 '/'-6 ' first: "
            "one only) or nftables 'input udp dport 51820 accept'."
        ),
    )
    conntrack_max: StrictInt = Field(
        default=65536, ge=1024, le=16_777_216, description="net.netfilter.nf_conntrack_max."
    )
    tunnel_rp_filter: Literal["unchanged", "strict", "loose"] = Field(
        default="unchanged",
        description=(
            "rp_filter on the tunnel. The kernel uses max(all, iface); with the home routes "
            "pointing at the tunnel, strict already passes. 'loose' only for asymmetric routing."
        ),
    )
    rollback_after_seconds: StrictInt = Field(
        default=90,
        ge=15,
        le=900,
        description=(
            "A firewall or tunnel change is rolled back by a timer on the VPS unless a new SSH "
            "connection proves the VPS still reachable within this many seconds."
        ),
    )
    replace_ufw: StrictBool = Field(
        default=False,
        description=(
            "Disable an active ufw before the deploy's rules are loaded. Left false, ufw's "
            "chains and the deploy's coexist."
        ),
    )

    @model_validator(mode="after")
    def _names_differ(self) -> VpsSettings:
        if self.tunnel_name == self.uplink_interface:
            raise ValueError(
                f"tunnel_name and uplink_interface (both {self.tunnel_name!r}) "
                "are the same interface"
            )
        return self

    @field_validator("port_forwards")
    @classmethod
    def _forwards_apart(cls, value: list[PortForward]) -> list[PortForward]:
        for i, one in enumerate(value):
            for other in value[i + 1 :]:
                if one.overlaps(other):
                    raise ValueError(
                        f"{one.proto} port {one.ports_text} (to {one.to}) and "
                        f"{other.proto} port {other.ports_text} (to {other.to}) overlap: "
                        "expected each public port forwarded once"
                    )
        return value

    @model_validator(mode="after")
    def _extra_rules_fit_the_backend(self) -> VpsSettings:
        check = _nft_rule_problem if self.firewall_backend == "nftables" else _iptables_rule_problem
        for i, rule in enumerate(self.firewall_extra_rules):
            problem = check(rule)
            if problem:
                raise ValueError(
                    f"firewall_extra_rules.{i} (value {rule!r}): with firewall_backend "
                    f"{self.firewall_backend!r}, {problem}"
                )
        return self

    @model_validator(mode="after")
    def _forwards_leave_the_vps_its_ports(self) -> VpsSettings:
        for forward in self.port_forwards:
            if forward.covers("tcp", self.ssh_port_allowed):
                raise ValueError(
                    f"port_forwards: tcp port {forward.ports_text} (to {forward.to}) holds "
                    f"ssh_port_allowed {self.ssh_port_allowed}: the VPS's own SSH would go "
                    "home; expected another public port"
                )
            for port in self.firewall_allow_tcp:
                if forward.covers("tcp", port):
                    raise ValueError(
                        f"port_forwards: tcp port {forward.ports_text} (to {forward.to}) holds "
                        f"the port {port} of firewall_allow_tcp, a service of the VPS itself: "
                        "expected one or the other"
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

    @property
    def forwarded_sources(self) -> list[ipaddress.IPv4Network]:
        """Source networks the VPS forwards (and NATs) from the tunnel: the home networks and
        the router's inner address, which the router's own traffic leaves with."""
        inner = [ipaddress.IPv4Network(self.inner.router.ip)] if self.inner else []
        return [*self.home_networks, *inner]

    @property
    def masqueraded_sources(self) -> list[ipaddress.IPv4Network]:
        """Source networks NATed to the VPS's address: the home networks when ``nat`` says so,
        and always the router's inner address (link-local or private: never routable)."""
        inner = [ipaddress.IPv4Network(self.inner.router.ip)] if self.inner else []
        return [*(self.home_networks if self.masquerade else []), *inner]

    @property
    def open_tcp_ports(self) -> frozenset[int]:
        """Every TCP port the firewall opens in INPUT."""
        return frozenset({self.ssh_port_allowed, *self.firewall_allow_tcp})


def home_tunnel_of(
    address: ipaddress.IPv4Address, tunnels: Iterable[VpsSettings]
) -> VpsSettings | None:
    """The tunnel (of one VPS's) whose home networks hold ``address``."""
    for tunnel in tunnels:
        if any(address in net for net in tunnel.home_networks):
            return tunnel
    return None


def port_forward_problems(tunnels: Sequence[VpsSettings]) -> list[str]:
    """Port forwards whose home host is in no home network of the VPS's tunnels (the VPS's
    own keys, hence its forwards, are the same in each), or is a network's own address."""
    problems = []
    for forward in tunnels[0].port_forwards if tunnels else ():
        what = f"port_forwards: {forward.proto} port {forward.ports_text} to {forward.to}"
        tunnel = home_tunnel_of(forward.to, tunnels)
        if tunnel is None:
            homes = ", ".join(str(n) for t in tunnels for n in t.home_networks)
            problems.append(
                f"{what}: not inside the home networks of this VPS's tunnels ({homes}); "
                "expected a host at home"
            )
            continue
        net = next(n for n in tunnel.home_networks if forward.to in n)
        if net.prefixlen < 31 and forward.to in (net.network_address, net.broadcast_address):
            problems.append(f"{what}: the network or broadcast address of {net}; expected a host")
    return problems


def _verify_ping(value: Any) -> Literal["auto", False] | ipaddress.IPv4Address:
    # One clear message instead of one per member of a union (and true, an int to a lax
    # parser, must not become the address 0.0.0.1).
    if value == "auto" and isinstance(value, str):
        return "auto"
    if value is False:
        return False
    try:
        return _ipv4_host(value)
    except ValueError:
        raise ValueError("expected 'auto', false or an IPv4 address inside home_networks") from None


def _next_link(network: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    """The link network right after ``network``, of the same size (169.254.100.0/30 →
    169.254.100.4/30)."""
    start = int(network.network_address) + network.num_addresses
    return ipaddress.IPv4Network((start % 2**32, network.prefixlen))


def _backup_inner(value: Any) -> ipaddress.IPv4Network | None:
    if value is None:
        return None
    if value is False:
        raise ValueError(
            "expected a /30 or /31 link network (or leave it out): the router probes the "
            "backup VPS's inner address, so the backup tunnel needs one"
        )
    return _inner_network(value)


def _local_path(value: Any) -> str:
    """A path on the machine pyinfra runs on (never sent anywhere): a non-empty string or
    ``os.PathLike`` without control characters; spaces are fine."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a path as a string, e.g. 'backups', not {type(value).__name__}")
    if not value.strip():
        raise ValueError("expected a path, e.g. 'backups', not an empty string")
    for ch in value:
        if not ch.isprintable() or ch in "\r\n":
            raise ValueError(f"expected a path on one line; it contains {ch!r}")
    if value != value.strip():
        raise ValueError("expected a path without spaces around it")
    return value


LocalPath = Annotated[str, PlainValidator(_local_path)]


def _backup_file(value: Any) -> Any:
    """A backup to restore: read and checked now, so that a wrong file stops the run before
    any host is contacted."""
    from ipip6.rtx.backup import BackupFile, BackupFileError, read_backup, resolve

    if isinstance(value, BackupFile):
        return value
    path = _local_path(value)
    try:
        return BackupFile(path, read_backup(resolve(path, os.getcwd())))
    except BackupFileError as exc:
        raise ValueError(str(exc)) from None


#: Where router backups go by default, relative to the directory pyinfra runs in.
DEFAULT_BACKUP_DIR = "backups"


class BackupTunnel(_Settings):
    """A second VPS for the same router: its tunnel carries the home's IPv4 while the first
    VPS does not answer (``rtx_backup_tunnel``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    vps_ipv6: TunnelEnd = Field(
        description="The backup VPS's IPv6 address: the backup tunnel's VPS end."
    )
    tunnel_inner_network: Annotated[
        ipaddress.IPv4Network | None, PlainValidator(_backup_inner), _as_text
    ] = Field(
        default=None,
        description=(
            "The backup tunnel's inner link (a /30 or /31). Left out: the link right after "
            "tunnel_inner_network (169.254.100.4/30 after the default 169.254.100.0/30)."
        ),
    )
    rtx_tunnel_number: StrictInt | None = Field(
        default=None,
        ge=1,
        le=3000,
        description=(
            "The backup's `tunnel select N`. Left out: the tunnel to the backup VPS already "
            "on the router, else the lowest free number other than the first tunnel's."
        ),
    )
    rtx_keepalive_number: StrictInt | None = Field(
        default=None,
        ge=1,
        le=100,
        description="The backup's `ip keepalive N`. Left out: chosen like the first one's.",
    )
    rtx_ipv6_filter_number: StrictInt | None = Field(
        default=None,
        ge=1,
        le=2147483647,
        description="Like rtx_ipv6_filter_number, for protocol 4 from the backup VPS.",
    )
    tunnel_name: InterfaceName | None = Field(
        default=None,
        description=(
            "The backup tunnel's interface name on the backup VPS. Left out: the backup "
            "VPS's own tunnel_name."
        ),
    )
    rtx_vps_managed_elsewhere: StrictBool = Field(
        default=False,
        description=(
            "True when the backup VPS is not in this inventory: its tunnel is then saved "
            "without a check by traffic from it."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _a_mapping_of_known_keys(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise ValueError(
                "expected a mapping such as {'vps_ipv6': '2001:db8:4::1'} (the backup VPS's "
                "address and, optionally, its tunnel's own keys)"
            )
        return _known_keys_only(value, cls.model_fields)


class RouterSettings(TunnelSite):
    """The home end: the owned lines of a YAMAHA RTX config."""

    rtx_admin_password: Password = Field(
        description="The router's administrator password (printable ASCII, no spaces)."
    )
    rtx_tunnel_number: StrictInt | None = Field(
        default=None,
        ge=1,
        le=3000,
        description=(
            "The `tunnel select N` this deploy owns. Unset: the tunnel to this VPS already on "
            "the router, else the lowest free number. A number in use by anything else is "
            "refused."
        ),
    )
    rtx_tunnel_takeover: StrictBool = Field(
        default=False,
        description=(
            "Replace whatever tunnel rtx_tunnel_number is now (e.g. an old MAP-E or VPN "
            "tunnel): every line of its block that this deploy does not write is removed."
        ),
    )
    rtx_default_route: StrictBool = Field(
        default=True, description="Own `ip route default gateway tunnel N`."
    )
    rtx_fallback_gateway: Annotated[
        Literal["auto", False] | str, PlainValidator(_fallback_gateway)
    ] = Field(
        default="auto",
        description=(
            "Where the home's IPv4 goes while the VPS does not answer: the default route "
            "switches to this gateway (e.g. 'pp 1') and back. 'auto': the default route the "
            "router had before the first deploy (none: no fallback); false: no fallback."
        ),
    )
    rtx_keepalive_interval: StrictInt = Field(
        default=5,
        ge=1,
        le=600,
        description="Seconds between the router's probes of the VPS's inner address.",
    )
    rtx_keepalive_count: StrictInt = Field(
        default=6,
        ge=1,
        le=100,
        description=(
            "Probes unanswered in a row before the router falls back (interval x count: "
            "5 x 6 = about 30 s); one answer switches back."
        ),
    )
    rtx_keepalive_number: StrictInt | None = Field(
        default=None,
        ge=1,
        le=100,
        description=(
            "The `ip keepalive N` this deploy owns. Unset: the one already probing this "
            "tunnel's VPS end, else the lowest free number."
        ),
    )
    rtx_ipv6_filter_number: StrictInt | None = Field(
        default=None,
        ge=1,
        le=2147483647,
        description=(
            "If set, own `ipv6 filter N pass VPS ROUTER 4` so protocol 4 from the VPS passes a "
            "WAN secure filter (add N to your `ipv6 IF secure filter in` list yourself)."
        ),
    )
    rtx_verify_ping: Annotated[
        Literal["auto", False] | ipaddress.IPv4Address, PlainValidator(_verify_ping)
    ] = Field(
        default="auto",
        description=(
            "Before a router change is saved, the VPS pings this address through the tunnel; "
            "no reply rolls the change back. 'auto': the router's inner address (with "
            "tunnel_inner_network), else its own LAN address inside home_networks (read from "
            "its config); false: save without a check by traffic."
        ),
    )
    rtx_vps_managed_elsewhere: StrictBool = Field(
        default=False,
        description=(
            "True when the VPS end of this router's tunnel is not in this inventory (set up "
            "by hand or by another deploy). Without it a router with no VPS host of the same "
            "vps_ipv6 is an error; with it the router's change is saved without a check by "
            "traffic."
        ),
    )
    rtx_backup_tunnel: BackupTunnel | None = Field(
        default=None,
        description=(
            "A second VPS, e.g. {'vps_ipv6': '2001:db8:4::1'}: its own `tunnel select N` and "
            "keepalive; the default route goes to the first VPS, to this one while the first "
            "does not answer, then to rtx_fallback_gateway."
        ),
    )
    rtx_backup_dir: LocalPath = Field(
        default=DEFAULT_BACKUP_DIR,
        description=(
            "Folder on the machine pyinfra runs on for this router's config backups (a path; "
            "relative: to the directory pyinfra runs in). Before a run changes the router, "
            "its running and saved config go to DIR/ROUTER/YYYYmmdd-HHMMSS-running.txt and "
            "-saved.txt, secrets hidden."
        ),
    )
    rtx_restore_from: Annotated[Any, PlainValidator(_backup_file)] | None = Field(
        default=None,
        description=(
            "For restore.py only: the backup file (running or saved) whose owned lines the "
            "router gets back, e.g. 'backups/192.0.2.1/20261202-101500-saved.txt' (relative: "
            "to the directory pyinfra runs in)."
        ),
    )

    @model_validator(mode="after")
    def _takeover_names_a_tunnel(self) -> RouterSettings:
        if self.rtx_tunnel_takeover and self.rtx_tunnel_number is None:
            raise ValueError(
                "rtx_tunnel_takeover: True needs rtx_tunnel_number: the tunnel to replace is "
                "named, never guessed"
            )
        return self

    @model_validator(mode="after")
    def _fallback_possible(self) -> RouterSettings:
        gateway = self.rtx_fallback_gateway
        if gateway in ("auto", False):
            return self
        if not self.rtx_default_route:
            raise ValueError(
                f"rtx_fallback_gateway {gateway!r} needs rtx_default_route: True (the fallback "
                "is the second gateway of the default route this deploy owns)"
            )
        if self.tunnel_inner_network is False:
            raise ValueError(
                f"rtx_fallback_gateway {gateway!r} needs tunnel_inner_network: the router "
                "probes the VPS's inner address, reachable only through the tunnel"
            )
        if self.rtx_tunnel_number is not None and gateway == f"tunnel {self.rtx_tunnel_number}":
            raise ValueError(
                f"rtx_fallback_gateway {gateway!r} is this deploy's own tunnel "
                f"(rtx_tunnel_number {self.rtx_tunnel_number}): expected another way out"
            )
        return self

    @model_validator(mode="after")
    def _backup_fits(self) -> RouterSettings:
        backup = self.rtx_backup_tunnel
        if backup is None:
            return self
        problems = []
        if not self.rtx_default_route:
            problems.append(
                "needs rtx_default_route: True (the backup is the default route's second gateway)"
            )
        if self.tunnel_inner_network is False:
            problems.append(
                "needs tunnel_inner_network: the router probes the first VPS's inner address "
                "to know when to switch to the backup"
            )
        if backup.vps_ipv6 == self.vps_ipv6:
            problems.append(
                f"vps_ipv6 {str(backup.vps_ipv6)!r} is the first VPS's too: expected another VPS"
            )
        if backup.vps_ipv6 == self.router_ipv6:
            problems.append(f"vps_ipv6 {str(backup.vps_ipv6)!r} is router_ipv6")
        pairs = (
            ("rtx_tunnel_number", self.rtx_tunnel_number, backup.rtx_tunnel_number),
            ("rtx_keepalive_number", self.rtx_keepalive_number, backup.rtx_keepalive_number),
            ("rtx_ipv6_filter_number", self.rtx_ipv6_filter_number, backup.rtx_ipv6_filter_number),
        )
        for key, first, second in pairs:
            if first is not None and first == second:
                problems.append(f"{key} {second} is the first tunnel's too: expected another")
        if backup.rtx_ipv6_filter_number is not None and self.rtx_ipv6_filter_number is None:
            problems.append(
                "rtx_ipv6_filter_number is set for the backup only: set it for both tunnels "
                "or for neither"
            )
        if backup.rtx_tunnel_number is not None and self.rtx_fallback_gateway == (
            f"tunnel {backup.rtx_tunnel_number}"
        ):
            problems.append(
                f"rtx_tunnel_number {backup.rtx_tunnel_number} is rtx_fallback_gateway: "
                "expected the fallback to be another way out"
            )
        inner = self.backup_inner_network
        if self.tunnel_inner_network is not False and inner is not None:
            if backup.tunnel_inner_network is None:
                try:
                    _inner_network(inner)
                except ValueError as exc:
                    problems.append(
                        f"tunnel_inner_network: the link after the first tunnel's ({inner}) "
                        f"cannot be used ({exc}); set one"
                    )
            if inner.overlaps(self.tunnel_inner_network):
                problems.append(
                    f"tunnel_inner_network {str(inner)!r} overlaps the first tunnel's "
                    f"({self.tunnel_inner_network}): expected a link network of its own"
                )
            for net in self.home_networks:
                if net.overlaps(inner):
                    problems.append(
                        f"tunnel_inner_network {str(inner)!r} overlaps the home network {net}"
                    )
        if problems:
            raise ValueError("rtx_backup_tunnel: " + "; ".join(problems))
        return self

    @property
    def backup_inner_network(self) -> ipaddress.IPv4Network | None:
        """The backup tunnel's inner link: as set, else the one after the first tunnel's."""
        backup = self.rtx_backup_tunnel
        if backup is None or self.tunnel_inner_network is False:
            return None
        return backup.tunnel_inner_network or _next_link(self.tunnel_inner_network)

    def backup_site(self) -> RouterSettings | None:
        """The backup tunnel as a router site of its own: this router's settings with the
        backup's address, inner link, numbers and name (None: no backup). Its VPS end pairs
        with the backup VPS like any router's tunnel."""
        backup = self.rtx_backup_tunnel
        if backup is None:
            return None
        own = {
            "vps_ipv6": backup.vps_ipv6,
            "tunnel_inner_network": self.backup_inner_network,
            "rtx_tunnel_number": backup.rtx_tunnel_number,
            "rtx_keepalive_number": backup.rtx_keepalive_number,
            "rtx_ipv6_filter_number": backup.rtx_ipv6_filter_number,
            "rtx_vps_managed_elsewhere": backup.rtx_vps_managed_elsewhere,
            "rtx_tunnel_takeover": False,
            "rtx_backup_tunnel": None,
        }
        values = {key: getattr(self, key) for key in type(self).model_fields} | own
        fields_set = (set(self.model_fields_set) - {"tunnel_name"}) | set(own)
        if backup.tunnel_name is not None:
            values["tunnel_name"] = backup.tunnel_name
            fields_set.add("tunnel_name")
        else:
            values["tunnel_name"] = type(self).model_fields["tunnel_name"].default
        # Validated already, field by field and across (here and in _backup_fits).
        return type(self).model_construct(_fields_set=fields_set, **values)

    @property
    def fallback_wanted(self) -> bool:
        """Whether this router's default route falls back when the VPS does not answer."""
        return (
            self.rtx_default_route
            and self.rtx_fallback_gateway is not False
            and self.tunnel_inner_network is not False
        )

    @model_validator(mode="after")
    def _verify_ping_at_home(self) -> RouterSettings:
        address = self.rtx_verify_ping
        if not isinstance(address, ipaddress.IPv4Address):
            return self
        if self.inner is not None and address == self.inner.router.ip:
            return self
        backup = self.backup_inner_network
        if backup is not None and address == InnerAddresses(backup).router.ip:
            return self  # the router's address on its backup tunnel: it answers there too
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


# --------------------------------------------------------------------------------------------
# Keys and loading

End = Literal["vps", "router"]
END_NAMES = {"vps": "the VPS end (hosts reached over SSH)", "router": "the router end (@rtx hosts)"}

# pyinfra's own keys: connector settings (ssh_*, winrm_*, ...) and global arguments (_sudo, ...).
_PYINFRA_PREFIXES = ("ssh_", "_", "docker_", "local_", "chroot_", "winrm_", "terraform_", "fake_")
# Keys of the @rtx connector that are not tunnel settings.
RTX_CONNECTOR_KEYS = frozenset(
    {"rtx_known_hosts_file", "rtx_trust_new_host_key", "rtx_timeout", "rtx_legacy_ssh"}
)
# pyinfra keys whose values are no secret: shown in errors and in --debug's group data dump.
_PYINFRA_HARMLESS = frozenset(
    {
        "ssh_hostname",
        "ssh_port",
        "ssh_user",
        "ssh_key",
        "ssh_known_hosts_file",
        "ssh_strict_host_key_checking",
        "ssh_config_file",
        "ssh_allow_agent",
        "ssh_look_for_keys",
        "ssh_connect_retries",
        "ssh_connect_retry_min_delay",
        "ssh_connect_retry_max_delay",
        "ssh_forward_agent",
        "ssh_paramiko_connect_kwargs",
        "_sudo",
        "_sudo_user",
        "_use_sudo_login",
        "_preserve_sudo_env",
        "_su_user",
        "_doas",
        "_doas_user",
        "_shell_executable",
        "_timeout",
    }
)


@cache
def end_keys(end: End) -> frozenset[str]:
    """The data keys one end of the tunnel reads."""
    if end == "vps":
        return frozenset(VpsSettings.model_fields)
    return frozenset(RouterSettings.model_fields) | RTX_CONNECTOR_KEYS


@cache
def known_keys() -> frozenset[str]:
    return end_keys("vps") | end_keys("router")


def is_pyinfra_key(key: str) -> bool:
    return key.startswith(_PYINFRA_PREFIXES)


@cache
def harmless_keys() -> frozenset[str]:
    """Keys whose values may be printed: this deploy's settings that are no secret, and
    pyinfra's connection keys that hold no password."""
    ours = {key for key in known_keys() if not is_secret_key(key)}
    return frozenset(ours) | _PYINFRA_HARMLESS


class SettingsError(ValueError):
    """Bad inventory/group data for one host. The message names host, key, value, expectation."""

    def __init__(self, host: str, problems: list[str]):
        self.host = host
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid data for host {host}:\n{lines}")


def describe(key: str, value: Any) -> str:
    """A value as an error message may show it: ``<hidden>`` unless ``key`` is known harmless
    (and, for ``rtx_backup_tunnel``, unless every key inside is known: an unknown one may hold
    a password)."""
    if key not in harmless_keys():
        return "<hidden>"
    nested = key == "rtx_backup_tunnel" and isinstance(value, Mapping)
    if nested and any(k not in BackupTunnel.model_fields for k in value):
        return "<hidden>"
    text = repr(value)
    # Long enough for a file's whole path (rtx_restore_from, rtx_backup_dir), bounded for the
    # value that is no path at all.
    return text if len(text) <= 240 else text[:237] + "..."


def _key_problems(end: End, data: Mapping[str, Any], shared: frozenset[str]) -> list[str]:
    own, other_end = end_keys(end), ("router" if end == "vps" else "vps")
    other = end_keys(other_end) - own
    problems = []
    for key in sorted(data):
        if key in own or is_pyinfra_key(key):
            continue
        if key in other:
            if key in shared:  # group_data/all.py or --data: read by both ends on purpose
                continue
            problems.append(
                f"{key} (value {describe(key, data[key])}): a setting of "
                f"{END_NAMES[other_end]}, not of {END_NAMES[end]}: set it in that end's host "
                "or group data, or in group_data/all.py (shared by both ends)"
            )
            continue
        hint = difflib.get_close_matches(key, own, n=1) or difflib.get_close_matches(
            key, other, n=1
        )
        expected = f"did you mean {hint[0]!r}?" if hint else "not a setting of this deploy"
        if key.isupper():  # ADMIN_PW = "..." in a group_data file is data to pyinfra
            expected += " (a helper name in a group_data file: start it with '_' or `del` it)"
        # Its value is never shown: an unknown key may well hold a password.
        problems.append(f"{key}: unknown key (value <hidden>): {expected}")
    return problems


def _description(model: type[_Settings], loc: tuple[Any, ...]) -> str | None:
    """The description of the field at ``loc``: the backup tunnel's or a port forward's own
    field for one of their keys."""
    if len(loc) > 1 and loc[0] == "rtx_backup_tunnel" and loc[1] in BackupTunnel.model_fields:
        return BackupTunnel.model_fields[str(loc[1])].description
    if len(loc) > 2 and loc[0] == "port_forwards" and loc[2] in PortForward.model_fields:
        return PortForward.model_fields[str(loc[2])].description
    return model.model_fields[str(loc[0])].description


def _load(
    model: type[_Settings],
    end: End,
    host: str,
    data: Mapping[str, Any],
    *,
    complete: bool,
    shared: frozenset[str],
) -> Any:
    problems = _key_problems(end, data, shared)
    fields = {k: v for k, v in data.items() if k in model.model_fields}
    if model is VpsSettings and "ssh_port_allowed" not in fields:
        port = data.get("ssh_port")
        # The port pyinfra connects on is the one to keep open (a port forward is the
        # exception: set ssh_port_allowed, and the check after connecting has the last word).
        if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
            fields["ssh_port_allowed"] = port
    settings = None
    try:
        settings = model.model_validate(fields)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            key = ".".join(str(p) for p in err["loc"])
            top = str(err["loc"][0]) if err["loc"] else ""
            if err["type"] == "missing":
                if not complete:  # checking what is there, e.g. for `pyinfra @rtx/… exec`
                    continue
                problems.append(f"{key}: missing: {_description(model, err['loc'])}")
                continue
            msg = err["msg"].removeprefix("Value error, ")
            if not err["loc"]:  # a check across keys: its message names them and their values
                problems.append(msg)
                continue
            problems.append(f"{key} (value {describe(top, err.get('input'))}): {msg}")
    if problems:
        raise SettingsError(host, problems)
    return settings


def load_vps_settings(
    host: str,
    data: Mapping[str, Any],
    *,
    shared: frozenset[str] = frozenset(),
    complete: bool = True,
) -> VpsSettings:
    """Validate one VPS host's merged data. Raises :class:`SettingsError` listing every problem.

    ``shared``: keys set only where both ends read them (``group_data/all.py``, ``--data``):
    a router key there is no mistake. With ``complete=False`` missing keys are no error (and
    the result is None when some are missing)."""
    return _load(VpsSettings, "vps", host, data, complete=complete, shared=shared)


def load_router_settings(
    host: str,
    data: Mapping[str, Any],
    *,
    shared: frozenset[str] = frozenset(),
    complete: bool = True,
) -> RouterSettings:
    """Validate one router host's merged data. Raises :class:`SettingsError`."""
    return _load(RouterSettings, "router", host, data, complete=complete, shared=shared)
