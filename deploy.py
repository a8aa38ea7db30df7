"""Deploy the ipip6 tunnel: `pyinfra inventory.py deploy.py` (add `--dry --diff` to preview).

Two ends, two very different hosts:
- the VPS, a Linux host over SSH: systemd-networkd units, sysctls, its firewall chains or table;
- the YAMAHA RTX router (`@rtx/...` hosts), a CLI that is no shell: the owned config lines.

Every host's data was validated, and the two ends paired, before pyinfra connected to any host
(ipip6/preflight.py); one bad value stops the whole run. Settings and peers come from that one
model (ipip6/tunnels.py), never from raw host data.

Confirm or roll back across both ends: the VPS end is deployed first (each change proven by a
new SSH connection), every host meets at a barrier, then the router's change is applied without
saving, the VPS pings home through the tunnel, and only then does the router save. The home's
IPv4 goes into an unverified tunnel for seconds only, never while the VPS is being set up.
"""

from pyinfra import host, inventory, state

from ipip6.tunnels import TunnelInventory, is_router
from operations import ordering

tunnels = TunnelInventory.of(state)

if not is_router(host):
    from operations import vps

    settings = tunnels.vps_settings(host.name)
    # One tunnel per router that has its tunnel to this VPS (several home sites).
    carried = tunnels.vps_tunnels(host.name)
    names = ", ".join(t.tunnel_name for t in carried)
    # Before any change: what the VPS already has that this data would break.
    vps.checks(name="VPS: checks before any change", settings=settings, tunnels=carried)
    vps.packages(name="VPS: packages", settings=settings, tunnels=carried)
    vps.tunnel(name=f"VPS: tunnel {names}", settings=settings, tunnels=carried)
    vps.sysctls(name="VPS: sysctls", settings=settings, tunnels=carried)
    vps.firewall(
        name=f"VPS: firewall ({settings.firewall_backend})", settings=settings, tunnels=carried
    )

# One line for every host: without it pyinfra would not wait for the VPS's operations before
# the router's (it orders operations per host; see operations/ordering.py).
ordering.barrier(name="VPS end deployed", reached="waited for the VPS end")

if is_router(host):
    from operations import rtx

    settings = tunnels.router_settings(host.name)
    vps_name = tunnels.vps_of(host.name)
    vps_host = inventory.get_host(vps_name) if vps_name else None
    vps_tunnel = tunnels.vps_tunnel_name(host.name)
    # A second VPS (rtx_backup_tunnel): its tunnel is checked by traffic from it too.
    backup_name = tunnels.vps_of(host.name, backup=True)
    backup_host = inventory.get_host(backup_name) if backup_name else None
    backup_tunnel = tunnels.vps_tunnel_name(host.name, backup=True)
    # Applied without saving, read back, rolled back if anything fails (not even applied when
    # a VPS end failed).
    rtx.tunnel(
        name="Router: ipip6 tunnel and default route",
        settings=settings,
        verify_from=vps_host,
        backup_from=backup_host,
    )
    # The VPS pings home through the tunnel; saved only if it answers (and whenever the saved
    # config lags behind, e.g. after an interrupted run).
    rtx.save(
        name="Router: verify by traffic from the VPS, then save",
        settings=settings,
        verify_from=vps_host,
        vps_tunnel_name=vps_tunnel,
        backup_from=backup_host,
        backup_tunnel_name=backup_tunnel,
    )
