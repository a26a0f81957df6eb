"""数据库 — engines and schema: a SQLite file by default, PostgreSQL by URL.

SQLite write transactions begin IMMEDIATE so that two writers serialise instead of failing
late, and reads (read_only) begin DEFERRED so that they never wait for a writer; the schema is
built by Alembic, never by create_all, so both databases match. Alembic is imported only when
a database is behind: a command on a current database starts without it (relief status ≤ 0.5 s).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).parent / "migrations"
SCHEMA_HEAD = "0012"  # the newest migration; tests/unit/test_schema_head.py keeps it honest


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`, with SQLite set up for concurrent writers.

    JSON columns go through orjson: a case's assessment (~5 KB with its reasons) is decoded
    at every step, and the standard library's json took a sixth of a batch's time
    (bench/throughput.py profile).
    """
    parsed = make_url(url)
    kwargs.setdefault("json_serializer", _json_dumps)
    kwargs.setdefault("json_deserializer", orjson.loads)
    if parsed.get_backend_name() != "sqlite":
        if "poolclass" not in kwargs:
            from models.settings import get_settings

            # a steady pool: connections beyond it would be opened and closed per request (a
            # new PostgreSQL backend each time), which under fifty reviewers cost more than
            # the reviews (docs/benchmarks.md); `api_threads` keeps a process's demand within it
            size = get_settings().db_pool_size
            kwargs.setdefault("pool_size", size)
            kwargs.setdefault("max_overflow", size)
        return create_engine(url, pool_pre_ping=True, **kwargs)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" below start transactions
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # a writer takes the write lock at once (two writers queue instead of failing late); a
        # reader on read_only(engine) takes none
        read = conn.get_execution_options().get("relief_read_only")
        conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")

    return engine


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@functools.cache
def _scripts() -> ScriptDirectory:
    """This code's migrations, read once per process: they change only with the code, and
    reading them compiles every migration file (~10 ms, on every /healthz before)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS))


def head_revision() -> str | None:
    """The newest migration this code knows (what `relief db upgrade` brings a database to)."""
    return _scripts().get_current_head()


def schema_state(database_revision: str | None) -> str:
    """`current`; `behind` (the database needs `relief db upgrade` before this code can use it);
    or `ahead` (the database was upgraded for newer code: replace this process)."""
    from alembic.util import CommandError

    script = _scripts()
    if database_revision == script.get_current_head():
        return "current"
    if database_revision is None:
        return "behind"
    try:
        script.get_revision(database_revision)
    except CommandError:
        return "ahead"
    return "behind"


def database_revision(engine: Engine) -> str | None:
    """The migration the database is at; None for an empty database."""
    try:
        with read_only(engine).connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (OperationalError, ProgrammingError):  # no alembic_version table yet
        return None


def migrate(url: str) -> None:
    """Bring the database at `url` to the newest schema (idempotent). A database already at
    SCHEMA_HEAD costs one read; Alembic runs (and is imported) only when there is work."""
    probe = make_engine(url, poolclass=NullPool)  # not engine_for's: a file replaced since
    try:  # (relief demo, a test's fresh file) must be read anew, not through an old connection
        if database_revision(probe) == SCHEMA_HEAD:
            return
    finally:
        probe.dispose()
    from alembic import command

    command.upgrade(alembic_config(url), "head")


@functools.cache
def engine_for(url: str) -> Engine:
    """One engine per URL per process."""
    return make_engine(url)


def insert_if_absent(
    session: Any, model: Any, values: dict[str, Any] | list[dict[str, Any]]
) -> None:
    """INSERT … ON CONFLICT DO NOTHING on either database (rows made on first use); a list of
    rows (all with the same columns) is one executemany."""
    rows = [values] if isinstance(values, dict) else values
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    session.execute(insert(model.__table__).on_conflict_do_nothing(), rows)


def read_only(engine: Engine) -> Engine:
    """The same engine for reading: on SQLite its transactions begin DEFERRED, so a read takes
    no write lock and never waits behind a writer (WAL lets readers and one writer meet).

    On PostgreSQL a read runs without a transaction of its own (autocommit): under READ
    COMMITTED each statement takes its own snapshot either way, so what a read sees is the
    same, and it saves the BEGIN and the ROLLBACK, two round trips of each read (under load a
    round trip waits for the server to be scheduled; docs/reliability.md, "Load")."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(relief_read_only=True)
    return engine.execution_options(relief_read_only=True, isolation_level="AUTOCOMMIT")
