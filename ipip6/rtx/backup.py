"""Router backups on the controller: the running and saved config, written before a change and
read back for a restore.

Before a run changes a router (see :meth:`ipip6.rtx.driver.RTXDriver.take_backup`), its
``show config`` and ``show config N`` go to two files, as the router printed them (the header
included) with secrets hidden (:func:`ipip6.rtx.config.redact_text`)::

    DIR/ROUTER/20261202-101500-running.txt
    DIR/ROUTER/20261202-101500-saved.txt

DIR is ``rtx_backup_dir`` (default ``backups``, relative to the directory pyinfra runs in);
ROUTER the inventory name without ``@rtx/``, made safe as a file name; the time is the
controller's, local. A name is never reused: a second backup in the same second gets
``…-101500_2-…``. A DIR the backup creates gets a ``.gitignore`` of ``*``, so a repository
holding it never commits a router's config.

A file given to a restore is read back with :func:`read_backup`: it must be a ``show config``
as written here (the router's ``#`` header with its model and MAC addresses, then config
lines). Which router it is of is told by those MAC addresses (:func:`other_router`), never by
the file's name or folder.

The names, the text and the checks are pure; :func:`write_backup` and :func:`read_backup` are
the only I/O, on local files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ipip6.rtx.config import RouterConfig, redact_text

RUNNING, SAVED = "running", "saved"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
GITIGNORE = "*\n"
# Enough for any run: a second backup in the same second is already a rare thing.
_MAX_TRIES = 100


class BackupError(Exception):
    """A backup could not be written (the message names the file and the error)."""


class BackupFileError(ValueError):
    """A file given to a restore is no backup of a router (the message says why)."""


# --------------------------------------------------------------------------------------------
# Names


def router_folder(host_name: str) -> str:
    """The folder name of a router's backups: its inventory name without ``@rtx/``, with every
    character but ``A-Za-z0-9._-`` as ``_`` (``2001:db8::1`` → ``2001_db8__1``)."""
    name = _UNSAFE.sub("_", host_name.removeprefix("@rtx/"))
    return "_" if name.strip(".") == "" else name


def backup_stem(now: datetime, attempt: int = 1) -> str:
    """``YYYYmmdd-HHMMSS`` of ``now``; the ``attempt``-th name of that second gets ``_N``
    (sorting after the first)."""
    stem = now.strftime("%Y%m%d-%H%M%S")
    return stem if attempt == 1 else f"{stem}_{attempt}"


def backup_name(stem: str, which: str) -> str:
    return f"{stem}-{which}.txt"


def resolve(path: str | os.PathLike[str], cwd: str | os.PathLike[str]) -> Path:
    """``path`` (``~`` expanded) as an absolute path; relative paths are taken from ``cwd``
    (the directory pyinfra runs in)."""
    local = Path(path).expanduser()
    return local if local.is_absolute() else Path(cwd) / local


def backup_text(show_config: str) -> str:
    """What a backup file holds: the config as the router printed it, secrets hidden, with one
    line end at the end."""
    return redact_text(show_config).rstrip("\n") + "\n"


# --------------------------------------------------------------------------------------------
# Writing


@dataclass(frozen=True)
class Backup:
    """The files of one backup. ``saved`` None: the saved config could not be read
    (``note`` says why), only the running config was written."""

    running: Path
    saved: Path | None
    note: str | None = None

    def describe(self) -> str:
        files = [str(self.running)] + ([str(self.saved)] if self.saved else [])
        text = "backed up the router's config to " + " and ".join(files)
        return f"{text} ({self.note})" if self.note else text


def _create(path: Path, text: str) -> None:
    """Write ``text`` to a new file ``path`` (FileExistsError if there is one), to the disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        path.unlink(missing_ok=True)  # half a backup is no backup
        raise


def _folder(base: Path, router: str) -> Path:
    """``base/router``, created if missing; ``base`` with its ``.gitignore`` when created here."""
    if not base.exists():
        base.mkdir(parents=True)
        try:
            _create(base / ".gitignore", GITIGNORE)
        except FileExistsError:
            pass  # another router's backup made it meanwhile
    folder = base / router
    folder.mkdir(exist_ok=True)
    return folder


def write_backup(
    base: Path,
    host_name: str,
    running: str,
    saved: str | None,
    *,
    saved_note: str | None = None,
    now: Callable[[], datetime] = datetime.now,
) -> Backup:
    """Write ``running`` (and ``saved``, when the router showed it) under ``base``; never
    overwrites a file. Raises :class:`BackupError` naming the file and the error; then no file
    of this backup is left behind."""
    try:
        folder = _folder(base, router_folder(host_name))
    except OSError as exc:
        raise BackupError(
            f"could not create the backup folder {base / router_folder(host_name)}: "
            f"{exc.strerror or exc}"
        ) from exc
    moment = now()
    for attempt in range(1, _MAX_TRIES + 1):
        stem = backup_stem(moment, attempt)
        first = folder / backup_name(stem, RUNNING)
        second = folder / backup_name(stem, SAVED)
        if second.exists():
            continue
        current = first
        try:
            _create(first, backup_text(running))
            if saved is not None:
                current = second
                _create(second, backup_text(saved))
        except FileExistsError:
            if current is second:
                first.unlink(missing_ok=True)
            continue
        except OSError as exc:
            if current is second:
                first.unlink(missing_ok=True)
            raise BackupError(
                f"could not write the backup {current}: {exc.strerror or exc}"
            ) from exc
        return Backup(first, second if saved is not None else None, saved_note)
    raise BackupError(f"could not write a backup in {folder}: {_MAX_TRIES} names of {stem} taken")


# --------------------------------------------------------------------------------------------
# Reading back


@dataclass(frozen=True)
class BackupFile:
    """A backup given to a restore (``rtx_restore_from``): the path as the data names it, and
    the config it holds."""

    path: str
    config: RouterConfig = field(repr=False)

    def __str__(self) -> str:
        return self.path


def read_backup(path: Path) -> RouterConfig:
    """The config a backup file holds. Raises :class:`BackupFileError`: no such file, not
    readable, not text, or not ``show config`` as the router prints it (its header naming
    the model and the MAC addresses, then config lines)."""
    expected = "expected a backup such as backups/ROUTER/YYYYmmdd-HHMMSS-saved.txt"
    if not path.exists():
        raise BackupFileError(f"no such file ({path}); {expected}")
    if not path.is_file():
        raise BackupFileError(f"{path} is not a file; {expected}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BackupFileError(f"{path} cannot be read: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BackupFileError(
            f"{path} is not a text file; expected a backup written by this deploy "
            "(show config, UTF-8)"
        ) from None
    config = RouterConfig.parse(text)
    if config.model is None or not config.macs or not config.lines:
        raise BackupFileError(
            f"{path} is not a router config backup: expected `show config` as the router "
            "prints it, its header (`# RTX… Rev.…`, `# MAC Address : …`) and then config lines"
        )
    return config


def other_router(backup: RouterConfig, running: RouterConfig) -> str | None:
    """Why ``backup`` is not a backup of the router whose config is ``running`` (None: it is):
    told by the MAC addresses of the two headers, and the model."""
    if not running.macs:
        return (
            "the router's `show config` names no MAC address in its header, so whose backup "
            "this is cannot be told"
        )
    if backup.model and running.model and backup.model.upper() != running.model.upper():
        return f"it is a backup of an {backup.model}; this router is an {running.model}"
    if not set(backup.macs) & set(running.macs):
        return (
            f"it is a backup of another router (MAC Address {', '.join(backup.macs)}; this "
            f"router: {', '.join(running.macs)})"
        )
    return None
