"""The measure report and the audit export against a seeded district (tests/seeded.py).

The report's every cell and total equals a count or sum written here directly in SQL, on
SQLite and on PostgreSQL; the CSV, XLSX and JSON carry the same numbers; the audit export of
a case has every event, notice hash and delivery receipt the database holds. Every door (the
command line, the API, the page) refuses bad input by name and never shows a formula or a
script it was handed.
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import re
import statistics
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import chinese_calendar
import openpyxl
import pytest
import seeded
from conftest import FIXED_NOW
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from api.main import create_app
from api.security import create_account
from cli.main import app as cli_app
from models.db import make_engine, migrate
from models.settings import Settings, get_settings
from reports import audit, exports
from reports.files import FORMULA_STARTS, Sheet, neutralise, xlsx_bytes
from reports.measures import COLUMNS, MONEY, Report, measure_report
from reports.query import QueryRefused, audit_query, report_query
from states.edition import edition_by_id

TODAY = FIXED_NOW.date()
WHOLE = {"first": "2022-06", "last": "2022-12"}
HOSTILE = ["'; DROP TABLE case_event; --", "<script>alert(1)</script>", "=1+1", "2022-07' OR 1=1"]


# ---------------------------------------------------------------- the seeded district
@pytest.fixture(scope="session")
def seed(tmp_path_factory: pytest.TempPathFactory) -> seeded.SeededCounts:
    """One seeded SQLite file for the session (built in ~10 s)."""
    return seeded.seeded_file(tmp_path_factory.getbasetemp() / "seeded")  # shared (dashboard)


@pytest.fixture(scope="module")
def site(seed: seeded.SeededCounts, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A copy of the seed with an operator, a reviewer and an applicant, and the app on it."""
    url = seeded.seeded_copy(Path(seed.url.removeprefix("sqlite:///")).parent,
                             tmp_path_factory.mktemp("site") / "site.db")  # fmt: skip
    db = make_engine(url)
    tokens = {}
    for name, spec in {
        "ops": {"role": "operator", "password": "pw-ops"},
        "rev": {"role": "reviewer", "bureau": "samr", "section": "credit", "password": "pw-rev"},
        "app": {"role": "applicant", "uscc": seeded.uscc(1)},
    }.items():
        _, tokens[name] = create_account(db, username=name, now=FIXED_NOW, **spec)
    client = TestClient(create_app(Settings(database_url=url, now=FIXED_NOW)))
    return {"url": url, "db": db, "tokens": tokens, "client": client}


@pytest.fixture(scope="module")
def pg_seed(request: pytest.FixtureRequest) -> Iterator[str]:
    """The seeded district on PostgreSQL, once for this module (~25 s)."""
    server = request.getfixturevalue("postgres_server")
    name = f"seeded_{uuid.uuid4().hex[:12]}"
    url = server.create_database(name)
    migrate(url)
    counts = seeded.seed_district(url)
    print(f"PostgreSQL seed: {counts.cases} cases in {counts.seconds:.1f} s")
    yield url
    server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def seeded_db(request: pytest.FixtureRequest, seed: seeded.SeededCounts) -> Iterator[Engine]:
    """The seeded district on SQLite (the session's file) or PostgreSQL (the module's)."""
    url = seed.url if request.param == "sqlite" else request.getfixturevalue("pg_seed")
    db = make_engine(url)
    yield db
    db.dispose()


def test_the_seed_is_a_district(seed: seeded.SeededCounts) -> None:
    print(f"seed: {seed.cases} cases, {seed.deliveries} deliveries in {seed.seconds:.1f} s")
    assert seed.cases >= 300 and seed.refused_by_engine == 0
    assert seed.seconds < 120  # ~10 s on an idle machine; generous for a loaded one
    db = make_engine(seed.url)
    with db.connect() as conn:
        states = dict(
            conn.execute(text("select state, count(*) from relief_case group by 1")).all()
        )
        payouts = dict(conn.execute(text("select status, count(*) from payout group by 1")).all())
        receipts = conn.execute(text("select count(*) from notice_delivery")).scalar_one()
        months = {r[0] for r in conn.execute(text("select distinct filed_on from relief_case"))}
    db.dispose()
    for state in ("closed", "rejected", "not_accepted", "withdrawn", "expired", "under_review",
                  "payout_ordered"):  # fmt: skip
        assert states.get(state, 0) > 0, state
    assert payouts["paid"] > 0 and payouts["ordered"] > 0 and receipts > 0
    assert {_day(d).month for d in months} == {7, 8, 9, 10, 11}  # filed; decided up to 12


