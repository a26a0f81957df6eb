"""Each check of the state-owned rent reduction and the incubator rent subsidy (measure 3),
passing and alone failing, with its reasons, clause, decision, months, amounts and routes
asserted; chain stores judged per store. Written from the survivors of mutation testing
(tools/mutation.py, docs/mutation.md): each test here is something a wrong rule would get
wrong."""

from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import scenarios as S

from models.input_errors import parse_application
from states.catalog import assess
from states.edition import Basis
from states.rules import Assessment, Decision, Prior7Entry

IN_WINDOW = date(2022, 12, 30)
LATE = date(2023, 1, 5)
TENANT = "92110101MA01KQ8P2G"  # RENT-01's individual business
CHAIN = "91110101MA00CH4167"  # RENT-03's convenience-store chain
INCUBATOR = "91110101MA00FH018X"  # RENT-07's incubator

TENANT_CLAUSE = "在京注册或在京纳税服务业小微企业和个体工商户"
PROPERTY_CLAUSE = "承租京内各类国有房屋"
YEAR_CLAUSE = (
    "2022年对承租京内各类国有房屋的在京注册或在京纳税服务业小微企业和个体工商户减免3个月房屋租金"
)
NO_7_ZH = "未享受东政办发〔2022〕7号相关政策"
NO_7_EN = "no 7号 benefit for this object"


def judged_all(
    data: dict[str, Any], *, on: date = IN_WINDOW, register: list[Prior7Entry] | None = None
) -> list[Assessment]:
    return assess(parse_application(data, today=on), filed_on=on, register=register or [])


def judged(
    data: dict[str, Any], *, on: date = IN_WINDOW, register: list[Prior7Entry] | None = None
) -> Assessment:
    [a] = judged_all(data, on=on, register=register)
    return a


def failed(a: Assessment) -> list[str]:
    return [c.code for c in a.checks if not c.passed]


def said(a: Assessment, code: str) -> tuple[bool, str, str, str]:
    [c] = [c for c in a.checks if c.code == code]
    return c.passed, c.reason_zh, c.reason_en, c.clause


def routes(a: Assessment) -> list[tuple[str, str, str, tuple[tuple[str, str], ...]]]:
    return [(r.kind.value, r.bureau_code, r.section_code, r.contacts) for r in a.routes]


def rent(applicant: dict[str, Any] | None = None, **lease: Any) -> dict[str, Any]:
    """RENT-01 (an individual business in a district-SOE shop), with changes."""
    data = copy.deepcopy(S.application("RENT-01"))
    data["applicant"].update(applicant or {})
    data["lease"].update(lease)
    return data


def chain(**applicant: Any) -> dict[str, Any]:
    """RENT-03 (three stores in central-SOE property), with changes to the applicant."""
    data = copy.deepcopy(S.application("RENT-03"))
    data["applicant"].update(applicant)
    return data


def incubator(*reductions: dict[str, Any], **applicant: Any) -> dict[str, Any]:
    """RENT-07 (an incubator in 东城园), with other reductions or applicant facts."""
    data = copy.deepcopy(S.application("RENT-07"))
    data["applicant"].update(applicant)
    if reductions:
        data["reductions"] = list(reductions)
    return data


SMALL_ENTERPRISE = {"kind": "enterprise", "size": "small"}
SASAC = [
    ("review", "sasac", "asset_mgmt", (("王玉", "67196929"),)),
    ("decide", "sasac", "asset_mgmt", (("王玉", "67196929"),)),
]
NDRC = [
    ("review", "ndrc", "industry", (("杜雪", "87160670"),)),
    ("decide", "ndrc", "industry", (("杜雪", "87160670"),)),
]
FINANCE_ASSETS = [
    ("review", "finance", "admin_assets", (("英瑞鹏", "64153573"),)),
    ("decide", "finance", "admin_assets", (("英瑞鹏", "64153573"),)),
]


