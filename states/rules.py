"""审查规则的公共部分 — what every rule returns: checks with reasons, amounts, routing.

Rule modules are plain functions of an application and an edition; they never touch the
database. The engine stores the Assessment with the case, and the decision notice and the
audit log show the same reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

from base.civil_dates import zh_date
from base.money import to_money
from models.applications import Enjoyed7, Party, Prior7Declaration
from states.edition import Basis, Edition


class Decision(StrEnum):
    """审查结论 — what the rules make of an application."""

    GRANTED = "granted"  # 准予
    PARTIALLY_GRANTED = "partially_granted"  # 部分准予
    REFUSED = "refused"  # 不予
    NOT_APPLICABLE = "not_applicable"  # 不适用本文件
    NOT_ACCEPTED = "not_accepted"  # 不予受理
    EXTENDED_EX_OFFICIO = "extended_ex_officio"  # 依职权顺延
    EXTENDED = "extended"  # 顺延
    EXTENDED_PENDING_LIFT = "extended_pending_lift"  # 顺延至解封后30日（待解封）


GRANTING = frozenset(
    {
        Decision.GRANTED,
        Decision.PARTIALLY_GRANTED,
        Decision.EXTENDED,
        Decision.EXTENDED_EX_OFFICIO,
        Decision.EXTENDED_PENDING_LIFT,
    }
)


class TaskKind(StrEnum):
    """办理环节."""

    INTAKE = "intake"  # 受理
    REVIEW = "review"  # 审核
    CONFIRM = "confirm"  # 确认（经确认）
    DECIDE = "decide"  # 决定
    SUPERVISE = "supervise"  # 监督（国有房屋租金减免）
    PAYOUT = "payout"  # 拨付


@dataclass(frozen=True)
class Check:
    """One criterion: passed or not, why (zh and en), and the clause it rests on."""

    code: str
    passed: bool
    reason_zh: str
    reason_en: str
    clause: str
    basis: Basis = Basis.DOC
    manual_review: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "passed": self.passed,
            "reason_zh": self.reason_zh,
            "reason_en": self.reason_en,
            "clause": self.clause,
            "basis": self.basis.value,
            "manual_review": self.manual_review,
        }


@dataclass(frozen=True)
class Component:
    """One amount a case may grant, with its ceiling, formula and any cross-case cap."""

    code: str
    label_zh: str
    gross: Decimal
    ceiling: Decimal
    formula_zh: str
    clause: str
    cap_key: str | None = None
    cap_limit: Decimal | None = None
    cap_opening: Decimal = Decimal("0.00")
    partial_when_capped: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "label_zh": self.label_zh,
            "gross": str(self.gross),
            "ceiling": str(self.ceiling),
            "formula_zh": self.formula_zh,
            "clause": self.clause,
            "cap_key": self.cap_key,
            "cap_limit": None if self.cap_limit is None else str(self.cap_limit),
            "cap_opening": str(self.cap_opening),
            "partial_when_capped": self.partial_when_capped,
        }


@dataclass(frozen=True)
class Route:
    """Who handles a stage: bureau, section and the contacts the document names."""

    kind: TaskKind
    bureau_code: str
    section_code: str
    bureau_name: str
    section_name: str
    contacts: tuple[tuple[str, str], ...] = ()

    @property
    def unit(self) -> str:
        return f"{self.bureau_name}{self.section_name}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "bureau": self.bureau_code,
            "section": self.section_code,
            "unit": self.unit,
            "bureau_name": self.bureau_name,
            "section_name": self.section_name,
            "contacts": [{"person": p, "phone": t} for p, t in self.contacts],
        }


def route(edition: Edition, kind: TaskKind, ref: str) -> Route:
    """Resolve a `bureau.section` reference of the edition into a Route."""
    bureau, section = edition.section(ref)
    if section is None:
        return Route(kind, bureau.code, "", bureau.name, "")
    contacts = tuple((c.person, c.phone) for c in section.contacts)
    return Route(kind, bureau.code, section.code, bureau.name, section.name, contacts)


@dataclass(frozen=True)
class Assessment:
    """The rules' view of one case: decision, every check, amounts, routing, effect."""

    case_type: str
    edition_id: str
    decision: Decision
    checks: tuple[Check, ...]
    components: tuple[Component, ...] = ()
    routes: tuple[Route, ...] = ()
    effect: dict[str, str] = field(default_factory=dict)
    subject_key: str = ""
    needs_confirmation: bool = False
    pays_out: bool = False
    claimed: Decimal = Decimal("0.00")

    @property
    def amount(self) -> Decimal:
        """The ceiling the rules allow (sum of components)."""
        return to_money(sum((c.ceiling for c in self.components), Decimal(0)))

    @property
    def manual_review_reasons(self) -> list[str]:
        return [c.reason_zh for c in self.checks if c.manual_review]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Assessment:
        """Rebuild an assessment stored with a case by `as_dict`."""
        return cls(
            case_type=d["case_type"],
            edition_id=d["edition"],
            decision=Decision(d["decision"]),
            checks=tuple(
                Check(
                    c["code"],
                    c["passed"],
                    c["reason_zh"],
                    c["reason_en"],
                    c["clause"],
                    Basis(c["basis"]),
                    c["manual_review"],
                )
                for c in d["checks"]
            ),
            components=tuple(
                Component(
                    code=c["code"],
                    label_zh=c["label_zh"],
                    gross=Decimal(c["gross"]),
                    ceiling=Decimal(c["ceiling"]),
                    formula_zh=c["formula_zh"],
                    clause=c["clause"],
                    cap_key=c["cap_key"],
                    cap_limit=None if c["cap_limit"] is None else Decimal(c["cap_limit"]),
                    cap_opening=Decimal(c["cap_opening"]),
                    partial_when_capped=c["partial_when_capped"],
                )
                for c in d["components"]
            ),
            routes=tuple(
                Route(
                    TaskKind(r["kind"]),
                    r["bureau"],
                    r["section"],
                    r["bureau_name"],
                    r["section_name"],
                    tuple((p["person"], p["phone"]) for p in r["contacts"]),
                )
                for r in d["routes"]
            ),
            effect=dict(d["effect"]),
            subject_key=d["subject_key"],
            needs_confirmation=d["needs_confirmation"],
            pays_out=d["pays_out"],
            claimed=Decimal(d["claimed"]),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "case_type": self.case_type,
            "edition": self.edition_id,
            "subject_key": self.subject_key,
            "decision": self.decision.value,
            "amount": str(self.amount),
            "claimed": str(self.claimed),
            "components": [c.as_dict() for c in self.components],
            "effect": dict(self.effect),
            "checks": [c.as_dict() for c in self.checks],
            "manual_review": self.manual_review_reasons,
            "routes": [r.as_dict() for r in self.routes],
            "needs_confirmation": self.needs_confirmation,
            "pays_out": self.pays_out,
        }