# ---------------------------------------------------------------- the report against SQL
def _month(dialect: str, column: str) -> str:
    if dialect == "sqlite":
        return f"strftime('%Y-%m', {column}, '+8 hours')"  # stored in UTC
    return f"to_char({column} AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM')"


def _bureau(dialect: str) -> str:
    """The decide route's bureau, else the first route's, else ''."""
    if dialect == "sqlite":
        return (
            "coalesce((select json_extract(r.value, '$.bureau') from "
            "json_each(c.assessment, '$.routes') r where json_extract(r.value, '$.kind') = "
            "'decide' limit 1), json_extract(c.assessment, '$.routes[0].bureau'), '')"
        )
    return (
        "coalesce((select r->>'bureau' from json_array_elements(c.assessment->'routes') r "
        "where r->>'kind' = 'decide' limit 1), c.assessment->'routes'->0->>'bureau', '')"
    )


def expected_cells(db: Engine, first: date, end: date) -> dict[tuple[str, str, str], Counter[str]]:
    """Every column but the timing ones, per (month, measure, bureau), straight from SQL; money
    in fen. Months are those from `first` to before `end`."""
    d = db.dialect.name
    bureau, filed = (
        _bureau(d),
        ("strftime('%Y-%m', c.filed_on)" if d == "sqlite" else "to_char(c.filed_on, 'YYYY-MM')"),
    )
    out: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
    lo, hi = first.isoformat()[:7], (end - timedelta(days=1)).isoformat()[:7]

    def add(month: str, case_type: str, edition: str, b: str, column: str, n: int) -> None:
        if lo <= month <= hi:
            measure = edition_by_id(edition).measure_of(case_type)
            out[(month, measure, b)][column] += int(n)

    with db.connect() as conn:
        for ct, ed, b, m, n in conn.execute(text(
            f"select c.case_type, c.edition_id, {bureau}, {filed}, count(*) from relief_case c "
            "where exists (select 1 from case_event e where e.case_id = c.id and "
            "e.trigger = 'submit') group by 1, 2, 3, 4"
        )):  # fmt: skip
            add(m, ct, ed, b, "applications", n)
        columns = {("approve", "approved"): "granted", ("approve", "partially_approved"):
                   "partially_granted", ("reject", "rejected"): "refused",
                   ("grant_ex_officio", "approved"): "ex_officio"}  # fmt: skip
        entered = {"accepted", "not_accepted", "withdrawn", "expired"}
        for ct, ed, b, m, trigger, to_state, n, fen in conn.execute(text(
            f"select c.case_type, c.edition_id, {bureau}, {_month(d, 'e.at')}, e.trigger, "
            "e.to_state, count(*), sum(coalesce(c.amount_granted, 0)) from case_event e "
            "join relief_case c on c.id = e.case_id "
            "where e.from_state is null or e.from_state <> e.to_state group by 1, 2, 3, 4, 5, 6"
        )):  # fmt: skip
            if (trigger, to_state) in columns:
                add(m, ct, ed, b, columns[trigger, to_state], n)
            elif to_state in entered:
                add(m, ct, ed, b, to_state, n)
            if trigger in ("approve", "reject"):
                add(m, ct, ed, b, "decided", n)
            if trigger == "approve":
                add(m, ct, ed, b, "granted_amount", fen)
        for ct, ed, b, m, fen in conn.execute(text(
            f"select c.case_type, c.edition_id, {bureau}, {_month(d, 'p.created_at')}, "
            "sum(p.amount) from payout p join relief_case c on c.id = p.case_id "
            "group by 1, 2, 3, 4"
        )):  # fmt: skip
            add(m, ct, ed, b, "ordered_amount", fen)
        for ct, ed, b, m, fen in conn.execute(text(
            f"select c.case_type, c.edition_id, {bureau}, {_month(d, 'e.at')}, sum(p.amount) "
            "from case_event e join payout p on p.case_id = e.case_id "
            "join relief_case c on c.id = e.case_id where e.trigger = 'record_payment' "
            "group by 1, 2, 3, 4"
        )):  # fmt: skip
            add(m, ct, ed, b, "paid_amount", fen)
    return out


