"""One payout or outbox sweep at a time across workers: the advisory lock and what a second
run does while it is held; a killed holder releases it (PostgreSQL only: SQLite is one
machine and the lock is a no-op there)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import text

from flows.singleton import exclusive
from models.db import make_engine

pytestmark = pytest.mark.postgres


def test_second_holder_is_refused_until_the_first_lets_go(postgres_url: str) -> None:
    a, b = make_engine(postgres_url), make_engine(postgres_url)
    with exclusive(a, "payout") as first:
        with exclusive(b, "payout") as second, exclusive(b, "outbox") as other:
            assert first and not second and other  # one lock per sweep
    with exclusive(b, "payout") as again:
        assert again
    a.dispose()
    b.dispose()


def test_a_killed_holder_releases_the_lock(postgres_url: str) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from flows.singleton import exclusive\n"
            "from models.db import make_engine\n"
            "with exclusive(make_engine(sys.argv[1]), 'payout') as mine:\n"
            "    print(mine, flush=True)\n"
            "    time.sleep(600)\n",
            postgres_url,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "True"
        db = make_engine(postgres_url)
        with exclusive(db, "payout") as mine:
            assert not mine
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(30)
        deadline = time.monotonic() + 30
        while True:
            with exclusive(db, "payout") as mine:
                if mine:
                    break
            assert time.monotonic() < deadline, "the dead holder's lock was never released"
            time.sleep(0.2)
        db.dispose()
    finally:
        holder.kill()
        holder.wait(30)


def test_a_payout_run_while_another_holds_the_lock_does_nothing(
    postgres_url: str, prefect_harness: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.payout import payout_flow
    from models.db import migrate
    from models.settings import get_settings

    migrate(postgres_url)
    monkeypatch.setenv("RELIEF_DATABASE_URL", postgres_url)
    monkeypatch.setenv("RELIEF_TREASURY_ADAPTER", "http")
    monkeypatch.setenv("RELIEF_TREASURY_URL", "http://127.0.0.1:9")  # never called
    get_settings.cache_clear()
    db = make_engine(postgres_url)
    try:
        with exclusive(db, "payout") as mine:
            assert mine
            summary = payout_flow()
        assert summary.busy and summary.considered == 0
        with db.connect() as conn:
            assert conn.execute(text("select count(*) from payout_attempt")).scalar() == 0
    finally:
        get_settings.cache_clear()
        db.dispose()
