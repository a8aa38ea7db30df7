"""Undoing the router's hard wrap: exact at every length and width, or an error, never a guess.

The printer below wraps as the RTX documents it (after ``columns - 1`` display columns, a
full-width character moving to the next line whole); the cases are the lengths that fill the
width exactly, the ones just past it, and lines longer than the widest console.
"""

from __future__ import annotations

import random

import pytest

from ipip6.rtx.wrap import (
    AmbiguousWrap,
    ambiguous_breaks,
    display_width,
    reconcile,
    reconcile_reads,
    unwrap_exact,
    unwrap_greedy,
)

HEADER = [
    "# RTX1210 Rev.14.01.42 (Fri Jul  5 11:17:45 2024)",
    "# main:  RTX1210 ver=00 serial=S00000000 MAC-Address=00:a0:de:00:00:01 "
    "MAC-Address=00:a0:de:00:00:02 MAC-Address=00:a0:de:00:00:03",
    "# Reporting Date: Dec 7 15:38:26 2024",
]


def printed(lines: list[str], columns: int) -> list[str]:
    """What a console of ``columns`` shows: each line cut after ``columns - 1`` display
    columns, lazily (nothing extra after a line that ends exactly at the edge)."""
    out = []
    for line in lines:
        piece, width = "", 0
        for char in line:
            w = display_width(char)
            if width + w > columns - 1:
                out.append(piece)
                piece, width = "", 0
            piece += char
            width += w
        out.append(piece)
    return out


def line(length: int, fill: str = "x") -> str:
    return ("ip filter 1 " + fill * length)[:length] if fill == "x" else fill * length


@pytest.mark.parametrize("length", [78, 79, 80, 157, 158, 159, 198, 199, 200, 250, 398, 400])
@pytest.mark.parametrize(("first", "second"), [(200, 160), (80, 200), (160, 200)])
def test_every_length_at_every_width_pair(length, first, second):
    logical = [*HEADER, "login user admin *", line(length), "ip route default gateway pp 1"]
    got = reconcile(printed(logical, first), first, printed(logical, second), second)
    assert got == logical


@pytest.mark.parametrize("length", [79, 158, 199])
def test_one_read_at_the_exact_width_is_ambiguous(length):
    columns = 80 if length < 199 else 200
    physical = printed(["a", line(length), "b"], columns)
    assert ambiguous_breaks(physical, columns)
    assert unwrap_exact(physical, columns) is None
    # ...because "a line that ends at the edge, then 'b'" prints exactly like one longer line
    assert printed(["a", line(length) + "b"], columns) == physical


def test_a_line_ending_at_the_edge_and_a_longer_line_are_told_apart():
    # The very case one read cannot settle: both print the same at 200 columns.
    exact = ["a", "y" * 199, "bbb"]
    longer = ["a", "y" * 199 + "bbb"]
    assert printed(exact, 200) == printed(longer, 200)
    assert reconcile(printed(exact, 200), 200, printed(exact, 160), 160) == exact
    assert reconcile(printed(longer, 200), 200, printed(longer, 160), 160) == longer


def test_full_width_characters_wrap_one_column_early():
    # 198 columns of ASCII, then a full-width character that does not fit in the last one.
    logical = ["schedule at 1 * " + "a" * 182 + "テスト", "next"]
    assert display_width(logical[0]) == 204
    physical = printed(logical, 200)
    assert display_width(physical[0]) == 198
    assert ambiguous_breaks(physical, 200) == [0]
    assert reconcile(physical, 200, printed(logical, 160), 160) == logical


def test_unambiguous_output_needs_one_read():
    logical = [*HEADER, "ip lan1 address 192.168.100.1/24", "x" * 150]
    assert unwrap_exact(printed(logical, 200), 200) == logical


def test_blank_lines_and_embedded_content_survive():
    logical = ["embedded file a.lua <<EOF", "", "  indented", "y" * 250, "", "EOF", "end"]
    assert reconcile(printed(logical, 200), 200, printed(logical, 160), 160) == logical


