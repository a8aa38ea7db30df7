"""README.ja.md keeps step with README.md: the data keys, the data reference, the links."""

import re
from pathlib import Path

from ipip6.settings import known_keys

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_JA = ROOT / "README.ja.md"

# The data reference's heading in each file: the section runs to the next "## " (or "# ").
DATA_REFERENCE = {README: "## Data reference", README_JA: "## データリファレンス"}

# A code span: Markdown lets one run over a line break inside a paragraph.
CODE_SPAN = re.compile(r"`([^`]+)`")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (whose ``# comment`` lines are no headings)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def section(path: Path, heading: str) -> str:
    lines = prose_lines(path.read_text(encoding="utf-8"))
    starts = [i for i, line in enumerate(lines) if line.rstrip() == heading]
    assert len(starts) == 1, f"{path.name}: {len(starts)} headings {heading!r}, expected one"
    body = []
    for line in lines[starts[0] + 1 :]:
        if line.startswith(("# ", "## ")):
            break
        body.append(line)
    return "\n".join(body)


def backticked_keys(text: str) -> set[str]:
    """The code spans that are exactly one of this deploy's data keys."""
    keys = known_keys()
    return {span.strip() for span in CODE_SPAN.findall(text) if span.strip() in keys}


def data_reference_keys(path: Path) -> set[str]:
    return backticked_keys(section(path, DATA_REFERENCE[path]))


def before_first_section(path: Path) -> str:
    """The title and whatever comes before the first "## " heading."""
    head = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        if line.startswith("## "):
            break
        head.append(line)
    return "\n".join(head)


def test_readme_ja_documents_every_data_key():
    readme_ja = README_JA.read_text(encoding="utf-8")
    missing = [key for key in sorted(known_keys()) if f"`{key}`" not in readme_ja]
    assert missing == []


def test_data_references_name_the_same_keys():
    english, japanese = data_reference_keys(README), data_reference_keys(README_JA)
    assert english, "README.md's data reference names no data key: is the heading right?"
    assert {
        "only in README.md": sorted(english - japanese),
        "only in README.ja.md": sorted(japanese - english),
    } == {"only in README.md": [], "only in README.ja.md": []}


def test_the_parser_sees_keys_in_prose_and_tables_only():
    text = "\n".join(
        [
            "| `vps_ipv6` | required | see `tunnel_mtu` and `not_a_key` |",
            "```python",
            '"nat": True,  `conntrack_max`',
            "```",
            "a span over a line break: `ip keepalive K",
            "  VPS_INNER`, then `replace_ufw`.",
        ]
    )
    assert backticked_keys("\n".join(prose_lines(text))) == {
        "vps_ipv6",
        "tunnel_mtu",
        "replace_ufw",
    }


def test_the_two_readmes_link_to_each_other():
    assert "](README.ja.md)" in before_first_section(README)
    assert "](README.md)" in before_first_section(README_JA)
