"""`relief bpmn`: every type's export is valid BPMN 2.0 that SpiffWorkflow runs to its end.

For each type of the catalog (core and configured): the XML validates against the OMG schema
SpiffWorkflow ships; SpiffWorkflow parses it and runs a grant to 办结 (its service task called
through the script engine), a refusal to 不予 and a withdrawal to 已撤回; every row the type's
table can fire is drawn; the diagram has a shape for every flow node and an edge for every
sequence flow, boundary events on their task's border; two exports are the same bytes. The
command line refuses a bad type (exit 2, in Chinese, naming the known types) and writes nothing.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import SpiffWorkflow
from lxml import etree
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser
from SpiffWorkflow.spiff.specs.event_definitions import MessageEventDefinition
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState
from typer.testing import CliRunner

from cli.main import app
from models.applications import type_codes
from models.settings import Settings
from process.bpmn import bpmn_of, calendar_days, live_rows
from states.catalog import catalog, spec_for
from states.labels import NOTICE_ZH
from states.lifecycle import NoticeKind

TYPES = type_codes() if catalog() else []  # the catalog registers the configured types
NS = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
    "dc": "http://www.omg.org/spec/DD/20100524/DC",
    "di": "http://www.omg.org/spec/DD/20100524/DI",
    "relief": "urn:relief:bpmn:transition-table",
}
ROOT = Path(__file__).parents[2]
SCHEMA = Path(SpiffWorkflow.__file__).parent / "bpmn" / "parser" / "schema" / "BPMN20.xsd"
FLOW_NODES = (
    "startEvent",
    "endEvent",
    "intermediateCatchEvent",
    "intermediateThrowEvent",
    "boundaryEvent",
    "userTask",
    "serviceTask",
    "scriptTask",
    "subProcess",
    "exclusiveGateway",
    "parallelGateway",
    "eventBasedGateway",
)
SETTINGS = Settings.model_construct()  # the defaults, whatever the environment says
runner = CliRunner()


@functools.cache
def exported(case_type: str) -> bytes:
    return bpmn_of(case_type, settings=SETTINGS)


@functools.cache
def xsd() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA)))


def tree(case_type: str) -> etree._Element:
    return etree.fromstring(exported(case_type))


# ---------------------------------------------------------------- running it in SpiffWorkflow
class Services(PythonScriptEngine):
    """SpiffWorkflow's service tasks are abstract: the spiff parser reads the operator
    (spiffworkflow:serviceTaskOperator) and the task calls the script engine's call_service,
    which must return JSON. Here it records the call, as relief's payout/effect would act."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def call_service(self, task: Task, **kwargs: Any) -> str:
        params = {k: v["value"] for k, v in kwargs["operation_params"].items()}
        self.calls.append((kwargs["operation_name"], params))
        return json.dumps({"done": kwargs["operation_name"]})


class Run:
    """One case through the exported process, by the answers a test gives its user tasks."""

    def __init__(self, case_type: str, **start: Any) -> None:
        self.case_type = case_type
        parser = SpiffBpmnParser(validator=VALIDATOR)  # validates (BPMN + spiff XSD) again
        parser.add_bpmn_str(exported(case_type), filename=f"{case_type}.bpmn")
        pid = f"Process_{case_type}"
        self.services = Services()
        self.wf = BpmnWorkflow(
            parser.get_spec(pid), parser.get_subprocess_specs(pid), script_engine=self.services
        )
        data = {
            "origin": "submit",
            "intake_review": False,
            "acceptable": True,
            "lift_pending": False,
            **start,
        }
        for t in self.wf.get_tasks(state=TaskState.READY):
            t.set_data(**data)
        self.wf.do_engine_steps()
        self.notices: list[str] = []
        self.collect()
        self.messages = {
            m.get("id"): m.get("name") for m in tree(case_type).iterfind("bpmn:message", NS)
        }

    def ready(self) -> list[str]:
        return [t.task_spec.bpmn_id for t in self.wf.get_tasks(state=TaskState.READY, manual=True)]

    def answer(self, answers: Callable[[str], dict[str, Any] | None], *, until: str = "") -> None:
        """Complete the ready user tasks with `answers(task id)` (None: leave it open)."""
        for _ in range(50):
            tasks = self.wf.get_tasks(state=TaskState.READY, manual=True)
            todo = [(t, answers(t.task_spec.bpmn_id)) for t in tasks]
            todo = [(t, a) for t, a in todo if a is not None]
            if not todo or (until and until in self.ready()):
                return
            for t, a in todo:
                t.set_data(**a)
                t.run()
            self.wf.do_engine_steps()
            self.collect()
        raise AssertionError("the process did not settle")

    def send(self, message_id: str) -> None:
        event = MessageEventDefinition(self.messages[message_id])
        self.wf.send_event(BpmnEvent(event, payload={}))  # raises unless something waits
        self.wf.do_engine_steps()
        self.collect()

    def fire_timer(self, bpmn_id: str) -> None:
        """Let a waiting timer's time pass: its due time (SpiffWorkflow's internal data, kept
        by the event-based gateway for a timer behind one) moved into the past."""
        (timer,) = [
            t
            for t in self.wf.get_tasks(state=TaskState.WAITING)
            if bpmn_id in (t.task_spec.bpmn_id, *(c.task_spec.bpmn_id for c in t.children))
        ]
        timer._set_internal_data(event_value="2000-01-01T00:00:00+00:00")
        self.wf.refresh_timers()
        self.wf.do_engine_steps()
        self.collect()

    def waiting(self, bpmn_id: str) -> Task:
        (t,) = [
            t for t in self.wf.get_tasks(state=TaskState.WAITING) if t.task_spec.bpmn_id == bpmn_id
        ]
        return t

    def collect(self) -> None:
        self.notices += [e.event_definition.name for e in self.wf.get_events()]

    def ends(self) -> set[str]:
        return {
            t.task_spec.bpmn_id
            for t in self.wf.get_tasks(state=TaskState.COMPLETED)
            if t.task_spec.bpmn_id and t.task_spec.bpmn_id.startswith("End_")
        }


