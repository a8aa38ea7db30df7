"""Your tunnel: edit this file. Everything here is a placeholder from documentation prefixes.

Keys shared by both ends live in group_data/all.py; every key is explained in README.md
("Data reference"). Host data here overrides group data.
"""

# The VPS: a Linux host with systemd-networkd (Ubuntu 18.04+, Debian 11+), reached over SSH.
vps = [
    (
        "203.0.113.10",  # the VPS's SSH address or name
        {
            "ssh_user": "root",  # or "ubuntu" with "_sudo": True (group_data/vps.py)
            "uplink_interface": "ens3",  # `ip -6 route show default` on the VPS shows it
        },
    ),
]

# The home router: a YAMAHA RTX (RTX1200, RTX810/830, RTX1210/1220, NVR510) reached over SSH
# from this machine, usually at its LAN address. See README.md "The router" to enable SSH on it.
rtx = [
    (
        "@rtx/192.0.2.1",  # the router's LAN address
        {
            "ssh_user": "admin",  # the `login user` you created on the router
            # Passwords: better from the environment than in this file, e.g.
            #   "ssh_password": os.environ["RTX_LOGIN_PASSWORD"],
            "ssh_password": "change-me",
            "rtx_admin_password": "change-me",
        },
    ),
]
