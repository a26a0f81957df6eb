"""The BPMN 2.0 document: the process graph and its layout written as XML with the BPMN, DI
and SpiffWorkflow namespaces, each element's table rows as `relief:row` extension elements,
timers and conditions as Python expressions SpiffWorkflow evaluates.

Its own module because the serialisation (namespaces, element order, attribute spelling)
is the format's business, not the model's or the layout's.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from process.bpmn_geometry import Box, Layout
from process.bpmn_graph import Graph, Node, row_doc
from states.catalog import CaseTypeSpec
from states.labels import TASK_ZH
from states.lifecycle import Row
from states.rules import Assessment

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"
DC = "http://www.omg.org/spec/DD/20100524/DC"
DI = "http://www.omg.org/spec/DD/20100524/DI"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SPIFF = "http://spiffworkflow.org/bpmn/schema/1.0/core"
RELIEF = "urn:relief:bpmn:transition-table"
PYTHON = "https://docs.python.org/3/reference/expressions.html"
for _prefix, _uri in (
    ("bpmn", BPMN),
    ("bpmndi", BPMNDI),
    ("dc", DC),
    ("di", DI),
    ("xsi", XSI),
    ("spiffworkflow", SPIFF),
    ("relief", RELIEF),
):
    ET.register_namespace(_prefix, _uri)


def _q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


def _num(v: float) -> str:
    return str(round(v))


def render(g: Graph, lay: Layout, spec: CaseTypeSpec, a: Assessment) -> bytes:
    root = ET.Element(
        _q(BPMN, "definitions"),
        {
            "id": f"Definitions_{spec.case_type}",
            "targetNamespace": f"urn:relief:process:{spec.case_type}",
            "expressionLanguage": PYTHON,
            "exporter": "relief bpmn",
            "exporterVersion": "1",
        },
    )
    for mid, name in sorted(g.messages.items()):
        ET.SubElement(root, _q(BPMN, "message"), {"id": mid, "name": name})
    for eid, (name, code) in sorted(g.errors.items()):
        ET.SubElement(root, _q(BPMN, "error"), {"id": eid, "name": name, "errorCode": code})
    process = ET.SubElement(
        root,
        _q(BPMN, "process"),
        {"id": g.process_id, "name": spec.label_zh, "isExecutable": "true"},
    )
    _doc(process, _process_doc(spec, a))
    containers: dict[str | None, ET.Element] = {None: process}
    incoming: dict[str, list[str]] = {}
    outgoing: dict[str, list[str]] = {}
    for f in g.flows:
        outgoing.setdefault(f.source, []).append(f.id)
        incoming.setdefault(f.target, []).append(f.id)
    for n in g.nodes.values():
        el = _node(containers[n.parent], n, incoming.get(n.id, []), outgoing.get(n.id, []))
        if n.kind == "subProcess":
            containers[n.id] = el
    for f in g.flows:
        parent = g.nodes[f.source].parent
        attrs = {"id": f.id, "sourceRef": f.source, "targetRef": f.target}
        if f.name:
            attrs["name"] = f.name
        el = ET.SubElement(containers[parent], _q(BPMN, "sequenceFlow"), attrs)
        _doc(el, row_doc(f.rows))
        _rows(el, f.rows)
        if f.condition:
            c = ET.SubElement(
                el, _q(BPMN, "conditionExpression"), {_q(XSI, "type"): "bpmn:tFormalExpression"}
            )
            c.text = f.condition
    diagram = ET.SubElement(root, _q(BPMNDI, "BPMNDiagram"), {"id": f"Diagram_{spec.case_type}"})
    plane = ET.SubElement(
        diagram,
        _q(BPMNDI, "BPMNPlane"),
        {"id": f"Plane_{spec.case_type}", "bpmnElement": g.process_id},
    )
    for n in g.nodes.values():
        attrs = {"id": f"{n.id}_di", "bpmnElement": n.id}
        if n.kind == "subProcess":
            attrs["isExpanded"] = "true"
        if n.kind == "exclusiveGateway":
            attrs["isMarkerVisible"] = "true"
        shape = ET.SubElement(plane, _q(BPMNDI, "BPMNShape"), attrs)
        _bounds(shape, lay.boxes[n.id])
        if n.id in lay.labels:
            _bounds(ET.SubElement(shape, _q(BPMNDI, "BPMNLabel")), lay.labels[n.id])
    for f in g.flows:
        edge = ET.SubElement(
            plane, _q(BPMNDI, "BPMNEdge"), {"id": f"{f.id}_di", "bpmnElement": f.id}
        )
        for x, y in lay.edges[f.id]:
            ET.SubElement(edge, _q(DI, "waypoint"), {"x": _num(x), "y": _num(y)})
        if f.id in lay.labels:
            _bounds(ET.SubElement(edge, _q(BPMNDI, "BPMNLabel")), lay.labels[f.id])
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode", short_empty_elements=True)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n").encode("utf-8")


def _bounds(parent: ET.Element, b: Box) -> None:
    ET.SubElement(
        parent,
        _q(DC, "Bounds"),
        {"x": _num(b.x), "y": _num(b.y), "width": _num(b.w), "height": _num(b.h)},
    )


def _doc(el: ET.Element, text: str) -> None:
    if text:
        ET.SubElement(el, _q(BPMN, "documentation")).text = text


def _rows(el: ET.Element, rows: tuple[Row, ...]) -> ET.Element | None:
    if not rows:
        return None
    ext = ET.SubElement(el, _q(BPMN, "extensionElements"))
    for r in rows:
        ET.SubElement(
            ext,
            _q(RELIEF, "row"),
            {
                "trigger": r.trigger,
                "source": " ".join(s.value for s in r.sources()),
                "dest": r.dest.value,
                "guards": " ".join(c.__name__ for c in r.conditions),
                "notices": " ".join(k.value for k in r.effects.notices),
                "auto": "true" if r.auto else "false",
            },
        )
    return ext


def _node(parent: ET.Element, n: Node, inc: list[str], out: list[str]) -> ET.Element:
    attrs = {"id": n.id}
    if n.name:
        attrs["name"] = n.name
    if n.kind == "boundaryEvent":
        attrs["attachedToRef"] = n.attached_to or ""
        attrs["cancelActivity"] = "true" if n.interrupting else "false"
    if n.kind == "scriptTask":
        attrs["scriptFormat"] = "python"
    el = ET.SubElement(parent, _q(BPMN, n.kind), attrs)
    _doc(el, n.doc)
    ext = _rows(el, n.rows)
    if n.service:
        ext = ext if ext is not None else ET.SubElement(el, _q(BPMN, "extensionElements"))
        op, result, params = n.service
        o = ET.Element(_q(SPIFF, "serviceTaskOperator"), {"id": op, "resultVariable": result})
        ps = ET.SubElement(o, _q(SPIFF, "parameters"))
        for key, value in params.items():
            ET.SubElement(
                ps,
                _q(SPIFF, "parameter"),
                {"id": key, "type": "str", "value": json.dumps(value, ensure_ascii=False)},
            )
        ext.insert(0, o)
    for fid in inc:
        ET.SubElement(el, _q(BPMN, "incoming")).text = fid
    for fid in out:
        ET.SubElement(el, _q(BPMN, "outgoing")).text = fid
    if n.script is not None:
        ET.SubElement(el, _q(BPMN, "script")).text = n.script
    if n.event:
        kind, ref = n.event
        defn = ET.SubElement(el, _q(BPMN, f"{kind}EventDefinition"), {"id": f"{n.id}_def"})
        if kind == "message":
            defn.set("messageRef", ref)
        elif kind == "error":
            defn.set("errorRef", ref)
        elif kind == "timer":
            d = ET.SubElement(
                defn, _q(BPMN, "timeDuration"), {_q(XSI, "type"): "bpmn:tFormalExpression"}
            )
            d.text = json.dumps(ref)  # a Python string literal: SpiffWorkflow evaluates it
    return el


def _process_doc(spec: CaseTypeSpec, a: Assessment) -> str:
    m = spec.machine
    flags = [
        "须经确认" if m.needs_confirmation else "无须确认",
        "拨付资金" if m.pays_out else "不拨付资金（决定即生效）",
    ]
    units = "；".join(f"{TASK_ZH[r.kind.value]}：{r.unit}" for r in a.routes)
    return (
        f"{spec.label_zh}（{spec.case_type}）由 relief 从该类型的状态迁移表生成（relief bpmn）。"
        f"{'，'.join(flags)}。承办单位取自该类型示例申请（docs/examples/{spec.case_type}.json）的"
        f"办理路由：{units}。\n"
        "流程变量：origin（立案方式，仅有依职权立案的类型）、intake_review（RELIEF_INTAKE_REVIEW）、"
        "acceptable（规则认定属于受理范围）、intake、review_<单位>、confirmation、outcome、"
        "lift_pending（顺延待解封）。条件为 Python 表达式（SpiffWorkflow 可直接求值）。"
        "计时器：relief 按中国工作日计时，timeDuration 为相应工作日数最长的日历跨度。"
    )
