"""docs/measures.md covers every measure of the source text, and quotes it verbatim."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
SOURCE = (ROOT / "states/editions/dongcheng-2022-8.source.txt").read_text(encoding="utf-8")
DOC = (ROOT / "docs/measures.md").read_text(encoding="utf-8")


def _plain(text: str) -> str:
    return re.sub(r"\s+", "", text)


def numbers_in_the_text() -> list[list[int]]:
    """Each measure start of the text (`N.` before Chinese text) as its possible numbers: a
    number glued to a phone number (`6719691010.强化…`) may be the last one or two digits."""
    found = []
    for m in re.finditer(r"(\d+)\.(?=[\u4e00-\u9fff“（])", SOURCE):
        digits = m.group(1)
        found.append([int(digits)] if len(digits) <= 2 else [int(digits[-2:]), int(digits[-1])])
    return found


def rows() -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for line in DOC.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and cells[0].isdigit():
            out.setdefault(int(cells[0]), []).append(line)
    return out


def test_every_measure_number_of_the_text_has_its_row() -> None:
    have = rows()
    missing = [c for c in numbers_in_the_text() if not any(n in have for n in c)]
    assert missing == []
    assert sorted(have) == list(range(1, 56))  # 55 measures, the last one's number lost


def test_every_quote_is_verbatim_and_every_row_has_a_status() -> None:
    source = _plain(SOURCE)
    quotes = re.findall(r"「([^」]+)」", DOC)
    assert len(quotes) >= 40
    assert [q for q in quotes if _plain(q) not in source] == []
    for line in (row for lines in rows().values() for row in lines):
        status = line.split("|")[4]
        assert any(
            word in status
            for word in ("type", "ex officio", "criterion", "intake and referral", "not carried",
                         "no casework")
        ), line  # fmt: skip


def test_every_type_relief_carries_is_in_its_measure_row() -> None:
    """The catalog and the table agree: each type named in a row exists, each type is named."""
    from states.catalog import catalog

    named = set(re.findall(r"`([a-z_]+)`", "\n".join(r for rs in rows().values() for r in rs)))
    assert set(catalog()) <= named
    assert named - set(catalog()) == set(), "a row names a type relief does not have"
