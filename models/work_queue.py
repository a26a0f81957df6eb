"""待办 — a section's work queue, read a page at a time in the order of ix_task_queue.

The queue is ordered by due date, then task id, which puts overdue tasks first (their due
dates are the earliest). Reading it a page at a time, in the index's own order, keeps the
query's cost flat as the table grows (bench/scale.py: the same at 10,000 and 1,000,000
cases); reading the whole queue returns more rows the more cases there are.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from models.statuses import TaskStatus
from models.tables import Case, ReviewTask

PAGE_DEFAULT = 100
PAGE_MAX = 500

TASK_STATUSES = tuple(TaskStatus)


def section_queue(
    s: Session,
    bureau_code: str,
    section_code: str,
    *,
    status: str | None = TaskStatus.OPEN,
    limit: int = PAGE_DEFAULT,
    offset: int = 0,
) -> list[tuple[ReviewTask, Case]]:
    """One page of a section's tasks (all statuses when status is None) with their cases."""
    stmt = (
        select(ReviewTask, Case)
        .join(Case, col(Case.id) == col(ReviewTask.case_id))
        .where(
            col(ReviewTask.bureau_code) == bureau_code,
            col(ReviewTask.section_code) == section_code,
        )
    )
    if status is not None:
        stmt = stmt.where(col(ReviewTask.status) == status)
    stmt = stmt.order_by(col(ReviewTask.due_on), col(ReviewTask.id)).offset(offset).limit(limit)
    return [(task, case) for task, case in s.exec(stmt).all()]
