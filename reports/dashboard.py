"""运营概览 — what the operator's dashboard counts: cases by state per type, open and overdue
tasks per bureau section day by day, the outbox and payout backlog.

Plain reads (no write, no lock); every figure is defined here once and compared with a direct
SQL count over a seeded database in tests/e2e/test_dashboard.py. Money per measure and month
comes from the report (reports/measures.py), not from a second sum here.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import Engine, case, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from base.civil_dates import SHANGHAI
from base.money import to_money
from models.statuses import TaskStatus
from models.tables import Case, Incident, Notice, Payout, ReviewTask
from models.work_queue import overdue_condition
from states.catalog import catalog
from states.edition import all_editions

HISTORY_DAYS = 30  # how far back the task chart looks (calendar days, today included)


@dataclass(frozen=True)
class TypeStates:
    """One type's cases by state."""

    case_type: str
    label_zh: str
    by_state: dict[str, int]
    measure: str = ""  # the document's measure number (第3项), from the newest edition

    @property
    def total(self) -> int:
        return sum(self.by_state.values())


@dataclass
class UnitTasks:
    """One bureau section's tasks: open and overdue at the end of each day, and now."""

    bureau: str
    section: str
    unit: str  # the section's Chinese name as the task carries it (区市场监管局信用科)
    open_by_day: list[int] = field(default_factory=list)  # task_history
    overdue_by_day: list[int] = field(default_factory=list)
    open_now: int = 0  # tasks_now
    overdue_now: int = 0


@dataclass(frozen=True)
class Backlog:
    """What waits to leave relief: notices to deliver, payments to make."""

    notices_pending: int
    oldest_pending_at: datetime | None
    notices_awaiting_channel: int
    notices_failed: int
    payouts: dict[str, tuple[int, Decimal]]  # status → (how many, how much)
    incidents_open: int


def cases_by_state(s: Session) -> list[TypeStates]:
    """Every type of the catalog (none left out for having no case yet), by measure number."""
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    rows = s.exec(
        select(Case.case_type, Case.state, func.count()).group_by(
            col(Case.case_type), col(Case.state)
        )
    ).all()
    for case_type, state, n in rows:
        counts[case_type][state] = int(n)
    types, edition = catalog(), all_editions()[-1]

    def measure(code: str) -> str:
        try:
            return edition.measure_of(code)
        except KeyError:
            return ""

    out = [TypeStates(code, spec.label_zh, counts.get(code, {}), measure(code))
           for code, spec in types.items()]  # fmt: skip
    out.sort(key=lambda t: (not t.measure.isdigit(), int(t.measure or 0), t.case_type))
    out += [TypeStates(code, code, by) for code, by in counts.items() if code not in types]
    return out


def tasks_now(s: Session, today: date) -> list[UnitTasks]:
    """Per section: the tasks open now, and of those overdue (models/work_queue.py's one
    definition: due before today, clock running), by bureau and section."""
    overdue = case((overdue_condition(today), 1), else_=0)
    t = ReviewTask.__table__.c  # type: ignore[attr-defined]
    rows = s.execute(
        sa_select(t.bureau_code, t.section_code, func.min(t.unit), func.count(), func.sum(overdue))
        .where(t.status == TaskStatus.OPEN)
        .group_by(t.bureau_code, t.section_code)
        .order_by(t.bureau_code, t.section_code)
    ).all()
    return [
        UnitTasks(bureau, section, unit or "", open_now=int(n), overdue_now=int(late or 0))
        for bureau, section, unit, n, late in rows
    ]


def end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=SHANGHAI)


def task_history(
    s: Session, today: date, days: int = HISTORY_DAYS
) -> tuple[list[date], list[UnitTasks]]:
    """Per section, at the end of each of the last `days` days: the tasks then open (created
    by then, not yet done or cancelled) and, of those, overdue (their due date before that day).

    A task's due date is read as it stands now: a deadline moved on while the applicant was
    answering counts from its new date on every past day too (the table keeps no history of
    due dates); and a task paused today is not overdue today, as on the tasklist.
    """
    first = today - timedelta(days=days - 1)
    span = [first + timedelta(days=i) for i in range(days)]
    cuts = [(day, end_of(day)) for day in span]
    t = ReviewTask.__table__.c  # type: ignore[attr-defined]
    since = end_of(first - timedelta(days=1))
    columns = (t.bureau_code, t.section_code, t.unit, t.created_at, t.decided_at, t.due_on,
               t.paused_on)  # fmt: skip
    rows = [  # the open tasks, and those closed within the span (ix_task_decided)
        *s.execute(sa_select(*columns).where(t.status == TaskStatus.OPEN)).all(),
        *s.execute(
            sa_select(*columns).where(t.status != TaskStatus.OPEN, t.decided_at >= since)
        ).all(),
    ]
    units: dict[tuple[str, str], UnitTasks] = {}
    for bureau, section, unit, created, decided, due, paused in rows:
        u = units.setdefault(
            (bureau, section),
            UnitTasks(bureau, section, unit, [0] * days, [0] * days),
        )
        for i, (day, cut) in enumerate(cuts):
            if created < cut and (decided is None or decided >= cut):
                u.open_by_day[i] += 1
                if due is not None and due < day and not (day == today and paused is not None):
                    u.overdue_by_day[i] += 1
    ordered = sorted(units.values(), key=lambda u: (u.bureau, u.section))
    return span, [u for u in ordered if any(u.open_by_day)]


def backlog(s: Session) -> Backlog:
    notices = dict(s.exec(select(Notice.status, func.count()).group_by(col(Notice.status))).all())
    oldest = s.exec(
        select(func.min(Notice.created_at)).where(col(Notice.status) == "pending")
    ).one()
    payouts = {
        status: (int(n), to_money(Decimal(str(total or 0))))
        for status, n, total in s.exec(
            select(Payout.status, func.count(), func.sum(Payout.amount))
            .where(col(Payout.status).in_(["ordered", "sent", "failed"]))
            .group_by(col(Payout.status))
        ).all()
    }
    incidents = s.exec(
        select(func.count()).select_from(Incident).where(col(Incident.status) == "open")
    ).one()
    return Backlog(
        notices_pending=int(notices.get("pending", 0)),
        oldest_pending_at=oldest,
        notices_awaiting_channel=int(notices.get("awaiting_channel", 0)),
        notices_failed=int(notices.get("failed", 0)),
        payouts=payouts,
        incidents_open=int(incidents),
    )


def incident_rows(
    db: Engine, statuses: tuple[str, ...] | None, *, limit: int, offset: int = 0
) -> tuple[list[tuple[Incident, str | None]], int]:
    """A page of incidents in these statuses (None: all), oldest first, and how many in all."""
    with Session(db) as s:
        query = select(Incident, Case.case_no).join(
            Case, col(Case.id) == col(Incident.case_id), isouter=True
        )
        counted = select(func.count()).select_from(Incident)
        if statuses is not None:
            query = query.where(col(Incident.status).in_(statuses))
            counted = counted.where(col(Incident.status).in_(statuses))
        page = s.exec(query.order_by(col(Incident.id)).offset(offset).limit(limit)).all()
        return [(i, no) for i, no in page], int(s.exec(counted).one())