def expected_timing(
    db: Engine,
) -> dict[tuple[str, str, str], tuple[Decimal | None, Decimal | None]]:
    """Median working days and on-time share per cell, from the decisions' raw rows."""
    d = db.dialect.name
    local = "datetime(e.at, '+8 hours')" if d == "sqlite" else "e.at AT TIME ZONE 'Asia/Shanghai'"
    due = ("(select t.due_on from review_task t where t.case_id = c.id and t.kind = '{}' "
           "order by t.id desc limit 1)")  # fmt: skip
    days: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    timely: dict[tuple[str, str, str], list[bool]] = defaultdict(list)
    with db.connect() as conn:
        rows = conn.execute(text(
            f"select c.case_type, c.edition_id, {_bureau(d)}, c.filed_on, {local}, "
            f"{due.format('decide')}, {due.format('confirm')} from case_event e "
            "join relief_case c on c.id = e.case_id where e.trigger in ('approve', 'reject')"
        )).all()  # fmt: skip
    for ct, ed, b, filed_on, decided_at, decide_due, confirm_due in rows:
        filed_on, decided = _day(filed_on), _day(decided_at)
        key = (decided.isoformat()[:7], edition_by_id(ed).measure_of(ct), b)
        days[key].append(len(chinese_calendar.get_workdays(filed_on + timedelta(1), decided))
                         if decided > filed_on else 0)  # fmt: skip
        deadline = decide_due or confirm_due
        if deadline is not None:
            timely[key].append(decided <= _day(deadline))
    out = {}
    for key, values in days.items():
        med = Decimal(str(statistics.median(values))).normalize()
        share = timely.get(key)
        out[key] = (med, round(Decimal(sum(share)) / len(share), 4) if share else None)
    return out


def _day(value: Any) -> date:
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    return value if type(value) is date else value.date()


def _fen(amount: Any) -> int:
    return int(Decimal(amount) * 100)


def test_every_cell_and_total_equals_sql(seeded_db: Engine) -> None:
    report = measure_report(seeded_db, report_query(**WHOLE, today=TODAY))
    q = report.query
    expected = expected_cells(seeded_db, q.first_month, q.end.date())
    got = {
        (r.month, r.measure, r.bureau): Counter(
            {c: _fen(r.values[c]) if c in MONEY else r.values[c] for c in COLUMNS[:13]}
        )
        for r in report.rows
    }
    assert {k: +v for k, v in got.items()} == {k: +v for k, v in expected.items()}
    total: Counter[str] = Counter()
    for v in expected.values():
        total.update(v)
    t = report.total.values
    assert {c: _fen(t[c]) if c in MONEY else t[c] for c in COLUMNS[:13] if t[c]} == +total
    assert t["applications"] == 320  # the seed's five cohorts of 64
    for row in report.month_totals:
        month_sum: Counter[str] = Counter()
        for (m, _, _), v in expected.items():
            if m == row.month:
                month_sum.update(v)
        assert row.values["applications"] == month_sum["applications"]
        assert _fen(row.values["paid_amount"]) == month_sum["paid_amount"]
    timing = expected_timing(seeded_db)
    for r in report.rows:
        med, share = timing.get((r.month, r.measure, r.bureau), (None, None))
        assert (r.values["median_working_days"], r.values["within_deadline_share"]) == (
            med, share), (r.month, r.measure, r.bureau)  # fmt: skip


def test_the_month_is_beijings(seed: seeded.SeededCounts) -> None:
    """The August cohort is filed, and the July one partly decided, at 00:30 on 1 August
    Beijing time (still July in UTC): all of it counts in August."""
    db = make_engine(seed.url)
    with db.connect() as conn:
        utc_july = conn.execute(text(
            "select count(*) from case_event where trigger = 'approve' and "
            "at >= '2022-07-31 16:00' and at < '2022-08-01'"
        )).scalar_one()  # fmt: skip
    report = measure_report(db, report_query(first="2022-07", last="2022-08", today=TODAY))
    july_only = measure_report(db, report_query(first="2022-07", last="2022-07", today=TODAY))
    db.dispose()
    months = {r.month: r.values for r in report.month_totals}
    assert utc_july > 0
    assert months["2022-08"]["applications"] == 64 and months["2022-07"]["applications"] == 64
    assert july_only.total.values == months["2022-07"]


def test_one_measure_or_bureau(seed: seeded.SeededCounts) -> None:
    db = make_engine(seed.url)
    whole = measure_report(db, report_query(**WHOLE, today=TODAY))
    three = measure_report(db, report_query(**WHOLE, measure="3", today=TODAY))
    samr = measure_report(db, report_query(**WHOLE, bureau="samr", today=TODAY))
    db.dispose()
    assert {r.measure for r in three.rows} == {"3"}
    assert three.rows == [r for r in whole.rows if r.measure == "3"]
    assert {r.bureau for r in samr.rows} == {"samr"}
    assert samr.total.values["ex_officio"] == 6  # the licences, decided by 区市场监管局


