"""Working days as BPMN timer durations: relief counts Chinese working days, a BPMN timer
counts calendar time, so each deadline becomes the longest calendar span it can take.

Apart from the builder because it is calendar arithmetic (chinese-calendar's holidays and 调休)
with nothing of BPMN in it but the reason, and cached across types.
"""

from __future__ import annotations

import bisect
import functools
from datetime import date, timedelta

import chinese_calendar


@functools.cache
def _workdays() -> list[int]:
    """The working days of the years chinese-calendar knows, as day numbers from 1 January
    of the first (the calendar base/working_days.py counts with)."""
    years = sorted({d.year for d in chinese_calendar.holidays})
    first = date(years[0], 1, 1)
    span = (date(years[-1], 12, 31) - first).days + 1
    return [i for i in range(span) if chinese_calendar.is_workday(first + timedelta(days=i))]


@functools.cache
def calendar_days(working_days: int) -> int:
    """The most calendar days `working_days` Chinese working days ever took, from any start
    day of the years chinese-calendar knows (holidays and 调休 included).

    A BPMN timer counts calendar time; relief counts working days. A timer of this many days
    never fires before relief's own deadline (P{N}D would, every week); it may fire later, and
    its documentation says the working days it stands for.
    """
    if working_days <= 0:
        return 0
    marks = _workdays()
    longest = 0
    for start in range(marks[-1]):
        k = bisect.bisect_right(marks, start) + working_days - 1
        if k >= len(marks):
            break
        longest = max(longest, marks[k] - start)
    return longest
