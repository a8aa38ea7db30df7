# Shared by both ends of the tunnel (the VPS and the router). Replace the placeholders.

# The VPS's IPv6 address: the tunnel's VPS end (`ip -6 addr show scope global` on the VPS).
vps_ipv6 = "2001:db8:1::1"

# The router's WAN IPv6 address on the IPoE line: the tunnel's home end
# (`show ipv6 address` on the router).
router_ipv6 = "2001:db8:2::1"

# The IPv4 networks behind the router, routed through the tunnel.
home_networks = ["192.168.100.0/24"]
