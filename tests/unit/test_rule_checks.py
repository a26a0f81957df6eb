"""Each check of the loan and park/building rules, passing and alone failing, with the decision,
amount and route asserted; caps kept apart per enterprise and per property. Written from the
survivors of mutation testing (tools/mutation.py, docs/mutation.md): each test here is
something a wrong rule would get wrong."""

from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import scenarios as S
import staff
from conftest import FIXED_NOW, make_case_engine
from drive import case, decide, submit, tasks

from base.money import percent
from base.working_days import add_working_days, working_days_between
from models.input_errors import parse_application
from states.catalog import assess
from states.errors import TransitionRefused
from states.rules import Decision, Prior7Entry

IN_WINDOW = date(2022, 12, 30)
LATE = date(2023, 1, 5)
PARK_USCC = "91110101MA00JR107G"


def judged(
    data: dict[str, Any], *, on: date = IN_WINDOW, register: list[Prior7Entry] | None = None
):  # type: ignore[no-untyped-def]
    [a] = assess(parse_application(data, today=on), filed_on=on, register=register or [])
    return a


def failed(a: Any) -> list[str]:
    return [c.code for c in a.checks if not c.passed]


def loan(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(S.application("LOAN-01"))
    data.update(changes)
    return data


def building(reduced: str = "100000", **prop: Any) -> dict[str, Any]:
    return {
        "type": "rent_park_subsidy",
        "applicant": {
            "uscc": PARK_USCC, "size": "small", "role": "owner",
            "property": {"property_id": "东城示例大厦", "type": "commercial_building",
                         "state_owned": False, "in_zgc_dongcheng_park": True, **prop},
        },
        "confirmed_total_reduced": reduced,
    }  # fmt: skip


def park(reduced: str = "100000", **prop: Any) -> dict[str, Any]:
    data = building(reduced)
    data["applicant"]["property"] = {
        "property_id": "东城示例文化园", "type": "municipal_cultural_industry_park",
        "state_owned": False, "district": "东城区", **prop,
    }  # fmt: skip
    return data


# ---------------------------------------------------------------- loans
def reasons(a: Any) -> dict[str, tuple[str, str]]:
    return {c.code: (c.reason_zh, c.reason_en) for c in a.checks}


def test_a_loan_within_every_rule_is_granted_with_both_parts() -> None:
    a = judged(loan())
    assert a.decision == Decision.GRANTED and failed(a) == []
    assert a.needs_confirmation and a.pays_out  # 区金融办 confirms; 区财政局 pays
    assert [c.code for c in a.checks] == [
        "window", "applicant.sme", "loans.district_in_year", "loans.cumulative_threshold",
        "no_double_benefit",
    ]  # fmt: skip
    said = reasons(a)
    assert said["applicant.sme"] == ("申请人为中小微企业", "medium, small or micro enterprise")
    assert said["loans.district_in_year"] == (
        "2022年通过驻区金融机构获得贷款2笔",
        "2 loans from district institutions in 2022",
    )
    assert said["loans.cumulative_threshold"] == (
        "累计贷款金额20,000,000.00元，未超过20,000,000.00元（含）",
        "cumulative 20000000.00 ≤ 20000000.00 (inclusive)",
    )
    amounts = {c.code: c.ceiling for c in a.components}
    assert amounts == {"interest_subsidy": Decimal("240000.00"),
                       "guarantee_subsidy": Decimal("100000.00")}  # fmt: skip
    assert a.amount == a.claimed == Decimal("340000.00")


@pytest.mark.parametrize(
    ("changes", "check"),
    [
        ({"applicant": {"uscc": "91110101MA00JR107G", "size": "large"}}, "applicant.sme"),
        ({"loans": [{"lender_in_district": False, "drawdown": "2022-03-15",
                     "principal": 1000000}]}, "loans.district_in_year"),
        ({"loans": [{"lender_in_district": True, "drawdown": "2021-12-31",
                     "principal": 1000000}]}, "loans.district_in_year"),
        ({"loans": [{"lender_in_district": True, "drawdown": "2022-01-01",
                     "principal": "20000000.01"}]}, "loans.cumulative_threshold"),
        ({"enjoyed_under_7": True}, "no_double_benefit"),
    ],
)  # fmt: skip
def test_each_loan_check_alone_refuses(changes: dict[str, Any], check: str) -> None:
    a = judged(loan(**changes))
    assert a.decision == Decision.REFUSED
    assert failed(a) == [check]  # that check, and no other
    assert a.amount == Decimal("0.00")
    if check in FAILED_REASONS:
        assert reasons(a)[check] == FAILED_REASONS[check]


FAILED_REASONS = {
    "applicant.sme": ("仅中小微企业可以申请（个体工商户、大型企业不适用）",
                      "only SMEs are eligible"),
    "loans.district_in_year": ("无2022年通过驻区金融机构获得的贷款",
                               "no 2022 loans from district institutions"),
    "loans.cumulative_threshold": ("累计贷款金额20,000,000.01元，超过20,000,000.00元（含）的限额",
                                   "cumulative 20000000.01 is above 20000000.00"),
}  # fmt: skip


def test_the_threshold_is_inclusive_and_counts_only_district_loans_of_the_year() -> None:
    at = judged(loan(loans=[{"lender_in_district": True, "drawdown": "2022-12-31",
                             "principal": "20000000"},
                            {"lender_in_district": False, "drawdown": "2022-06-01",
                             "principal": "5000000"},
                            {"lender_in_district": True, "drawdown": "2021-06-01",
                             "principal": "5000000"}]))  # fmt: skip
    assert at.decision == Decision.GRANTED
    assert at.effect["cumulative_principal"] == "20000000.00"


def test_a_loan_without_a_guarantee_fee_opens_no_guarantee_review() -> None:
    with_fee = judged(loan())
    without = judged(loan(guarantee_fee_paid=0))
    a_fen = judged(loan(guarantee_fee_paid="0.01"))
    assert [r.bureau_code for r in a_fen.routes if r.kind == "review"] == [
        "finance_office", "sasac"
    ]  # fmt: skip
    reviews = lambda a: [r.bureau_code for r in a.routes if r.kind == "review"]  # noqa: E731
    assert reviews(with_fee) == ["finance_office", "sasac"]
    assert reviews(without) == ["finance_office"]
    assert {c.code: c.ceiling for c in without.components}["guarantee_subsidy"] == 0


def test_the_guarantee_subsidy_is_the_fee_up_to_the_cap() -> None:
    below = judged(loan(guarantee_fee_paid="99999.99"))
    at = judged(loan(guarantee_fee_paid="100000"))
    assert {c.code: c.ceiling for c in below.components}["guarantee_subsidy"] == Decimal("99999.99")
    assert {c.code: c.ceiling for c in at.components}["guarantee_subsidy"] == Decimal("100000.00")


@pytest.mark.parametrize("data", [loan(), building(), park()])
def test_a_late_filing_is_not_accepted_rather_than_refused(data: dict[str, Any]) -> None:
    a = judged(data, on=LATE)
    assert a.decision == Decision.NOT_ACCEPTED and failed(a)[0] == "window"


def test_a_7号_register_entry_refuses_the_loan_and_the_building() -> None:
    year = (date(2022, 1, 1), date(2022, 12, 31))
    loan_entry = Prior7Entry(PARK_USCC, "loan_subsidy", None, *year)
    a = judged(loan(), register=[loan_entry])
    assert a.decision == Decision.REFUSED and "no_double_benefit" in failed(a)
    other = Prior7Entry(PARK_USCC, "loan_subsidy", None, date(2021, 1, 1), date(2021, 12, 31))
    assert judged(loan(), register=[other]).decision == Decision.GRANTED
    new_year = Prior7Entry(PARK_USCC, "loan_subsidy", None, date(2021, 7, 1), date(2022, 1, 1))
    assert judged(loan(), register=[new_year]).decision == Decision.REFUSED  # one day is enough
    eve = Prior7Entry(PARK_USCC, "loan_subsidy", None, date(2022, 12, 31), date(2023, 3, 1))
    assert judged(loan(), register=[eve]).decision == Decision.REFUSED
    key = "park_cap:commercial_building:东城示例大厦"
    park_entry = Prior7Entry(PARK_USCC, "park_rent_subsidy", key, *year)
    b = judged(building(), register=[park_entry])
    assert b.decision == Decision.REFUSED and "no_double_benefit" in failed(b)
    assert judged(building(), register=[loan_entry]).decision == Decision.GRANTED


# ---------------------------------------------------------------- parks and buildings
def test_an_uncapped_building_grant_is_granted_not_partial() -> None:
    a = judged(building("100000"))
    assert a.decision == Decision.GRANTED and a.amount == Decimal("30000.00")
    below = judged(building("3333333.30"))  # 30% = 999,999.99: under the cap by a fen
    assert below.decision == Decision.GRANTED and below.amount == Decimal("999999.99")
    exact = judged(building("3333333.34"))  # 30% = 1,000,000.002 → 1,000,000.00 … capped
    assert exact.amount == Decimal("1000000.00")
    over = judged(building("4000000"))
    assert over.decision == Decision.PARTIALLY_GRANTED and over.amount == Decimal("1000000.00")


def test_a_building_with_an_earlier_subsidy_gets_only_what_remains() -> None:
    data = building("1000000")
    data["prior_subsidy_for_this_property"] = "900000"
    a = judged(data)
    assert a.decision == Decision.PARTIALLY_GRANTED and a.amount == Decimal("100000.00")
    data["prior_subsidy_for_this_property"] = "999999.50"
    crumbs = judged(data)  # fifty fen left: granted, as far as it goes
    assert crumbs.decision == Decision.PARTIALLY_GRANTED and crumbs.amount == Decimal("0.50")
    data["prior_subsidy_for_this_property"] = "1000000"
    full = judged(data)
    assert full.decision == Decision.REFUSED and "cap.per_property" in failed(full)


@pytest.mark.parametrize(
    ("data", "ok"),
    [
        (building(), True),
        (building(in_zgc_dongcheng_park=False), False),
        (building(in_zgc_dongcheng_park=False, municipal_cultural_park=True), True),
        (building(state_owned=True), False),
        (park(), True),
        (park(district=None), True),
        (park(district="西城区"), False),
        (park(state_owned=True), False),
        (park(municipal_cultural_park=False), False),
    ],
)
def test_the_property_scope(data: dict[str, Any], ok: bool) -> None:
    a = judged(data)
    assert ("property.scope" not in failed(a)) is ok
    assert a.decision == (Decision.GRANTED if ok else Decision.REFUSED)


def test_parks_and_buildings_route_to_their_own_units_and_the_district_decides() -> None:
    b, p = judged(building()), judged(park())
    assert [(r.kind, r.bureau_code) for r in b.routes][:3] == [
        ("review", "zgc_dongcheng"), ("review", "invest_center"), ("confirm", "zgc_dongcheng")
    ]  # fmt: skip
    assert [(r.kind, r.bureau_code) for r in p.routes][:2] == [
        ("review", "culture_center"), ("confirm", "culture_center")
    ]  # fmt: skip
    assert all(r.bureau_code == "district_government" for r in b.routes if r.kind == "decide")


# ---------------------------------------------------------------- caps apart, in the engine
def test_caps_are_kept_apart_per_enterprise_and_per_property(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/caps.db"
    from models.db import migrate

    migrate(url)
    engine = make_case_engine(url, FIXED_NOW)
    granted = []
    for prop_id in ("甲大厦", "乙大厦"):
        [r] = submit(engine, building("4000000", property_id=prop_id))
        decide(engine, r.case_id, approve=True)
        granted.append(r.case_id)
    amounts = [case(engine, i).amount_granted for i in granted]
    assert amounts == [Decimal("1000000.00"), Decimal("1000000.00")]  # each building its own
    [again] = submit(engine, building("100000", property_id="甲大厦"))
    with pytest.raises(TransitionRefused):  # 甲大厦's cap is spent; 乙大厦's is not shared
        decide(engine, again.case_id, approve=True)
    fees = []
    for n in (1, 2):
        data = loan(guarantee_fee_paid="150000")
        data["applicant"] = {"uscc": staff.uscc_for(400 + n), "size": "small"}
        [r] = submit(engine, data)
        decide(engine, r.case_id, approve=True)
        fees.append(case(engine, r.case_id).amount_granted)
    assert fees == [Decimal("340000.00"), Decimal("340000.00")]  # each enterprise its own cap
    assert tasks(engine, granted[0], status="done")


# ---------------------------------------------------------------- primitives
def test_percent_as_documents_write_it() -> None:
    assert percent(Decimal("0.30")) == "30%"
    assert percent(Decimal("0.5")) == "50%"
    assert percent(Decimal("0.125")) == "12.5%"


def test_zero_and_negative_working_days() -> None:
    friday = date(2022, 7, 15)
    assert add_working_days(friday, 0) == friday
    assert add_working_days(friday, 1) == date(2022, 7, 18)  # Monday
    with pytest.raises(ValueError):
        add_working_days(friday, -1)
    assert working_days_between(friday, friday) == 0
    assert working_days_between(date(2022, 7, 18), friday) == 0  # backwards: none
    assert working_days_between(friday, date(2022, 7, 18)) == 1  # the weekend does not count
    assert working_days_between(date(2022, 7, 18), date(2022, 7, 19)) == 1  # Mon → Tue
    assert working_days_between(date(2022, 7, 18), date(2022, 7, 22)) == 4
    assert working_days_between(date(2022, 9, 30), date(2022, 10, 8)) == 1  # 国庆, 调休 10-08


def test_the_park_and_building_reasons_say_what_was_found() -> None:
    b, p, out = judged(building()), judged(park()), judged(building(state_owned=True))
    assert reasons(b)["property.scope"] == (
        "房屋属于中关村东城园范围内的非国有产权商务楼宇",
        "the property is a non-state commercial building inside 中关村东城园",
    )
    assert reasons(p)["property.scope"] == (
        "房屋属于东城区非国有产权的市级文化产业园区",
        "the property is a non-state municipal cultural park",
    )
    assert reasons(out)["property.scope"] == (
        "仅东城区非国有产权的市级文化产业园区、中关村东城园范围内的非国有产权商务楼宇适用",
        "only non-state municipal cultural parks in Dongcheng or non-state buildings inside "
        "中关村东城园 qualify",
    )
    assert reasons(b)["cap.per_property"] == (
        "按30%计30,000.00元，本园区/楼宇累计上限1,000,000.00元，已获0.00元，尚可补贴1,000,000.00元",
        "30% gives 30000.00; cap 1000000.00, already granted 0.00, remaining 1000000.00",
    )
    assert reasons(b)["tenants.industrial_direction"][0] == (
        "减免对象须为符合区域产业发展方向的文化、科技等小微企业，由确认单位核实"
    )  # what the confirming unit checks, said on the decision
    assert [c.code for c in b.checks] == [
        "window", "property.scope", "tenants.industrial_direction", "no_double_benefit",
        "cap.per_property",
    ]  # fmt: skip
    assert b.needs_confirmation and b.pays_out and b.claimed == Decimal("30000.00")
    assert b.effect == {"gross": "30000.00", "cap_remaining_after": "970000.00"}
    assert b.subject_key == "park_cap:commercial_building:东城示例大厦"
    [component] = b.components
    assert (component.cap_key, component.cap_limit, component.cap_opening) == (
        "park_cap:commercial_building:东城示例大厦", Decimal("1000000.00"), Decimal("0.00")
    )  # fmt: skip
    assert component.partial_when_capped
    assert out.amount == Decimal("0.00") and out.claimed == Decimal("30000.00")
    nameless = building()
    del nameless["applicant"]["property"]["property_id"]
    assert judged(nameless).subject_key == f"park_cap:commercial_building:{PARK_USCC}"