# ---------------------------------------------------------------- files
def _report(seed: seeded.SeededCounts) -> Report:
    db = make_engine(seed.url)
    try:
        return measure_report(db, report_query(**WHOLE, today=TODAY))
    finally:
        db.dispose()


def test_the_xlsx_opens_and_its_totals_match(seed: seeded.SeededCounts) -> None:
    report = _report(seed)
    book = openpyxl.load_workbook(io.BytesIO(exports.report_xlsx(report)))
    ws = book.active
    assert ws is not None and ws.freeze_panes == "A2"
    header = [c.value for c in ws[1]]
    assert header[:5] == ["月份", "措施", "措施内容", "决定单位代码", "决定单位"]
    assert "准予金额（元）" in header and all(c.font.bold for c in ws[1])
    last = {h: c for h, c in zip(header, ws[ws.max_row], strict=True)}
    assert last["月份"].value == "合计" and last["月份"].font.bold
    for column in COLUMNS:
        cell, want = last[exports.label(column)], report.total.values[column]
        if column in MONEY:
            assert cell.number_format == "0.00" and isinstance(cell.value, int | float)
            assert Decimal(str(cell.value)).quantize(Decimal("0.01")) == want
        elif want is not None:
            assert Decimal(str(cell.value)) == want, column
    assert ws.max_row == 1 + len(list(report.lines()))


def test_the_csv_parses_back(seed: seeded.SeededCounts) -> None:
    report = _report(seed)
    raw = "".join(exports.report_csv(report)).encode("utf-8")
    assert raw.startswith(b"\xef\xbb\xbf")  # a BOM: Excel reads it as UTF-8
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert len(rows) == len(list(report.lines()))
    total = rows[-1]
    assert total["月份"] == "合计"
    for column in COLUMNS:
        want = report.total.values[column]
        assert total[exports.label(column)] == ("" if want is None else str(want))
    cells = [r for r in rows if r["措施"] not in ("", "合计")]
    assert sum(int(r["申请"]) for r in cells) == report.total.values["applications"]
    assert sum(Decimal(r["已拨付金额（元）"]) for r in cells) == report.total.values["paid_amount"]


def test_the_json_has_the_same_numbers(seed: seeded.SeededCounts) -> None:
    report = _report(seed)
    body = json.loads(exports.report_json(report))
    assert body["total"]["paid_amount"] == str(report.total.values["paid_amount"])
    assert len(body["rows"]) == len(report.rows)
    assert {c["key"] for c in body["columns"]} >= set(COLUMNS)


def test_formulas_in_names_are_neutralised_in_csv_and_xlsx(seed: seeded.SeededCounts) -> None:
    db = make_engine(seed.url)
    with db.connect() as conn:
        names = [r[0] for r in conn.execute(text("select name from applicant"))]
    hostile = [n for n in names if n.startswith(FORMULA_STARTS)]
    assert len(hostile) >= 5
    # the audit CSV of every case whose applicant has one: recipient cells start with '
    records = audit.audit_records(db, audit_query(case=None, first="2022-07-01",
                                                  last="2022-07-31", measure=None))  # fmt: skip
    rows = list(csv.reader(io.StringIO("".join(audit.csv_export(records)).removeprefix("\ufeff"))))
    db.dispose()
    recipients = {r[audit.FIELDS.index("recipient")] for r in rows[1:]}
    assert {"'" + n for n in hostile} <= recipients
    assert not any(cell.startswith(FORMULA_STARTS) for row in rows for cell in row)
    # an XLSX sheet of those names: text, never a formula
    sheet = Sheet("names", ["申请人"], [[n] for n in [*names, "\x07bell=1+1"]], ["text"])
    ws = openpyxl.load_workbook(io.BytesIO(xlsx_bytes([sheet]))).active
    assert ws is not None
    cells = [c for (c,) in ws.iter_rows(min_row=2)]
    assert all(c.data_type == "s" for c in cells if c.value is not None)  # text, not formula
    shown = {c.value for c in cells if c.quotePrefix}  # Excel shows these as typed
    assert {n.strip() for n in hostile} <= shown  # (XML drops a leading tab or CR)
    assert not [c for c in cells if str(c.value).startswith(FORMULA_STARTS) and not c.quotePrefix]
    assert neutralise("普通名称") == "普通名称" and neutralise("-5") == "'-5"


