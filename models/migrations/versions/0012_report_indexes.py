"""indexes for the dashboard and the report (issue 17)

The measure report reads events and payouts by time, the dashboard's task chart the tasks
closed within its span: without these each is a scan of a whole table.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 21:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_event_at", "case_event", ["at"])
    op.create_index("ix_payout_created", "payout", ["created_at"])
    op.create_index("ix_task_decided", "review_task", ["decided_at"])


def downgrade() -> None:
    op.drop_index("ix_task_decided", table_name="review_task")
    op.drop_index("ix_payout_created", table_name="payout")
    op.drop_index("ix_event_at", table_name="case_event")