# ---------------------------------------------------------------- state-owned property rent
def test_an_individual_business_in_district_soe_property_gets_three_months() -> None:
    """E1–E7 all met: 减免3个月房屋租金, a landlord's waiver supervised by 区国资委资产管理科."""
    a = judged(rent())
    assert a.decision == Decision.GRANTED and failed(a) == []
    assert [c.code for c in a.checks] == [
        "window", "property.state_owned_in_beijing", "tenant.small_micro_or_individual",
        "tenant.service_industry", "tenant.beijing", "lease.covers_year", "lease.final_operator",
        "no_double_benefit",
    ]  # fmt: skip
    assert said(a, "property.state_owned_in_beijing") == (
        True, "承租房屋为京内国有房屋", "state-owned property in Beijing", PROPERTY_CLAUSE
    )  # fmt: skip
    assert said(a, "tenant.small_micro_or_individual") == (
        True, "承租人为个体工商户", "small/micro enterprise or individual business", TENANT_CLAUSE
    )  # fmt: skip
    assert said(a, "tenant.service_industry") == (
        True, "承租人属于服务业", "service industry", TENANT_CLAUSE
    )  # fmt: skip
    assert said(a, "tenant.beijing") == (
        True, "在京注册或在京纳税", "registered or paying tax in Beijing", TENANT_CLAUSE
    )  # fmt: skip
    assert said(a, "lease.covers_year") == (
        True, "租期覆盖2022年", "lease runs during 2022", YEAR_CLAUSE
    )  # fmt: skip
    assert said(a, "lease.final_operator") == (
        True, "申请人为最终承租经营人", "the applicant operates the premises",
        "确保减免措施惠及最终承租经营人",
    )  # fmt: skip
    assert said(a, "no_double_benefit")[:3] == (True, NO_7_ZH, NO_7_EN)
    assert a.manual_review_reasons == []
    [component] = a.components
    assert (component.code, component.gross, component.ceiling) == (
        "rent_reduction", Decimal("24000.00"), Decimal("24000.00")
    )  # fmt: skip
    assert component.formula_zh == "3个月 × 月租金8,000.00元"
    assert component.clause == "减免3个月房屋租金"
    assert a.amount == a.claimed == Decimal("24000.00")
    assert a.effect == {"months": "3", "reduction": "24000.00", "risk_area": "false"}
    assert routes(a) == SASAC
    assert not a.needs_confirmation and not a.pays_out  # 即申即享: no confirmation, no payout
    assert a.subject_key == ""  # no lease number given


def test_a_risk_area_gives_six_months_and_paying_tax_in_beijing_is_enough() -> None:
    """房屋所在地被列为中高风险地区减免6个月; 在京注册或在京纳税 is an OR (RENT-02)."""
    a = judged(S.application("RENT-02"))
    assert a.decision == Decision.GRANTED and failed(a) == []
    assert said(a, "tenant.small_micro_or_individual")[:3] == (
        True, "承租人为小微企业", "small/micro enterprise or individual business"
    )  # fmt: skip
    assert said(a, "tenant.beijing")[:3] == (
        True, "在京注册或在京纳税", "registered or paying tax in Beijing"
    )  # fmt: skip
    [component] = a.components
    assert component.formula_zh == "6个月 × 月租金30,000.00元"
    assert component.clause == "如房屋所在地被列为疫情中高风险地区，减免6个月房屋租金"
    assert a.amount == Decimal("180000.00")
    assert a.effect == {"months": "6", "reduction": "180000.00", "risk_area": "true"}
    assert routes(a) == FINANCE_ASSETS


@pytest.mark.parametrize(
    ("registered", "pays_tax", "ok"),
    [(True, False, True), (False, True, True), (True, True, True), (False, False, False)],
)
def test_registered_or_paying_tax_in_beijing(registered: bool, pays_tax: bool, ok: bool) -> None:
    """E4: 在京注册或在京纳税 — either one is enough, neither refuses."""
    a = judged(rent({"registered_in_beijing": registered, "pays_tax_in_beijing": pays_tax}))
    assert a.decision == (Decision.GRANTED if ok else Decision.REFUSED)
    assert failed(a) == ([] if ok else ["tenant.beijing"])


