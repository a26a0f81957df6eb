"""actors on events, receipt times, the system account

Every event records the account that acted (not free text); a case records when relief
received it (the filing date follows from it; a paper receipt recorded by an intake officer
is an event of its own). Scheduled flows act as the `system` account, which cannot sign in:
it has no password and its token hash is of a random value nobody keeps.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 11:00:00.000000
"""

import hashlib
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import models.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("case_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("account_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_event_account", "account", ["account_id"], ["id"])
    with op.batch_alter_table("relief_case", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("received_at", models.types.AwareDateTime(timezone=True), nullable=True)
        )
    account = sa.table(
        "account",
        sa.column("username", sa.String),
        sa.column("display_name", sa.String),
        sa.column("role", sa.String),
        sa.column("token_hash", sa.String),
        sa.column("active", sa.Boolean),
        sa.column("created_at", models.types.AwareDateTime(timezone=True)),
    )
    op.bulk_insert(
        account,
        [
            {
                "username": "system",
                "display_name": "系统（定时流程）",
                "role": "system",
                "token_hash": hashlib.sha256(secrets.token_bytes(32)).hexdigest(),
                "active": True,
                "created_at": datetime.now(UTC),
            }
        ],
    )


def downgrade() -> None:
    op.execute("DELETE FROM account WHERE username = 'system' AND role = 'system'")
    with op.batch_alter_table("relief_case", schema=None) as batch_op:
        batch_op.drop_column("received_at")
    with op.batch_alter_table("case_event", schema=None) as batch_op:
        batch_op.drop_constraint("fk_event_account", type_="foreignkey")
        batch_op.drop_column("account_id")
