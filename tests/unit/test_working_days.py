"""Deadlines count Chinese working days: weekends, public holidays and 调休 makeup days."""

from __future__ import annotations

from datetime import date

from base.working_days import add_working_days, working_days_between


def test_skips_weekend() -> None:
    assert add_working_days(date(2022, 7, 15), 1) == date(2022, 7, 18)  # Friday → Monday


def test_skips_national_day_and_counts_makeup_saturday() -> None:
    # 2022-10-01..07 are holidays; Saturday 10-08 and Sunday 10-09 are working days (调休).
    assert add_working_days(date(2022, 9, 30), 1) == date(2022, 10, 8)
    assert add_working_days(date(2022, 9, 30), 3) == date(2022, 10, 10)


def test_between() -> None:
    assert working_days_between(date(2022, 9, 30), date(2022, 10, 10)) == 3
    assert working_days_between(date(2022, 10, 10), date(2022, 10, 1)) == 0
