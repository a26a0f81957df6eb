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
from base.working_days import add_working_days
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
    NoticeKind.EXPIRED,  # 终止办理 ends the application: an act the applicant may challenge
}
# what the remedy sentence says is challenged, and in which document it was received
CHALLENGED: dict[NoticeKind, tuple[str, str]] = {
    NoticeKind.NOT_ACCEPTED: ("本机关不予受理的决定", "通知书"),
    NoticeKind.EXPIRED: ("本机关终止办理的决定", "告知书"),
}
CIVIL_TITLES = {  # a landlord's waiver is told, not decided
    NoticeKind.DECISION_GRANTED: "租金减免告知书",
    NoticeKind.DECISION_PARTIAL: "租金减免告知书",
    NoticeKind.DECISION_REFUSED: "租金减免核实情况告知书",
}
LICENCE_LAW_TYPES = {"licence_extension"}  # the other types only follow 行政许可法 by analogy
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
    decision_ref: str | None = None
    form_confirmed: bool = False  # RELIEF_NOTICE_FORM_CONFIRMED
    seal_line: str = ""


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
    """(how the notice addresses the applicant, its identifier): by name, an individual
    business with its operator; never by a bare code (GB/T 9704-2012 主送机关)."""
    party = facts.get("applicant") or facts.get("licensee") or {}
    ident = party.get("uscc") or party.get("registration_no") or ""
    name = party.get("name") or ""
    operator = party.get("operator_name")
    if party.get("kind") == "individual_business":
        if not name:
            name = "个体工商户（无字号）"
        if operator:
            name = f"{name}（经营者：{operator}）"
    if not name:
        name = f"统一社会信用代码为{ident}的申请单位"
    return name, ident


def yuan(value: Any) -> str:
    return f"{format_cny(Decimal(str(value or 0)))}元"


def applicant_named(facts: dict[str, Any]) -> bool:
    """Whether the applicant gave a name (or is an individual business, named by its kind)."""
    party = facts.get("applicant") or facts.get("licensee") or {}
    return bool(party.get("name")) or party.get("kind") == "individual_business"


def facts_found(inp: NoticeInput) -> list[str]:
    """查明的事实: the facts the decision rests on, as facts (the formulas are in the decision)."""
    a, f, effect = inp.assessment, inp.facts, inp.assessment.effect
    out: list[str] = []
    declared = inp.edition.configured_types.get(inp.case_type)
    if declared is not None:  # a configured type: each declared fact, by its label
        for name, spec in declared.facts.items():
            value = f.get(name)
            if spec.kind == "money":
                shown = yuan(value)
            elif spec.kind == "boolean":
                shown = "是" if value else "否"
            elif spec.kind == "choice":
                shown = spec.choices.get(str(value), str(value))
            elif spec.kind == "date" and value:
                shown = zh_date(date.fromisoformat(str(value)))
            else:
                shown = str(value) if value not in (None, "") else "未填写"
            out.append(f"{spec.label.removesuffix('（元）')}：{shown}")
        return out
    lease = f.get("lease") or {}
    if lease:
        out.append(f"承租房屋月租金{yuan(lease.get('monthly_rent'))}")
        if lease.get("months_in_2022") is not None:
            out.append(f"2022年内租期{lease['months_in_2022']}个月")
    if effect.get("risk_area") == "true":
        out.append("房屋所在地被列为疫情中高风险地区")
    reductions = f.get("reductions") or []
    if reductions:
        total = sum((Decimal(str(r.get("amount") or 0)) for r in reductions), Decimal(0))
        out.append(f"为承租企业减免租金{len(reductions)}笔，合计{yuan(total)}")
    if "confirmed_total_reduced" in f:
        out.append(f"经确认的减免租金总额{yuan(f['confirmed_total_reduced'])}")
        out.append(f"本园区或楼宇此前已获补贴{yuan(f.get('prior_subsidy_for_this_property'))}")
    if "cumulative_principal" in effect:
        out.append(f"驻区金融机构贷款累计金额{yuan(effect['cumulative_principal'])}")
    if "eligible_interest" in f:
        out.append(
            f"应付利息{yuan(f['eligible_interest'])}，已付担保费{yuan(f.get('guarantee_fee_paid'))}"
        )
    if "original_expiry" in effect:
        out.append(f"许可证原有效期至{zh_date(date.fromisoformat(effect['original_expiry']))}")
    if f.get("lockdown_lift_date"):
        out.append(f"封管控解除日期{zh_date(date.fromisoformat(f['lockdown_lift_date']))}")
    penalty = f.get("penalty")
    if penalty:
        out.append(f"行政处罚决定日期{zh_date(date.fromisoformat(penalty['decided']))}，"
                   f"{'已' if penalty.get('publicised') else '未'}被公示")  # fmt: skip
    return out or [c.formula_zh for c in a.components]


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
    """救济途径: reconsideration and lawsuit for administrative decisions, before the bodies
    that the law in force on the issue date names for the deciding authority's level; the
    supervising bureau for a landlord's civil rent waiver; where an objection goes for a body
    that is not an administrative organ; nothing for other notices."""
    if inp.kind not in ADMINISTRATIVE_NOTICES:
        return {"kind": "none"}
    if inp.case_type in CIVIL_TYPES:
        return {"kind": "civil", "task_force": task_force(inp.edition)}
    n = inp.edition.notices
    decider = inp.edition.bureau(issuer.bureau_code if issuer else "district_government")
    challenged = CHALLENGED.get(inp.kind, ("本决定", "决定书"))
    where = n.remedy(decider.level, inp.issued_on)  # 区政府's act is not challenged before it
    if not where.administrative:
        return {"kind": "objection", "text": where.objection_zh}
    return {
        "kind": "administrative",
        "days_zh": number_zh(n.reconsideration_days.value),
        "months_zh": number_zh(n.lawsuit_months.value),
        "body": where.reconsideration_body.format(superior=decider.superior or "上一级主管部门"),
        "court": where.court,
        "act": challenged[0],
        "document": challenged[1],
    }


