"""Check both ends of every tunnel, changing nothing: `pyinfra -y inventory.py check.py`.

Read-only (see operations/health.py): the router is sent `show` lines only, the VPS is read.
Each check is one operation per host ("No changes" when it holds, an error with its fix when
not); the run ends with one table of every check and exits non-zero when anything is wrong.
`-y` skips pyinfra's confirmation, as there is nothing to confirm; `--diff` adds a diff of each
drifted file; `--json` gives pyinfra's own JSON on stdout (the table goes to stderr).

Per tunnel:
- the VPS: its ip6tnl (up, ipip6, both ends and MTU as in data), `encaplimit none`, the routes
  to home, the sysctls, the firewall loaded = on disk, no armed rollback timer, the packages,
  every file the deploy owns as it renders it;
- the router: model, firmware and config file; the deploy's lines running = data; running =
  saved (unsaved changes listed, secrets hidden); `show status tunnel N`;
- across: a ping from the VPS through the tunnel (its RTT and loss), and the router's IPv6
  address against router_ipv6 (a changed IPoE prefix is named as such).
"""

from pyinfra import host, inventory, state

from ipip6.tunnels import TunnelInventory, is_router
from operations import health

tunnels = TunnelInventory.of(state)

if not is_router(host):
    settings = tunnels.vps_settings(host.name)
    findings = health.read_vps(settings, tunnels.vps_tunnels(host.name))
    for finding in findings:
        health.check(name=f"VPS: {finding.check}", finding=finding, _ignore_errors=True)
else:
    settings = tunnels.router_settings(host.name)
    vps_name = tunnels.vps_of(host.name)
    backup_name = tunnels.vps_of(host.name, backup=True)
    findings = health.read_router(
        settings,
        inventory.get_host(vps_name) if vps_name else None,
        tunnels.vps_tunnel_name(host.name),
        inventory.get_host(backup_name) if backup_name else None,
        tunnels.vps_tunnel_name(host.name, backup=True),
    )
    for finding in findings:
        end = "Router" if finding.end == "router" else "Across"
        health.check(name=f"{end}: {finding.check}", finding=finding, _ignore_errors=True)