def test_reads_that_differ_are_refused():
    one = printed(["ip route default gateway pp 1", "x" * 250], 200)
    other = printed(["ip route default gateway tunnel 1", "x" * 250], 160)
    with pytest.raises(AmbiguousWrap, match="differ"):
        reconcile(one, 200, other, 160)


def test_same_width_twice_is_refused():
    physical = printed(["x" * 250], 200)
    with pytest.raises(AmbiguousWrap, match="same width"):
        reconcile(physical, 200, physical, 200)


def test_a_break_at_the_edge_of_both_widths_is_refused_not_guessed():
    # 199 * 159 characters: a multiple of both wrap lengths.
    logical = ["y" * (199 * 159), "z"]
    with pytest.raises(AmbiguousWrap, match="at each of 200, 160 columns"):
        reconcile(printed(logical, 200), 200, printed(logical, 160), 160)


def test_the_last_header_line_filling_the_console_is_refused():
    logical = ["#" + "h" * 78, "login user admin *"]
    with pytest.raises(AmbiguousWrap, match="header"):
        reconcile(printed(logical, 80), 80, printed(logical, 160), 160)


def test_random_configs_round_trip():
    rng = random.Random(7)
    for _ in range(300):
        logical = list(HEADER)
        for _ in range(rng.randint(0, 10)):
            length = rng.choice([0, 3, 78, 79, 80, 158, 159, 198, 199, 200, 250, 398])
            logical.append(line(length, rng.choice("xあ ")) if length else "")
        for first, second in ((200, 160), (80, 200)):
            physical = printed(logical, first)
            assert reconcile(physical, first, printed(logical, second), second) == logical
            single = unwrap_exact(physical, first)
            assert single is None or single == logical


def test_greedy_unwrap_is_for_short_outputs():
    # Status and environment lines never end at the edge; a config is never read this way.
    physical = printed(["Tunnel interface is connected", "x" * 250], 80)
    assert unwrap_greedy(physical, 80) == ["Tunnel interface is connected", "x" * 250]


def test_a_third_width_settles_what_two_cannot():
    # Long lines mixing full-width characters make the wrap lengths vary (198 or 199 at 200
    # columns), so two reads can both be at the edge at one place; a third settles it.
    rng = random.Random(3)
    two = three = 0
    for _ in range(400):
        logical = [
            "description lan1 " + "".join(rng.choice("xあ ") for _ in range(rng.randint(0, 900)))
            for _ in range(rng.randint(1, 4))
        ]
        reads = [(printed(logical, columns), columns) for columns in (200, 160, 120)]
        try:
            assert reconcile_reads(reads[:2]) == logical
        except AmbiguousWrap:
            two += 1
            try:
                assert reconcile_reads(reads) == logical
            except AmbiguousWrap:
                three += 1
    assert two > 0  # the case is real
    assert three < two / 10


def printed_eagerly(lines: list[str], columns: int) -> list[str]:
    """A console that wraps as soon as the edge is reached: a line that ends exactly there is
    followed by an empty line."""
    out = []
    for text in lines:
        pieces = printed([text], columns)
        out.extend(pieces)
        if text and display_width(pieces[-1]) == columns - 1:
            out.append("")
    return out


@pytest.mark.parametrize("length", [79, 158, 199, 250, 398])
def test_a_console_that_wraps_eagerly_is_read_exactly_too(length):
    logical = [*HEADER, "login user admin *", line(length), "ip route default gateway pp 1"]
    for first, second in ((200, 160), (80, 200)):
        got = reconcile(
            printed_eagerly(logical, first), first, printed_eagerly(logical, second), second
        )
        # The only difference an eager console makes is an empty line, which a config never
        # holds outside an embedded file (the parser drops it).
        assert [x for x in got if x] == logical


def test_an_ambiguous_width_character_at_the_edge_is_never_taken_as_a_line_end():
    # In Shift_JIS "○" takes two columns: a 200-column console moves it to the next line
    # after 198 columns. One read cannot tell that from a 198-character line followed by "○…".
    physical = ["d" * 198, "○ and the rest", "next"]
    assert ambiguous_breaks(physical, 200) == [0]
    assert unwrap_exact(physical, 200) is None
