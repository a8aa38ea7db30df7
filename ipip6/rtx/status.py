"""The router's own view of a tunnel: ``show status tunnel N``, read before a change is saved.

The RTX prints, in the console's language::

    TUNNEL[1]:
    Description:
      Interface type: IPIP
      Tunnel interface is connected
      ...

    TUNNEL[1]:
    説明:
      インタフェースの種類: IPIP
      トンネルインタフェースは接続されています
      ...

and "… is not connected" / "…接続されていません" when the tunnel is disabled or has no
endpoint. IPsec-style status lines ("Current status is Online/Offline") and plain "up"/"down"
are read too; a line saying down wins over one saying up. Anything that says neither is
*unknown*, which never counts as up (the driver then relies on the check by traffic, or saves
nothing without one), and the message shows what the router printed so that a firmware with
other words can be taught here.

Pure: the driver sends the command (:mod:`ipip6.rtx.driver`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Down first: "not connected" contains "connected".
_DOWN = re.compile(
    r"not\s+connected|disconnected|接続されていません|接続されていない|未接続|\boffline\b|\bdown\b|\bdisabled?\b|無効",
    re.IGNORECASE,
)
_UP = re.compile(
    r"\bconnected\b|接続されています|接続中|\bonline\b|\bup\b|\bestablished\b",
    re.IGNORECASE,
)
_DESCRIPTION = re.compile(r"(?:Description|説明)\s*[:：]", re.IGNORECASE)
_TYPE = re.compile(r"(?:Interface\s+type|インタフェースの種類)\s*[:：]\s*(\S+)", re.IGNORECASE)


@dataclass(frozen=True)
class TunnelStatus:
    """``state`` is "up", "down" or "unknown"; ``line`` the status line that says so (or the
    first lines of the output when none did); ``kind`` the interface type when printed."""

    number: int
    state: str
    line: str
    kind: str | None = None

    @property
    def up(self) -> bool:
        return self.state == "up"

    def summary(self) -> str:
        kind = f" ({self.kind})" if self.kind else ""
        if self.state == "unknown":
            return (
                f"show status tunnel {self.number}{kind} did not say whether the tunnel is "
                f"connected: {self.line!r}"
            )
        return f"show status tunnel {self.number}{kind}: {self.line}"


def parse_tunnel_status(number: int, output: str, error: str | None = None) -> TunnelStatus:
    """Read ``show status tunnel N`` output (already without echo and prompt)."""
    if error is not None:
        return TunnelStatus(number, "unknown", error)
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    kind = next((m[1] for line in lines if (m := _TYPE.search(line))), None)
    # The description is the user's own words: never read as a status.
    lines = [line for line in lines if not _DESCRIPTION.match(line)]
    for line in lines:
        if _DOWN.search(line):
            return TunnelStatus(number, "down", line, kind)
    for line in lines:
        if _UP.search(line):
            return TunnelStatus(number, "up", line, kind)
    return TunnelStatus(number, "unknown", " / ".join(lines[:4])[:200], kind)
