"""work queue index in the queue's own order (due date, then id)

A section's queue is read a page at a time, overdue first, then by due date, ties by task id.
With ix_task_queue ending at due_on, PostgreSQL had to fetch every open task of the earliest
due date (and join its case) before it could sort by id and stop at the page: 405 rows and
7.7 ms at 1,000,000 cases against 53 rows and 0.7 ms at 10,000 (bench/scale.py). With id in
the index the scan returns the page in order and stops.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 09:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("review_task", schema=None) as batch_op:
        batch_op.drop_index("ix_task_queue")
        batch_op.create_index(
            "ix_task_queue",
            ["bureau_code", "section_code", "status", "due_on", "id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("review_task", schema=None) as batch_op:
        batch_op.drop_index("ix_task_queue")
        batch_op.create_index(
            "ix_task_queue", ["bureau_code", "section_code", "status", "due_on"], unique=False
        )