@pytest.mark.parametrize(
    ("applicant", "lease", "check", "zh", "en"),
    [
        ({}, {"in_beijing": False}, "property.state_owned_in_beijing",
         "承租房屋不属于京内国有房屋", "not state-owned property in Beijing"),
        ({}, {"owner_category": "non_state"}, "property.state_owned_in_beijing",
         "承租房屋不属于京内国有房屋", "not state-owned property in Beijing"),
        ({"kind": "enterprise", "size": "medium"}, {}, "tenant.small_micro_or_individual",
         "承租人不属于服务业小微企业和个体工商户（中型、大型企业不适用）",
         "tenant size medium is not small or micro"),
        ({"kind": "enterprise", "size": "large"}, {}, "tenant.small_micro_or_individual",
         "承租人不属于服务业小微企业和个体工商户（中型、大型企业不适用）",
         "tenant size large is not small or micro"),
        ({"service_industry": False}, {}, "tenant.service_industry",
         "承租人不属于服务业", "not a service business"),
        ({"registered_in_beijing": False}, {}, "tenant.beijing",
         "既未在京注册也未在京纳税", "neither registered nor paying tax in Beijing"),
        ({}, {"covers_2022": False}, "lease.covers_year",
         "租期不在2022年内", "lease does not run during 2022"),
        ({}, {"final_operator": False}, "lease.final_operator",
         "申请人不是最终承租经营人（转租方不得截留减免）",
         "an intermediate sublessor cannot keep the reduction"),
    ],
)  # fmt: skip
def test_each_state_property_check_alone_refuses(
    applicant: dict[str, Any], lease: dict[str, Any], check: str, zh: str, en: str
) -> None:
    """Each of E1–E6 failing alone refuses (not 不予受理), with its own reason and no amount."""
    a = judged(rent(applicant, **lease))
    assert a.decision == Decision.REFUSED
    assert failed(a) == [check]  # that check, and no other
    assert said(a, check)[1:3] == (zh, en)
    assert a.amount == Decimal("0.00") and a.claimed == Decimal("24000.00")
    assert a.effect["reduction"] == "0.00" and a.effect["months"] == "3"


@pytest.mark.parametrize("size", ["small", "micro"])
def test_small_and_micro_enterprises_qualify(size: str) -> None:
    """E2: 服务业小微企业 qualify as well as 个体工商户."""
    a = judged(rent({"kind": "enterprise", "size": size}))
    assert a.decision == Decision.GRANTED
    assert said(a, "tenant.small_micro_or_individual")[:2] == (True, "承租人为小微企业")


def test_a_declared_7号_benefit_refuses_for_manual_review() -> None:
    """E7: 已享受东政办发〔2022〕7号相关政策的不再重复享受 (RENT-06)."""
    a = judged(S.application("RENT-06"))
    assert a.decision == Decision.REFUSED and failed(a) == ["no_double_benefit"]
    assert said(a, "no_double_benefit")[1] == (
        "已享受东政办发〔2022〕7号相关政策（申请人申报），不再重复享受；转人工复核"
    )
    assert a.amount == Decimal("0.00")


@pytest.mark.parametrize(
    ("period_from", "period_to", "hit"),
    [
        (date(2021, 7, 1), date(2022, 1, 1), True),  # one day of 2022 is enough
        (date(2022, 12, 31), date(2023, 6, 30), True),
        (date(2021, 1, 1), date(2021, 12, 31), False),
        (date(2023, 1, 1), date(2023, 12, 31), False),
    ],
)
def test_a_7号_register_entry_counts_when_it_overlaps_2022(
    period_from: date, period_to: date, hit: bool
) -> None:
    """E7: the 7号 register refuses a tenant whose benefit overlaps the benefit year 2022."""
    entry = Prior7Entry(TENANT, "state_property_rent", None, period_from, period_to)
    a = judged(rent(), register=[entry])
    assert failed(a) == (["no_double_benefit"] if hit else [])
    assert a.decision == (Decision.REFUSED if hit else Decision.GRANTED)


def test_the_7号_register_matches_the_same_lease_only() -> None:
    """E7 per lease: an entry for another lease of the same tenant does not refuse this one."""
    year = (date(2022, 1, 1), date(2022, 12, 31))
    a = judged(
        rent(lease_id="L-1"), register=[Prior7Entry(TENANT, "state_property_rent", "L-2", *year)]
    )
    assert a.decision == Decision.GRANTED and a.subject_key == "L-1"
    same = Prior7Entry(TENANT, "state_property_rent", "L-1", *year)
    assert judged(rent(lease_id="L-1"), register=[same]).decision == Decision.REFUSED


def test_a_collective_landlord_goes_to_manual_review() -> None:
    """集体企业可参照执行: a collective landlord passes by reference, flagged for manual review."""
    a = judged(rent(owner_category="collective"))
    assert [c.code for c in a.checks][:2] == ["window", "property.collective"]
    [c] = [c for c in a.checks if c.code == "property.collective"]
    assert (c.passed, c.manual_review, c.basis) == (True, True, Basis.INTERP)
    assert c.reason_zh == "出租方为集体企业，按“集体企业可参照执行”转人工复核"
    assert c.reason_en == "collective landlord: may apply by reference; manual review"
    assert c.clause == "集体企业可参照执行。"
    assert a.manual_review_reasons == [c.reason_zh]
    assert a.decision == Decision.GRANTED and a.amount == Decimal("24000.00")
    assert routes(a) == []  # the document names no supervisor for collective property


