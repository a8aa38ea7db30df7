# Data for the hosts in inventory.py's `vps` list.

# Logged in as a user with sudo rather than root (Ubuntu cloud images log in as `ubuntu`)?
# _sudo = True

# The ip6tnl interface's name on the VPS (not "ip6tnl0": the kernel's fallback device). With
# several routers on this VPS, set tunnel_name in each router's host data instead.
# tunnel_name = "tun-home"
