"""通知书内容 — what a notice says, gathered from the case as plain values.

Templates only place these values; every amount, date and label is formatted here (amounts in
figures and in 人民币大写 by cn2an), so a template never computes money.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from base.civil_dates import zh_date
from base.money import format_cny, to_money
from base.query_codes import display as display_query_code
from states.catalog import spec_for
from states.edition import Edition
from states.labels import NOTICE_ZH, TASK_ZH
from states.lifecycle import NoticeKind
from states.rules import Assessment, Route, TaskKind

ADMINISTRATIVE_NOTICES = {
    NoticeKind.NOT_ACCEPTED,
    NoticeKind.DECISION_GRANTED,
    NoticeKind.DECISION_PARTIAL,
    NoticeKind.DECISION_REFUSED,
}
CIVIL_TYPES = {"rent_state_property"}  # a landlord's waiver: no administrative remedy
LICENCE_TYPES = {"food_production": "食品生产许可证", "food_business": "食品经营许可证"}


@dataclass(frozen=True)
class NoticeInput:
    """Everything about a case a notice may state, as the engine holds it."""

    kind: NoticeKind
    case_no: str
    case_type: str
    query_code: str
    filed_on: date
    issued_on: date
    facts: dict[str, Any]
    assessment: Assessment
    edition: Edition
    doc_number: str | None = None
    granted: Decimal | None = None
    items: list[str] = field(default_factory=list)
    reason: str | None = None
    deadline: date | None = None
    reference: str | None = None
    task: dict[str, Any] = field(default_factory=dict)
    working_days: int = 0


@functools.lru_cache(maxsize=4096)  # cn2an takes ~0.2 ms; a notice asks twice
def money_upper(amount: Decimal) -> str:
    """人民币大写, as a payment notice writes it (cn2an, not by hand)."""
    import cn2an  # 0.15 s to import: only once a notice names an amount

    return str(cn2an.an2cn(f"{to_money(amount):.2f}", "rmb"))


@functools.lru_cache(maxsize=256)
def number_zh(n: int) -> str:
    """A count in Chinese numerals (六十), for periods the edition sets."""
    import cn2an

    return str(cn2an.an2cn(n))


def route_of(a: Assessment, *kinds: TaskKind) -> Route | None:
    for kind in kinds:
        for r in a.routes:
            if r.kind == kind:
                return r
    return None


def issuer_route(kind: NoticeKind, a: Assessment) -> Route | None:
    """Which unit issues a notice of this kind for this case."""
    if kind in (
        NoticeKind.DECISION_GRANTED,
        NoticeKind.DECISION_PARTIAL,
        NoticeKind.DECISION_REFUSED,
    ):
        return route_of(a, TaskKind.DECIDE, TaskKind.REVIEW)
    if kind == NoticeKind.PAYOUT:
        return route_of(a, TaskKind.PAYOUT, TaskKind.DECIDE)
    return route_of(a, TaskKind.REVIEW, TaskKind.DECIDE)


def contacts_text(a: Assessment, issuer: Route | None) -> str:
    """The issuer's contacts from the document, else the reviewing section's."""
    for r in (issuer, route_of(a, TaskKind.CONFIRM), route_of(a, TaskKind.REVIEW)):
        if r is not None and r.contacts:
            people = "、".join(f"{p}，电话{t}" for p, t in r.contacts)
            return f"{r.unit}　{people}"
    return ""


def applicant_label(facts: dict[str, Any]) -> tuple[str, str]:
    """(how the notice addresses the applicant, its identifier)."""
    party = facts.get("applicant") or facts.get("licensee") or {}
    ident = party.get("uscc") or party.get("registration_no") or ""
    name = party.get("name") or ""
    if not name and party.get("kind") == "individual_business":
        operator = party.get("operator_name")
        name = f"个体工商户（经营者：{operator}）" if operator else "个体工商户（无字号）"
    return name or ident, ident


def facts_found(inp: NoticeInput) -> list[str]:
    """查明的事实: what the rules established, in the rules' words."""
    a = inp.assessment
    out = [f"{c.label_zh}：{c.formula_zh}" for c in a.components]
    effect = a.effect
    if "cumulative_principal" in effect:
        out.append(
            f"驻区金融机构贷款累计金额{format_cny(Decimal(effect['cumulative_principal']))}元"
        )
    if "original_expiry" in effect:
        out.append(f"许可证原有效期至{zh_date(date.fromisoformat(effect['original_expiry']))}")
    if inp.facts.get("lockdown_lift_date"):
        out.append(f"封管控解除日期{zh_date(date.fromisoformat(inp.facts['lockdown_lift_date']))}")
    penalty = inp.facts.get("penalty")
    if penalty:
        out.append(f"行政处罚决定日期{zh_date(date.fromisoformat(penalty['decided']))}")
    return out