@pytest.mark.parametrize(
    ("category", "expected"),
    [
        ("district_SOE", SASAC),
        ("district_admin_institution", FINANCE_ASSETS),
        ("central_SOE", NDRC),
        ("municipal_state", NDRC),  # no district contact: the 专班 at 区发展改革委
        ("collective", []),
        ("non_state", []),
    ],
)
def test_the_supervisor_depends_on_who_owns_the_property(
    category: str, expected: list[tuple[str, str, str, tuple[tuple[str, str], ...]]]
) -> None:
    """The supervising unit per owner category (区国资委 / 区财政局 / 区发展改革委)."""
    a = judged(rent(owner_category=category))
    assert routes(a) == expected
    state_owned = category not in ("collective", "non_state")
    if state_owned:
        assert a.decision == Decision.GRANTED
        assert said(a, "property.state_owned_in_beijing")[0] is True


def test_months_are_limited_to_the_lease_term_inside_2022() -> None:
    """减免3个月 (or 6) but never more months than the lease runs in 2022."""
    two = judged(rent(months_in_2022=2))
    [component] = two.components
    assert component.formula_zh == "2个月 × 月租金8,000.00元（2022年内租期仅2个月）"
    assert two.amount == Decimal("16000.00") and two.effect["months"] == "2"
    three = judged(rent(months_in_2022=3))  # exactly the three months: nothing to say
    assert three.components[0].formula_zh == "3个月 × 月租金8,000.00元"
    assert three.amount == Decimal("24000.00") and three.effect["months"] == "3"
    year = judged(rent(months_in_2022=12))
    assert year.components[0].formula_zh == "3个月 × 月租金8,000.00元"
    assert year.amount == Decimal("24000.00")
    risky = rent(months_in_2022=4)
    risky["property_location_listed_medium_high_risk"] = True
    four = judged(risky)
    assert four.components[0].formula_zh == "4个月 × 月租金8,000.00元（2022年内租期仅4个月）"
    assert four.amount == Decimal("32000.00")
    assert four.effect == {"months": "4", "reduction": "32000.00", "risk_area": "true"}


@pytest.mark.parametrize("data", [S.application("RENT-01"), S.application("RENT-05")])
def test_a_late_rent_filing_is_not_accepted(data: dict[str, Any]) -> None:
    """Filed after the window (有效期至2022年12月31日): 不予受理, whatever else fails."""
    a = judged(data, on=LATE)
    assert a.decision == Decision.NOT_ACCEPTED and failed(a)[0] == "window"
    assert a.amount == Decimal("0.00")


# ---------------------------------------------------------------- chain stores
def test_a_chain_is_judged_store_by_store() -> None:
    """以门店为单位执行: one case per store, each with its own months and amount (RENT-03)."""
    stores = judged_all(chain(size="medium"))  # the chain is medium; its stores are small
    assert [a.subject_key for a in stores] == ["S1", "S2", "S3"]
    assert [a.decision for a in stores] == [Decision.GRANTED] * 3
    assert [a.amount for a in stores] == [Decimal("30000.00"), Decimal("72000.00"),
                                          Decimal("45000.00")]  # fmt: skip
    assert [a.effect["months"] for a in stores] == ["3", "6", "3"]
    assert [a.effect["risk_area"] for a in stores] == ["false", "true", "false"]
    for a in stores:
        assert said(a, "tenant.small_micro_or_individual")[:3] == (
            True, "门店按小微企业认定", "small/micro enterprise or individual business"
        )  # fmt: skip
        assert routes(a) == NDRC


def test_a_store_that_is_not_small_or_micro_is_refused_alone() -> None:
    """The small/micro test is per store for chains: a store that fails refuses only itself."""
    data = chain(size="medium")
    data["stores"][1]["small_or_micro_at_store_level"] = False
    s1, s2, s3 = judged_all(data)
    assert (s1.decision, s2.decision, s3.decision) == (
        Decision.GRANTED, Decision.REFUSED, Decision.GRANTED
    )  # fmt: skip
    assert failed(s2) == ["tenant.small_micro_or_individual"]
    assert said(s2, "tenant.small_micro_or_individual")[1:3] == (
        "门店不属于小微企业", "tenant size medium is not small or micro"
    )  # fmt: skip
    assert s2.amount == Decimal("0.00")


