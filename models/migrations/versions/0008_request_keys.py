"""filings' request keys unique in the schema

The same Idempotency-Key sent to two API processes at once made two cases 16 times out of 38:
the engine looked for the key, found none, and both transactions inserted. request_record
makes the key unique; the existing keys of relief_case.submission_key are carried over (where
a key already made two cases, the older ones keep it).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 15:00:00.000000
"""

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "request_record",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=160), nullable=False),
        sa.Column("case_ids", sa.JSON(), nullable=False),
        sa.Column("at", models.types.AwareDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    rows = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT submission_key, id FROM relief_case WHERE submission_key IS NOT NULL "
                "ORDER BY id"
            )
        )
        .all()
    )
    keys: dict[str, list[int]] = {}
    for key, case_id in rows:
        keys.setdefault(key, []).append(case_id)
    now = datetime.now(UTC)
    if keys:
        op.bulk_insert(
            table,
            [{"key": k, "case_ids": json.loads(json.dumps(v)), "at": now} for k, v in keys.items()],
        )


def downgrade() -> None:
    op.drop_table("request_record")
