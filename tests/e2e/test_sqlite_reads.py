"""SQLite: reads take no write lock. A read session held open while the engine writes in the
same thread does not hang (it did for 30 s, then "database is locked"), and the API answers
reads while another transaction holds the write lock."""

from __future__ import annotations

import threading
import time

import scenarios as S
from conftest import FIXED_NOW, Accounts
from drive import submit
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlmodel import Session

from api.main import create_app
from models.settings import Settings
from models.tables import Case
from states.engine import CaseEngine


def test_a_read_held_open_does_not_block_a_write(sqlite_url: str) -> None:
    from conftest import make_case_engine

    engine: CaseEngine = make_case_engine(sqlite_url)
    submit(engine, S.application("CRED-01"))
    with Session(engine.read_db) as reading:
        before = reading.execute(select(Case.state)).scalars().all()
        started = time.monotonic()
        submit(engine, S.application("LOAN-01"))  # the same thread writes meanwhile
        assert time.monotonic() - started < 5
        assert before == ["under_review"]
    engine.db.dispose()


def test_the_api_reads_while_a_writer_holds_the_lock(api_db: Accounts) -> None:
    from conftest import make_case_engine

    engine = make_case_engine(api_db.url)
    submit(engine, S.application("CRED-01"))
    client = TestClient(create_app(Settings(database_url=api_db.url, now=FIXED_NOW)))
    token = {"Authorization": f"Bearer {api_db.tokens['rev_credit']}"}
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with engine.db.connect() as conn:  # BEGIN IMMEDIATE: the write lock, held
            conn.begin()
            conn.execute(text("UPDATE relief_case SET updated_at = updated_at"))
            holding.set()
            release.wait(20)
            conn.rollback()

    t = threading.Thread(target=writer)
    t.start()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        r = client.get("/api/tasks", headers=token)
        assert r.status_code == 200 and len(r.json()) == 1
        assert time.monotonic() - started < 2, "a read waited for the writer"
    finally:
        release.set()
        t.join(20)
    engine.db.dispose()
