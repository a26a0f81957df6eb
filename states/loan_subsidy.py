"""贷款贴息和担保费补贴 (measure 5) — LoanSubsidyCase: rules and machine.

中小微 enterprises whose 2022 loans from district institutions total at most 20,000,000
(inclusive) get up to 50% of the interest and up to 100,000 of guarantee fees. Above the
threshold the enterprise is not eligible at all (INTERP). The guarantee cap is per enterprise
for 2022 (setting), so the engine enforces it across cases.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from base.money import format_cny, money_share, percent, to_money
from models.applications import EnterpriseSize, LoanSubsidyApplication
from states.edition import Basis, Edition, carried
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

FAMILY = "loan_subsidy"
SME = {EnterpriseSize.MEDIUM, EnterpriseSize.SMALL, EnterpriseSize.MICRO}
MACHINE = SubsidyMachine("loan_subsidy", needs_confirmation=True)


def guarantee_cap_key(app: LoanSubsidyApplication, edition: Edition) -> str:
    year = carried(edition.loan_subsidy, "loan_subsidy").loan_year.value
    return f"guarantee_cap:{app.applicant.identity}:{year}"


def assess(
    app: LoanSubsidyApplication,
    edition: Edition,
    *,
    filed_on: date,
    register: list[Prior7Entry],
) -> list[Assessment]:
    p = carried(edition.loan_subsidy, "loan_subsidy")
    s = edition.settings
    year = p.loan_year.value
    checks: list[Check] = [window_check(edition, filed_on)]
    size_ok = app.applicant.size in SME
    checks.append(
        Check(
            "applicant.sme",
            passed=size_ok,
            reason_zh="申请人为中小微企业"
            if size_ok
            else "仅中小微企业可以申请（个体工商户、大型企业不适用）",
            reason_en="medium, small or micro enterprise" if size_ok else "only SMEs are eligible",
            clause=p.applicant_clause,
        )
    )
    counted = [ln for ln in app.loans if ln.lender_in_district and ln.drawdown.year == year]
    total = to_money(sum((ln.principal for ln in counted), Decimal(0)))
    checks.append(
        Check(
            "loans.district_in_year",
            passed=bool(counted),
            reason_zh=f"{year}年通过驻区金融机构获得贷款{len(counted)}笔"
            if counted
            else f"无{year}年通过驻区金融机构获得的贷款",
            reason_en=f"{len(counted)} loans from district institutions in {year}"
            if counted
            else f"no {year} loans from district institutions",
            clause=p.loan_year.clause,
        )
    )
    threshold = p.principal_threshold.value
    within = total <= threshold
    checks.append(
        Check(
            "loans.cumulative_threshold",
            passed=within,
            reason_zh=f"累计贷款金额{format_cny(total)}元，未超过{format_cny(threshold)}元（含）"
            if within
            else f"累计贷款金额{format_cny(total)}元，超过{format_cny(threshold)}元（含）的限额",
            reason_en=f"cumulative {total} ≤ {threshold} (inclusive)"
            if within
            else f"cumulative {total} is above {threshold}",
            clause=p.principal_threshold.clause,
            basis=Basis.DOC if within else Basis.INTERP,
        )
    )
    checks.append(
        no_double_benefit_check(
            edition,
            subject=app.applicant,
            family=FAMILY,
            object_id=None,
            period=(date(year, 1, 1), date(year, 12, 31)),
            declared=app.enjoyed_under_7,
            register=register,
        )
    )
    eligible = all(c.passed for c in checks)
    rate = s.loan_interest_rate.value
    interest = money_share(app.eligible_interest, rate)
    cap = p.guarantee_cap.value
    fee_based = money_share(app.guarantee_fee_paid, s.guarantee_fee_share.value)
    guarantee = min(fee_based, cap)
    zero = Decimal("0.00")
    components = (
        Component(
            code="interest_subsidy",
            label_zh="贷款贴息",
            gross=interest,
            ceiling=interest if eligible else zero,
            formula_zh=f"利息{format_cny(app.eligible_interest)}元 × {percent(rate)}"
            f"（本机关采用的贴息比例；文件规定最高{percent(p.interest_ceiling_rate.value)}）",
            clause=p.interest_ceiling_rate.clause,
        ),
        Component(
            code="guarantee_subsidy",
            label_zh="担保费补贴",
            gross=guarantee,
            ceiling=guarantee if eligible else zero,
            formula_zh=f"已付担保费{format_cny(app.guarantee_fee_paid)}元，最高{format_cny(cap)}元"
            f"（按每家企业{year}年计，本机关采用的口径）",
            clause=p.guarantee_cap.clause,
            cap_key=guarantee_cap_key(app, edition),
            cap_limit=cap,
        ),
    )
    routes = [route(edition, TaskKind.REVIEW, p.review_unit)]
    if app.guarantee_fee_paid > 0:
        routes.append(route(edition, TaskKind.REVIEW, p.guarantee_review_unit))
    routes += [
        route(edition, TaskKind.CONFIRM, p.confirming_unit),
        route(edition, TaskKind.DECIDE, p.review_unit),
        route(edition, TaskKind.PAYOUT, s.subsidy_payer.value),
    ]
    if not checks[0].passed:
        decision = Decision.NOT_ACCEPTED
    else:
        decision = Decision.GRANTED if eligible else Decision.REFUSED
    return [
        Assessment(
            case_type=MACHINE.case_type,
            edition_id=edition.id,
            decision=decision,
            checks=tuple(checks),
            components=components,
            routes=tuple(routes),
            effect={"cumulative_principal": str(total)},
            claimed=to_money(interest + guarantee),
        )
    ]
