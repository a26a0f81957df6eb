"""The README and docs/ stay true: self-contained, and their examples are the shipped files."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest

from models.input_errors import parse_application
from states.catalog import assess

ROOT = Path(__file__).parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _input_format_blocks() -> list[dict[str, object]]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Input format\n", 1)[1].split("\n## ", 1)[0]
    return [json.loads(b) for b in re.findall(r"```json\n(.*?)```", section, re.S)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_pages_never_send_a_reader_outside_the_repository(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert "../shared" not in text and "shared/domain" not in text
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if "://" in target:
            continue
        assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_every_type_has_one_example() -> None:
    """Every type (core and configured) has docs/examples/<type>.json; the README shows the
    core ones (configured types are shown in docs/editions.md and docs/measures.md)."""
    from models.applications import CaseType
    from states.catalog import catalog

    types = [b["type"] for b in _input_format_blocks()]
    assert sorted(types) == sorted(t.value for t in CaseType)
    examples = sorted(p.stem for p in (ROOT / "docs" / "examples").glob("*.json"))
    assert examples == sorted(catalog())


@pytest.mark.parametrize("path", sorted((ROOT / "docs" / "examples").glob("*.json")), ids=str)
def test_every_example_is_a_real_application(path: Path) -> None:
    block = json.loads(path.read_text(encoding="utf-8"))
    application = parse_application(block, today=date(2022, 12, 31))
    assert application.application_date is not None
    [first, *_] = assess(application, filed_on=application.application_date, register=[])
    assert first.decision in ("granted", "partially_granted", "extended", "extended_ex_officio")


@pytest.mark.parametrize("block", _input_format_blocks(), ids=lambda b: str(b["type"]))
def test_readme_example_is_the_docs_example(block: dict[str, object]) -> None:
    path = ROOT / "docs" / "examples" / f"{block['type']}.json"
    assert json.loads(path.read_text(encoding="utf-8")) == block
    application = parse_application(block, today=date(2022, 7, 1))
    assert application.application_date is not None
    [first, *_] = assess(application, filed_on=application.application_date, register=[])
    assert first.checks  # the example is a real application the rules judge


def test_park_example_keeps_its_cap_per_property() -> None:
    """The issue's symptom: without property_id the park cap fell back to the applicant."""
    [block] = [b for b in _input_format_blocks() if b["type"] == "rent_park_subsidy"]
    application = parse_application(block, today=date(2022, 7, 1))
    [result] = assess(application, filed_on=date(2022, 7, 1), register=[])
    assert result.subject_key and result.subject_key.endswith(":PARK-1")
    assert str(result.amount) == "1000000.00"
