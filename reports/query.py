"""报表参数 — what a report or an audit export is asked for, checked one way for every door.

The command line, the API and the page hand the raw strings here; a bad one becomes a list of
field errors, each naming the parameter and the rule it broke, in Chinese and English. Nothing
is read from the database before the parameters hold (except whether a named case exists).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar

from base.civil_dates import SHANGHAI, add_months
from models.input_errors import FieldError
from states.catalog import spec_for
from states.edition import all_editions

FIRST_YEAR, LAST_YEAR = 2000, 2099  # months outside are typing mistakes, not periods of casework
MAX_MONTHS = 120  # ten years: the policy runs one; a bound keeps a query and its output sane
MAX_DAYS = 3660
REPORT_FORMATS = ("table", "csv", "xlsx", "json")
AUDIT_FORMATS = ("jsonl", "csv")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_TOKEN = re.compile(r"^[A-Za-z0-9_.\-]{1,30}$")  # a case number: DC-2022-000001
T = TypeVar("T")


class QueryRefused(ValueError):
    """The parameters cannot be taken as they stand; nothing was read or written."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.field}: {e.message_zh}" for e in errors))


def refuse(field: str, rule: str, zh: str, en: str) -> QueryRefused:
    return QueryRefused([FieldError(field, rule, zh, en)])


def _shown(text: str) -> str:
    """A bad value as an error message may quote it: short, on one line."""
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= 24 else one_line[:24] + "…"


# ---------------------------------------------------------------- months and days
def parse_month(text: str, field: str) -> date:
    """ "2022-07" → 2022-07-01; anything else is refused, naming the parameter."""
    text = text.strip()
    found = _MONTH.match(text)
    if not found:
        raise refuse(field, "month.format", f"“{_shown(text)}”不是年月，格式为YYYY-MM（如2022-07）",
                     f"{text!r} is not a month: YYYY-MM, e.g. 2022-07")  # fmt: skip
    year, month = int(found[1]), int(found[2])
    if not 1 <= month <= 12:
        raise refuse(field, "month.range", f"月份须在01至12之间，“{text}”不是",
                     f"month must be 01 to 12, not {text!r}")  # fmt: skip
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise refuse(field, "month.year", f"年份须在{FIRST_YEAR}至{LAST_YEAR}年之间",
                     f"year must be {FIRST_YEAR} to {LAST_YEAR}")  # fmt: skip
    return date(year, month, 1)


def parse_day(text: str, field: str) -> date:
    """ "2022-07-15" → that date; anything else is refused, naming the parameter."""
    text = text.strip()
    found = _DAY.match(text)
    try:
        if not found:
            raise ValueError
        day = date(int(found[1]), int(found[2]), int(found[3]))
    except ValueError:
        raise refuse(field, "date.format", f"“{_shown(text)}”不是有效日期，格式为YYYY-MM-DD",
                     f"{text!r} is not a date: YYYY-MM-DD") from None  # fmt: skip
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise refuse(field, "date.year", f"年份须在{FIRST_YEAR}至{LAST_YEAR}年之间",
                     f"year must be {FIRST_YEAR} to {LAST_YEAR}")  # fmt: skip
    return day


