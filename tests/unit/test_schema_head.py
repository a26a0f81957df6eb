"""SCHEMA_HEAD is what lets a command skip Alembic; it must name the newest migration."""

from models.db import SCHEMA_HEAD, head_revision


def test_schema_head_is_the_newest_migration() -> None:
    assert SCHEMA_HEAD == head_revision()
