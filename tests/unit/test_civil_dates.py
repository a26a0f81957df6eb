"""民法典 第二百零一条、第二百零二条 period arithmetic, by example and by property."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from base.civil_dates import SHANGHAI, add_days, add_months, local_today

dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31))
month_counts = st.integers(min_value=0, max_value=240)


@pytest.mark.parametrize(
    ("start", "days", "end"),
    [
        (date(2022, 11, 20), 30, date(2022, 12, 20)),  # core_rules.md §0.2
        (date(2022, 12, 31), 1, date(2023, 1, 1)),
        (date(2024, 2, 28), 1, date(2024, 2, 29)),
        (date(2022, 6, 15), 0, date(2022, 6, 15)),
    ],
)
def test_add_days(start: date, days: int, end: date) -> None:
    assert add_days(start, days) == end


@pytest.mark.parametrize(
    ("start", "months", "end"),
    [
        (date(2022, 8, 31), 6, date(2023, 2, 28)),  # core_rules.md §0.2
        (date(2023, 8, 31), 6, date(2024, 2, 29)),  # leap year
        (date(2022, 1, 31), 1, date(2022, 2, 28)),
        (date(2022, 3, 31), 1, date(2022, 4, 30)),
        (date(2022, 6, 15), 6, date(2022, 12, 15)),
        (date(2022, 11, 30), 3, date(2023, 2, 28)),
        (date(2022, 12, 31), 12, date(2023, 12, 31)),
        (date(2022, 5, 10), 0, date(2022, 5, 10)),
    ],
)
def test_add_months(start: date, months: int, end: date) -> None:
    assert add_months(start, months) == end


def test_negative_periods_are_rejected() -> None:
    with pytest.raises(ValueError):
        add_days(date(2022, 1, 1), -1)
    with pytest.raises(ValueError):
        add_months(date(2022, 1, 1), -1)


@given(dates, st.integers(min_value=0, max_value=3650))
def test_add_days_adds_exactly(start: date, days: int) -> None:
    assert add_days(start, days) - start == timedelta(days=days)


@given(dates, month_counts)
def test_add_months_lands_in_the_right_month(start: date, months: int) -> None:
    end = add_months(start, months)
    assert end.month == (start.month - 1 + months) % 12 + 1
    assert end.year == start.year + (start.month - 1 + months) // 12
    assert end.day <= start.day
    if start.day <= 28:
        assert end.day == start.day
    else:
        # Clamped only when the day does not exist: the next day is in the following month.
        assert end.day == start.day or (end + timedelta(days=1)).day == 1


@given(dates, month_counts, month_counts)
def test_add_months_in_two_steps(start: date, first: int, second: int) -> None:
    # Not associative: 01-31 +1 month = 02-28, +1 month = 03-28, but 01-31 +2 months = 03-31.
    stepped = add_months(add_months(start, first), second)
    direct = add_months(start, first + second)
    assert (stepped.year, stepped.month) == (direct.year, direct.month)
    assert stepped <= direct
    if start.day <= 28:
        assert stepped == direct


@given(dates, dates, month_counts)
def test_add_months_keeps_order(a: date, b: date, months: int) -> None:
    earlier, later = sorted((a, b))
    assert add_months(earlier, months) <= add_months(later, months)


def test_local_today_uses_beijing_dates() -> None:
    # 16:30 UTC on 2022-12-31 is already 2023-01-01 in Beijing.
    assert local_today(datetime(2022, 12, 31, 16, 30, tzinfo=UTC)) == date(2023, 1, 1)
    assert local_today(datetime(2022, 12, 31, 15, 59, tzinfo=UTC)) == date(2022, 12, 31)
    new_york = timezone(timedelta(hours=-5))
    assert local_today(datetime(2022, 6, 14, 12, 0, tzinfo=new_york)) == date(2022, 6, 15)
    assert local_today(datetime(2022, 6, 15, 0, 0, tzinfo=SHANGHAI)) == date(2022, 6, 15)


def test_local_today_rejects_naive_datetimes() -> None:
    with pytest.raises(ValueError):
        local_today(datetime(2022, 6, 15, 12, 0))