def month_key(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def start_of(day: date) -> datetime:
    """The first instant of a Beijing calendar day."""
    return datetime.combine(day, time(0), tzinfo=SHANGHAI)


# ---------------------------------------------------------------- measures and bureaus
@functools.cache
def measure_types() -> dict[str, tuple[str, ...]]:
    """Every measure number any edition carries, with the application types that carry it."""
    out: dict[str, list[str]] = {}
    for edition in all_editions():
        for code in edition.type_codes():
            types = out.setdefault(edition.measure_of(code) or "", [])
            if code not in types:
                types.append(code)
    return {m: tuple(ts) for m, ts in sorted(out.items(), key=lambda kv: _measure_order(kv[0]))}


def _measure_order(measure: str) -> tuple[int, str]:
    return (int(measure), "") if measure.isdigit() else (10**6, measure)


def measure_label(measure: str) -> str:
    """第3项（国有房屋租金减免、…）: the number and the types that carry it."""
    if not measure:
        return "未归类"
    types = measure_types().get(measure, ())
    labels = "、".join(_type_label(t) for t in types)
    return f"第{measure}项" + (f"（{labels}）" if labels else "")


def _type_label(code: str) -> str:
    try:
        return spec_for(code).label_zh
    except KeyError:
        return code


@functools.cache
def bureau_names() -> dict[str, str]:
    """Every bureau code of every edition with its full name (the newest edition's)."""
    out: dict[str, str] = {}
    for edition in all_editions():
        for bureau in edition.bureaus:
            out[bureau.code] = bureau.formal_name
    return out


def bureau_label(code: str) -> str:
    if not code:
        return "未指定单位"
    return bureau_names().get(code, code)


def parse_measure(text: str, field: str = "measure") -> str:
    text = text.strip().removeprefix("第").removesuffix("项")
    if text not in measure_types() or not text:
        choices = "、".join(m for m in measure_types() if m)
        raise refuse(field, "measure.unknown", f"没有措施“{_shown(text)}”，可选：{choices}",
                     f"no measure {text!r}; choose one of {choices}")  # fmt: skip
    return text


def parse_bureau(text: str, field: str = "bureau") -> str:
    text = text.strip()
    if text not in bureau_names():
        choices = "、".join(bureau_names())
        raise refuse(field, "bureau.unknown", f"没有单位代码“{_shown(text)}”，可选：{choices}",
                     f"no bureau {text!r}; choose one of {choices}")  # fmt: skip
    return text


def parse_format(text: str, choices: tuple[str, ...], field: str = "format") -> str:
    text = text.strip().lower()
    if text not in choices:
        raise refuse(field, "format.unknown",
                     f"不支持的格式“{_shown(text)}”，可选：{'、'.join(choices)}",
                     f"unknown format {text!r}; choose one of {', '.join(choices)}")  # fmt: skip
    return text


def gather(*checks: Callable[[], Any]) -> list[Any]:
    """Run every check, so that one answer names everything that is wrong."""
    results: list[Any] = []
    errors: list[FieldError] = []
    for check in checks:
        try:
            results.append(check())
        except QueryRefused as exc:
            errors.extend(exc.errors)
    if errors:
        raise QueryRefused(errors)
    return results


# ---------------------------------------------------------------- the two kinds of request
@dataclass(frozen=True)
class ReportQuery:
    """Months first_month … last_month (first days), optionally one measure or bureau."""

    first_month: date
    last_month: date
    measure: str | None = None
    bureau: str | None = None

    @property
    def last_day(self) -> date:
        return add_months(self.last_month, 1) - timedelta(days=1)

    @property
    def start(self) -> datetime:
        return start_of(self.first_month)

    @property
    def end(self) -> datetime:
        """The first instant after the range (exclusive)."""
        return start_of(add_months(self.last_month, 1))

    def months(self) -> list[str]:
        out, day = [], self.first_month
        while day <= self.last_month:
            out.append(month_key(day))
            day = add_months(day, 1)
        return out

    def as_dict(self) -> dict[str, str | None]:
        return {"from": month_key(self.first_month), "to": month_key(self.last_month),
                "measure": self.measure, "bureau": self.bureau}  # fmt: skip


class _Errors:
    """Collects every parameter's errors, so one answer names all that is wrong."""

    def __init__(self) -> None:
        self.found: list[FieldError] = []

    def take(self, parse: Callable[[str, str], T], text: str | None, field: str) -> T | None:
        if not text:
            return None
        try:
            return parse(text, field)
        except QueryRefused as exc:
            self.found.extend(exc.errors)
            return None

    def add(self, field: str, rule: str, zh: str, en: str) -> None:
        self.found.append(FieldError(field, rule, zh, en))

    def check(self) -> None:
        if self.found:
            raise QueryRefused(self.found)


def report_query(
    *,
    first: str | None,
    last: str | None,
    measure: str | None = None,
    bureau: str | None = None,
    today: date,
) -> ReportQuery:
    """The report asked for. Without months: this month; without `to`: from `from` up to this
    month (just `from`'s month if that is later); without `from`: `to`'s month alone."""
    errors = _Errors()
    start = errors.take(parse_month, first, "from")
    end = errors.take(parse_month, last, "to")
    chosen_measure = errors.take(parse_measure, measure, "measure")
    chosen_bureau = errors.take(parse_bureau, bureau, "bureau")
    errors.check()
    this_month = today.replace(day=1)
    if start is None:
        start = end or this_month
    if end is None:
        end = max(start, this_month) if first else start
    _check_span(start, end, months=True)
    return ReportQuery(start, end, chosen_measure, chosen_bureau)


def _check_span(start: date, end: date, *, months: bool) -> None:
    if start > end:
        raise refuse("from", "range.order", f"起始{'月份' if months else '日期'}不得晚于截止"
                     f"{'月份' if months else '日期'}（from须不晚于to）",
                     "from must not be after to")  # fmt: skip
    if months:
        span = (end.year - start.year) * 12 + end.month - start.month + 1
        if span > MAX_MONTHS:
            raise refuse("to", "range.span", f"一次最多统计{MAX_MONTHS}个月，所选为{span}个月",
                         f"at most {MAX_MONTHS} months at a time, not {span}")  # fmt: skip
    elif (end - start).days + 1 > MAX_DAYS:
        raise refuse("to", "range.span", f"一次最多导出{MAX_DAYS}天",
                     f"at most {MAX_DAYS} days at a time")  # fmt: skip


@dataclass(frozen=True)
class AuditQuery:
    """One case by number; or a date range (first_day … last_day) and/or a measure."""

    case_no: str | None = None
    first_day: date | None = None
    last_day: date | None = None
    measure: str | None = None

    @property
    def start(self) -> datetime | None:
        return start_of(self.first_day) if self.first_day else None

    @property
    def end(self) -> datetime | None:
        return start_of(self.last_day + timedelta(days=1)) if self.last_day else None


def audit_query(
    *,
    case: str | None,
    first: str | None,
    last: str | None,
    measure: str | None,
) -> AuditQuery:
    """Exactly one of: a case; a range (both ends); a measure, optionally within a range."""
    case = case.strip() if case else None
    has_range = bool(first or last)
    if case and (has_range or measure):
        other = "measure" if measure else "from" if first else "to"
        raise refuse(other, "selector.exclusive",
                     "指定了案件（case）就不能再指定日期范围或措施：三者只选一种",
                     "a case excludes a date range and a measure")  # fmt: skip
    if not (case or has_range or measure):
        raise refuse("case", "selector.missing",
                     "须指定案件（case）、日期范围（from和to）或措施（measure）之一",
                     "name a case, a date range (from and to) or a measure")  # fmt: skip
    if case:
        if not _TOKEN.match(case):
            raise refuse("case", "case.format", f"“{_shown(case)}”不是受理编号（如DC-2022-000001）",
                         f"{case!r} is not a case number")  # fmt: skip
        return AuditQuery(case_no=case)
    errors = _Errors()
    if has_range and not (first and last):
        missing = "to" if first else "from"
        errors.add(missing, "range.incomplete", f"日期范围须同时给出from和to（缺{missing}）",
                   f"a range needs both from and to ({missing} missing)")  # fmt: skip
    days = {"from": errors.take(parse_day, first, "from"), "to": errors.take(parse_day, last, "to")}
    chosen = errors.take(parse_measure, measure, "measure")
    errors.check()
    start, end = days["from"], days["to"]
    if start and end:
        _check_span(start, end, months=False)
    return AuditQuery(first_day=start, last_day=end, measure=chosen)