# ---------------------------------------------------------------- the audit export
def _case_with_deliveries(db: Engine) -> tuple[int, str]:
    with db.connect() as conn:
        row = conn.execute(text(
            "select c.id, c.case_no from relief_case c join notice n on n.case_id = c.id "
            "join notice_delivery d on d.notice_id = n.id group by c.id, c.case_no order by "
            "count(distinct d.status) desc, count(distinct d.channel) desc, count(*) desc, c.id "
            "limit 1"
        )).one()  # fmt: skip
    return int(row[0]), str(row[1])


def test_the_audit_of_a_case_has_every_event_notice_and_receipt(seeded_db: Engine) -> None:
    case_id, case_no = _case_with_deliveries(seeded_db)
    query = audit_query(case=case_no, first=None, last=None, measure=None)
    audit.check_case(seeded_db, query)
    lines = list(audit.jsonl_lines(audit.audit_records(seeded_db, query)))
    records = [json.loads(line) for line in lines]
    by = defaultdict(list)
    for r in records:
        by[r["record"]].append(r)
        assert r["case_no"] == case_no
    with seeded_db.connect() as conn:
        events = conn.execute(text(
            "select seq, trigger, to_state from case_event where case_id = :c order by seq"),
            {"c": case_id}).all()  # fmt: skip
        notices = conn.execute(text(
            "select id, doc_number, content_hash from notice where case_id = :c order by id"),
            {"c": case_id}).all()  # fmt: skip
        deliveries = conn.execute(text(
            "select d.notice_id, d.channel, d.attempt_no, d.status, d.receipt from "
            "notice_delivery d join notice n on n.id = d.notice_id where n.case_id = :c "
            "order by d.notice_id, d.attempt_no"), {"c": case_id}).all()  # fmt: skip
    assert [(e["seq"], e["trigger"], e["to_state"]) for e in by["event"]] == [
        tuple(e) for e in events
    ]
    assert [(n["notice_id"], n["doc_number"], n["content_hash"]) for n in by["notice"]] == [
        tuple(n) for n in notices]  # fmt: skip
    assert all(n["hash_verified"] is True for n in by["notice"])
    assert sorted((d["notice_id"], d["channel"], d["attempt_no"], d["status"], d["receipt"])
                  for d in by["delivery"]) == sorted(tuple(d) for d in deliveries)  # fmt: skip
    assert {d["receipt"] for d in by["delivery"]} >= {"250 2.0.0 Ok: queued as RELIEF"}
    # the same records as CSV
    rows = list(
        csv.DictReader(
            io.StringIO(
                "".join(audit.csv_export(audit.audit_records(seeded_db, query))).removeprefix(
                    "\ufeff"
                )
            )
        )
    )
    assert Counter(r["记录类型"] for r in rows) == Counter(r["record"] for r in records)


def test_the_audit_streams_in_pages(seed: seeded.SeededCounts) -> None:
    db = make_engine(seed.url)
    query = audit_query(case=None, first=None, last=None, measure="3")
    stream = audit.audit_records(db, query, page=7)
    assert inspect.isgenerator(stream)
    first = next(stream)
    assert first["record"] == "event" and first["measure"] == "3"
    small = [first, *stream]
    assert small == list(audit.audit_records(db, query))  # pages of 7 or 200: the same
    with db.connect() as conn:
        want = conn.execute(text(
            "select count(*) from case_event e join relief_case c on c.id = e.case_id "
            "where c.case_type in ('rent_state_property', 'rent_incubator_subsidy', "
            "'rent_park_subsidy')")).scalar_one()  # fmt: skip
    db.dispose()
    assert sum(r["record"] == "event" for r in small) == want


def test_the_audit_of_a_range_keeps_to_it(seed: seeded.SeededCounts) -> None:
    db = make_engine(seed.url)
    query = audit_query(case=None, first="2022-09-01", last="2022-09-30", measure=None)
    records = list(audit.audit_records(db, query))
    with db.connect() as conn:
        counts = {
            kind: conn.execute(text(sql)).scalar_one()
            for kind, sql in {
                "event": "select count(*) from case_event where at >= '2022-08-31 16:00' "
                "and at < '2022-09-30 16:00'",
                "notice": "select count(*) from notice where created_at >= '2022-08-31 16:00' "
                "and created_at < '2022-09-30 16:00'",
                "delivery": "select count(*) from notice_delivery where at >= "
                "'2022-08-31 16:00' and at < '2022-09-30 16:00'",
            }.items()
        }
    db.dispose()
    assert Counter(r["record"] for r in records) == counts
    for r in records:
        stamp = r.get("at") or r.get("created_at")
        assert stamp.startswith("2022-09"), r


