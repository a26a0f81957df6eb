"""待办 — a section's work queue: filtered, sorted, read a page at a time, with its total.

The default order is due date, then task id, which puts overdue tasks first (their due dates
are the earliest) and is the order of ix_task_queue (bureau, section, status, due_on, id):
reading a page in the index's own order keeps the query's cost flat as the table grows
(bench/scale.py: the same at 10,000 and 1,000,000 cases). Every filter narrows that range;
the other sort keys sort a section's filtered set, never the whole table. Search terms are
bound parameters (LIKE wildcards in them escaped), sort keys come from a whitelist: nothing
a user types becomes SQL. The page (api/pages/tasklist.py) and the API (GET /api/tasks) call
`section_page`, so both answer alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, Literal, NamedTuple

from sqlalchemy import ColumnElement, and_, func, not_, or_
from sqlmodel import Session, col, select

from models.statuses import TaskStatus
from models.tables import CASE_LISTING, Applicant, Case, ReviewTask

PAGE_DEFAULT = 100  # the API's page
PAGE_MAX = 500
OFFSET_MAX = 10_000_000
SEARCH_MAX = 100  # characters of a name, USCC or case-number search

TASK_STATUSES = tuple(TaskStatus)
Assignee = Literal["mine", "unassigned"]


class SortKey(StrEnum):
    """排序 — the sort keys a caller may name."""

    DUE = "due"  # 办理期限
    CREATED = "created"  # 创建时间
    CASE_NO = "case_no"  # 案件编号
    TYPE = "type"  # 申请类型
    APPLICANT = "applicant"  # 申请人


# the column each sort key sorts by (ties: the task id, in the same direction)
SORTS: dict[str, Any] = {
    SortKey.DUE: ReviewTask.due_on,
    SortKey.CREATED: ReviewTask.created_at,
    SortKey.CASE_NO: Case.case_no,
    SortKey.TYPE: Case.case_type,
    SortKey.APPLICANT: Applicant.name,
}


@dataclass(frozen=True)
class QueueQuery:
    """What a tasklist asks for (the doors validate each value before it comes here)."""

    status: str | None = TaskStatus.OPEN  # None: every status
    case_type: str | None = None
    kind: str | None = None
    state: str | None = None  # the case's state
    overdue: bool | None = None  # True: only overdue tasks; False: none of them
    applicant: str | None = None  # part of the applicant's name or USCC, any case
    case_no: str | None = None  # part of the case number, any case
    assignee: Assignee | None = None  # None: whoever holds it, or nobody
    me: str | None = None  # the login that "mine" means
    sort: str = SortKey.DUE
    descending: bool = False
    limit: int = PAGE_DEFAULT
    offset: int = 0


class QueueRow(NamedTuple):
    task: ReviewTask
    case: Case
    applicant_name: str
    applicant_identity: str


@dataclass(frozen=True)
class QueuePage:
    rows: list[QueueRow]
    total: int  # tasks matching the filters, over every page


def section_page(
    s: Session, bureau_code: str, section_code: str, q: QueueQuery, *, today: date
) -> QueuePage:
    """One page of a section's tasks that match `q`, in its order, and how many match."""
    if q.sort not in SORTS:
        raise ValueError(f"unknown sort key {q.sort!r}")
    where = _conditions(bureau_code, section_code, q, today)
    key = SORTS[q.sort]
    order = [key.desc(), col(ReviewTask.id).desc()] if q.descending else [key, col(ReviewTask.id)]
    rows = s.exec(
        select(ReviewTask, Case, Applicant.name, Applicant.identity)
        .join(Case, col(Case.id) == col(ReviewTask.case_id))
        .join(Applicant, col(Applicant.id) == col(Case.applicant_id))
        .where(*where)
        .options(*CASE_LISTING)
        .order_by(*order)
        .offset(max(q.offset, 0))
        .limit(max(q.limit, 0))
    ).all()
    count = select(func.count()).select_from(ReviewTask)
    if _needs_case(q):  # the count joins only what its filters read
        count = count.join(Case, col(Case.id) == col(ReviewTask.case_id))
    if q.applicant:
        count = count.join(Applicant, col(Applicant.id) == col(Case.applicant_id))
    total = s.exec(count.where(*where)).one()
    return QueuePage([QueueRow(t, c, name, ident) for t, c, name, ident in rows], int(total))


def section_queue(
    s: Session,
    bureau_code: str,
    section_code: str,
    *,
    status: str | None = TaskStatus.OPEN,
    limit: int = PAGE_DEFAULT,
    offset: int = 0,
) -> list[tuple[ReviewTask, Case]]:
    """One page of a section's tasks (all statuses when status is None) with their cases, in
    the default order (bench/scale.py reads it)."""
    q = QueueQuery(status=status, limit=limit, offset=offset)
    page = section_page(s, bureau_code, section_code, q, today=date.max)
    return [(r.task, r.case) for r in page.rows]


def overdue_condition(today: date) -> ColumnElement[bool]:
    """逾期: open, due before today, and its clock running (as the operator's counts have it)."""
    return and_(
        col(ReviewTask.status) == TaskStatus.OPEN,
        col(ReviewTask.due_on) < today,
        col(ReviewTask.paused_on).is_(None),
    )


def _needs_case(q: QueueQuery) -> bool:
    return bool(q.case_type or q.state or q.case_no or q.applicant)


def _conditions(
    bureau_code: str, section_code: str, q: QueueQuery, today: date
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [
        col(ReviewTask.bureau_code) == bureau_code,
        col(ReviewTask.section_code) == section_code,
    ]
    if q.status is not None:
        where.append(col(ReviewTask.status) == q.status)
    if q.kind:
        where.append(col(ReviewTask.kind) == q.kind)
    if q.overdue is not None:
        late = overdue_condition(today)
        where.append(late if q.overdue else not_(late))
    if q.assignee == "unassigned":
        where.append(col(ReviewTask.assignee).is_(None))
    elif q.assignee == "mine":
        where.append(col(ReviewTask.assignee) == (q.me or ""))
    if q.case_type:
        where.append(col(Case.case_type) == q.case_type)
    if q.state:
        where.append(col(Case.state) == q.state)
    if q.case_no:
        where.append(col(Case.case_no).icontains(q.case_no[:SEARCH_MAX], autoescape=True))
    if q.applicant:
        term = q.applicant[:SEARCH_MAX]
        where.append(
            or_(
                col(Applicant.name).icontains(term, autoescape=True),
                col(Applicant.identity).icontains(term, autoescape=True),
            )
        )
    return where
