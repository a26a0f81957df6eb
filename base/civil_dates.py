"""民法典 period arithmetic, so every deadline and validity date is counted one way."""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

# Case dates are Beijing calendar dates, whatever the server's own time zone.
SHANGHAI = ZoneInfo("Asia/Shanghai")


def add_days(start: date, days: int) -> date:
    """Last day of a period of `days` days triggered on `start` (民法典 第二百零一条).

    The trigger day is not counted, so the period ends `days` days later:
    30 days after 2022-11-20 ends on 2022-12-20.
    """
    if days < 0:
        raise ValueError(f"a period runs forward; got {days} days")
    return start + timedelta(days=days)


def add_months(start: date, months: int) -> date:
    """Last day of a period of `months` months from `start` (民法典 第二百零二条).

    It is the same day-of-month in the end month, or that month's last day if the day does
    not exist there: 2022-08-31 + 6 months = 2023-02-28.
    """
    if months < 0:
        raise ValueError(f"a period runs forward; got {months} months")
    year, month_index = divmod(start.month - 1 + months, 12)
    year += start.year
    month = month_index + 1
    last_day = calendar.monthrange(year, month)[1]
    return date(year, month, min(start.day, last_day))


def local_today(now: datetime) -> date:
    """The Beijing calendar date of an aware instant; a naive one has no defined date."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("need a time-zone-aware datetime")
    return now.astimezone(SHANGHAI).date()


def zh_date(d: date | None) -> str:
    """A date as Chinese documents write it: 2023年1月13日."""
    return "" if d is None else f"{d.year}年{d.month}月{d.day}日"


def to_minute(at: datetime | None) -> str:
    """A moment as people read it here: Asia/Shanghai, to the minute (2022-12-30 10:05)."""
    return "—" if at is None else at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
