"""Two API processes on one PostgreSQL database enforce one guessing limit: wrong passwords
against one account, alternating between the processes, lock it at the same count as on one
process; the same for wrong query codes against one case; failures sent to both at once are
all counted."""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import scenarios as S
import staff
from conftest import make_case_engine
from processes import Proc, free_port
from sqlmodel import Session

from api.security import create_account
from models.db import migrate
from models.tables import AuthThrottle, Case

RELIEF = [sys.executable, "-c", "from cli.main import app; app()"]
LOCK_AFTER = 10  # the default login_lock_after and status_case_lock_after


def counted(engine: object, scope: str, key: str) -> tuple[int, bool]:
    with Session(engine.db) as s:  # type: ignore[attr-defined]
        row = s.get(AuthThrottle, (scope, key))
        return (row.failures, row.locked_at is not None) if row else (0, False)


def login(url: str, password: str) -> str:
    with httpx.Client(base_url=url, timeout=30, follow_redirects=True) as web:
        [token] = re.findall(r'name="csrf_token" value="([^"]+)"', web.get("/login").text)
        r = web.post("/login", data={"username": "rev", "password": password, "csrf_token": token})
        flashes = re.findall(r'role="status">([^<]*)<', r.text)
        return flashes[0] if flashes else f"signed in at {r.url.path}"


@contextmanager
def two_apis(env: dict[str, str], logdir: Path) -> Iterator[list[str]]:
    """Two `relief serve --no-flows` processes on `env`'s database; their URLs once both
    answer."""
    ports = [free_port(), free_port()]
    apis = [
        Proc(f"api-{i}", [*RELIEF, "serve", "--no-flows", "--port", str(p)], env=env, logdir=logdir)
        for i, p in enumerate(ports)
    ]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        deadline = time.monotonic() + 120
        for url in urls:
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass  # not listening yet: look again
                assert time.monotonic() < deadline, "\n".join(a.tail() for a in apis)
                time.sleep(0.3)
        yield urls
    finally:
        for api in apis:
            api.stop()


@pytest.mark.postgres
def test_two_processes_share_one_limit(postgres_url: str, tmp_path: Path) -> None:
    migrate(postgres_url)
    engine = make_case_engine(postgres_url)
    create_account(
        engine.db, username="rev", role="reviewer", bureau="samr", section="credit",
        now=engine.clock.now(), password="pw-rev",
    )  # fmt: skip
    [case] = engine.submit(S.application("CRED-01"), actor=staff.operator(engine))
    with Session(engine.db) as s:
        code = s.get(Case, case.case_id).query_code  # type: ignore[union-attr]
    env = {
        **os.environ,
        "RELIEF_DATABASE_URL": postgres_url,
        # every try is checked (no waits), so the count is all that decides
        "RELIEF_LOGIN_BACKOFF_AFTER": "1000",
        "RELIEF_STATUS_BACKOFF_AFTER": "1000",
        "RELIEF_ADDRESS_LOCK_AFTER": "100000",
    }
    with two_apis(env, tmp_path) as urls:
        # wrong passwords, alternating: counted once each, locked at the tenth, on both
        for n in range(1, LOCK_AFTER + 1):
            assert login(urls[n % 2], "guess") == "用户名或密码不正确"
            assert counted(engine, "login_account", "rev") == (n, n == LOCK_AFTER)
        for url in urls:
            assert "锁定" in login(url, "pw-rev")  # the right password, refused on both

        # wrong query codes for one case, alternating: the same
        for n in range(1, LOCK_AFTER + 1):
            r = httpx.get(f"{urls[n % 2]}/api/status/{case.case_no}", params={"code": "0000000000"})
            assert r.status_code == 404
            assert counted(engine, "status_case", case.case_no) == (n, n == LOCK_AFTER)
        for url in urls:
            r = httpx.get(f"{url}/api/status/{case.case_no}", params={"code": code})
            assert r.status_code == 429 and "锁定" in r.json()["message_zh"]

        # lookups sent to both processes at the same moment: no more than the limit get through
        barrier = threading.Barrier(12)
        answers: list[int] = []

        def guess(url: str) -> None:
            barrier.wait()
            r = httpx.get(f"{url}/api/status/DC-2099-000001", params={"code": "0000000000"})
            answers.append(r.status_code)

        threads = [threading.Thread(target=guess, args=(urls[i % 2],)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(answers) == 12 and set(answers) <= {404, 429}, answers
        failures, locked = counted(engine, "status_case", "DC-2099-000001")
        # each attempt was counted before its code was compared: exactly the limit were compared
        assert failures == answers.count(404) == LOCK_AFTER and locked, answers
    engine.db.dispose()


@pytest.mark.postgres
def test_right_codes_sent_at_once_from_one_address_are_all_answered(
    postgres_url: str, tmp_path: Path
) -> None:
    """Forty lookups with the right code at the same moment, from one address (a service
    counter, a proxy), half to each process, on the default limits (back-off after 5): none is
    taken for a guess. Before, each lookup counted as a failure until it was refunded, so the
    ones in flight put the address into back-off: 981 of 988 lookups answered 429 in
    bench/load.py."""
    migrate(postgres_url)
    engine = make_case_engine(postgres_url)
    [case] = engine.submit(S.application("CRED-01"), actor=staff.operator(engine))
    with Session(engine.db) as s:
        code = s.get(Case, case.case_id).query_code  # type: ignore[union-attr]
    env = {**os.environ, "RELIEF_DATABASE_URL": postgres_url}
    with two_apis(env, tmp_path) as urls:
        barrier = threading.Barrier(40)
        answers: list[int] = []

        def look(url: str) -> None:
            barrier.wait()
            r = httpx.get(f"{url}/api/status/{case.case_no}", params={"code": code}, timeout=60)
            answers.append(r.status_code)

        threads = [threading.Thread(target=look, args=(urls[i % 2],)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert answers == [200] * 40, sorted(answers)
        assert counted(engine, "status_address", "127.0.0.1") == (0, False)
        assert counted(engine, "status_case", case.case_no or "") == (0, False)
        wrong = httpx.get(f"{urls[0]}/api/status/{case.case_no}", params={"code": "0000000000"})
        assert wrong.status_code == 404  # a wrong code still counts, on both keys
        assert counted(engine, "status_address", "127.0.0.1") == (1, False)
        assert counted(engine, "status_case", case.case_no or "") == (1, False)
    engine.db.dispose()
