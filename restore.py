"""Put a router's owned lines back as a backup has them:
`pyinfra inventory.py restore.py --limit @rtx/192.0.2.1 --data rtx_restore_from=FILE`
(add `--dry --diff` to preview).

FILE is one of the backups a deploy writes before it changes a router
(backups/ROUTER/YYYYmmdd-HHMMSS-{running,saved}.txt). It is read and checked with the rest of
the data, before pyinfra connects to any host; a backup of another router (the MAC addresses
in its header) is refused with nothing sent.

Only the lines this deploy owns are restored (the tunnel's, the default route, the filter, the
keepalives: which ones, the data says), through the same path as a deploy: the router's config
is backed up first, the delta applied without saving, read back, then checked on the router
and by traffic from the VPS (when the restored tunnel still goes to it), and only then saved.
The VPS is not changed; it only sends the ping.
"""

from pyinfra import host, inventory, state

from ipip6.tunnels import TunnelInventory, is_router

tunnels = TunnelInventory.of(state)

if is_router(host):
    from operations import rtx

    settings = tunnels.router_settings(host.name)
    vps_name = tunnels.vps_of(host.name)
    vps_host = inventory.get_host(vps_name) if vps_name else None
    backup_name = tunnels.vps_of(host.name, backup=True)
    backup_host = inventory.get_host(backup_name) if backup_name else None
    rtx.restore(
        name="Router: restore the owned lines from rtx_restore_from",
        settings=settings,
        verify_from=vps_host,
        backup_from=backup_host,
    )
    rtx.save(
        name="Router: verify by traffic from the VPS, then save",
        settings=settings,
        verify_from=vps_host,
        vps_tunnel_name=tunnels.vps_tunnel_name(host.name),
        backup_from=backup_host,
        backup_tunnel_name=tunnels.vps_tunnel_name(host.name, backup=True),
        restore=True,
    )