# ---------------------------------------------------------------- bad input, every door
@pytest.mark.parametrize(
    ("params", "field", "rule"),
    [
        ({"first": "2022-13"}, "from", "month.range"),
        ({"first": "2022-00"}, "from", "month.range"),
        ({"first": "22-07"}, "from", "month.format"),
        ({"last": "2022-7"}, "to", "month.format"),
        ({"first": "1999-12"}, "from", "month.year"),
        ({"first": "2022-09", "last": "2022-07"}, "from", "range.order"),
        ({"first": "2000-01", "last": "2099-12"}, "to", "range.span"),
        ({"first": "2022-07", "measure": "99"}, "measure", "measure.unknown"),
        ({"first": "2022-07", "bureau": "nobody"}, "bureau", "bureau.unknown"),
        *[({"first": h}, "from", "month.format") for h in HOSTILE],
        *[({"measure": h}, "measure", "measure.unknown") for h in HOSTILE],
    ],
)
def test_report_parameters_are_refused_by_name(
    params: dict[str, str], field: str, rule: str
) -> None:
    with pytest.raises(QueryRefused) as caught:
        report_query(**{"first": None, "last": None, **params}, today=TODAY)  # type: ignore[arg-type]
    assert (caught.value.errors[0].field, caught.value.errors[0].rule) == (field, rule)


@pytest.mark.parametrize(
    ("params", "field", "rule"),
    [
        ({}, "case", "selector.missing"),
        ({"case": "DC-2022-000001", "measure": "3"}, "measure", "selector.exclusive"),
        ({"case": "DC-2022-000001", "first": "2022-07-01"}, "from", "selector.exclusive"),
        ({"first": "2022-07-01"}, "to", "range.incomplete"),
        ({"first": "2022-02-30", "last": "2022-03-01"}, "from", "date.format"),
        ({"first": "2022-07-02", "last": "2022-07-01"}, "from", "range.order"),
        ({"first": "2000-01-01", "last": "2099-12-31"}, "to", "range.span"),
        ({"measure": "第99项"}, "measure", "measure.unknown"),
        *[({"case": h}, "case", "case.format") for h in HOSTILE],
    ],
)
def test_audit_parameters_are_refused_by_name(
    params: dict[str, str], field: str, rule: str
) -> None:
    with pytest.raises(QueryRefused) as caught:
        audit_query(**{"case": None, "first": None, "last": None, "measure": None, **params})
    assert (caught.value.errors[0].field, caught.value.errors[0].rule) == (field, rule)


def test_defaults_are_this_month() -> None:
    q = report_query(first=None, last=None, today=TODAY)
    assert (q.first_month, q.last_month) == (date(2022, 12, 1), date(2022, 12, 1))
    q = report_query(first="2022-07", last=None, today=TODAY)
    assert q.months() == ["2022-07", "2022-08", "2022-09", "2022-10", "2022-11", "2022-12"]
    assert report_query(first=None, last=None, measure="第3项", today=TODAY).measure == "3"


# ---------------------------------------------------------------- the API
def _get(site: dict[str, Any], path: str, who: str | None, **params: str) -> Any:
    headers = {"Authorization": f"Bearer {site['tokens'][who]}"} if who else {}
    return site["client"].get(path, params=params, headers=headers)


@pytest.mark.parametrize("path", ["/api/operator/report", "/api/operator/audit"])
@pytest.mark.parametrize(("who", "status"), [(None, 401), ("app", 403), ("rev", 403)])
def test_only_operators_may_read(site: dict[str, Any], path: str, who: str | None,
                                 status: int) -> None:  # fmt: skip
    for fmt in ("json", "csv", "xlsx", "jsonl"):
        r = _get(site, path, who, format=fmt, case="DC-2022-000001")
        assert r.status_code == status, (fmt, r.text)
        assert r.json()["error"] == f"http_{status}"  # an error, never a report


def test_the_api_report(site: dict[str, Any], seed: seeded.SeededCounts) -> None:
    report = _report(seed)
    r = _get(site, "/api/operator/report", "ops", **{"from": "2022-06", "to": "2022-12"})
    assert r.status_code == 200
    assert r.json()["total"] == report.total.as_dict()
    r = _get(site, "/api/operator/report", "ops", **{"from": "2022-06", "to": "2022-12",
                                                     "format": "csv"})  # fmt: skip
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    assert r.content.startswith(b"\xef\xbb\xbf")
    assert r.text.removeprefix("\ufeff") == "".join(exports.report_csv(report)).removeprefix(
        "\ufeff"
    )
    r = _get(site, "/api/operator/report", "ops", **{"from": "2022-06", "to": "2022-12",
                                                     "format": "xlsx"})  # fmt: skip
    assert r.status_code == 200 and "spreadsheetml" in r.headers["content-type"]
    ws = openpyxl.load_workbook(io.BytesIO(r.content)).active
    assert ws is not None and ws.cell(ws.max_row, 6).value == report.total.values["applications"]