def grant(outcome: str = "approve", *, confirmation: str = "confirm") -> Callable[[str], Any]:
    def answers(task: str) -> dict[str, Any] | None:
        if task.startswith("Task_review_"):
            return {"review_" + task.removeprefix("Task_review_"): "pass"}
        return {
            "Task_intake": {"intake": "accept"},
            "Task_confirm": {"confirmation": confirmation},
            "Task_decide": {"outcome": outcome},
            "Task_lockdown_lifted": {},
        }.get(task)

    return answers


FINAL = {"End_closed", "End_rejected", "End_not_accepted", "End_withdrawn", "End_expired"}


def finished(run: Run, end: str) -> None:
    assert run.wf.completed, run.ready()
    assert run.ends() & FINAL == {end}


# ---------------------------------------------------------------- every type
@pytest.mark.parametrize("case_type", TYPES)
def test_the_export_is_valid_bpmn_2(case_type: str) -> None:
    doc = tree(case_type)
    assert xsd().validate(doc), xsd().error_log
    assert etree.QName(doc).namespace == NS["bpmn"]


@pytest.mark.parametrize("case_type", TYPES)
def test_conditions_are_python_and_timers_say_their_working_days(case_type: str) -> None:
    doc = tree(case_type)
    for c in doc.iterfind(".//bpmn:conditionExpression", NS):
        compile(c.text or "", "<condition>", "eval")  # SpiffWorkflow evaluates them as Python
    timers = list(doc.iterfind(".//bpmn:timerEventDefinition", NS))
    assert timers
    for t in timers:
        duration = t.findtext("bpmn:timeDuration", "", NS)
        said = t.getparent().findtext("bpmn:documentation", "", NS)
        days = re.fullmatch(r'"P(\d+)D"', duration)
        working = re.search(r"(\d+)个工作日", said)
        assert days and working, (duration, said)
        assert f"P{days[1]}D" in said and int(days[1]) >= calendar_days(int(working[1]))


@pytest.mark.parametrize("intake_review", [False, True], ids=["rules", "officer"])
@pytest.mark.parametrize("case_type", TYPES)
def test_a_grant_runs_to_closed_and_calls_its_service(case_type: str, intake_review: bool) -> None:
    spec = spec_for(case_type)
    run = Run(case_type, intake_review=intake_review)
    run.answer(grant())
    finished(run, "End_closed")
    (operation, params), *more = run.services.calls
    assert not more
    assert operation == ("relief.order_payout" if spec.machine.pays_out else "relief.apply_effect")
    assert params["case_type"] == case_type
    assert NOTICE_ZH[NoticeKind.ACCEPTANCE] in run.notices
    if spec.machine.pays_out:
        assert run.notices[-1] == NOTICE_ZH[NoticeKind.PAYOUT]
    if any(NoticeKind.REFERRAL in r.effects.notices for r in live_rows(spec.machine)):
        assert NOTICE_ZH[NoticeKind.REFERRAL] in run.notices


@pytest.mark.parametrize("case_type", TYPES)
def test_a_refusal_ends_rejected(case_type: str) -> None:
    run = Run(case_type)
    run.answer(grant("reject"))
    finished(run, "End_rejected")
    assert run.services.calls == []
    assert run.notices[-1] == NOTICE_ZH[NoticeKind.DECISION_REFUSED]


