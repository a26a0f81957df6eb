"""文化产业园区、商务楼宇减免租金补贴 (measure 3) — ParkSubsidyCase: rules and machine.

30% of the confirmed rent reduced, paid by 区政府, capped at 1,000,000 per park or building over
the whole epidemic-control period: the cap spans every case of that property, so the engine
enforces it again against the ledger inside the approving transaction.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from base.money import format_cny, money_share, percent, to_money
from models.applications import ParkSubsidyApplication
from states.edition import Basis, Edition, carried
from states.lifecycle import SubsidyMachine
from states.rules import (
    Assessment,
    Check,
    Component,
    Decision,
    Prior7Entry,
    Route,
    TaskKind,
    no_double_benefit_check,
    route,
    window_check,
)

FAMILY = "park_rent_subsidy"
MACHINE = SubsidyMachine("rent_park_subsidy", needs_confirmation=True)


def cap_key(app: ParkSubsidyApplication) -> str:
    """The property the 1,000,000 cap belongs to (每个园区、每栋楼宇)."""
    prop = app.applicant.property
    ident = prop.property_id or f"{app.applicant.identity}"
    return f"park_cap:{prop.type}:{ident}"


def assess(
    app: ParkSubsidyApplication,
    edition: Edition,
    *,
    filed_on: date,
    register: list[Prior7Entry],
) -> list[Assessment]:
    p = carried(edition.rent_park_subsidy, "rent_park_subsidy")
    prop = app.applicant.property
    checks: list[Check] = [window_check(edition, filed_on)]
    if prop.type == "municipal_cultural_industry_park":
        in_dongcheng = prop.district in (None, "东城区")
        ok = not prop.state_owned and in_dongcheng and prop.municipal_cultural_park is not False
        what_zh, what_en = (
            "东城区非国有产权的市级文化产业园区",
            "a non-state municipal cultural park",
        )
    else:
        ok = not prop.state_owned and (
            prop.in_zgc_dongcheng_park or prop.municipal_cultural_park is True
        )
        what_zh = "中关村东城园范围内的非国有产权商务楼宇"
        what_en = "a non-state commercial building inside 中关村东城园"
    checks.append(
        Check(
            "property.scope",
            passed=ok,
            reason_zh=f"房屋属于{what_zh}"
            if ok
            else "仅东城区非国有产权的市级文化产业园区、中关村东城园范围内的非国有产权商务楼宇适用",
            reason_en=f"the property is {what_en}"
            if ok
            else "only non-state municipal cultural parks in Dongcheng or non-state buildings "
            "inside 中关村东城园 qualify",
            clause=p.property_clause,
        )
    )
    checks.append(
        Check(
            "tenants.industrial_direction",
            passed=True,
            reason_zh="减免对象须为符合区域产业发展方向的文化、科技等小微企业，由确认单位核实",
            reason_en="tenants must be small/micro culture or tech firms; the confirming unit "
            "checks",
            clause=p.tenant_clause,
            basis=Basis.INTERP,
        )
    )
    checks.append(
        no_double_benefit_check(
            edition,
            subject=app.applicant,
            family=FAMILY,
            object_id=cap_key(app),
            period=(edition.window.start, edition.window.end),
            declared=app.enjoyed_under_7,
            register=register,
        )
    )
    eligible = all(c.passed for c in checks)
    cap = p.cap_per_property.value
    gross = money_share(app.confirmed_total_reduced, p.rate.value)
    prior = to_money(app.prior_subsidy_for_this_property)
    remaining = max(Decimal("0.00"), to_money(cap - prior))
    subsidy = min(gross, remaining)
    capped = subsidy < gross
    checks.append(
        Check(
            "cap.per_property",
            passed=subsidy > 0 or not eligible,
            reason_zh=(
                f"按{percent(p.rate.value)}计{format_cny(gross)}元，本园区/楼宇累计上限"
                f"{format_cny(cap)}元，已获{format_cny(prior)}元，尚可补贴{format_cny(remaining)}元"
            ),
            reason_en=f"{percent(p.rate.value)} gives {gross}; cap {cap}, "
            f"already granted {prior}, remaining {remaining}",
            clause=p.cap_per_property.clause,
        )
    )
    eligible = all(c.passed for c in checks)
    component = Component(
        code="park_subsidy",
        label_zh="减免租金补贴",
        gross=gross,
        ceiling=subsidy if eligible else Decimal("0.00"),
        formula_zh=f"减免租金总额{format_cny(app.confirmed_total_reduced)}元 × "
        f"{percent(p.rate.value)}，本园区/楼宇整体疫情防控期间累计不超过{format_cny(cap)}元",
        clause=p.rate.clause,
        cap_key=cap_key(app),
        cap_limit=cap,
        cap_opening=prior,
        partial_when_capped=True,
    )
    if prop.type == "municipal_cultural_industry_park":
        reviews: tuple[Route, ...] = (route(edition, TaskKind.REVIEW, p.park_unit),)
        confirm = route(edition, TaskKind.CONFIRM, p.park_unit)
    else:
        reviews = (
            route(edition, TaskKind.REVIEW, p.building_unit),
            route(edition, TaskKind.REVIEW, p.building_cooperating_unit),
        )
        confirm = route(edition, TaskKind.CONFIRM, p.building_unit)
    routes = (
        *reviews,
        confirm,
        route(edition, TaskKind.DECIDE, p.grant_authority),
        route(edition, TaskKind.PAYOUT, edition.settings.subsidy_payer.value),
    )
    if not checks[0].passed:
        decision = Decision.NOT_ACCEPTED
    elif not eligible:
        decision = Decision.REFUSED
    else:
        decision = Decision.PARTIALLY_GRANTED if capped else Decision.GRANTED
    return [
        Assessment(
            case_type=MACHINE.case_type,
            edition_id=edition.id,
            decision=decision,
            checks=tuple(checks),
            components=(component,),
            routes=routes,
            effect={"gross": str(gross), "cap_remaining_after": str(remaining - subsidy)},
            subject_key=cap_key(app),
            claimed=gross,
        )
    ]
