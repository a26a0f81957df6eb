"""A short opening day in the suite: bench/load.py's driver against two real API processes.

Applicants filing (every fifth filing twice at once with one key), reviewers deciding and the
public looking cases up, for a few seconds, on PostgreSQL and on SQLite. Asserted: no 5xx, no
dropped connection, no answer but the expected ones, and the database's checks — one set of
cases per key, both copies answered alike, every answered case stored, events gap-free and
chained to the case's state, no task decided twice, no document number twice. Not a speed:
bench/load.py measures that (docs/reliability.md, "Load").
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from models.db import migrate

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import load  # noqa: E402  (bench/load.py: the same driver the benchmark runs)
from benchlib import relief_server  # noqa: E402

SECONDS = 8
CLIENTS = 20
EXPECTED = {
    "POST /api/applications": {201},
    "GET /api/cases/{no}": {200},
    "GET /api/my/cases": {200},
    "GET /api/tasks": {200},
    "POST /api/tasks/{id}/review": {200, 409},  # two reviewers on one task: one wins
    "GET /api/status/{no}": {200},
}


@pytest.fixture(params=["postgresql", "sqlite"])
def day_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = (
        request.getfixturevalue("postgres_url")
        if request.param == "postgresql"
        else f"sqlite:///{tmp_path}/day.db"
    )
    migrate(url)
    return url


def test_a_short_opening_day_loses_nothing_and_does_nothing_twice(
    day_db: str, tmp_path: Path
) -> None:
    district = load.prepare(day_db, cases=200, applicants=CLIENTS, reviewers=CLIENTS)
    with relief_server(day_db, tmp_path, workers=2) as base:
        tally = asyncio.run(load.run_day(base, district, clients=CLIENTS, seconds=SECONDS))
    summary = tally.summary()

    assert summary["server_errors"] == 0, summary["unexpected"]
    assert summary["transport_errors"] == {}
    for route, allowed in EXPECTED.items():
        statuses = summary["routes"].get(route, {}).get("statuses", {})
        assert statuses, f"{route}: no request answered"
        assert set(statuses) <= allowed, (route, statuses, summary["unexpected"])
    doubled = [key for key, answers in tally.filings.items() if len(answers) == 2]
    assert len(doubled) >= CLIENTS * 2 // 5, "every applicant's first filing is sent twice"
    assert load.problems(day_db, tally) == []


def test_the_checks_see_a_lost_case_and_a_key_answered_twice(sqlite_url: str) -> None:
    """The checker itself: answers the database does not back are reported, not passed."""
    tally = load.Tally()
    tally.filings["k1"] = [("东政申〔2022〕99999号",)]
    tally.filings["k2"] = [("A",), ("B",)]
    found = load.problems(sqlite_url, tally)
    assert any("not stored" in p for p in found), found
    assert any("different answers" in p for p in found), found
    assert any("request records" in p for p in found), found