def decide(checks: list[Check], *, partial: bool = False) -> Decision:
    """Granted when every check passed (partially when some claim was cut), else refused."""
    if any(not c.passed for c in checks):
        return Decision.REFUSED
    return Decision.PARTIALLY_GRANTED if partial else Decision.GRANTED


# ---------------------------------------------------------------- checks common to all types
@dataclass(frozen=True)
class Prior7Entry:
    """一条东政办发〔2022〕7号已享受记录 (from the imported register)."""

    subject: str
    family: str
    object_id: str | None
    period_from: date
    period_to: date


def window_check(edition: Edition, filed_on: date) -> Check:
    """在有效期内: filed within the application window (closing clause)."""
    s = edition.settings
    start, end = s.application_window_from.value, s.application_window_to.value
    ok = start <= filed_on <= end
    return Check(
        code="window",
        passed=ok,
        reason_zh=(
            f"申请日期{zh_date(filed_on)}在本细则有效期内"
            if ok
            else f"申请日期{zh_date(filed_on)}不在本细则有效期（{zh_date(start)}至{zh_date(end)}）"
            "内，且该措施未另行规定执行期限"
        ),
        reason_en=(
            f"filed {filed_on} within the window {start}–{end}"
            if ok
            else f"filed {filed_on}, outside the window {start}–{end}; the measure sets no period"
        ),
        clause=edition.window.clause,
    )


def no_double_benefit_check(
    edition: Edition,
    *,
    subject: Party,
    family: str,
    object_id: str | None,
    period: tuple[date, date],
    declared: Enjoyed7,
    register: list[Prior7Entry],
) -> Check:
    """不重复享受: no matching 7号 benefit (same subject, family, object, overlapping period)."""
    declared_hit = declared is True or (
        isinstance(declared, Prior7Declaration) and (declared.same_lease or declared.same_loan)
    )
    register_hit = [
        e
        for e in register
        if e.subject == subject.identity
        and e.family == family
        and (e.object_id is None or object_id is None or e.object_id == object_id)
        and e.period_from <= period[1]
        and period[0] <= e.period_to
    ]
    hit = declared_hit or bool(register_hit)
    source = "东政办发〔2022〕7号登记册" if register_hit else "申请人申报"
    return Check(
        code="no_double_benefit",
        passed=not hit,
        reason_zh=(
            f"已享受东政办发〔2022〕7号相关政策（{source}），不再重复享受；转人工复核"
            if hit
            else "未享受东政办发〔2022〕7号相关政策"
        ),
        reason_en=(
            f"already enjoyed under 7号 ({'register' if register_hit else 'declared'}); "
            "refused and flagged for manual review"
            if hit
            else "no 7号 benefit for this object"
        ),
        clause=edition.no_double_benefit.clause,
        manual_review=hit,
    )
