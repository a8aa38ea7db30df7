# Data for the hosts in inventory.py's `rtx` list (YAMAHA RTX routers).

# The `tunnel select N` this deploy owns on the router. Left out, the deploy takes the tunnel to
# this VPS already on the router, else the lowest free number; a number that anything else
# uses (the ISP's MAP-E or DS-Lite tunnel, a VPN, a route) is refused unless
# rtx_tunnel_takeover = True.
# rtx_tunnel_number = 2

# Before the router saves a change, the VPS pings this home address through the tunnel; no
# reply rolls the change back. "auto": the router's inner address (tunnel_inner_network), else
# its own LAN address inside home_networks.
# rtx_verify_ping = "192.168.100.1"

# The VPS end of this router's tunnel is set up by hand or by another deploy, not in
# inventory.py? Say so; the router then saves without a check by traffic.
# rtx_vps_managed_elsewhere = True

# Helper names here become data too: start them with "_" (e.g. _ADMIN_PW = os.environ[...]).