def reply_request(inp: NoticeInput) -> dict[str, str]:
    """The 补正 / 容缺 / 补充 request a reminder is about (carried in the notice's detail)."""
    kind = str(inp.task.get("request_kind") or "")
    if not kind:
        return {}
    n = inp.edition.notices
    consequence = {
        NoticeKind.CORRECTION.value: n.correction_consequence,
        NoticeKind.DEFERRED_ACCEPTANCE.value: n.deferred_consequence,
        NoticeKind.MORE_INFO.value: n.more_info_consequence,
    }.get(kind, "")
    opened = inp.task.get("opened_on")
    return {
        "title": f"《{NOTICE_ZH.get(kind, kind)}》",
        "opened_on": zh_date(date.fromisoformat(str(opened))) if opened else "",
        "consequence": consequence,
    }


def remedy(inp: NoticeInput, issuer: Route | None) -> dict[str, Any]:
    """救济途径: reconsideration and lawsuit for administrative decisions; the supervising
    bureau for a landlord's civil rent waiver; nothing for other notices."""
    if inp.kind not in ADMINISTRATIVE_NOTICES:
        return {"kind": "none"}
    if inp.case_type in CIVIL_TYPES:
        return {
            "kind": "civil",
            "supervisor": issuer.unit if issuer else "",
            "contacts": contacts_text(inp.assessment, issuer),
        }
    n = inp.edition.notices
    decider = inp.edition.bureau(issuer.bureau_code if issuer else "district_government")
    where = n.remedies[decider.level]  # an act of 区政府 is not challenged before 区政府
    if not where.administrative:  # 区总工会 makes no administrative act
        return {"kind": "objection", "text": where.objection_zh}
    return {
        "kind": "administrative",
        "days_zh": number_zh(n.reconsideration_days.value),
        "months_zh": number_zh(n.lawsuit_months.value),
        "body": where.reconsideration_body,
        "court": where.court,
    }


def build(inp: NoticeInput) -> dict[str, Any]:
    """The template context of one notice."""
    a, e = inp.assessment, inp.edition
    issuer = issuer_route(inp.kind, a)
    label, ident = applicant_label(inp.facts)
    granted = inp.granted if inp.granted is not None else a.amount
    measure = e.measure_of(inp.case_type)
    clauses: list[str] = []
    for clause in [c.clause for c in a.checks] + [c.clause for c in a.components]:
        if clause not in clauses:
            clauses.append(clause)
    licence = inp.facts.get("licence") or {}
    effect = a.effect
    return {
        "notice": {
            "kind": inp.kind.value,
            "title": NOTICE_ZH[inp.kind],
            "doc_number": inp.doc_number,
            "issued_on": zh_date(inp.issued_on),
        },
        "issuer": {
            "name": issuer.bureau_name if issuer else e.issuer,
            "unit": issuer.unit if issuer else e.issuer,
        },
        "contacts": contacts_text(a, issuer),
        "recipient": label,
        "applicant": {"label": label, "identity": ident},
        "case": {
            "case_no": inp.case_no,
            "type_label": spec_for(inp.case_type).label_zh,
            "filed_on": zh_date(inp.filed_on),
            "query_code": display_query_code(inp.query_code),
            "working_days": inp.working_days,
        },
        "policy": {"doc_number": e.doc_number, "title": e.title, "measure": measure},
        "clauses": clauses,
        "facts": facts_found(inp),
        "checks": [{"reason": c.reason_zh, "passed": c.passed} for c in a.checks],
        "reasons": [c.reason_zh for c in a.checks if not c.passed]
        + ([inp.reason] if inp.reason else []),
        "components": [
            {"label": c.label_zh, "amount": format_cny(c.ceiling), "formula": c.formula_zh}
            for c in a.components
        ],
        "granted": format_cny(granted),
        "granted_upper": money_upper(granted),
        "has_amount": bool(a.components),
        "effect": {
            "months": effect.get("months"),
            "new_expiry": zh_date(date.fromisoformat(effect["new_expiry"]))
            if effect.get("new_expiry") not in (None, "pending_lift")
            else None,
            "pending_lift": effect.get("new_expiry") == "pending_lift",
            "original_expiry": zh_date(date.fromisoformat(effect["original_expiry"]))
            if effect.get("original_expiry")
            else None,
            "green_channel": effect.get("green_channel"),
            "statement": effect.get("statement", ""),
            "referred_to": effect.get("referred_to", ""),
        },
        "licence": {
            "type_label": LICENCE_TYPES.get(licence.get("type", ""), ""),
            "licence_no": licence.get("licence_no") or "",
            "days_after_lift": e.licence_extension.days_after_lift.value
            if e.licence_extension
            else None,
        },
        "items": inp.items,
        "deadline": zh_date(inp.deadline),
        "consequence": {
            "correction": e.notices.correction_consequence,
            "deferred": e.notices.deferred_consequence,
            "more_info": e.notices.more_info_consequence,
        },
        "reason": inp.reason or "",
        "payout": {
            "amount": format_cny(granted),
            "amount_upper": money_upper(granted),
            "payer": issuer.bureau_name if issuer else "",
            "reference": inp.reference or "",
        },
        "remedy": remedy(inp, issuer),
        "request": reply_request(inp),
        "task": {
            **inp.task,
            "kind_label": TASK_ZH.get(inp.task.get("task_kind", ""), ""),
            "due_on_zh": zh_date(date.fromisoformat(inp.task["due_on"]))
            if inp.task.get("due_on")
            else "",
        },
    }
