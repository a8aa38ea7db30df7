"""Confirm or roll back: the commit gate between a router delta and the router's flash.

In NAPALM's vocabulary (pyinfra-vyos uses the same steps): the running config is read and
*compared* with the desired owned lines (:func:`ipip6.rtx.config.compare`); the delta is the
*candidate*. :func:`commit` sends it line by line **without saving**, then *confirms* it with
:data:`Check` functions run on the router (by default: ``show config`` is read again, the owned
section must now equal the desired one and nothing outside it may have moved). Saving is a step
of its own (:func:`save`), taken only after the confirmation passed, and after a check by
traffic (:data:`Verify`, e.g. the VPS pinging home through the tunnel) when one is given.

Any of these *rolls back*: an ``Error:`` line, a failed check, a lost connection or a timeout,
any other exception, and before the save a tunnel the router says is down (``show status
tunnel N``) or a failed check by traffic. Once ``save`` has been sent, a failure is looked at
on a fresh session: the flash either holds the checked change (saved, with a warning), or is
restored to the saved config from before the run (rolled back, saved again, read back), or
the error says it is uncertain and what to compare. No message says "nothing saved" then.

Rolling back sends the delta's rollback commands (which set every touched line back to its value
before the run, so they work from any half-applied state), on a fresh session when the old one
died, reads ``show config`` again and reports whether the owned lines are as they were. Nothing
is saved then; if the rollback itself cannot be sent, the saved config is still the old one and
a ``restart`` of the router brings it back.

Converging with the saved config: a later run compares the running config with the desired
lines *and* the saved config (``show config N``) with the running one, so a run that applied
and confirmed but never saved (or a change made by hand and not saved) is saved by the next run.
Unsaved changes *outside* the owned lines block the run: ``save`` would write them too.

This module is I/O-free apart from the :class:`Router` it is handed (the
:class:`~ipip6.rtx.driver.RTXDriver` in a deploy, a fake in unit tests).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pyinfra.api.exceptions import ConnectError

from ipip6.rtx.config import (
    ConfigDelta,
    OwnedSection,
    RouterConfig,
    compare,
    desired_view,
    line_diff,
    owned_view,
    unowned_view,
)
from ipip6.rtx.session import SESSION_KEYS, CommandResult, SessionError

# No settings and nothing committed in this run: no owned lines, the whole config counts.
WHOLE_CONFIG = OwnedSection(tunnel_number=0, tunnel_lines=(), global_lines=())

# A lost connection, a timeout, a router that stopped following the CLI's rules.
TRANSPORT_FAULTS = (OSError, EOFError, SessionError, ConnectError)


class Router(Protocol):
    """What the gate needs from a router connection (:class:`~ipip6.rtx.driver.RTXDriver`)."""

    pending_commit: PendingCommit | None

    @property
    def alive(self) -> bool: ...

    def cli(self, line: str) -> CommandResult:
        """One CLI line; raises ``OSError`` for transport faults."""
        ...

    def reconnect(self) -> None:
        """A fresh SSH connection and CLI session in administrator mode (``ConnectError``)."""
        ...


class ReadError(Exception):
    """``show config`` answered with an error line."""


# --------------------------------------------------------------------------------------------
# Plans


@dataclass(frozen=True)
class Plan:
    """A candidate: the delta from the running config as read, and what to roll back to."""

    desired: OwnedSection
    before: RouterConfig
    delta: ConfigDelta

    @classmethod
    def make(cls, running: RouterConfig, desired: OwnedSection) -> Plan:
        return cls(desired, running, compare(running, desired))

    @property
    def before_owned(self) -> list[str]:
        return owned_view(self.before, self.desired)

    def __repr__(self) -> str:  # short: pyinfra may print commands (and configs hold secrets)
        return f"Plan(tunnel {self.desired.tunnel_number}, {len(self.delta.commands)} commands)"


@dataclass(frozen=True)
class PendingCommit:
    """Applied and confirmed, not saved yet: what :func:`save` rolls back if saving fails."""

    plan: Plan

    def __repr__(self) -> str:
        return f"PendingCommit({self.plan!r})"


def unsaved_outside(running: RouterConfig, saved: RouterConfig, desired: OwnedSection) -> list[str]:
    """Differences between the saved and the running config outside the owned lines (and the
    session's console settings), as ``-saved`` / ``+running`` lines, secrets hidden."""
    before = unowned_view(saved, desired, SESSION_KEYS)
    after = unowned_view(running, desired, SESSION_KEYS)
    return line_diff(before, after) if before != after else []


def saved_is_current(running: RouterConfig, saved: RouterConfig, desired: OwnedSection) -> bool:
    """Whether ``save`` would change nothing the deploy cares about: owned lines equal, and
    nothing else differs (the session's console settings aside)."""
    return owned_view(running, desired) == owned_view(saved, desired) and not unsaved_outside(
        running, saved, desired
    )


# --------------------------------------------------------------------------------------------
# Checks (the confirmation)


@dataclass
class CheckContext:
    """What a check sees: the plan, the running config read back after the commit, and the
    router (for checks that ask it more, e.g. a status command)."""

    router: Router
    plan: Plan
    running: RouterConfig


Check = Callable[[CheckContext], "str | None"]
"""A confirmation step: ``None`` when it holds, else why not (one line, no secrets)."""


def owned_lines_as_desired(ctx: CheckContext) -> str | None:
    """The owned section read back equals the desired one."""
    left = compare(ctx.running, ctx.plan.desired)
    if not left:
        return None
    return "the owned lines read back differ from the desired ones: " + "; ".join(
        line_diff(owned_view(ctx.running, ctx.plan.desired), desired_view(ctx.plan.desired))
    )


def nothing_else_changed(ctx: CheckContext) -> str | None:
    """No line outside the owned section moved while the delta was applied."""
    before = unowned_view(ctx.plan.before, ctx.plan.desired, SESSION_KEYS)
    after = unowned_view(ctx.running, ctx.plan.desired, SESSION_KEYS)
    if before == after:
        return None
    return "lines outside the owned section changed: " + "; ".join(line_diff(before, after))


DEFAULT_CHECKS: tuple[Check, ...] = (owned_lines_as_desired, nothing_else_changed)


# --------------------------------------------------------------------------------------------
# Results


@dataclass
class Result:
    """What happened. ``ok``: the step holds. ``messages``: (level, text) for the host log,
    in order; ``restored``: after a failure, whether the owned lines are back as before."""

    ok: bool
    messages: list[tuple[str, str]] = field(default_factory=list)
    restored: bool | None = None

    def add(self, level: str, text: str) -> None:
        self.messages.append((level, text))


def read_running(router: Router) -> RouterConfig:
    return _read(router, "show config")


def read_saved(router: Router, number: int) -> RouterConfig | None:
    try:
        return _read(router, f"show config {int(number)}")
    except ReadError:
        return None


def _read(router: Router, command: str) -> RouterConfig:
    result = router.cli(command)
    if not result.ok:
        raise ReadError(f"{command}: {result.error}")
    return RouterConfig.parse(result.output)


# --------------------------------------------------------------------------------------------
# Commit, confirm, roll back


def commit(router: Router, plan: Plan, checks: Sequence[Check] = DEFAULT_CHECKS) -> Result:
    """Send the delta (nothing saved), confirm it with ``checks``; on any failure roll back.

    On success ``router.pending_commit`` holds the plan, for :func:`save` to roll back should
    saving fail. A plan without commands is only confirmed (nothing to roll back).
    """
    commands = plan.delta.commands
    sent = 0
    try:
        for line in commands:
            result = router.cli(line)
            if not result.ok:
                return rollback(
                    router, plan, f"router rejected {line!r}: {result.error}", sent=sent
                )
            sent += 1
        running = read_running(router)
        context = CheckContext(router, plan, running)
        problems = [problem for problem in (check(context) for check in checks) if problem]
    except TRANSPORT_FAULTS as exc:
        where = f"after {sent} of {len(commands)} commands" if commands else "while verifying"
        return rollback(router, plan, f"connection lost {where}: {exc}", sent=sent)
    except ReadError as exc:
        return rollback(router, plan, f"could not read the config back: {exc}", sent=sent)
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, the change goes back
        where = f"after {sent} of {len(commands)} commands" if commands else "while verifying"
        return rollback(
            router, plan, f"unexpected error {where}: {type(exc).__name__}: {exc}", sent=sent
        )
    if problems:
        return rollback(router, plan, "verification failed: " + "; ".join(problems), sent=sent)

    result = Result(ok=True)
    if commands:
        router.pending_commit = PendingCommit(plan)
        result.add(
            "info",
            f"applied {len(commands)} commands and checked them on the router (not saved yet)",
        )
    return result


def rollback(
    router: Router,
    plan: Plan,
    reason: str,
    *,
    sent: int | None = None,
    flash_written: bool = False,
) -> Result:
    """Put the owned lines back as they were before ``plan`` (nothing saved) and report
    ``reason``. Tries twice, each time on a fresh session if the current one is dead.
    ``flash_written``: ``save`` was sent in this run, so no message may say nothing was saved
    (the caller restores the flash after a successful rollback)."""
    result = Result(ok=False)
    result.add("error", reason)
    router.pending_commit = None
    if sent == 0 and router.alive:
        result.restored = True
        result.add("error", "nothing was changed on the router; nothing saved")
        return result

    failure = ""
    for _attempt in range(2):
        try:
            if not router.alive:
                result.add("warning", "connecting again to roll back (new SSH session)")
                router.reconnect()
            rejected = []
            for line in ("tunnel select none", *plan.delta.rollback):
                answer = router.cli(line)
                if not answer.ok:
                    rejected.append(f"{line!r}: {answer.error}")
            now = read_running(router)
        except TRANSPORT_FAULTS as exc:
            failure = f"rollback interrupted: {exc}"
            continue
        except ReadError as exc:
            failure = f"could not read the config after the rollback: {exc}"
            break
        except Exception as exc:  # noqa: BLE001 - try once more on a fresh session
            failure = f"rollback interrupted: {type(exc).__name__}: {exc}"
            try:
                router.reconnect()
            except Exception:  # noqa: BLE001, S110 - the next attempt reports it
                pass
            continue
        after = owned_view(now, plan.desired)
        if after == plan.before_owned:
            result.restored = True
            detail = f" ({len(rejected)} rollback lines refused: {'; '.join(rejected)})"
            saved_note = "" if flash_written else "; nothing saved"
            result.add(
                "error",
                "rolled back: the owned lines are as they were before this run"
                + saved_note
                + (detail if rejected else ""),
            )
            return result
        failure = "the owned lines are NOT as before: " + "; ".join(
            line_diff(plan.before_owned, after)
        )
        if rejected:
            failure += f" (rollback lines refused: {'; '.join(rejected)})"
        break

    result.restored = False
    if flash_written:
        result.add(
            "error",
            f"ROLLBACK FAILED ({failure}). `save` was sent in this run: the saved config may "
            "hold the change (checked before it was saved); compare `show config` with the "
            "saved file and `save` or `restart` (see README, Safety)",
        )
        return result
    result.add(
        "error",
        f"ROLLBACK FAILED ({failure}). Nothing was saved: the saved config is unchanged, and a "
        "`restart` of the router drops the unsaved changes (see README, Safety)",
    )
    return result


Verify = Callable[[], "tuple[bool, str]"]
"""A check made just before saving: ``(passed, what was seen)``, the latter one line without
secrets. Two kinds: on the router (``show status tunnel N``) and by traffic (the VPS pinging
home through the tunnel)."""


def save(
    router: Router,
    desired: OwnedSection,
    running: RouterConfig | None,
    *,
    config_file: int = 0,
    saved: RouterConfig | None = None,
    verify: Verify | None = None,
    router_check: Verify | None = None,
) -> Result:
    """``save``, then read the saved config back (``show config N``) and check it matches
    ``running`` (the running config as read just before; ``None`` when the router cannot show
    a saved config: then nothing is read back).

    Before it: ``router_check`` (the router's own view, e.g. the tunnel's status), then
    ``verify`` (by traffic). If either fails nothing is saved, and the owned lines go back: to
    what they were before this run when it committed the change, else (an unsaved change left by
    an earlier run) to the saved config's, the last state that was verified and saved.

    If ``save`` is refused, nothing was written and this run's change
    (``router.pending_commit``) is rolled back. Once ``save`` may have written the flash, a
    failure (the read-back fails or differs, the connection drops, the router restarts) is
    looked at on a fresh session: a flash that holds the checked change counts as saved; one
    that holds something else is restored to ``saved`` (the owned lines rolled back, then
    saved again and read back); where even that cannot be done the error says what the flash
    may hold and how to recover. No message says "nothing saved" after ``save`` was sent.
    """
    pending = router.pending_commit
    seen_before: list[str] = []
    for label, check in (("checked on the router", router_check), ("verified by traffic", verify)):
        if check is None:
            continue
        try:
            passed, seen = check()
        except Exception as exc:  # noqa: BLE001 - a check that cannot run did not pass
            passed, seen = False, f"the check could not run: {type(exc).__name__}: {exc}"
        if not passed:
            what = "router check" if check is router_check else "verification by traffic"
            return _verification_failed(router, desired, pending, saved, f"{what} failed: {seen}")
        seen_before.append(f"{label}: {seen}")
    result = _save(router, desired, running, config_file, pending, saved)
    for text in reversed(seen_before):
        result.messages.insert(0, ("info", text))
    return result


def _verification_failed(
    router: Router,
    desired: OwnedSection,
    pending: PendingCommit | None,
    saved: RouterConfig | None,
    seen: str,
) -> Result:
    reason = f"{seen}; not saved"
    if pending is not None:
        return rollback(router, pending.plan, reason)
    if saved is not None:
        return rollback(
            router,
            Plan.make(saved, desired),
            reason + " (the unsaved owned lines go back to the saved config's)",
        )
    return _not_saved(
        reason,
        "the router cannot show its saved config, so the unsaved change was left running: a "
        "`restart` of the router drops it",
    )


def _save(
    router: Router,
    desired: OwnedSection,
    running: RouterConfig | None,
    config_file: int,
    pending: PendingCommit | None,
    saved_before: RouterConfig | None,
) -> Result:
    try:
        answer = router.cli("save")
    except Exception as exc:  # noqa: BLE001 - whether it was written is looked at below
        return _save_interrupted(router, desired, pending, config_file, saved_before, exc)
    if not answer.ok:
        # An error line: the router did not write the flash.
        return _save_failed(router, pending, f"router rejected 'save': {answer.error}")
    if running is None:
        router.pending_commit = None
        return Result(ok=True)
    try:
        saved_now = read_saved(router, config_file)
    except Exception as exc:  # noqa: BLE001
        return _save_interrupted(router, desired, pending, config_file, saved_before, exc)
    if saved_now is not None and saved_is_current(running, saved_now, desired):
        router.pending_commit = None
        return Result(ok=True)
    reason = (
        f"after save, show config {config_file} could not be read back"
        if saved_now is None
        else f"after save, show config {config_file} differs from the running config"
    )
    return _restore_flash(router, desired, pending, config_file, saved_before, reason)


def _save_interrupted(
    router: Router,
    desired: OwnedSection,
    pending: PendingCommit | None,
    config_file: int,
    saved_before: RouterConfig | None,
    exc: BaseException,
) -> Result:
    """``save`` was sent and then the connection (or the session) failed: look on a fresh
    session at what the flash holds."""
    reason = f"connection lost while saving: {describe_error(exc)}"
    try:
        router.reconnect()  # to look: did the save happen?
        running = read_running(router)
        saved = read_saved(router, config_file)
    except Exception as again:  # noqa: BLE001
        router.pending_commit = None
        return _flash_unknown(
            reason, f"could not reconnect to check ({describe_error(again)})", config_file
        )
    if (
        saved is not None
        and saved_is_current(running, saved, desired)
        and not compare(saved, desired)
    ):
        router.pending_commit = None
        result = Result(ok=True)
        result.add("warning", f"{reason}; the saved config holds the change all the same")
        return result
    if (
        saved is not None
        and saved_before is not None
        and _same_config(saved, saved_before, desired)
    ):
        # The flash is as before this run: nothing was written, and that can be said.
        return _save_failed(router, pending, reason)
    return _restore_flash(router, desired, pending, config_file, saved_before, reason)


def _same_config(one: RouterConfig, other: RouterConfig, desired: OwnedSection) -> bool:
    return owned_view(one, desired) == owned_view(other, desired) and unowned_view(
        one, desired, SESSION_KEYS
    ) == unowned_view(other, desired, SESSION_KEYS)


def _restore_flash(
    router: Router,
    desired: OwnedSection,
    pending: PendingCommit | None,
    config_file: int,
    saved_before: RouterConfig | None,
    reason: str,
) -> Result:
    """The flash may hold something that was not checked: put the owned lines back as the
    saved config had them before this run, save that, read it back."""
    router.pending_commit = None
    if saved_before is None:
        return _flash_unknown(
            reason, "the router cannot show its saved config to compare", config_file
        )
    plan = Plan.make(saved_before, desired)
    result = rollback(router, plan, reason, flash_written=True)
    if not result.restored:
        return result
    try:
        answer = router.cli("save")
        saved_now = read_saved(router, config_file) if answer.ok else None
    except Exception as exc:  # noqa: BLE001
        result.ok = False
        result.restored = False
        result.messages.extend(
            _flash_unknown(
                "", f"saving the restored config failed: {describe_error(exc)}", config_file
            ).messages[1:]
        )
        return result
    if answer.ok and saved_now is not None and _same_config(saved_now, saved_before, desired):
        result.add(
            "error",
            f"the flash (config {config_file}) was saved again with the owned lines as before "
            "this run: it holds the config from before this run",
        )
        return result
    result.restored = False
    detail = answer.error if not answer.ok else f"show config {config_file} still differs"
    result.messages.extend(
        _flash_unknown(
            "", f"saving the restored config did not hold ({detail})", config_file
        ).messages[1:]
    )
    return result


def _flash_unknown(reason: str, detail: str, config_file: int) -> Result:
    result = Result(ok=False, restored=False)
    if reason:
        result.add("error", reason)
    result.add(
        "error",
        f"THE SAVED CONFIG IS UNCERTAIN: `save` was sent, then {detail}. config {config_file} "
        "holds either this run's change (checked before it was saved) or the config from "
        f"before: compare `show config` with `show config "
        f"{config_file}` on the router, then `save` or `restart` (see README, Safety)",
    )
    return result


def describe_error(exc: BaseException) -> str:
    """An exception for a message: a transport fault or read error by its text, anything else
    with its type (it was not expected)."""
    if isinstance(exc, (*TRANSPORT_FAULTS, ReadError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _save_failed(router: Router, pending: PendingCommit | None, reason: str) -> Result:
    """Saving failed and the flash was not written (the router refused ``save``, or the flash
    was seen to be as before)."""
    if pending is not None:
        return rollback(router, pending.plan, reason + "; not saved")
    return _not_saved(
        reason,
        "this run changed nothing on the router; the running config still differs from the "
        "saved one (unsaved)",
    )


def _not_saved(reason: str, state: str) -> Result:
    """A failure with nothing of this run's to roll back: why, and what the router is left in."""
    result = Result(ok=False)
    result.add("error", reason)
    result.add("error", state)
    return result
