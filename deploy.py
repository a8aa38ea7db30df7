"""Deploy the ipip6 tunnel: `pyinfra inventory.py deploy.py` (add `--dry --diff` to preview).

Two ends, two very different hosts:
- the VPS, a Linux host over SSH: systemd-networkd units, sysctls, iptables rules;
- the YAMAHA RTX router (`@rtx/...` hosts), a CLI that is no shell: the owned config lines.

All hosts' data is validated before the first operation; one bad value stops the whole run.

Confirm or roll back across both ends: the router's change is applied (not saved), the VPS is
deployed, every host meets at a barrier, then the VPS pings home through the tunnel, and only
then does the router save.
"""

from pyinfra import host, inventory

from ipip6.inventory_check import (
    is_router,
    router_settings,
    validate_inventory,
    vps_peer,
    vps_settings,
)
from operations import ordering

validate_inventory(inventory)

if is_router(host):
    from operations import rtx

    settings = router_settings(host)
    # Applied without saving, read back, rolled back if anything fails.
    rtx.tunnel(name="Router: ipip6 tunnel and default route", settings=settings)
else:
    from operations import vps

    settings = vps_settings(host)
    vps.packages(name="VPS: packages", settings=settings)
    vps.tunnel(name=f"VPS: tunnel {settings.tunnel_name}", settings=settings)
    vps.sysctls(name="VPS: sysctls", settings=settings)
    vps.firewall(name="VPS: iptables rules", settings=settings)

# One line for every host: without it pyinfra would not wait for the VPS's operations before
# the router's save (it orders operations per host; see operations/ordering.py).
ordering.barrier(name="Both ends deployed", reached="this end is deployed")

if is_router(host):
    # The VPS pings home through the tunnel; saved only if it answers (and whenever the saved
    # config lags behind, e.g. after an interrupted run).
    rtx.save(
        name="Router: verify by traffic from the VPS, then save",
        settings=settings,
        verify_from=vps_peer(inventory, host),
    )
