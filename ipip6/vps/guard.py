"""A dead man's switch for changes that could cut the VPS off: apply, prove, or roll back.

The same idea as Junos ``commit confirmed`` and ``iptables-apply``, without a person to answer:

1. keep what is live now as the rollback copy, in a restore script on the VPS;
2. arm a transient systemd timer that runs the script unless cancelled;
3. apply the change;
4. open a **new** SSH connection (the open one survives any ruleset: conntrack keeps it) and
   leave a token file through it;
5. over the old connection: token there → cancel the timer and persist; no token → restore now,
   report, fail. If the old connection died too, the timer restores within its delay.

This module renders the shell for each step (pure); ``operations/vps.py`` strings them together.
"""

from __future__ import annotations

import shlex
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

GUARD_DIR = "/run/ipip6-guard"


@dataclass(frozen=True)
class Guard:
    """One guarded change (``firewall`` or ``tunnel``) with its rollback delay in seconds."""

    name: str
    seconds: int

    @property
    def unit(self) -> str:
        return f"ipip6-guard-{self.name}"

    @property
    def script(self) -> str:
        return f"{GUARD_DIR}/{self.name}.restore"

    def recover_pending(self) -> str:
        """A timer still armed means an earlier run died before confirming: restore now, so this
        run starts from the last confirmed state rather than from an unproven one."""
        unit = shlex.quote(self.unit)
        return (
            f"mkdir -p {GUARD_DIR} && chmod 700 {GUARD_DIR}; "
            f"if systemctl is-active --quiet {unit}.timer; then "
            f"systemctl stop {unit}.timer; sh {shlex.quote(self.script)}; "
            f"echo 'an unconfirmed {self.name} change of an earlier run was rolled back' >&2; "
            f"fi; systemctl reset-failed {unit}.timer {unit}.service 2>/dev/null; true"
        )

    def arm(self) -> str:
        return (
            f"systemd-run --quiet --unit={shlex.quote(self.unit)} "
            f"--on-active={self.seconds} --timer-property=AccuracySec=1s "
            f"/bin/sh {shlex.quote(self.script)}"
        )

    def confirm_or_restore(self, token: str, then: Iterable[str] = ()) -> str:
        """Over the old connection: commit if the new connection left its token and the timer
        has not fired yet (it would have restored the old state already), else roll back."""
        unit = shlex.quote(self.unit)
        commit = "; ".join([f"systemctl stop {unit}.timer", *then])
        quoted = shlex.quote(token)
        return (
            f"if [ -e {quoted} ] && systemctl is-active --quiet {unit}.timer; then "
            f"rm -f {quoted}; {commit}; "
            f"else rm -f {quoted}; systemctl stop {unit}.timer; sh {shlex.quote(self.script)}; "
            f"echo 'no new SSH connection could be opened after the {self.name} change in "
            f"time: rolled back to the previous state' >&2; exit 1; fi"
        )


def new_token() -> str:
    """Where the new connection leaves its proof: a fresh name in /tmp, no sudo needed."""
    return f"/tmp/ipip6-confirm-{uuid.uuid4().hex}"


def _script(lines: Iterable[str]) -> str:
    header = ["#!/bin/sh", "# Written by pyinfra-ipip6: rolls back an unconfirmed change."]
    return "\n".join([*header, *lines]) + "\n"


# The deploy's part of a ruleset as iptables-save prints it: table headers and COMMITs, the
# built-in chains' policies, the IPIP6-* chains with their rules, and the jumps to them.
_OWNED_PART = (
    "awk '/^[*]/ || /^COMMIT/ || /^:[A-Z]+ (ACCEPT|DROP) / || /^:IPIP6-/ || /^-A IPIP6-/ "
    "|| /^-A [A-Z]+ -j IPIP6-[A-Z]+$/'"
)

# Removes the deploy's chains and the jumps to them from the live rules, nothing else.
_DROP_OWNED = (
    'drop_owned() { cmd=$1; shift; for t in "$@"; do '
    "$cmd -w -t \"$t\" -S | sed -n 's/^-A \\([A-Z]*\\) -j \\(IPIP6-[A-Z]*\\)$/\\1 \\2/p' | "
    'while read -r base chain; do $cmd -w -t "$t" -D "$base" -j "$chain"; done; '
    "chains=$($cmd -w -t \"$t\" -S | sed -n 's/^-N \\(IPIP6-[A-Z]*\\)$/\\1/p'); "
    'for c in $chains; do $cmd -w -t "$t" -F "$c"; done; '
    'for c in $chains; do $cmd -w -t "$t" -X "$c"; done; done; }'
)


# Puts the deploy's part back from its saved copy without moving anyone's rules: a jump that
# is in the copy and still live stays where it is (before or after Docker's, as it was); only
# jumps and chains the copy lacks go, and a jump that went is appended again.
_RESTORE_OWNED = (
    'restore_owned() { cmd=$1; saved=$2; shift 2; for t in "$@"; do '
    'part=$(awk -v t="*$t" \'/^[*]/ {on = ($0 == t)} on\' "$saved"); '
    "$cmd -w -t \"$t\" -S | sed -n 's/^-A \\([A-Z]*\\) -j \\(IPIP6-[A-Z]*\\)$/\\1 \\2/p' | "
    'while read -r base chain; do printf "%s\\n" "$part" | grep -qxF -- "-A $base -j $chain" '
    '|| $cmd -w -t "$t" -D "$base" -j "$chain"; done; '
    "chains=$($cmd -w -t \"$t\" -S | sed -n 's/^-N \\(IPIP6-[A-Z]*\\)$/\\1/p'); "
    'for c in $chains; do printf "%s\\n" "$part" | grep -q "^:$c " || $cmd -w -t "$t" -F "$c"; '
    'done; for c in $chains; do printf "%s\\n" "$part" | grep -q "^:$c " '
    '|| $cmd -w -t "$t" -X "$c"; done; done; '
    # Declared chains are flushed and refilled by a --noflush restore; the jumps are hooked.
    "grep -v '^-A [A-Z]* -j IPIP6-[A-Z]*$' \"$saved\" | $cmd-restore -w --noflush && "
    "awk '/^[*]/ {t = substr($0, 2)} /^-A [A-Z]+ -j IPIP6-[A-Z]+$/ {print t, $2, $4}' "
    '"$saved" | while read -r t base chain; do $cmd -w -t "$t" -C "$base" -j "$chain" '
    '2>/dev/null || $cmd -w -t "$t" -A "$base" -j "$chain"; done; }'
)


