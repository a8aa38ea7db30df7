"""The RTX driver: the one owner of a commit's state on one router (NAPALM's shape).

Layers, as Scrapli has them: the *transport* (paramiko, opened by the connector) → the
*session* (:mod:`ipip6.rtx.session`: prompts, pager, console, exact reads) → the *driver* (this
module: what a commit is) → the pyinfra *operations* (:mod:`operations.rtx`: facts, diff,
yield). The connector (:mod:`ipip6.rtx.connector`) is the thin pyinfra adapter around the
session (dry-run gate, echo, secret scrubbing) and hands out this driver.

For one router and one pyinfra run the driver holds the config file the router booted from
(read once per session), the pending commit (applied and confirmed, not saved yet), the backup
taken before this run's first change, and the verbs a network engineer knows:
:meth:`get_running`, :meth:`get_saved`, :meth:`tunnel_status`, :meth:`take_backup`,
:meth:`commit`, :meth:`save`, :meth:`rollback`. The rules of each verb are pure and live in
:mod:`ipip6.rtx.commit` (confirm or roll back) and :mod:`ipip6.rtx.decide` (whether to).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ipip6.rtx import commit as gate
from ipip6.rtx.backup import Backup, BackupError, write_backup
from ipip6.rtx.config import OwnedSection, RouterConfig
from ipip6.rtx.facts import config_file_number
from ipip6.rtx.session import CommandResult
from ipip6.rtx.status import TunnelStatus, parse_tunnel_status

if TYPE_CHECKING:
    from ipip6.rtx.connector import RTXConnector


class RTXDriver:
    """Drives one router through its ``@rtx`` connector; is the :class:`ipip6.rtx.commit.Router`
    the commit gate works on."""

    def __init__(self, connector: RTXConnector):
        self._connector = connector
        #: Applied and confirmed in this run, not saved yet: what a failed save rolls back.
        self.pending_commit: gate.PendingCommit | None = None
        #: Written before this run's first change to the router (once per run).
        self.backup: Backup | None = None
        self._config_file: tuple[object, int | None] | None = None

    # -- what the commit gate needs ----------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._connector.alive

    def cli(self, line: str) -> CommandResult:
        """One CLI line, echoed as pyinfra echoes (``-vv`` the line, ``-vvv`` the answer). The
        gate sends reads, ``save`` and config lines (the delta, its rollback, ``tunnel select
        none``): those change the running config only, so the saved config read before them
        still holds."""
        state = self._connector.state
        return self._connector.cli(
            line,
            print_input=state.print_input,
            print_output=state.print_output,
            config_line=line != "save",
        )

    def reconnect(self) -> None:
        self._connector.reconnect()

    # -- reads -----------------------------------------------------------------------------

    def config_file(self) -> int | None:
        """The config file the router booted from (``show environment``): what a bare
        ``save`` writes and ``show config N`` shows; None when the router does not say in a
        form known here. Read once per session."""
        session = self._connector.session
        if self._config_file is not None and self._config_file[0] is session:
            return self._config_file[1]
        result = self.cli("show environment")
        number = config_file_number(result.output.splitlines()) if result.ok else None
        self._config_file = (session, number)
        return number

    def get_running(self) -> RouterConfig:
        return gate.read_running(self)

    def get_saved(self) -> RouterConfig | None:
        number = self.config_file()
        return None if number is None else gate.read_saved(self, number)

    def take_backup(self, folder: Path) -> Backup | None:
        """Write the running and saved config under ``folder`` unless this run did already
        (then None). The texts are the session's kept reads, which the plan was made from: no
        new round trip unless something was sent since. Raises
        :class:`~ipip6.rtx.backup.BackupError`; a saved config the router cannot show is said
        in the backup's note, not an error."""
        if self.backup is not None:
            return None
        running = self._quiet_read("show config")
        if not running.ok:
            raise BackupError(
                f"could not read the running config (show config) to back it up: {running.error}"
            )
        number = self.config_file()
        saved, note = None, None
        if number is None:
            note = "which config file the router booted from is unknown: no saved config"
        else:
            answer = self._quiet_read(f"show config {int(number)}")
            if answer.ok:
                saved = answer.output
            else:
                note = f"show config {int(number)} answered {answer.error!r}: no saved config"
        self.backup = write_backup(
            folder, self._connector.host.name, running.output, saved, saved_note=note
        )
        return self.backup

    def _quiet_read(self, line: str) -> CommandResult:
        # Not echoed: the same text was read (and shown with -vvv) for the plan already.
        return self._connector.cli(line)

    def tunnel_status(self, number: int) -> TunnelStatus:
        result = self.cli(f"show status tunnel {int(number)}")
        return parse_tunnel_status(number, result.output, result.error)

    # -- the commit ------------------------------------------------------------------------

    def commit(self, plan: gate.Plan, checks: Sequence[gate.Check]) -> gate.Result:
        """Send the candidate without saving, confirm it on the router, or roll it back."""
        return gate.commit(self, plan, checks)

    def rollback(self, reason: str) -> gate.Result | None:
        """Roll back this run's unsaved commit, if there is one (None: nothing to roll back)."""
        if self.pending_commit is None:
            return None
        return gate.rollback(self, self.pending_commit.plan, reason)

    def save(
        self,
        desired: OwnedSection | None,
        running: RouterConfig | None,
        saved: RouterConfig | None,
        verify: gate.Verify | None,
        *,
        check_tunnel: bool,
    ) -> gate.Result:
        """Check on the router (the tunnel is up) and by traffic (``verify``), then ``save``
        and read the saved config back; anything failing restores what the router had.
        ``desired`` None: the lines this run committed, if any, else the whole config (no
        owned lines, no tunnel to check)."""
        if desired is None and self.pending_commit is not None:
            desired = self.pending_commit.plan.desired
        if desired is None:
            desired, check_tunnel = gate.WHOLE_CONFIG, False
        number = self.config_file()
        if number is None:
            result = gate.Result(ok=False)
            result.add("error", "cannot tell which config file the router booted from: not saved")
            return result

        def router_check() -> tuple[bool, str]:
            seen = []
            for block in desired.enabled_blocks:  # the first VPS's tunnel, then the backup's
                status = self.tunnel_status(block.number)
                if status.state == "unknown" and verify is not None:
                    # Words this driver does not know: not proof of anything, so the check by
                    # traffic that follows decides. Never the only check.
                    seen.append(f"{status.summary()}; the check by traffic decides")
                    continue
                seen.append(status.summary())
                if not status.up:
                    return False, "; ".join(seen)
            return True, "; ".join(seen)

        return gate.save(
            self,
            desired,
            running,
            config_file=number,
            saved=saved,
            verify=verify,
            router_check=router_check if check_tunnel else None,
        )