def test_the_api_audit_streams(site: dict[str, Any]) -> None:
    case_id, case_no = _case_with_deliveries(site["db"])
    with site["client"].stream(
        "GET",
        "/api/operator/audit",
        params={"case": case_no},
        headers={"Authorization": f"Bearer {site['tokens']['ops']}"},
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
        lines = list(r.iter_lines())  # fmt: skip
    records = [json.loads(line) for line in lines if line]
    with site["db"].connect() as conn:
        n = conn.execute(text("select count(*) from case_event where case_id = :c"),
                         {"c": case_id}).scalar_one()  # fmt: skip
    assert sum(r["record"] == "event" for r in records) == n
    r = _get(site, "/api/operator/audit", "ops", case=case_no, format="csv")
    assert r.status_code == 200 and r.content.startswith(b"\xef\xbb\xbf")
    assert len(list(csv.reader(io.StringIO(r.text.removeprefix("\ufeff"))))) == len(records) + 1


@pytest.mark.parametrize(
    ("path", "params", "status", "field"),
    [
        ("/api/operator/report", {"from": "2022-13"}, 422, "from"),
        ("/api/operator/report", {"from": "2022-09", "to": "2022-07"}, 422, "from"),
        ("/api/operator/report", {"from": "2000-01", "to": "2099-12"}, 422, "to"),
        ("/api/operator/report", {"measure": "'; DROP TABLE case_event; --"}, 422, "measure"),
        ("/api/operator/report", {"bureau": "<script>alert(1)</script>"}, 422, "bureau"),
        ("/api/operator/report", {"format": "pdf"}, 422, "format"),
        ("/api/operator/audit", {}, 422, "case"),
        ("/api/operator/audit", {"case": "DC-2022-000001", "measure": "3"}, 422, "measure"),
        ("/api/operator/audit", {"case": "DC-2099-999999"}, 404, "case"),
        ("/api/operator/audit", {"case": "'; DROP TABLE case_event; --"}, 422, "case"),
        ("/api/operator/audit", {"from": "2022-07-01", "to": "<script>"}, 422, "to"),
        ("/api/operator/audit", {"measure": "3", "format": "xml"}, 422, "format"),
    ],
)
def test_the_api_refuses_bad_parameters(site: dict[str, Any], path: str, params: dict[str, str],
                                        status: int, field: str) -> None:  # fmt: skip
    with site["db"].connect() as conn:
        before = conn.execute(text("select count(*) from case_event")).scalar_one()
    r = _get(site, path, "ops", **params)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["errors"][0]["field"] == field and body["errors"][0]["message_zh"]
    with site["db"].connect() as conn:
        assert conn.execute(text("select count(*) from case_event")).scalar_one() == before


def test_the_api_names_every_bad_parameter_at_once(site: dict[str, Any]) -> None:
    r = _get(site, "/api/operator/report", "ops", **{"from": "2022-13", "measure": "99",
                                                     "format": "pdf"})  # fmt: skip
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"from", "measure", "format"}