#: Removes the deploy's iptables chains and the jumps to them, nothing else.
DROP_OWNED_IPTABLES = (
    f"{_DROP_OWNED}; drop_owned iptables filter nat mangle; drop_owned ip6tables filter; true"
)
#: With the nftables backend the deploy's table holds the DROP policy: the iptables filter
#: chains' policies go back to ACCEPT (the iptables layout set them to DROP; Docker sets FORWARD
#: to DROP when it had to turn forwarding on itself), or they would drop the home's traffic
#: whatever the table accepts. A rollback puts them back as they were.
IPTABLES_POLICIES_ACCEPT = (
    "for c in iptables ip6tables; do command -v $c >/dev/null 2>&1 || continue; "
    'for chain in INPUT FORWARD; do $c -w -S $chain 2>/dev/null | grep -qx -- "-P $chain DROP" '
    "&& $c -w -P $chain ACCEPT; done; done; true"
)
#: Removes the deploy's nftables table (none, or no nft: nothing to do).
DROP_OWNED_NFT = (
    "if command -v nft >/dev/null 2>&1; then nft delete table inet ipip6 2>/dev/null; fi; true"
)


def firewall_restore_script(
    candidates: Iterable[str], legacy: Iterable[tuple[str, str]] = ()
) -> str:
    """Put back the deploy's part of the rules as it was live before (saved beside the script),
    whichever backend held it: its chains, jumps and table go, the saved ones come back; other
    chains and tables are not touched. ``legacy`` ((restore command, file) pairs): an earlier
    release's whole-ruleset files this change replaces; their rules are appended again. The
    candidates are dropped."""
    return _script(
        [
            DROP_OWNED_NFT,
            _RESTORE_OWNED,
            f"restore_owned iptables {GUARD_DIR}/firewall.v4 filter nat mangle",
            f"restore_owned ip6tables {GUARD_DIR}/firewall.v6 filter",
            f"[ -s {GUARD_DIR}/firewall.nft ] && nft -f {GUARD_DIR}/firewall.nft",
            *(f"{command} -w --noflush < {shlex.quote(path)}" for command, path in legacy),
            "rm -f " + " ".join(shlex.quote(c) for c in candidates),
            "logger -t pyinfra-ipip6 'firewall change not confirmed: previous rules restored'",
        ]
    )


def firewall_snapshot() -> str:
    """Keep the deploy's part of the live rules as the rollback copy: its iptables chains and
    its nftables table, whichever are there."""
    return (
        f"iptables-save | {_OWNED_PART} > {GUARD_DIR}/firewall.v4 && "
        f"ip6tables-save | {_OWNED_PART} > {GUARD_DIR}/firewall.v6 && "
        f"{{ if command -v nft >/dev/null 2>&1; then nft list table inet ipip6 2>/dev/null; fi; "
        f"true; }} > {GUARD_DIR}/firewall.nft"
    )


def legacy_rules_removal(command: str, path: str) -> str:
    """Delete from the live rules, one by one, the rules an earlier release's whole-ruleset
    file (iptables-restore format, no quoting) loaded: nobody else's rule goes with them."""
    quoted = shlex.quote(path)
    return (
        f't=; while IFS= read -r line; do case "$line" in '
        f"'*'*) t=${{line#?}} ;; '-A '*) {command} -w -t \"$t\" -D ${{line#-A }} 2>/dev/null "
        f"|| true ;; esac; done < {quoted}"
    )


TUNNEL_BACKUP = f"{GUARD_DIR}/tunnel-units"


def tunnel_snapshot(owned_globs: Iterable[str]) -> str:
    """Copy the units this project owns now (if any) aside, keeping their paths."""
    globs = " ".join(owned_globs)  # fixed prefixes: left unquoted to expand
    return (
        f"rm -rf {TUNNEL_BACKUP} && mkdir -p {TUNNEL_BACKUP} && "
        f'for f in {globs}; do [ -e "$f" ] && cp -a --parents "$f" {TUNNEL_BACKUP}; done; true'
    )


def tunnel_restore_script(owned_globs: Iterable[str], links: Iterable[str]) -> str:
    """Put the previous units back and let networkd re-create the previous link."""
    globs = " ".join(owned_globs)
    return _script(
        [
            f"rm -f {globs}",
            f"[ -d {TUNNEL_BACKUP}/etc ] && cp -a {TUNNEL_BACKUP}/etc/. /etc/",
            *(f"ip link del dev {shlex.quote(link)} 2>/dev/null" for link in links),
            "systemctl restart systemd-networkd",
            "logger -t pyinfra-ipip6 'tunnel change not confirmed: previous units restored'",
        ]
    )
