"""Keep secrets out of everything pyinfra prints: a logging filter and string scrubbing.

pyinfra itself leaks with ``--debug``: ``pyinfra_cli.inventory`` logs every ``group_data``
file's variables (``Adding data to group rtx: {'rtx_admin_password': '...'}``). That happens
after the inventory object (and so every ``pyinfra.connectors`` entry point, this package's
``@rtx`` connector among them) is loaded, so importing :mod:`ipip6.rtx.connector` installs
:class:`RedactingFilter` on pyinfra's logger and on the handlers already set up (pyinfra's own,
and the root logger's for ``--debug-all``).

Two layers:

- by key: in any mapping passed to a log call (and in ``'key': 'value'`` / ``key=value`` text),
  the value of a key that looks secret (``*password*``, ``*secret*``, ``*passphrase*``,
  ``*token*``, ``*_key``…) is replaced by ``<hidden>``;
- by value: the connector registers the secret values of its host's data
  (:func:`register_secret`); they are replaced wherever they appear in a log record, in router
  output the connector hands to pyinfra and in the connector's error messages.

Router output is parsed after scrubbing, so a value that could also be a word of the config
(``auto``, ``1460``, ``tunnel``) must not be scrubbed by value: only values of at least
:data:`MIN_SECRET_LENGTH` characters that mix letters with digits or symbols, or are at least
:data:`LONG_SECRET_LENGTH` long, are (:func:`scrubbable`). Weaker values are still hidden by key.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

HIDDEN = "<hidden>"
MIN_SECRET_LENGTH = 4
LONG_SECRET_LENGTH = 10

_SECRET_KEY = re.compile(
    r"pass(?:word|wd|phrase)|secret|token|credential|private|(?:^|_)key$|psk", re.IGNORECASE
)
# 'ssh_password': 'x'  "ssh_password": "x"  ssh_password='x'  ssh_password=x
_KEY_VALUE = re.compile(
    r"""(?P<key>['"]?(?P<name>[A-Za-z_][A-Za-z0-9_]*)['"]?\s*[:=]\s*)"""
    r"""(?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s,;)}\]]+)"""
)

_lock = threading.Lock()
_values: set[str] = set()


def is_secret_key(key: object) -> bool:
    """Whether a data key names a secret (``ssh_password``, ``rtx_admin_password``…)."""
    return isinstance(key, str) and _SECRET_KEY.search(key) is not None


def scrubbable(value: str) -> bool:
    """Whether ``value`` can be replaced wherever it appears without garbling config text: long
    enough, and not a plain word or number the router's config could contain as well."""
    if len(value) < MIN_SECRET_LENGTH or value.isspace():
        return False
    return len(value) >= LONG_SECRET_LENGTH or not (value.isalpha() or value.isdigit())


def register_secret(value: object) -> None:
    """Scrub this value from every log record and from router output from now on."""
    if hasattr(value, "get_secret_value"):  # pydantic SecretStr
        value = value.get_secret_value()
    if isinstance(value, str) and scrubbable(value):
        with _lock:
            _values.add(value)


def register_secrets_in(data: Mapping[str, Any]) -> None:
    """Register the values of every secret-looking key of a host's data."""
    for key, value in data.items():
        if is_secret_key(key):
            register_secret(value)


def secret_values() -> tuple[str, ...]:
    with _lock:
        return tuple(sorted(_values, key=len, reverse=True))  # longest first: no partial leaks


def scrub(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` with every registered secret value (and ``extra`` ones) replaced, and the value
    of every ``secret_key=value`` / ``'secret_key': 'value'`` pair hidden."""
    for value in (*secret_values(), *(v for v in extra if scrubbable(v))):
        if value in text:
            text = text.replace(value, HIDDEN)

    def hide(match: re.Match[str]) -> str:
        if not is_secret_key(match.group("name")):
            return match.group(0)
        value = match.group("value")
        quote = value[0] if value[:1] in ("'", '"') else ""
        return f"{match.group('key')}{quote}{HIDDEN}{quote}"

    return _KEY_VALUE.sub(hide, text)


def redact(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` safe to print: secret keys' values hidden in mappings (recursively),
    registered secret values scrubbed from strings. Other objects are returned as they are."""
    if depth > 8:
        return value
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {
            k: HIDDEN if is_secret_key(k) and v not in (None, "") else redact(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, tuple):
        return tuple(redact(v, depth + 1) for v in value)
    if isinstance(value, list):
        return [redact(v, depth + 1) for v in value]
    return value


# pyinfra_cli.inventory's --debug dump of each group_data file's variables.
_GROUP_DATA_DUMP = "Adding data to group %s: %r"


def redact_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """A host's or group's data as it may be printed: every value hidden except those of keys
    known to be harmless (helper constants and misspelt keys can hold passwords too)."""
    from ipip6.settings import harmless_keys  # settings imports this module

    harmless = harmless_keys()
    return {k: redact(v) if k in harmless else HIDDEN for k, v in data.items()}


class RedactingFilter(logging.Filter):
    """Rewrites a record's message and arguments with :func:`redact` before any handler sees it
    (the group data dump with :func:`redact_data`). Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            if isinstance(record.msg, str):
                record.msg = scrub(record.msg)
            args = record.args
            if record.msg == _GROUP_DATA_DUMP and isinstance(args, tuple) and len(args) == 2:
                if isinstance(args[1], Mapping):
                    record.args = (args[0], redact_data(args[1]))
            elif args:
                record.args = redact(args)
        except Exception:  # noqa: BLE001 - a log filter must never break logging
            pass
        return True


_FILTER = RedactingFilter()


def install_log_filter() -> None:
    """Put the filter on pyinfra's logger, its handlers and the root logger's handlers (those
    print ``--debug-all`` output); idempotent."""
    pyinfra_logger = logging.getLogger("pyinfra")
    targets: list[logging.Filterer] = [pyinfra_logger, *pyinfra_logger.handlers]
    targets += logging.getLogger().handlers
    for target in targets:
        if _FILTER not in target.filters:
            target.addFilter(_FILTER)
