"""PostgreSQL: a read runs without a transaction of its own (models/db.read_only), and the
pooled connection it used is a transaction again for the next writer: a write that fails
leaves nothing, whatever read came before it on the same connection."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from models.db import make_engine, read_only


def test_a_read_is_autocommit_and_the_next_write_on_its_connection_is_a_transaction(
    postgres_url: str,
) -> None:
    db = make_engine(postgres_url, pool_size=1, max_overflow=0)  # one connection for both
    try:
        with db.begin() as conn:
            conn.execute(text("CREATE TABLE probe (id int PRIMARY KEY)"))
        for _ in range(3):  # reads then a failing write, on the one pooled connection
            with read_only(db).connect() as conn:
                assert conn.connection.dbapi_connection.autocommit is True  # type: ignore[union-attr]
                conn.execute(text("SELECT count(*) FROM probe")).scalar_one()
                # nothing open on the server between statements: no BEGIN was sent
                status = conn.connection.dbapi_connection.info.transaction_status  # type: ignore[union-attr]
                assert status.name == "IDLE"
            with pytest.raises(IntegrityError), db.begin() as conn:
                assert conn.connection.dbapi_connection.autocommit is False  # type: ignore[union-attr]
                conn.execute(text("INSERT INTO probe VALUES (1)"))
                conn.execute(text("INSERT INTO probe VALUES (1)"))  # the second one fails
            with db.connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM probe")).scalar_one() == 0
        with db.begin() as conn:  # and a write that succeeds is kept
            conn.execute(text("INSERT INTO probe VALUES (2)"))
        with read_only(db).connect() as conn:
            assert conn.execute(text("SELECT id FROM probe")).scalars().all() == [2]
    finally:
        db.dispose()
