"""One rule for every value that reaches a file, a shell command or the router CLI: a single
token of printable characters, no whitespace, no control character.

Settings enforce it at the edge (:mod:`ipip6.settings`); renderers call :func:`single_token`
again on what they write, so a value that slipped past validation cannot add a line.
"""

from __future__ import annotations


def problem(text: str) -> str | None:
    """Why ``text`` cannot be written as one token, or None."""
    for ch in text:
        if ch in "\r\n":
            return "contains a line break"
        if not ch.isprintable() or ch.isspace():
            return f"contains the character {ch!r} (whitespace or control characters)"
    return None


def single_line(text: str, what: str) -> str:
    """``text`` unchanged, or ValueError if it holds a line break or a control character
    (spaces are fine: a rendered line has them)."""
    for ch in text:
        if not ch.isprintable():  # line breaks and tabs included
            raise ValueError(f"{what}: refusing to write {text!r}: it contains {ch!r}")
    return text


def single_token(value: object, what: str = "value") -> object:
    """``value`` unchanged, or ValueError if its text is not a single printable token."""
    why = problem(str(value))
    if why is not None:
        raise ValueError(f"{what}: refusing to write {str(value)!r}: it {why}")
    return value
