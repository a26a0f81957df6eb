"""section heads and incident actions (issue 17)

A reviewer account may be its section's head (科室负责人: reassigns the section's tasks); an
incident records who resolved it, when, and the note they gave.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 20:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("account") as batch:
        batch.add_column(
            sa.Column("section_head", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("incident") as batch:
        batch.add_column(
            sa.Column("resolved_at", models.types.AwareDateTime(timezone=True), nullable=True)
        )
        batch.add_column(
            sa.Column("resolved_by", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True)
        )
        batch.add_column(
            sa.Column("note", sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("retries", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("incident") as batch:
        batch.drop_column("retries")
        batch.drop_column("note")
        batch.drop_column("resolved_by")
        batch.drop_column("resolved_at")
    with op.batch_alter_table("account") as batch:
        batch.drop_column("section_head")