def test_a_chain_store_risk_area_is_the_store_s_own() -> None:
    """A store's 6 months follow its own risk area, not the application's."""
    data = chain()
    data["property_location_listed_medium_high_risk"] = True
    assert [a.effect["months"] for a in judged_all(data)] == ["3", "6", "3"]


def test_the_7号_register_matches_a_chain_store_by_its_store() -> None:
    """E7 per store: a 7号 entry for store S2 refuses S2 and neither other store."""
    year = (date(2022, 1, 1), date(2022, 12, 31))
    entry = Prior7Entry(CHAIN, "state_property_rent", "S2", *year)
    decisions = [a.decision for a in judged_all(chain(), register=[entry])]
    assert decisions == [Decision.GRANTED, Decision.REFUSED, Decision.GRANTED]


# ---------------------------------------------------------------- incubators
INCUBATOR_CLAUSE = "对承租非国有房屋的科技型孵化器"
SME_CLAUSE = "为中小微企业和个体工商户减免房租的"
RATE_CLAUSE = "经确认按照减免租金总额的50%给予补贴"
ZGC = (("朱莹", "84011760"),)
STIC = (("张静", "84032139"), ("孙连海", "84037325"))


def test_an_incubator_gets_half_of_the_sme_reductions_not_the_large_tenant_s() -> None:
    """50% of the confirmed reductions to 中小微 and 个体工商户; a large tenant's is left out."""
    a = judged(incubator())
    assert a.decision == Decision.PARTIALLY_GRANTED and failed(a) == []
    assert [c.code for c in a.checks] == [
        "window", "applicant.incubator_non_state", "reductions.sme_tenants",
        "reductions.confirmed", "no_double_benefit",
    ]  # fmt: skip
    assert said(a, "applicant.incubator_non_state") == (
        True, "申请人为承租非国有房屋的科技型孵化器", "tech incubator leasing non-state property",
        INCUBATOR_CLAUSE,
    )  # fmt: skip
    assert said(a, "reductions.sme_tenants") == (
        True, "为中小微企业和个体工商户减免房租2笔；为大型企业减免的1笔不计入",
        "2 reductions to SMEs/individual businesses; 1 to large enterprises excluded", SME_CLAUSE,
    )  # fmt: skip
    assert said(a, "reductions.confirmed") == (
        True, "经确认的减免租金总额150,000.00元", "confirmed reductions total 150000.00",
        RATE_CLAUSE,
    )  # fmt: skip
    [component] = a.components
    assert (component.code, component.gross, component.ceiling) == (
        "incubator_subsidy", Decimal("75000.00"), Decimal("75000.00")
    )  # fmt: skip
    assert component.formula_zh == "经确认的减免租金总额150,000.00元 × 50%"
    assert component.clause == RATE_CLAUSE
    assert a.amount == Decimal("75000.00") and a.claimed == Decimal("100000.00")
    assert a.effect == {"eligible_reduced": "150000.00"}
    assert a.needs_confirmation and a.pays_out  # 经确认; 区财政局 pays
    assert routes(a) == [
        ("review", "zgc_dongcheng", "enterprise", ZGC),
        ("confirm", "zgc_dongcheng", "enterprise", ZGC),
        ("decide", "zgc_dongcheng", "enterprise", ZGC),
        ("payout", "finance", "", ()),
    ]


def test_an_incubator_under_区科信局_is_confirmed_there() -> None:
    """The confirming unit follows the incubator's management scope (区科技和信息化局)."""
    a = judged(incubator(management_scope="区科信局"))
    assert routes(a) == [
        ("review", "stic", "tech_dev", STIC),
        ("confirm", "stic", "tech_dev", STIC),
        ("decide", "stic", "tech_dev", STIC),
        ("payout", "finance", "", ()),
    ]


def test_every_reduction_counted_and_confirmed_is_granted_in_full() -> None:
    """中小微 includes medium; 个体工商户 count whatever their size: all counted → granted."""
    a = judged(
        incubator(
            {"tenant_size": "medium", "amount": 100000, "confirmed": True},
            {"tenant_size": "micro", "amount": 20000, "confirmed": True},
            {"tenant_kind": "individual_business", "amount": 30000, "confirmed": True},
        )
    )
    assert a.decision == Decision.GRANTED and failed(a) == []
    assert said(a, "reductions.sme_tenants")[1:3] == (
        "为中小微企业和个体工商户减免房租3笔", "3 reductions to SMEs/individual businesses"
    )  # fmt: skip
    assert said(a, "reductions.confirmed")[1:3] == (
        "经确认的减免租金总额150,000.00元", "confirmed reductions total 150000.00"
    )  # fmt: skip
    assert a.amount == a.claimed == Decimal("75000.00")
    assert a.effect == {"eligible_reduced": "150000.00"}


