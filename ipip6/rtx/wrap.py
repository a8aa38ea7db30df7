"""Undo the router's hard wrap exactly, or say that one read cannot tell.

The RTX console breaks every output line after ``columns - 1`` display columns (a full-width
Japanese character takes two, and moves to the next line whole when only one column is left),
even mid-token, with no marker. It breaks lazily, only when another character of the same line
follows, so a line that ends exactly at the edge is followed by the next line and nothing else.
That makes one read ambiguous wherever a physical line fills the width: either the logical line
goes on, or it ended exactly there (a line of 199 characters at 200 columns, of 79 or 158 at 80).

Two reads made at widths whose wrap lengths share no small multiple settle it: a logical line
ends only where both reads break, and a break that is not full-width in either read is certain.
Where both reads are full-width at the same place (a line of a length that is a multiple of
both wrap lengths: 31,641 characters for 200 and 160 columns) nothing can tell, and
:class:`AmbiguousWrap` is raised instead of a guess.

Pure functions: the CLI session decides when to read again (:mod:`ipip6.rtx.session`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence


class AmbiguousWrap(ValueError):
    """The reads given cannot say where the router's lines end."""


def char_width(char: str, *, ambiguous: int = 1) -> int:
    """Console columns of ``char``: 2 for wide and full-width characters; ``ambiguous`` for
    East Asian ambiguous ones (``○``, ``①``, ``℃``: two columns in Shift_JIS, one elsewhere)."""
    kind = unicodedata.east_asian_width(char)
    if kind in "WF":
        return 2
    return ambiguous if kind == "A" else 1


def display_width(text: str, *, ambiguous: int = 1) -> int:
    if text.isascii():  # nearly every line of a config: one column per character
        return len(text)
    return sum(char_width(char, ambiguous=ambiguous) for char in text)


def may_continue(line: str, following: str | None, columns: int) -> bool:
    """Whether the break after physical ``line`` can be the console's wrap rather than the end
    of a logical line: ``line`` fills the width (or leaves one column that the next, full-width,
    character did not fit in), and a non-empty line follows. Ambiguous-width characters are
    counted as two columns here: that only ever makes a break *maybe* a wrap, never certain."""
    if not following:
        return False  # a wrap always carries on with at least one character
    width = display_width(line, ambiguous=2)
    edge = columns - 1
    return width >= edge or (width == edge - 1 and char_width(following[0], ambiguous=2) == 2)


def ambiguous_breaks(lines: Sequence[str], columns: int) -> list[int]:
    """Indexes ``i`` of the lines whose break (between ``lines[i]`` and ``lines[i + 1]``) one
    read cannot place."""
    return [i for i in range(len(lines) - 1) if may_continue(lines[i], lines[i + 1], columns)]


def unwrap_exact(lines: Sequence[str], columns: int) -> list[str] | None:
    """The logical lines of one read, or None when a break in it is ambiguous (read again at
    another width and call :func:`reconcile`)."""
    if ambiguous_breaks(lines, columns):
        return None
    return list(lines)


def unwrap_greedy(lines: Sequence[str], columns: int) -> list[str]:
    """Join every line that may continue with the next one. A guess where a line ends exactly at
    the edge: only for short outputs whose lines never do (status, environment), never for a
    config (:func:`reconcile`)."""
    out: list[str] = []
    pending = ""
    for i, line in enumerate(lines):
        following = lines[i + 1] if i + 1 < len(lines) else None
        if may_continue(line, following, columns):
            pending += line
            continue
        out.append(pending + line)
        pending = ""
    if pending:
        out.append(pending)
    return out


def _fills(lines: Sequence[str], offset: int, columns: int) -> bool:
    """Whether the physical line ending at character ``offset`` fills the console's width."""
    position = 0
    for line in lines:
        position += len(line)
        if position == offset and line:
            return display_width(line) >= columns - 2
        if position > offset:
            return False
    return False


def _breaks(lines: Sequence[str], columns: int) -> tuple[str, dict[int, tuple[int, bool]]]:
    """(the characters of all lines run together, {offset: (breaks there, whether the break
    may be a wrap)}). Blank lines put several breaks at one offset; a break next to a blank line
    is never a wrap (a wrap carries on with a character)."""
    breaks: dict[int, tuple[int, bool]] = {}
    offset = 0
    for i, line in enumerate(lines[:-1]):
        offset += len(line)
        count, _ = breaks.get(offset, (0, False))
        breaks[offset] = (count + 1, count == 0 and may_continue(line, lines[i + 1], columns))
    return "".join(lines), breaks


