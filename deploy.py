"""Deploy the ipip6 tunnel: `pyinfra inventory.py deploy.py` (add `--dry --diff` to preview).

Two ends, two very different hosts:
- the VPS, a Linux host over SSH: systemd-networkd units, sysctls, iptables rules;
- the YAMAHA RTX router (`@rtx/...` hosts), a CLI that is no shell: the owned config lines.

All hosts' data is validated before the first operation; one bad value stops the whole run.
"""

from pyinfra import host, inventory

from ipip6.inventory_check import is_router, router_settings, validate_inventory, vps_settings

validate_inventory(inventory)

if is_router(host):
    from operations import rtx

    settings = router_settings(host)
    # Applied without saving, verified on the router, rolled back if anything fails; saved
    # only then (and whenever the saved config lags behind, e.g. after an interrupted run).
    rtx.tunnel(name="Router: ipip6 tunnel and default route", settings=settings)
    rtx.save(name="Router: save the configuration", settings=settings)
else:
    from operations import vps

    settings = vps_settings(host)
    vps.packages(name="VPS: packages", settings=settings)
    vps.tunnel(name=f"VPS: tunnel {settings.tunnel_name}", settings=settings)
    vps.sysctls(name="VPS: sysctls", settings=settings)
    vps.firewall(name="VPS: iptables rules", settings=settings)