@pytest.mark.parametrize("case_type", TYPES)
def test_a_withdrawal_during_review_ends_withdrawn(case_type: str) -> None:
    run = Run(case_type)
    assert any(t.startswith("Task_review_") for t in run.ready())
    run.send("Message_withdraw")
    finished(run, "End_withdrawn")
    assert run.ready() == [] and run.services.calls == []
    assert run.notices == [NOTICE_ZH[NoticeKind.ACCEPTANCE], NOTICE_ZH[NoticeKind.WITHDRAWN]]


@pytest.mark.parametrize("case_type", TYPES)
def test_every_row_the_type_can_fire_is_drawn(case_type: str) -> None:
    doc = tree(case_type)
    drawn = {(r.get("trigger"), r.get("dest")) for r in doc.iterfind(".//relief:row", NS)}
    rows = live_rows(spec_for(case_type).machine)
    assert {(r.trigger, r.dest.value) for r in rows} <= drawn
    messages = {m.get("name") for m in doc.iterfind("bpmn:message", NS)}
    assert {NOTICE_ZH[k] for r in rows for k in r.effects.notices} <= messages


@pytest.mark.parametrize("case_type", TYPES)
def test_the_diagram_has_every_node_and_flow(case_type: str) -> None:
    doc = tree(case_type)
    nodes = {e.get("id"): e for tag in FLOW_NODES for e in doc.iterfind(f".//bpmn:{tag}", NS)}
    flows = {e.get("id"): e for e in doc.iterfind(".//bpmn:sequenceFlow", NS)}
    shapes = {s.get("bpmnElement"): s for s in doc.iterfind(".//bpmndi:BPMNShape", NS)}
    edges = {e.get("bpmnElement"): e for e in doc.iterfind(".//bpmndi:BPMNEdge", NS)}
    assert set(shapes) == set(nodes)
    assert set(edges) == set(flows)

    def box(element_id: str) -> tuple[float, float, float, float]:
        b = shapes[element_id].find("dc:Bounds", NS)
        x, y, w, h = (float(b.get(k)) for k in ("x", "y", "width", "height"))
        return x, y, w, h

    for nid, node in nodes.items():
        x, y, w, h = box(nid)
        if node.get("attachedToRef"):  # on its host's lower border
            hx, hy, hw, hh = box(node.get("attachedToRef"))
            assert y + h / 2 == hy + hh and hx <= x + w / 2 <= hx + hw, nid
        parent = node.getparent()
        if etree.QName(parent).localname == "subProcess":  # inside its subprocess
            px, py, pw, ph = box(parent.get("id"))
            assert px <= x and x + w <= px + pw and py <= y and y + h <= py + ph, nid
    for fid, flow in flows.items():
        points = [
            (float(p.get("x")), float(p.get("y"))) for p in edges[fid].iterfind("di:waypoint", NS)
        ]
        assert len(points) >= 2
        for (px, py), end in (
            (points[0], flow.get("sourceRef")),
            (points[-1], flow.get("targetRef")),
        ):
            x, y, w, h = box(end)
            assert x - 1 <= px <= x + w + 1 and y - 1 <= py <= y + h + 1, (fid, end)


@pytest.mark.parametrize("case_type", TYPES)
def test_the_export_is_deterministic(case_type: str) -> None:
    assert bpmn_of(case_type, settings=SETTINGS) == exported(case_type)


