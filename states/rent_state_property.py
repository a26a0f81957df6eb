"""国有房屋租金减免 (measure 3, 即申即享) — RentStatePropertyCase: rules and machine.

A chain store's application becomes one case per store (以门店为单位执行). The reduction is a
civil waiver by the state-owned landlord: no payout; the supervising unit depends on who owns
the property.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from base.money import format_cny, to_money
from models.applications import ApplicantKind, EnterpriseSize, Lease, RentStatePropertyApplication
from models.applications import StoreLease as StoreLeaseInput
from states.edition import Basis, Edition, carried
from states.lifecycle import EffectFacts, EffectOnlyMachine
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

if TYPE_CHECKING:
    from models.tables import RentWaiverRecord

FAMILY = "state_property_rent"  # 7号 register family
STATE_OWNED = {"district_SOE", "district_admin_institution", "central_SOE", "municipal_state"}
SMALL_OR_MICRO = {EnterpriseSize.SMALL, EnterpriseSize.MICRO}


def waiver_record(e: EffectFacts) -> tuple[type[RentWaiverRecord], dict[str, Any]]:
    """租金减免登记: the reduction the state-owned landlord is to give."""
    from models.tables import RentWaiverRecord  # the ORM only when a case takes effect

    return RentWaiverRecord, dict(
        case_id=e.case_id,
        tenant=e.party,
        object_id=e.subject_key,
        months=int(e.assessment.effect.get("months") or 0),
        amount=to_money(e.granted or 0),
        at=e.at,
    )


MACHINE = EffectOnlyMachine("rent_state_property", needs_confirmation=False, register=waiver_record)


def assess(
    app: RentStatePropertyApplication,
    edition: Edition,
    *,
    filed_on: date,
    register: list[Prior7Entry],
) -> list[Assessment]:
    """One assessment per lease (per store for a chain)."""
    if app.stores is not None:
        return [_assess_lease(app, edition, s, filed_on, register) for s in app.stores]
    assert app.lease is not None
    return [_assess_lease(app, edition, app.lease, filed_on, register)]


def _assess_lease(
    app: RentStatePropertyApplication,
    edition: Edition,
    lease: Lease,
    filed_on: date,
    register: list[Prior7Entry],
) -> Assessment:
    p = carried(edition.rent_state_property, "rent_state_property")
    s = edition.settings
    tenant = app.applicant
    store = lease if isinstance(lease, StoreLeaseInput) else None
    checks: list[Check] = [window_check(edition, filed_on)]

    # E1: state-owned property inside Beijing (京内各类国有房屋); collective: 可参照执行.
    category = lease.owner_category
    if category == "collective":
        manual = s.collective_landlord.value == "manual_review"
        checks.append(
            Check(
                "property.collective",
                passed=manual,
                reason_zh="出租方为集体企业，按“集体企业可参照执行”转人工复核",
                reason_en="collective landlord: may apply by reference; manual review",
                clause=p.collective_clause,
                basis=Basis.INTERP,
                manual_review=manual,
            )
        )
    else:
        ok = category in STATE_OWNED and lease.in_beijing
        checks.append(
            Check(
                "property.state_owned_in_beijing",
                passed=ok,
                reason_zh="承租房屋为京内国有房屋" if ok else "承租房屋不属于京内国有房屋",
                reason_en="state-owned property in Beijing"
                if ok
                else "not state-owned property in Beijing",
                clause=p.property_clause,
            )
        )

    # E2: small/micro enterprise or individual business; per store for chains (setting).
    if tenant.kind == ApplicantKind.INDIVIDUAL_BUSINESS:
        size_ok, size_zh = True, "承租人为个体工商户"
    elif store is not None and s.chain_store_size_test.value == "per_store":
        size_ok = store.small_or_micro_at_store_level
        size_zh = "门店按小微企业认定" if size_ok else "门店不属于小微企业"
    else:
        size_ok = tenant.size in SMALL_OR_MICRO
        size_zh = (
            "承租人为小微企业"
            if size_ok
            else "承租人不属于服务业小微企业和个体工商户（中型、大型企业不适用）"
        )
    checks.append(
        Check(
            "tenant.small_micro_or_individual",
            passed=size_ok,
            reason_zh=size_zh,
            reason_en="small/micro enterprise or individual business"
            if size_ok
            else f"tenant size {tenant.size} is not small or micro",
            clause=p.tenant_clause,
        )
    )
    # E3: service industry.
    checks.append(
        Check(
            "tenant.service_industry",
            passed=tenant.service_industry,
            reason_zh="承租人属于服务业" if tenant.service_industry else "承租人不属于服务业",
            reason_en="service industry" if tenant.service_industry else "not a service business",
            clause=p.tenant_clause,
        )
    )
    # E4: registered OR pays tax in Beijing.
    beijing = tenant.registered_in_beijing or tenant.pays_tax_in_beijing
    checks.append(
        Check(
            "tenant.beijing",
            passed=beijing,
            reason_zh="在京注册或在京纳税" if beijing else "既未在京注册也未在京纳税",
            reason_en="registered or paying tax in Beijing"
            if beijing
            else "neither registered nor paying tax in Beijing",
            clause=p.tenant_clause,
        )
    )
    # E5: lease runs during 2022.
    checks.append(
        Check(
            "lease.covers_year",
            passed=lease.covers_2022,
            reason_zh=f"租期覆盖{p.benefit_year.value}年"
            if lease.covers_2022
            else f"租期不在{p.benefit_year.value}年内",
            reason_en=f"lease runs during {p.benefit_year.value}"
            if lease.covers_2022
            else f"lease does not run during {p.benefit_year.value}",
            clause=p.benefit_year.clause,
        )
    )
    # E6: the final operating tenant.
    checks.append(
        Check(
            "lease.final_operator",
            passed=lease.final_operator,
            reason_zh="申请人为最终承租经营人"
            if lease.final_operator
            else "申请人不是最终承租经营人（转租方不得截留减免）",
            reason_en="the applicant operates the premises"
            if lease.final_operator
            else "an intermediate sublessor cannot keep the reduction",
            clause=p.final_operator_clause,
        )
    )
    # E7: no double benefit with 7号.
    year = p.benefit_year.value
    object_id = (store.store_id if store else None) or lease.lease_id
    checks.append(
        no_double_benefit_check(
            edition,
            subject=tenant,
            family=FAMILY,
            object_id=object_id,
            period=(date(year, 1, 1), date(year, 12, 31)),
            declared=app.enjoyed_under_7,
            register=register,
        )
    )

    risk = store.risk_area if store else app.property_location_listed_medium_high_risk
    months_param = p.months_risk_area if risk else p.months_standard
    months = months_param.value
    months_in_year = lease.months_in_2022
    billable = months if months_in_year is None else min(months, months_in_year)
    gross = to_money(Decimal(billable) * lease.monthly_rent)
    eligible = all(c.passed for c in checks)
    ceiling = gross if eligible else Decimal("0.00")
    formula = f"{billable}个月 × 月租金{format_cny(lease.monthly_rent)}元"
    if months_in_year is not None and months_in_year < months:
        formula += f"（{p.benefit_year.value}年内租期仅{months_in_year}个月）"
    component = Component(
        code="rent_reduction",
        label_zh="减免房屋租金",
        gross=gross,
        ceiling=ceiling,
        formula_zh=formula,
        clause=months_param.clause,
    )
    supervisor_ref = p.supervisors.get(category) or (
        s.municipal_state_property_unit.value if category == "municipal_state" else None
    )
    routes: tuple[Route, ...] = ()
    if supervisor_ref:
        r = route(edition, TaskKind.REVIEW, supervisor_ref)
        routes = (r, route(edition, TaskKind.DECIDE, supervisor_ref))
    effect = {"months": str(billable), "reduction": str(ceiling), "risk_area": str(risk).lower()}
    return Assessment(
        case_type=MACHINE.case_type,
        edition_id=edition.id,
        decision=_decision(checks),
        checks=tuple(checks),
        components=(component,),
        routes=routes,
        effect=effect,
        subject_key=store.store_id if store else (lease.lease_id or ""),
        claimed=gross,
    )


def _decision(checks: list[Check]) -> Decision:
    if not checks[0].passed:
        return Decision.NOT_ACCEPTED
    return Decision.GRANTED if all(c.passed for c in checks) else Decision.REFUSED
