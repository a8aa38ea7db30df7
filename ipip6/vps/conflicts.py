"""What the VPS already has that the data would break: checked after connecting, before any
change. Pure: settings and the :class:`~ipip6.vps.facts.VpsNetwork` fact in, problems out.

Data can be valid on paper and still wrong for this host: a tunnel name an interface already
has (the first deploy would delete that interface), an uplink that does not exist, a home
network holding the VPS's own address or gateway (its own traffic would go into the tunnel), an
inner link network the VPS already uses,
or a firewall that would close the port this very SSH connection came in on.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from ipip6.settings import VpsSettings


def conflicts(settings: VpsSettings, network: Mapping[str, Any]) -> list[str]:
    """Each problem as one line naming the key, the value and what was expected."""
    problems = []
    links: dict[str, str] = network.get("links", {})
    name = settings.tunnel_name
    if name in links and name not in network.get("owned_netdevs", []):
        kind = f" ({links[name]})" if links[name] else ""
        problems.append(
            f"tunnel_name (value {name!r}): the VPS already has an interface {name}{kind} that "
            "this deploy did not create, and the deploy would delete it; expected a name no "
            "interface has"
        )
    if links and settings.uplink_interface not in links:
        problems.append(
            f"uplink_interface (value {settings.uplink_interface!r}): no such interface on the "
            f"VPS; expected one of {', '.join(sorted(n for n in links if n != 'lo'))}"
        )
    own = [("address", a) for a in network.get("ipv4", [])]
    own += [("default gateway", g) for g in network.get("gateways", [])]
    for what, text in own:
        try:
            address = ipaddress.IPv4Address(text)
        except ValueError:
            continue
        if address.is_loopback:
            continue
        for net in settings.home_networks:
            if address in net:
                problems.append(
                    f"home_networks (value {str(net)!r}): holds the VPS's own IPv4 {what} "
                    f"{address}, whose traffic would go into the tunnel; expected networks "
                    "behind the router only"
                )
    inner = settings.inner
    on = network.get("ipv4_links", {})
    # A tunnel this deploy created holds its inner address: this run keeps, renames or
    # removes it, so that address is no conflict.
    owned = set(network.get("owned_netdevs", []))
    for text in network.get("ipv4", []) if inner is not None else ():
        try:
            address = ipaddress.IPv4Address(text)
        except ValueError:
            continue
        if address in inner.network and on.get(text) not in owned:
            problems.append(
                f"tunnel_inner_network (value {str(inner.network)!r}): holds the VPS's own IPv4 "
                f"address {address} (on {on.get(text, 'an interface')}); expected a link "
                "network nothing on the VPS uses"
            )
    port = network.get("ssh_server_port")
    if port is not None and port not in settings.open_tcp_ports:
        problems.append(
            f"ssh_port_allowed (value {settings.ssh_port_allowed!r}): this SSH connection "
            f"arrived on port {port}, which the firewall would close; expected {port} in "
            "ssh_port_allowed or firewall_allow_tcp"
        )
    return problems
