"""The diagrams in docs/ are what the transition tables draw today, and the case page's marks
land on the right state and edges."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from xml.etree import ElementTree

import pytest
from typer.testing import CliRunner

from cli.main import app
from process.diagram import SVG_NS, edges_of, highlighted, states_of, svg_of
from states.catalog import catalog, spec_for

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
# graphviz is a system part tools/test.py installs; in CI a missing `dot` fails, never skips
needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None and not os.environ.get("CI"), reason="graphviz not installed"
)


def ids_in(svg: str) -> dict[str, str]:
    root = ElementTree.fromstring(svg)
    return {g.get("id", ""): g.get("class", "") for g in root.iter(f"{{{SVG_NS}}}g")}


@needs_dot
def test_docs_diagrams_are_fresh(tmp_path: Path) -> None:
    """Regenerate every type's SVG and the index; any difference from docs/ is a stale file."""
    out = tmp_path / "diagrams"
    result = CliRunner().invoke(app, ["diagram", "--all", "--out-dir", str(out)])
    assert result.exit_code == 0, result.output
    fresh = sorted(p.name for p in out.iterdir())
    assert fresh == sorted(f"{t}.svg" for t in catalog())
    assert sorted(p.name for p in (DOCS / "diagrams").iterdir()) == fresh, "stray or missing"
    stale = [
        name
        for name in fresh
        if (out / name).read_text(encoding="utf-8")
        != (DOCS / "diagrams" / name).read_text(encoding="utf-8")
    ]
    assert stale == [], f"regenerate with: relief diagram --all --out-dir docs/diagrams ({stale})"
    assert (tmp_path / "diagrams.md").read_text(encoding="utf-8") == (
        DOCS / "diagrams.md"
    ).read_text(encoding="utf-8")


@needs_dot
@pytest.mark.parametrize("case_type", list(catalog()))
def test_every_state_and_transition_is_drawn(case_type: str) -> None:
    ids = ids_in(svg_of(case_type))
    for state in states_of(case_type):
        assert f"state-{state}" in ids
    for edge in edges_of(case_type):
        assert edge.id in ids
    machine = spec_for(case_type).machine
    drawn = set(states_of(case_type))
    assert ("payout_ordered" in drawn) == machine.pays_out
    assert ("awaiting_confirmation" in drawn) == machine.needs_confirmation
    assert {"draft", "submitted", "closed", "withdrawn"} <= drawn


@needs_dot
def test_a_case_path_is_marked() -> None:
    events = [
        ("draft", "submitted", "submit"),
        ("submitted", "accepted", "auto_accept"),
        ("accepted", "under_review", "start_review"),
        ("under_review", "under_review", "claim_task"),  # moved nothing: marks no edge
    ]
    ids = ids_in(highlighted("loan_subsidy", "under_review", events))
    assert ids["state-under_review"].split() == ["node", "current"]
    assert "visited" in ids["state-accepted"] and "visited" in ids["state-draft"]
    assert "visited" not in ids["state-paid"] and "current" not in ids["state-paid"]
    assert "taken" in ids["edge-auto_accept-submitted-accepted"]
    assert "taken" not in ids["edge-approve-under_review-approved"]
    assert not [k for k, v in ids.items() if "taken" in v and "claim_task" in k]


def test_an_unknown_type_is_refused_clearly() -> None:
    for bad in ("nosuch", "../etc/passwd", "<script>alert(1)</script>", "", "x" * 5000):
        result = CliRunner().invoke(app, ["diagram", bad])
        assert result.exit_code == 2, (bad, result.output)
        assert "没有该申请类型" in result.output
        assert "Traceback" not in result.output
    result = CliRunner().invoke(app, ["diagram", "--all"])
    assert result.exit_code == 2 and "--out-dir" in result.output


def test_without_graphviz_the_command_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A machine without `dot` (the Quick start's) gets a clear message, not a stack trace;
    the case page then shows the path in words (api/pages/views.py state_diagram)."""
    from process.diagram import DiagramUnavailable, dot_installed

    monkeypatch.setenv("PATH", str(tmp_path))  # nothing to run in here
    svg_of.cache_clear()
    dot_installed.cache_clear()
    try:
        with pytest.raises(DiagramUnavailable):
            highlighted("loan_subsidy", "draft", [])
        result = CliRunner().invoke(app, ["diagram", "loan_subsidy"])
        assert result.exit_code == 1
        assert "graphviz" in result.output and "Traceback" not in result.output
    finally:
        svg_of.cache_clear()
        dot_installed.cache_clear()
