"""web security: sessions before sign-in with flash messages, failure counters, shared secret

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.alter_column("account_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(
            sa.Column("created_at", models.types.AwareDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("flash", sa.JSON(), server_default="[]", nullable=False))
        batch_op.create_index("ix_web_session_expires", ["expires_at"], unique=False)
    op.create_table(
        "auth_throttle",
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("first_failure_at", models.types.AwareDateTime(timezone=True), nullable=False),
        sa.Column("last_failure_at", models.types.AwareDateTime(timezone=True), nullable=False),
        sa.Column("locked_at", models.types.AwareDateTime(timezone=True), nullable=True),
        sa.Column("locked_until", models.types.AwareDateTime(timezone=True), nullable=True),
        sa.Column("lifted_by", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
        sa.Column("lifted_at", models.types.AwareDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("scope", "key"),
    )
    op.create_table(
        "app_secret",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("value", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("created_at", models.types.AwareDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("app_secret")
    op.drop_table("auth_throttle")
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.drop_index("ix_web_session_expires")
        batch_op.drop_column("flash")
        batch_op.drop_column("created_at")
        batch_op.alter_column("account_id", existing_type=sa.Integer(), nullable=False)