def task_force(e: Edition) -> str:
    """工作专班: the unit a tenant turns to when a landlord does not give the waiver."""
    p = e.rent_state_property
    if p is None:
        return ""
    bureau, section = e.section(p.task_force)
    unit = f"{bureau.formal_name}{section.name if section else ''}"
    people = "、".join(f"{c.person}，电话{c.phone}" for c in (section.contacts if section else []))
    return f"国有房屋租金减免工作专班（{unit}{'，' + people if people else ''}）"


def civil_context(inp: NoticeInput, issuer: Route | None) -> dict[str, Any] | None:
    """A state-owned landlord's waiver: who the landlord is and what the notifying unit is."""
    if inp.case_type not in CIVIL_TYPES:
        return None
    from models.field_labels import label_of

    lease = inp.facts.get("lease") or {}
    category = str(lease.get("owner_category") or "")
    entry = label_of("Lease", "owner_category")
    kind = entry.options.get(category, category) if entry else category
    coordinates = category in ("central_SOE", "municipal_state")  # the 专班 coordinates only
    return {
        "landlord": lease.get("landlord") or f"{kind}出租方（租赁合同所载）",
        "role": "负责协调的部门" if coordinates else "出租方的监管部门",
    }


def quoted(clause: str) -> str:
    """A clause inside “…”: its own double quotes become single ones (GB/T 15834)."""
    return clause.replace("“", "‘").replace("”", "’")


def formal_name(e: Edition, route: Route | None) -> str:
    """The full name of the organ a notice is issued in (GB/T 9704-2012: not its short name)."""
    return e.bureau(route.bureau_code).formal_name if route is not None else e.issuer


def build(inp: NoticeInput) -> dict[str, Any]:
    """The template context of one notice."""
    a, e = inp.assessment, inp.edition
    issuer = issuer_route(inp.kind, a)
    label, ident = applicant_label(inp.facts)
    granted = inp.granted if inp.granted is not None else a.amount
    measure = e.measure_of(inp.case_type)
    clauses: list[str] = []  # a refusal quotes what it rests on, not every clause of the type
    refusing = inp.kind in (NoticeKind.NOT_ACCEPTED, NoticeKind.DECISION_REFUSED) and a.failed
    sources = [c.clause for c in (a.failed if refusing else a.checks)]
    for clause in sources + ([] if refusing else [c.clause for c in a.components]):
        if quoted(clause) not in clauses:
            clauses.append(quoted(clause))
    reasons: list[str] = []  # each once, in the order the checks ran, the officer's last
    for reason in [c.reason_zh for c in a.checks if not c.passed] + [inp.reason or ""]:
        if reason and reason not in reasons:
            reasons.append(reason)
    civil = civil_context(inp, issuer)
    licence = inp.facts.get("licence") or {}
    effect = a.effect
    return {
        "notice": {
            "kind": inp.kind.value,
            "title": CIVIL_TITLES.get(inp.kind, NOTICE_ZH[inp.kind])
            if civil
            else NOTICE_ZH[inp.kind],
            "doc_number": inp.doc_number,
            "issued_on": zh_date(inp.issued_on),
        },
        "issuer": {
            "name": formal_name(e, issuer),
            "unit": f"{formal_name(e, issuer)}{issuer.section_name}" if issuer else e.issuer,
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
            "due_on": zh_date(add_working_days(inp.issued_on, inp.working_days))
            if inp.working_days
            else "",
        },
        "policy": {"doc_number": e.doc_number, "title": e.title, "measure": measure},
        "clauses": clauses,
        "facts": facts_found(inp),
        "checks": [{"reason": c.reason_zh, "passed": c.passed} for c in a.checks],
        "reasons": reasons,
        "civil": civil,
        "licence_law": "依照" if inp.case_type in LICENCE_LAW_TYPES else "参照",
        "system_name": e.notices.system_name,
        "form": {
            "seal_line": inp.seal_line
            if inp.form_confirmed
            else "（样式文书：发文字号和印章尚待发文机关确认）"
        },
        "components": [
            {"label": c.label_zh, "amount": format_cny(c.ceiling), "formula": c.formula_zh}
            for c in a.components
        ],
        "granted": format_cny(granted),
        "claimed": format_cny(a.claimed),
        "excluded": format_cny(max(a.claimed - to_money(granted), Decimal(0))),
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
            # the green channel helps renew before the extended date: not once it has passed
            "green_channel": effect.get("green_channel")
            if effect.get("new_expiry") in (None, "pending_lift")
            or inp.issued_on <= date.fromisoformat(effect["new_expiry"])
            else "lapsed",
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
            "payer": formal_name(e, issuer) if issuer else "",
            "fund_source": e.bureau(issuer.bureau_code).fund_source if issuer else "",
            "reference": inp.reference or "",
            "decision_ref": inp.decision_ref or "",
            "paid_on": zh_date(inp.issued_on),
            "payee": label if applicant_named(inp.facts) else "你单位",
            "payee_identity": ident,
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
