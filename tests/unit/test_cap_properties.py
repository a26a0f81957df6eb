"""Properties: no amount ever exceeds its ceiling or cap, whatever the figures."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import scenarios as S
from conftest import make_case_engine
from drive import decide, submit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.db import migrate
from models.input_errors import parse_application
from states.catalog import assess
from states.edition import all_editions
from states.errors import TransitionRefused

EDITION = all_editions()[0]
CAP = EDITION.rent_park_subsidy.cap_per_property.value
GUARANTEE_CAP = EDITION.loan_subsidy.guarantee_cap.value
money = st.decimals(
    min_value=0, max_value=50_000_000, places=2, allow_nan=False, allow_infinity=False
)


def judge(data: dict) -> list:
    app = parse_application(data, today=date(2022, 12, 31))
    return assess(app, filed_on=date(2022, 7, 1))


@given(total=money, prior=st.decimals(min_value=0, max_value=2_000_000, places=2))
def test_park_subsidy_never_exceeds_cap_or_rate(total: Decimal, prior: Decimal) -> None:
    data = S.application("RENT-09")
    data["confirmed_total_reduced"] = str(total)
    data["prior_subsidy_for_this_property"] = str(prior)
    [a] = judge(data)
    assert Decimal(0) <= a.amount <= max(Decimal(0), CAP - prior)
    assert a.amount <= total * EDITION.rent_park_subsidy.rate.value + Decimal("0.005")


@given(
    interest=money,
    fee=money,
    principals=st.lists(money.filter(lambda m: m > 0), min_size=1, max_size=4),
)
def test_loan_subsidy_within_ceilings(
    interest: Decimal, fee: Decimal, principals: list[Decimal]
) -> None:
    data = S.application("LOAN-01")
    data["eligible_interest"] = str(interest)
    data["guarantee_fee_paid"] = str(fee)
    data["loans"] = [
        {"lender_in_district": True, "drawdown": "2022-05-01", "principal": str(p)}
        for p in principals
    ]
    [a] = judge(data)
    parts = {c.code: c.ceiling for c in a.components}
    assert parts["guarantee_subsidy"] <= min(GUARANTEE_CAP, fee)
    assert parts[
        "interest_subsidy"
    ] <= interest * EDITION.loan_subsidy.interest_ceiling_rate.value + Decimal("0.005")
    if sum(principals) > EDITION.loan_subsidy.principal_threshold.value:
        assert a.amount == 0


@given(
    amounts=st.lists(money, min_size=1, max_size=5),
    sizes=st.lists(st.sampled_from(["large", "medium", "small", "micro"]), min_size=5, max_size=5),
)
def test_incubator_subsidy_within_half_of_sme_reductions(
    amounts: list[Decimal], sizes: list[str]
) -> None:
    data = S.application("RENT-07")
    data["reductions"] = [
        {"tenant_size": size, "amount": str(amount), "confirmed": True}
        for amount, size in zip(amounts, sizes, strict=False)
    ]
    [a] = judge(data)
    sme = sum(
        (Decimal(r["amount"]) for r in data["reductions"] if r["tenant_size"] != "large"),
        Decimal(0),
    )
    assert a.amount <= sme * EDITION.rent_incubator_subsidy.rate.value + Decimal("0.005")


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(totals=st.lists(st.integers(min_value=1, max_value=5_000_000), min_size=1, max_size=5))
def test_engine_grants_never_exceed_the_building_cap(
    tmp_path_factory: object, totals: list[int]
) -> None:
    path = Path(str(tmp_path_factory.mktemp("cap"))) / "cap.db"  # type: ignore[attr-defined]
    url = f"sqlite:///{path}"
    migrate(url)
    engine = make_case_engine(url)
    granted = Decimal(0)
    for total in totals:
        data = S.application("RENT-09")
        data["applicant"]["property"]["property_id"] = "B-1"
        data["prior_subsidy_for_this_property"] = 0
        data["confirmed_total_reduced"] = total
        [r] = submit(engine, data)
        try:
            decide(engine, r.case_id, approve=True)
        except TransitionRefused:
            continue
        from drive import case

        granted += case(engine, r.case_id).amount_granted or 0
    assert granted <= CAP
    engine.db.dispose()