# ---------------------------------------------------------------- the page
def _signed_in(site: dict[str, Any], who: str) -> TestClient:
    client = TestClient(site["client"].app)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token is not None
    r = client.post("/login", data={"username": who, "password": f"pw-{who}",
                                    "csrf_token": token[1]}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    return client


def test_the_page_for_an_operator(site: dict[str, Any], seed: seeded.SeededCounts) -> None:
    client = _signed_in(site, "ops")
    r = client.get("/operator/report", params={"from": "2022-07", "to": "2022-12"})
    assert r.status_code == 200
    html = r.text
    for header in ("月份", "措施内容", "决定单位", "准予金额（元）", "按期决定率"):
        assert f'<th scope="col">{header}</th>' in html
    total = _report(seed).total.values
    assert f"<strong>{total['applications']}</strong>" in html
    assert f"<strong>{format(total['paid_amount'], ',.2f')}</strong>" in html
    assert "<strong>合计</strong>" in html and "<strong>本月合计</strong>" in html
    link = re.search(r'href="(/api/operator/report\?[^"]+format=xlsx)"', html)
    assert link is not None
    download = client.get(link[1].replace("&amp;", "&"))  # the page's session reads it
    assert download.status_code == 200 and "spreadsheetml" in download.headers["content-type"]
    assert "<script" not in html.split("<main>")[1]  # no inline script (the CSP forbids it)


@pytest.mark.parametrize("value", [*HOSTILE, "2022-13", "9" * 5000, "\x00"])
def test_the_page_shows_bad_input_as_a_message(site: dict[str, Any], value: str) -> None:
    client = _signed_in(site, "ops")
    for field in ("from", "to", "measure", "bureau"):
        r = client.get("/operator/report", params={field: value})
        if value == "\x00":
            assert r.status_code in (200, 400)
            continue
        assert r.status_code == 200, (field, r.text[:300])
        assert 'class="msg error"' in r.text, field
        assert "<script>alert(1)</script>" not in r.text
        assert "9" * 100 not in r.text


def test_the_page_is_for_operators_only(site: dict[str, Any]) -> None:
    anonymous = TestClient(site["client"].app)
    assert anonymous.get("/operator/report", follow_redirects=False).headers["location"] == "/login"
    reviewer = _signed_in(site, "rev")
    assert reviewer.get("/operator/report", follow_redirects=False).status_code == 303


# ---------------------------------------------------------------- the command line
runner = CliRunner()


@pytest.fixture
def cli_db(site: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("RELIEF_DATABASE_URL", site["url"])
    monkeypatch.setenv("RELIEF_NOW", FIXED_NOW.isoformat())
    get_settings.cache_clear()
    yield site["url"]
    get_settings.cache_clear()


def invoke(*args: str) -> Any:
    return runner.invoke(cli_app, list(args), env={"COLUMNS": "240"})


def test_the_commands_write_files(cli_db: str, tmp_path: Path, seed: seeded.SeededCounts) -> None:
    total = _report(seed).total.values
    out = tmp_path / "r.xlsx"
    result = invoke("report", "--from", "2022-06", "--to", "2022-12", "--out", str(out))
    assert result.exit_code == 0, result.output
    ws = openpyxl.load_workbook(out).active
    assert ws is not None and ws.cell(ws.max_row, 6).value == total["applications"]
    result = invoke("report", "--from", "2022-06", "--to", "2022-12", "--format", "json")
    assert result.exit_code == 0 and json.loads(result.stdout)["total"]["applications"] == 320
    result = invoke("report", "--from", "2022-07", "--to", "2022-07", "--measure", "3")
    assert result.exit_code == 0 and "准予金额（元）" in result.stdout and "合计" in result.stdout
    _, case_no = _case_with_deliveries(make_engine(cli_db))
    out = tmp_path / "a.jsonl"
    result = invoke("audit-export", "--case", case_no, "--out", str(out))
    assert result.exit_code == 0, result.output
    lines = out.read_text(encoding="utf-8").splitlines()
    assert all(json.loads(line)["case_no"] == case_no for line in lines)
    out = tmp_path / "a.csv"
    result = invoke("audit-export", "--measure", "17", "--from", "2022-07-01", "--to",
                    "2022-07-31", "--out", str(out))  # fmt: skip
    assert result.exit_code == 0 and out.read_bytes().startswith(b"\xef\xbb\xbf")


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["report", "--from", "2022-13"], "--from"),
        (["report", "--from", "2022-09", "--to", "2022-07"], "--from"),
        (["report", "--from", "2000-01", "--to", "2099-12"], "--to"),
        (["report", "--measure", "'; DROP TABLE case_event; --"], "--measure"),
        (["report", "--format", "pdf"], "--format"),
        (["report", "--format", "table", "--out", "OUT"], "--out"),
        (["audit-export", "--case", "DC-2022-000001", "--measure", "3"], "--measure"),
        (["audit-export", "--case", "DC-2099-999999", "--out", "OUT"], "--case"),
        (["audit-export", "--case", "<script>alert(1)</script>"], "--case"),
        (["audit-export", "--from", "2022-07-01", "--out", "OUT"], "--to"),
        (["audit-export"], "--case"),
    ],
)
def test_the_commands_refuse_bad_input(cli_db: str, tmp_path: Path, args: list[str],
                                       option: str) -> None:  # fmt: skip
    out = tmp_path / "out.csv"
    result = invoke(*[str(out) if a == "OUT" else a for a in args])
    assert result.exit_code == 2, result.output
    assert option in result.output and "参数有误" in result.output
    assert "Traceback" not in result.output
    assert not out.exists() and not list(tmp_path.iterdir())
