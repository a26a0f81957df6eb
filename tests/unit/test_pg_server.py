"""The throwaway PostgreSQL server works, and CI cannot silently skip it.

These guard the test infrastructure itself: if they break, every PostgreSQL test downstream
is either not running or not isolated.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.postgres
def test_real_postgresql_roundtrip(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            version = conn.execute(text("select version()")).scalar_one()
            assert "PostgreSQL" in version
            conn.execute(text("create table relief_probe (id serial primary key, note text)"))
            conn.execute(
                text("insert into relief_probe (note) values (:a), (:b)"),
                {"a": "东政发〔2022〕8号", "b": "second"},
            )
        with engine.connect() as conn:
            rows = conn.execute(text("select note from relief_probe order by id")).scalars().all()
        assert rows == ["东政发〔2022〕8号", "second"]
    finally:
        engine.dispose()


_urls_seen: list[str] = []


@pytest.mark.postgres
@pytest.mark.parametrize("run", [1, 2])
def test_each_test_gets_its_own_database(postgres_url: str, run: int) -> None:
    # Whichever run goes second must see a different URL and none of the first run's table.
    assert postgres_url not in _urls_seen
    _urls_seen.append(postgres_url)
    engine = create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(text("select current_database()")).scalar_one() in postgres_url
            assert conn.execute(text("select to_regclass('left_by_a_test')")).scalar() is None
            conn.execute(text("create table left_by_a_test (run int)"))
            conn.execute(text("insert into left_by_a_test values (:run)"), {"run": run})
    finally:
        engine.dispose()


def _pytest_without_binaries(extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run one PostgreSQL test in a child pytest whose binary search finds nothing.

    A child process because the skip-or-fail decision is made from the environment when the
    session fixture starts; this exercises the real fixture rather than a copy of its logic.
    """
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "RELIEF_REQUIRE_POSTGRES"}}
    env.update({"RELIEF_PG_BINDIR": "/nonexistent/relief-pg-bindir", **extra_env})
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:hypothesispytest",  # not needed here; its import alone costs ~1.2 s
            "-q",
            f"{Path(__file__).relative_to(REPO_ROOT)}::test_real_postgresql_roundtrip",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_missing_postgres_is_a_skip_locally() -> None:
    result = _pytest_without_binaries({})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout
    assert "PostgreSQL binaries not found" in result.stdout


@pytest.mark.parametrize("env", [{"CI": "true"}, {"RELIEF_REQUIRE_POSTGRES": "1"}])
def test_missing_postgres_is_a_failure_in_ci(env: dict[str, str]) -> None:
    result = _pytest_without_binaries(env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 error" in result.stdout
    assert "failure, not a skip" in result.stdout
