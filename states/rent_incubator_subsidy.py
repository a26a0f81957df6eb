"""科技型孵化器减免房租补贴 (measure 3) — IncubatorSubsidyCase: rules and machine.

50% of the confirmed rent reductions an incubator gave to 中小微 enterprises and individual
businesses (经确认); reductions to large enterprises do not count. No cap is stated.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from base.money import format_cny, money_share, percent, to_money
from models.applications import ApplicantKind, EnterpriseSize, IncubatorSubsidyApplication
from states.edition import Edition, carried
from states.lifecycle import SubsidyMachine
from states.rules import (
    Assessment,
    Check,
    Component,
    Decision,
    Prior7Entry,
    TaskKind,
    no_double_benefit_check,
    route,
    window_check,
)

FAMILY = "incubator_rent_subsidy"
SME = {EnterpriseSize.MEDIUM, EnterpriseSize.SMALL, EnterpriseSize.MICRO}

MACHINE = SubsidyMachine("rent_incubator_subsidy", needs_confirmation=True)


def assess(
    app: IncubatorSubsidyApplication,
    edition: Edition,
    *,
    filed_on: date,
    register: list[Prior7Entry],
) -> list[Assessment]:
    p = carried(edition.rent_incubator_subsidy, "rent_incubator_subsidy")
    inc = app.applicant
    checks: list[Check] = [window_check(edition, filed_on)]
    checks.append(
        Check(
            "applicant.incubator_non_state",
            passed=inc.leases_non_state_property,
            reason_zh="申请人为承租非国有房屋的科技型孵化器"
            if inc.leases_non_state_property
            else "申请人未承租非国有房屋，不适用本项补贴",
            reason_en="tech incubator leasing non-state property"
            if inc.leases_non_state_property
            else "the incubator does not lease non-state property",
            clause=p.applicant_clause,
        )
    )
    counted = [
        r
        for r in app.reductions
        if r.tenant_kind == ApplicantKind.INDIVIDUAL_BUSINESS or r.tenant_size in SME
    ]
    excluded = [r for r in app.reductions if r not in counted]
    confirmed = [r for r in counted if r.confirmed]
    eligible_reduced = to_money(sum((r.amount for r in confirmed), Decimal(0)))
    claimed_total = to_money(sum((r.amount for r in app.reductions), Decimal(0)))
    checks.append(
        Check(
            "reductions.sme_tenants",
            passed=bool(counted),
            reason_zh=(
                f"为中小微企业和个体工商户减免房租{len(counted)}笔"
                + (f"；为大型企业减免的{len(excluded)}笔不计入" if excluded else "")
                if counted
                else "未为中小微企业或个体工商户减免房租"
            ),
            reason_en=(
                f"{len(counted)} reductions to SMEs/individual businesses"
                + (f"; {len(excluded)} to large enterprises excluded" if excluded else "")
                if counted
                else "no reductions to SMEs or individual businesses"
            ),
            clause=p.tenant_clause,
        )
    )
    unconfirmed = len(counted) - len(confirmed)
    checks.append(
        Check(
            "reductions.confirmed",
            passed=bool(confirmed),
            reason_zh=(
                f"经确认的减免租金总额{format_cny(eligible_reduced)}元"
                + (f"（另有{unconfirmed}笔未经确认，不计入）" if unconfirmed else "")
                if confirmed
                else "减免租金尚未经确认"
            ),
            reason_en=(
                f"confirmed reductions total {eligible_reduced}"
                + (f" ({unconfirmed} unconfirmed not counted)" if unconfirmed else "")
                if confirmed
                else "no confirmed reductions yet"
            ),
            clause=p.rate.clause,
        )
    )
    checks.append(
        no_double_benefit_check(
            edition,
            subject=inc,
            family=FAMILY,
            object_id=None,
            period=(edition.window.start, edition.window.end),
            declared=app.enjoyed_under_7,
            register=register,
        )
    )
    eligible = all(c.passed for c in checks)
    subsidy = money_share(eligible_reduced, p.rate.value)
    component = Component(
        code="incubator_subsidy",
        label_zh="减免房租补贴",
        gross=subsidy,
        ceiling=subsidy if eligible else Decimal("0.00"),
        formula_zh=f"经确认的减免租金总额{format_cny(eligible_reduced)}元 × "
        f"{percent(p.rate.value)}",
        clause=p.rate.clause,
    )
    unit = p.confirming_units[inc.management_scope]
    routes = (
        route(edition, TaskKind.REVIEW, unit),
        route(edition, TaskKind.CONFIRM, unit),
        route(edition, TaskKind.DECIDE, unit),
        route(edition, TaskKind.PAYOUT, edition.settings.subsidy_payer.value),
    )
    if not checks[0].passed:
        decision = Decision.NOT_ACCEPTED
    elif not eligible:
        decision = Decision.REFUSED
    else:
        decision = (
            Decision.PARTIALLY_GRANTED if eligible_reduced < claimed_total else Decision.GRANTED
        )
    return [
        Assessment(
            case_type=MACHINE.case_type,
            edition_id=edition.id,
            decision=decision,
            checks=tuple(checks),
            components=(component,),
            routes=routes,
            effect={"eligible_reduced": str(eligible_reduced)},
            claimed=money_share(claimed_total, p.rate.value),
        )
    ]
