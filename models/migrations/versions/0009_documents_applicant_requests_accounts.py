"""documents, applicant requests, applicant audit, one-time codes (issue 14)

document_blob indexes the stored files by sha256; case_document puts one on a case in a slot
of the edition; applicant_request is what a case asks of its applicant (补正 / 容缺 / 补充) and
by when; applicant_event audits changes to an applicant's own record; one_time_code confirms
a registration or a password reset.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 14:23:33.913108
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "document_blob",
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("media_type", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("stored_at", models.types.AwareDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    op.create_table(
        "applicant_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("applicant_id", sa.Integer(), nullable=False),
        sa.Column("trigger", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("at", models.types.AwareDateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
        ),
        sa.ForeignKeyConstraint(
            ["applicant_id"],
            ["applicant.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("applicant_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_applicant_event_applicant_id"), ["applicant_id"], unique=False
        )

    op.create_table(
        "one_time_code",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("code_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("contact", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("expires_at", models.types.AwareDateTime(timezone=True), nullable=False),
        sa.Column("used_at", models.types.AwareDateTime(timezone=True), nullable=True),
        sa.Column("created_at", models.types.AwareDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("one_time_code", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_one_time_code_account_id"), ["account_id"], unique=False
        )

    op.create_table(
        "applicant_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("slots", sa.JSON(), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("reminded_on", sa.Date(), nullable=True),
        sa.Column("opened_seq", sa.Integer(), nullable=False),
        sa.Column("closed_seq", sa.Integer(), nullable=True),
        sa.Column("created_at", models.types.AwareDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", models.types.AwareDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["relief_case.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("applicant_request", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_applicant_request_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_applicant_request_status"), ["status"], unique=False)

    op.create_table(
        "case_document",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("slot", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("filename", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("media_type", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("event_seq", sa.Integer(), nullable=False),
        sa.Column("uploaded_by", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("at", models.types.AwareDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["relief_case.id"],
        ),
        sa.ForeignKeyConstraint(
            ["sha256"],
            ["document_blob.sha256"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "slot", "sha256"),
    )
    with op.batch_alter_table("case_document", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_document_case_id"), ["case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("case_document", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_document_case_id"))

    op.drop_table("case_document")
    with op.batch_alter_table("applicant_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_applicant_request_status"))
        batch_op.drop_index(batch_op.f("ix_applicant_request_case_id"))

    op.drop_table("applicant_request")
    with op.batch_alter_table("one_time_code", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_one_time_code_account_id"))

    op.drop_table("one_time_code")
    with op.batch_alter_table("applicant_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_applicant_event_applicant_id"))

    op.drop_table("applicant_event")
    op.drop_table("document_blob")
