"""BPMN 2.0 导出 — one application type's process, generated from its transition table.

`bpmn_of(case_type)` reads the type's machine (states/lifecycle.py: the shared rows and the
type's own), keeps the rows that can fire for this type (`live_rows`), and lays them out as one
executable BPMN process with its diagram (BPMNDI). Nothing is drawn by hand per type: the
fragments exist only when their rows do, every element names the rows it stands for
(`relief:row` in its extensionElements), and tests/e2e/test_bpmn.py checks that every live row
is shown and runs each export in SpiffWorkflow. Who handles each task is taken from the routes
of the type's example application (docs/examples/<type>.json, assessed as `relief estimate`
does). docs/bpmn.md explains the mapping, the timers and the limits.

This module is the entry, and the work runs one way from it: bpmn_table picks the live rows,
bpmn_builder draws them as a bpmn_graph (its timers from bpmn_calendar), bpmn_layout and
bpmn_routing place it (in bpmn_geometry's boxes), and bpmn_xml writes the document.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from models.input_errors import parse_application
from models.settings import Settings, get_settings
from process.bpmn_builder import Builder
from process.bpmn_calendar import calendar_days
from process.bpmn_graph import Graph
from process.bpmn_layout import layout
from process.bpmn_table import live_rows
from process.bpmn_xml import render
from states.catalog import CaseTypeSpec, assess, catalog, spec_for
from states.rules import Assessment

__all__ = ["bpmn_of", "calendar_days", "example_assessment", "graph_of", "live_rows"]

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"


def example_assessment(case_type: str, *, examples: Path = EXAMPLES) -> Assessment:
    """The rules' view of the type's example application (docs/examples/<type>.json), judged
    on its own filing date as `relief estimate` judges it: its routes name the units."""
    data = json.loads((examples / f"{case_type}.json").read_text(encoding="utf-8"))
    filed_on = date.fromisoformat(str(data["application_date"]))
    app = parse_application(data, today=filed_on)
    return assess(app, filed_on=filed_on)[0]


def graph_of(
    case_type: str, *, settings: Settings | None = None, assessment: Assessment | None = None
) -> tuple[Graph, CaseTypeSpec, Assessment]:
    """The process graph of a type (KeyError for a type no edition carries)."""
    if case_type not in catalog():
        raise KeyError(case_type)
    spec = spec_for(case_type)
    a = assessment or example_assessment(case_type)
    return Builder(spec, a, settings or get_settings()).build(), spec, a


def bpmn_of(
    case_type: str, *, settings: Settings | None = None, assessment: Assessment | None = None
) -> bytes:
    """The BPMN 2.0 XML (UTF-8) of one application type, with its diagram; the same bytes
    every run for the same table, settings and example."""
    g, spec, a = graph_of(case_type, settings=settings, assessment=assessment)
    return render(g, layout(g), spec, a)
