"""measure_effect_record: what an approved configured type does instead of paying (issue 15)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 17:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "measure_effect_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("case_type", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("effect", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("referred_to", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("statement", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("at", models.types.AwareDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["relief_case.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id"),
    )
    op.create_index(
        op.f("ix_measure_effect_record_case_type"), "measure_effect_record", ["case_type"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_measure_effect_record_case_type"), table_name="measure_effect_record")
    op.drop_table("measure_effect_record")
