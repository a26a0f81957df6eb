"""信用豁免 (measure 9) — CreditExemptionCase: rules and machine.

An enterprise whose administrative penalty was publicised may apply; the penalty is kept out
of the credit record when the epidemic caused it. Causation is confirmed by the reviewing
officer (setting `credit_causation`); individual businesses get a manual-review flag.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from models.applications import ApplicantKind, CreditExemptionApplication
from states.edition import Basis, Edition, carried
from states.lifecycle import EffectFacts, EffectOnlyMachine
from states.rules import Assessment, Check, Decision, Prior7Entry, TaskKind, route, window_check

if TYPE_CHECKING:
    from models.tables import CreditExemptionRecord


def exemption_record(e: EffectFacts) -> tuple[type[CreditExemptionRecord], dict[str, Any]]:
    """信用豁免登记: the penalty kept out of the credit record."""
    from models.tables import CreditExemptionRecord  # the ORM only when a case takes effect

    return CreditExemptionRecord, dict(
        case_id=e.case_id, subject=e.party, penalty_ref=e.assessment.effect.get("penalty", ""),
        at=e.at,
    )  # fmt: skip


MACHINE = EffectOnlyMachine("credit_exemption", needs_confirmation=False, register=exemption_record)


def assess(
    app: CreditExemptionApplication,
    edition: Edition,
    *,
    filed_on: date,
    register: list[Prior7Entry],
) -> list[Assessment]:
    p = carried(edition.credit_exemption, "credit_exemption")
    pen = app.penalty
    checks: list[Check] = [window_check(edition, filed_on)]
    if app.applicant.kind == ApplicantKind.INDIVIDUAL_BUSINESS:
        refuse = edition.settings.credit_individual_business.value == "refuse"
        checks.append(
            Check(
                "applicant.enterprise",
                passed=not refuse,
                reason_zh="个体工商户未在文件中列明，本机关按现行做法不予办理"
                if refuse
                else "个体工商户未在文件中列明，按默认做法受理并转人工复核",
                reason_en="individual businesses are not named; not taken under this edition"
                if refuse
                else "individual businesses are not named; accepted with manual review",
                clause=p.service_clause,
                basis=Basis.PROPOSAL,
                manual_review=not refuse,
            )
        )
    checks.append(
        Check(
            "penalty.publicised",
            passed=pen.publicised,
            reason_zh="行政处罚已被公示"
            if pen.publicised
            else "行政处罚未被公示，无需申请信用豁免",
            reason_en="the penalty was publicised" if pen.publicised else "penalty not publicised",
            clause=p.service_clause,
        )
    )
    checks.append(
        Check(
            "penalty.caused_by_epidemic",
            passed=pen.caused_by_epidemic,
            reason_zh="失信行为系因疫情影响导致（由审核人员核实）"
            if pen.caused_by_epidemic
            else "失信行为并非因疫情影响导致",
            reason_en="caused by the epidemic (confirmed by the reviewing officer)"
            if pen.caused_by_epidemic
            else "not caused by the epidemic",
            clause=p.rule_clause,
        )
    )
    if not checks[0].passed:
        decision = Decision.NOT_ACCEPTED
    else:
        decision = Decision.GRANTED if all(c.passed for c in checks) else Decision.REFUSED
    return [
        Assessment(
            case_type=MACHINE.case_type,
            edition_id=edition.id,
            decision=decision,
            checks=tuple(checks),
            routes=(
                route(edition, TaskKind.REVIEW, p.unit),
                route(edition, TaskKind.DECIDE, p.unit),
            ),
            effect={
                "penalty": pen.decision_no or pen.decided.isoformat(),
                "credit_record": "exempt",
            },
            subject_key=pen.decision_no or pen.decided.isoformat(),
        )
    ]