def test_another_process_with_another_hash_seed_writes_the_same_bytes(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "bpmn", "--all", "--out-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for t in TYPES:
        assert (tmp_path / f"{t}.bpmn").read_bytes() == bpmn_of(t), t


# ---------------------------------------------------------------- the other ways out
@pytest.mark.parametrize("case_type", TYPES)
def test_out_of_scope_is_not_accepted(case_type: str) -> None:
    run = Run(case_type, acceptable=False)
    finished(run, "End_not_accepted")
    assert run.notices == [NOTICE_ZH[NoticeKind.NOT_ACCEPTED]]


def test_a_correction_is_answered_then_a_second_lapses() -> None:
    run = Run("loan_subsidy", intake_review=True)
    assert run.ready() == ["Task_intake"]
    run.answer(lambda t: {"intake": "correction"} if t == "Task_intake" else None)
    assert run.ready() == [] and run.notices == [NOTICE_ZH[NoticeKind.CORRECTION]]
    run.send("Message_resubmit")  # 补正: back to the intake officer
    assert run.ready() == ["Task_intake"]
    run.answer(lambda t: {"intake": "correction"} if t == "Task_intake" else None)
    run.fire_timer("Timer_correction_deadline")
    finished(run, "End_expired")
    assert run.notices[-1] == NOTICE_ZH[NoticeKind.EXPIRED]


def test_more_information_is_asked_and_supplied_then_review_goes_on() -> None:
    run = Run("loan_subsidy")
    first = "Task_review_finance_office_fin_dev"
    run.answer(lambda t: {"review_finance_office_fin_dev": "request_info"} if t == first else None)
    assert first not in run.ready() and NOTICE_ZH[NoticeKind.MORE_INFO] in run.notices
    run.send("Message_supply_info")
    assert first in run.ready()
    run.answer(grant())
    finished(run, "End_closed")


def test_an_sla_reminder_fires_without_closing_the_task() -> None:
    run = Run("credit_exemption")
    (task,) = run.ready()
    reminder = run.waiting(f"Timer_{task}_reminder")
    due = datetime.fromisoformat(reminder._get_internal_data("event_value"))
    days = SETTINGS.review_due_working_days - SETTINGS.sla_remind_working_days
    expected = datetime.now(UTC) + timedelta(days=calendar_days(days))
    assert abs((due - expected).total_seconds()) < 60  # SpiffWorkflow read the ISO duration
    run.fire_timer(f"Timer_{task}_reminder")
    assert run.ready() == [task]  # non-interrupting: the task stays open
    assert run.notices == [NOTICE_ZH[NoticeKind.ACCEPTANCE], NOTICE_ZH[NoticeKind.TASK_REMINDER]]
    run.answer(grant())
    finished(run, "End_closed")


def test_a_licence_granted_ex_officio_or_after_the_lift() -> None:
    run = Run("licence_extension", origin="grant_ex_officio")
    finished(run, "End_closed")
    assert [op for op, _ in run.services.calls] == ["relief.apply_effect"]
    run = Run("licence_extension", lift_pending=True)
    run.answer(grant(), until="Task_lockdown_lifted")
    assert run.ready() == ["Task_lockdown_lifted"] and run.services.calls == []
    run.answer(grant())
    finished(run, "End_closed")
    assert run.notices.count(NOTICE_ZH[NoticeKind.EXTENSION]) == 2  # pending, then the date


def test_working_days_become_a_calendar_upper_bound() -> None:
    assert calendar_days(0) == 0
    assert calendar_days(1) >= 1
    assert calendar_days(20) >= 28  # four weeks at the least, more across a holiday
    assert all(calendar_days(n) < calendar_days(n + 1) for n in range(1, 25))


# ---------------------------------------------------------------- the command line
def test_the_command_prints_the_export() -> None:
    result = runner.invoke(app, ["bpmn", "loan_subsidy"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert result.output.encode("utf-8") == bpmn_of("loan_subsidy")


def test_the_command_writes_one_file_or_every_type(tmp_path: Path) -> None:
    out = tmp_path / "loan.bpmn"
    result = runner.invoke(app, ["bpmn", "loan_subsidy", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == bpmn_of("loan_subsidy")
    result = runner.invoke(app, ["bpmn", "--all", "--out-dir", str(tmp_path / "all")])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "all").iterdir())
    assert written == sorted(f"{t}.bpmn" for t in TYPES)


HOSTILE = [
    "no_such_type",
    "../../etc/passwd",
    "../loan_subsidy",
    "<script>alert(1)</script>",
    "",
    "x" * 5000,
    "LOAN_SUBSIDY",
    "loan_subsidy\n",
    "[red]loan_subsidy[/red]",
]


@pytest.mark.parametrize("name", HOSTILE, ids=range(len(HOSTILE)))
def test_a_bad_type_is_refused_and_nothing_is_written(name: str, tmp_path: Path) -> None:
    out = tmp_path / "out.bpmn"
    result = runner.invoke(app, ["bpmn", name, "--out", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert "申请类型" in result.output and "loan_subsidy" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert len(result.output) < 20_000  # a long name is not echoed whole
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--all"],
        ["--all", "loan_subsidy", "--out-dir", "d"],
        ["loan_subsidy", "--out-dir", "d"],
        ["--all", "--out-dir", "d", "--out", "f"],
    ],
    ids=["nothing", "all-without-dir", "all-and-type", "dir-without-all", "all-and-out"],
)
def test_a_muddled_command_line_is_refused(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["bpmn", *args], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert list(tmp_path.iterdir()) == []


def test_a_real_process_exits_2_without_a_stack_trace(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "bpmn", "../<script>", "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "未知的申请类型" in done.stderr and "loan_subsidy" in done.stderr
    assert list(tmp_path.iterdir()) == []