def test_unconfirmed_reductions_are_not_counted() -> None:
    """经确认: an unconfirmed reduction to an SME is said and left out of the 50%."""
    a = judged(
        incubator(
            {"tenant_size": "small", "amount": 120000, "confirmed": True},
            {"tenant_size": "small", "amount": 40000, "confirmed": False},
            {"tenant_kind": "individual_business", "amount": 10000, "confirmed": False},
            {"tenant_size": "large", "amount": 50000, "confirmed": False},
        )
    )
    assert a.decision == Decision.PARTIALLY_GRANTED and failed(a) == []
    assert said(a, "reductions.confirmed")[1:3] == (
        "经确认的减免租金总额120,000.00元（另有2笔未经确认，不计入）",
        "confirmed reductions total 120000.00 (2 unconfirmed not counted)",
    )
    assert a.amount == Decimal("60000.00") and a.claimed == Decimal("110000.00")


def test_no_confirmed_reduction_refuses() -> None:
    """经确认: without any confirmed reduction there is nothing to subsidise."""
    a = judged(incubator({"tenant_size": "small", "amount": 120000, "confirmed": False}))
    assert a.decision == Decision.REFUSED and failed(a) == ["reductions.confirmed"]
    assert said(a, "reductions.confirmed")[1:3] == (
        "减免租金尚未经确认",
        "no confirmed reductions yet",
    )
    assert a.amount == Decimal("0.00")


def test_reductions_to_large_enterprises_only_refuse() -> None:
    """为中小微企业和个体工商户减免房租的: reductions to large enterprises alone do not qualify."""
    a = judged(incubator({"tenant_size": "large", "amount": 50000, "confirmed": True}))
    assert a.decision == Decision.REFUSED
    assert failed(a) == ["reductions.sme_tenants", "reductions.confirmed"]
    assert said(a, "reductions.sme_tenants")[1:3] == (
        "未为中小微企业或个体工商户减免房租", "no reductions to SMEs or individual businesses"
    )  # fmt: skip
    assert said(a, "reductions.confirmed")[1:3] == (
        "减免租金尚未经确认",
        "no confirmed reductions yet",
    )
    assert a.amount == Decimal("0.00") and a.components[0].gross == Decimal("0.00")
    assert a.claimed == Decimal("25000.00")


def test_an_incubator_not_leasing_non_state_property_is_refused() -> None:
    """对承租非国有房屋的科技型孵化器: an incubator in state-owned property does not qualify."""
    a = judged(incubator(leases_non_state_property=False))
    assert a.decision == Decision.REFUSED and failed(a) == ["applicant.incubator_non_state"]
    assert said(a, "applicant.incubator_non_state")[1:3] == (
        "申请人未承租非国有房屋，不适用本项补贴",
        "the incubator does not lease non-state property",
    )
    assert a.amount == Decimal("0.00") and a.components[0].gross == Decimal("75000.00")


def test_an_incubator_s_7号_benefit_refuses() -> None:
    """不再重复享受: a declared or registered 7号 incubator subsidy refuses the application."""
    declared = incubator()
    declared["enjoyed_under_7"] = True
    a = judged(declared)
    assert a.decision == Decision.REFUSED and failed(a) == ["no_double_benefit"]
    assert a.amount == Decimal("0.00")
    entry = Prior7Entry(
        INCUBATOR, "incubator_rent_subsidy", None, date(2022, 6, 1), date(2022, 6, 30)
    )
    assert judged(incubator(), register=[entry]).decision == Decision.REFUSED


@pytest.mark.parametrize("failing", [False, True])
def test_a_late_incubator_filing_is_not_accepted(failing: bool) -> None:
    """Filed after 2022-12-31 (VAL-01): 不予受理 rather than refused, even when a check fails."""
    data = S.application("VAL-01")
    data["applicant"]["leases_non_state_property"] = not failing
    a = judged(data, on=LATE)
    assert a.decision == Decision.NOT_ACCEPTED and failed(a)[0] == "window"
    assert a.amount == Decimal("0.00")