def _without_header(lines: Sequence[str], columns: int) -> tuple[list[str], list[str]]:
    """(leading ``#`` comment lines, the rest): ``show config``'s header holds a date that
    differs between two reads, so it is set apart before they are compared. A long header line
    (``# main: … MAC-Address=…``) may wrap: its continuation belongs to the header as long as
    another ``#`` line follows. Where the last header line fills the console, the header's end
    cannot be told: :class:`AmbiguousWrap`."""
    lines = list(lines)
    end = 0  # lines[:end] is the header so far (ends with a "#" line)
    i = 0
    while i < len(lines):
        if lines[i].lstrip().startswith("#"):
            i += 1
            end = i
            continue
        if i and may_continue(lines[i - 1], lines[i], columns):
            i += 1  # maybe the rest of a wrapped header line: only if a "#" line follows
            continue
        break
    if end and may_continue(lines[end - 1], lines[end] if end < len(lines) else None, columns):
        raise AmbiguousWrap(
            f"the last header line of show config fills the {columns}-column console"
        )
    header: list[str] = []
    for line in lines[:end]:
        if header and not line.lstrip().startswith("#"):
            header[-1] += line  # a wrapped header line, joined (comments are not compared)
        else:
            header.append(line)
    return header, lines[end:]


def reconcile(
    first: Sequence[str], first_columns: int, second: Sequence[str], second_columns: int
) -> list[str]:
    """The logical lines, from two reads of the same output at different widths (the first
    read's header lines are kept). See :func:`reconcile_reads`."""
    return reconcile_reads([(first, first_columns), (second, second_columns)])


def reconcile_reads(reads: Sequence[tuple[Sequence[str], int]]) -> list[str]:
    """The logical lines, from reads of the same output at different widths (the first read's
    header lines are kept). A logical line ends where every read breaks and at least one of
    them cannot be wrapping there. Raises :class:`AmbiguousWrap` when the reads differ in
    anything but the wrap and the header, or when a break may be a wrap in every read."""
    widths = [columns for _, columns in reads]
    if len(set(widths)) != len(widths) or len(reads) < 2:
        raise AmbiguousWrap("reads at the same width cannot settle a wrap")
    split = [_without_header(lines, columns) for lines, columns in reads]
    header, body = split[0]
    parsed_lines = [rest for _, rest in split]
    parsed = [_breaks(lines, columns) for lines, columns in zip(parsed_lines, widths, strict=True)]
    stream = parsed[0][0]
    if any(other != stream for other, _ in parsed[1:]):
        raise AmbiguousWrap("the reads differ (the config changed between them?)")
    if not body:
        return header

    lines: list[str] = []
    start = 0
    for offset in sorted({offset for _, breaks in parsed for offset in breaks}):
        seen = [breaks.get(offset) for _, breaks in parsed]
        if any(entry is None for entry in seen):
            # Not a break in some read: a wrap wherever it is one.
            if any(entry is not None and not entry[1] for entry in seen):
                raise AmbiguousWrap("the reads break lines at different places")
            continue
        counts = {entry[0] for entry in seen if entry is not None}
        if len(counts) != 1:
            # A console that wraps eagerly prints an empty line after a line that ends right
            # at its edge; only there may one read have a blank line more than another.
            fewest = min(counts)
            extra = [i for i, entry in enumerate(seen) if entry is not None and entry[0] > fewest]
            if not all(_fills(parsed_lines[i], offset, widths[i]) for i in extra):
                raise AmbiguousWrap("the reads have different blank lines")
            counts = {fewest}
            seen = [(fewest, False)] * len(seen)
        if all(entry is not None and entry[1] for entry in seen):
            raise AmbiguousWrap(
                "a line breaks at the edge of the console at each of "
                + ", ".join(f"{columns}" for columns in widths)
                + " columns"
            )
        lines.append(stream[start:offset])
        lines.extend([""] * (counts.pop() - 1))
        start = offset
    lines.append(stream[start:])
    return header + lines
