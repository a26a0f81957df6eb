"""What an approval grants (states/grants.py): the decided amount spread over the components
in order up to each ceiling, each capped component cut by what its cap account has left."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from states.grants import allocate, plan_grant
from states.rules import Assessment, Component, Decision

D = Decimal


def component(code: str, ceiling: str, cap: str | None = None) -> Component:
    return Component(
        code=code, label_zh=code, gross=D(ceiling), ceiling=D(ceiling), formula_zh="",
        clause="", cap_key=f"cap:{code}" if cap else None, cap_limit=D(cap) if cap else None,
    )  # fmt: skip


@dataclass
class Account:
    cap_limit: Decimal
    opening: Decimal
    granted: Decimal


def assessment(*components: Component) -> Assessment:
    return Assessment(case_type="loan_subsidy", edition_id="e", decision=Decision.GRANTED,
                      checks=(), components=components)  # fmt: skip


INTEREST, GUARANTEE = component("interest", "240000"), component("guarantee", "100000", "100000")


def test_allocate_spreads_in_order_up_to_each_ceiling() -> None:
    parts = (INTEREST, GUARANTEE)
    assert allocate(parts, None) == {"interest": D("240000"), "guarantee": D("100000")}
    assert allocate(parts, "250000") == {"interest": D("240000"), "guarantee": D("10000.00")}
    assert allocate(parts, "100") == {"interest": D("100.00"), "guarantee": D("0.00")}
    assert allocate(parts, "999999") == {"interest": D("240000"), "guarantee": D("100000")}
    for nonsense in ("abc", "NaN", "Infinity", "1e400", True):
        assert allocate(parts, nonsense) == {"interest": D("0.00"), "guarantee": D("0.00")}


def test_a_capped_component_gets_what_its_account_has_left() -> None:
    left = {"cap:guarantee": Account(D("100000"), D("20000"), D("50000"))}  # 30,000 left
    plan = plan_grant(assessment(INTEREST, GUARANTEE), None, lambda c: left[c.cap_key or ""])
    assert plan.parts == {"interest": D("240000"), "guarantee": D("30000")}
    assert plan.total == D("270000.00") and plan.capped
    assert plan.caps == [("cap:guarantee", D("30000"), D("50000"))]


def test_an_uncut_grant_is_not_capped_and_nothing_wanted_reads_no_account() -> None:
    roomy = Account(D("100000"), D("0"), D("0"))
    plan = plan_grant(assessment(INTEREST, GUARANTEE), None, lambda c: roomy)
    assert not plan.capped and plan.total == D("340000.00")
    assert plan.caps == [("cap:guarantee", D("100000"), D("0"))]
    exact = Account(D("100000"), D("0"), D("0"))
    assert not plan_grant(assessment(GUARANTEE), "100000", lambda c: exact).capped

    def never(c: Component) -> Account:
        raise AssertionError("a component that wants nothing reads no cap account")

    none = plan_grant(assessment(INTEREST, GUARANTEE), "1000", never)
    assert none.parts == {"interest": D("1000.00"), "guarantee": D("0.00")} and none.caps == []


def test_even_a_fraction_of_a_yuan_is_checked_against_the_cap() -> None:
    spent = Account(D("100000"), D("0"), D("100000"))
    plan = plan_grant(assessment(GUARANTEE), "0.50", lambda c: spent)
    assert plan.parts == {"guarantee": D("0.00")} and plan.capped


def test_an_overdrawn_account_grants_nothing_never_a_negative_amount() -> None:
    spent = Account(D("100000"), D("60000"), D("60000"))  # opening and grants over the limit
    plan = plan_grant(assessment(GUARANTEE), None, lambda c: spent)
    assert plan.parts == {"guarantee": D("0.00")} and plan.capped and plan.total == D("0.00")
