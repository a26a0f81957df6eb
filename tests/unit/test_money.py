"""Money: Decimal CNY, 四舍五入 to the fen, by example and by property."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from base.money import CENT, format_cny, money_share, to_money

amounts = st.decimals(min_value=0, max_value=10**12, places=2)
any_amounts = st.decimals(
    min_value=-(10**12), max_value=10**12, allow_nan=False, allow_infinity=False, places=6
)
rates = st.decimals(min_value=0, max_value=1, places=6)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("2.345"), Decimal("2.35")),  # half up, where half-even gives 2.34
        (Decimal("2.335"), Decimal("2.34")),
        (Decimal("-2.345"), Decimal("-2.35")),  # half away from zero
        (Decimal("-0.004"), Decimal("0.00")),
        ("1000000", Decimal("1000000.00")),
        (12, Decimal("12.00")),
        (" 3.1 ", Decimal("3.10")),
    ],
)
def test_to_money(value: Decimal | int | str, expected: Decimal) -> None:
    result = to_money(value)
    assert result == expected
    assert result.as_tuple().exponent == -2
    assert not result.is_signed() or result < 0


@pytest.mark.parametrize("value", [0.1, 1.0, True])
def test_to_money_rejects_floats_and_bools(value: object) -> None:
    with pytest.raises(TypeError):
        to_money(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value", [Decimal("NaN"), Decimal("Infinity"), "-Infinity", "nan", "1,000", "", "1e40"]
)
def test_to_money_rejects_non_amounts(value: Decimal | str) -> None:
    with pytest.raises(ValueError):
        to_money(value)


def test_money_share() -> None:
    assert money_share(Decimal("100.00"), Decimal("0.125")) == Decimal("12.50")
    assert money_share(Decimal("0.05"), Decimal("0.5")) == Decimal("0.03")  # 0.025 rounds up


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal("1000000"), "1,000,000.00"),
        (Decimal("0"), "0.00"),
        (Decimal("999.995"), "1,000.00"),
        (Decimal("2.675"), "2.68"),  # ROUND_HALF_UP, not format's half-even
        (Decimal("-1234.5"), "-1,234.50"),
    ],
)
def test_format_cny(amount: Decimal, text: str) -> None:
    assert format_cny(amount) == text


@given(any_amounts)
def test_to_money_is_idempotent_and_exact_to_the_fen(value: Decimal) -> None:
    once = to_money(value)
    assert to_money(once) == once
    assert once.as_tuple().exponent == -2
    assert abs(once - value) <= CENT / 2


@given(amounts, rates)
def test_money_share_never_exceeds_the_amount(amount: Decimal, rate: Decimal) -> None:
    share = money_share(amount, rate)
    assert Decimal(0) <= share <= amount
    assert share.as_tuple().exponent == -2
