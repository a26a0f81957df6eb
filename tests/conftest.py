"""Shared pytest fixtures. Each block below is self-contained; add new blocks with a header."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import settings

# `tests/` is not a package, so pytest puts it on sys.path for this conftest (rootdir-based
# "prepend" import mode). If `tests/__init__.py` is ever added, import `tests.pg_server`.
from pg_server import PostgresBinariesNotFound, PostgresServer

# Hypothesis checks behaviour, not speed: its default 200 ms deadline per example fails
# property tests on a loaded 2-core machine (seen in CI). Speed lives in bench/.
settings.register_profile("relief", deadline=None)
settings.load_profile("relief")

# --- PostgreSQL -----------------------------------------------------------------------------
# One throwaway server per pytest session (see tests/pg_server.py), one fresh database per
# test. On a developer machine without PostgreSQL the PostgreSQL tests are skipped; in CI they
# must never be skipped silently, so a missing server is a failure there.

POSTGRES_SKIP_MESSAGE = (
    "PostgreSQL binaries not found; install postgresql (Debian) to run the PostgreSQL half "
    "of the suite"
)


def _postgres_required() -> bool:
    """True in CI (``CI=true``, as set by common CI systems) or if explicitly requested."""
    return (
        os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}
        or os.environ.get("RELIEF_REQUIRE_POSTGRES", "").strip() == "1"
    )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's running PostgreSQL server; skipped (or failed in CI) if unavailable."""
    try:
        server = PostgresServer.start()
    except PostgresBinariesNotFound as exc:
        if _postgres_required():
            pytest.fail(
                f"{POSTGRES_SKIP_MESSAGE}. PostgreSQL is required here "
                f"(CI=true or RELIEF_REQUIRE_POSTGRES=1), so this is a failure, not a skip. "
                f"Details: {exc}",
                pytrace=False,
            )
        pytest.skip(POSTGRES_SKIP_MESSAGE)
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """SQLAlchemy URL of a new, empty database just for this test; dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    yield postgres_server.create_database(name)
    postgres_server.drop_database(name)


# --- end PostgreSQL -------------------------------------------------------------------------


# --- application database and engine --------------------------------------------------------
# `db_url` runs a test once on a fresh SQLite file and once on a fresh PostgreSQL database,
# each built by the Alembic migrations (never create_all), so both schemas are the real one.

from datetime import datetime  # noqa: E402

from base.civil_dates import SHANGHAI  # noqa: E402
from base.clock import Clock  # noqa: E402
from models.db import make_engine, migrate  # noqa: E402
from models.settings import Settings  # noqa: E402
from notifications.issuer import engine_with_notices  # noqa: E402
from states.engine import CaseEngine  # noqa: E402

FIXED_NOW = datetime(2022, 12, 30, 10, 0, tzinfo=SHANGHAI)  # in the window, after every filing


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """A migrated, empty application database: SQLite file or PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/relief.db"
    else:
        url = request.getfixturevalue("postgres_url")
    migrate(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: object) -> str:
    url = f"sqlite:///{tmp_path}/relief.db"
    migrate(url)
    return url


def make_case_engine(url: str, now: datetime = FIXED_NOW) -> CaseEngine:
    return engine_with_notices(
        make_engine(url), settings=Settings(database_url=url), clock=Clock(now)
    )


@pytest.fixture
def engine(db_url: str) -> Iterator[CaseEngine]:
    eng = make_case_engine(db_url)
    yield eng
    eng.db.dispose()


# --- end application database ---------------------------------------------------------------


# --- Prefect ---------------------------------------------------------------------------------
# One Prefect test harness (a real local Prefect server) for the whole session, with heartbeats
# off: flows run for real, and Prefect's start-up cost is paid once (PREFECT-NOTES.md).

import tempfile  # noqa: E402

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="relief-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[str]:
    """Yields the harness's API URL, so subprocesses can use the same server."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    from flows.common import heartbeats_off

    with prefect_test_harness(server_startup_timeout=120), heartbeats_off():
        yield str(PREFECT_API_URL.value())


@pytest.fixture
def flow_db(
    db_url: str, prefect_harness: str, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> Iterator[str]:
    """Point the flows' settings at this test's database (and a fixed clock)."""
    from models.settings import get_settings

    monkeypatch.setenv("RELIEF_DATABASE_URL", db_url)
    monkeypatch.setenv("RELIEF_NOW", FIXED_NOW.isoformat())
    monkeypatch.setenv("RELIEF_PAYMENT_DIR", f"{tmp_path}/payments")
    monkeypatch.setenv("RELIEF_PAYOUT_RETRY_SECONDS", "0")
    get_settings.cache_clear()
    yield db_url
    get_settings.cache_clear()


# --- end Prefect -----------------------------------------------------------------------------


# --- API ------------------------------------------------------------------------------------
# The app on a real SQLite file with accounts of every kind; a real uvicorn server when a test
# needs HTTP from another process or a browser.

from dataclasses import dataclass  # noqa: E402


@dataclass
class Accounts:
    tokens: dict[str, str]
    url: str


ACCOUNT_SPECS = {
    "operator": {"role": "operator"},
    "rev_credit": {"role": "reviewer", "bureau": "samr", "section": "credit"},
    "rev_credit2": {"role": "reviewer", "bureau": "samr", "section": "credit"},
    "rev_food": {"role": "reviewer", "bureau": "samr", "section": "food_production"},
    "rev_finance": {"role": "reviewer", "bureau": "finance_office", "section": "fin_dev"},
    "applicant_a": {"role": "applicant", "uscc": "91110101MA00XY6089"},
    "applicant_b": {"role": "applicant", "uscc": "91110101MA00JR107G"},
}


def make_accounts(url: str) -> dict[str, str]:
    from api.security import create_account

    engine = make_case_engine(url)
    tokens = {}
    for name, spec in ACCOUNT_SPECS.items():
        _, token = create_account(
            engine.db, username=name, now=FIXED_NOW, password=f"pw-{name}", **spec
        )
        tokens[name] = token
    return tokens


@pytest.fixture
def api_db(sqlite_url: str) -> Accounts:
    return Accounts(tokens=make_accounts(sqlite_url), url=sqlite_url)


class LiveServer:
    """uvicorn serving create_app() on 127.0.0.1 in a thread."""

    def __init__(self, app: object) -> None:
        import socket
        import threading

        import uvicorn

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )  # type: ignore[arg-type]
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        import time

        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


# --- end API ---------------------------------------------------------------------------------


# --- browser --------------------------------------------------------------------------------
# Debian's chromium driven by Playwright (never a browser download), one per test module.

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

SHOTS = Path(__file__).parents[1] / "test-output" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(
            "chromium is not installed (Debian: apt-get install chromium); "
            "python tools/test.py installs it"
        )
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


# --- end browser ----------------------------------------------------------------------------
