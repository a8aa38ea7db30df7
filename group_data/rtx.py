# Data for the hosts in inventory.py's `rtx` list (YAMAHA RTX routers).

# The `tunnel select N` this deploy owns on the router.
rtx_tunnel_number = 1
