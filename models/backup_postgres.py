"""PostgreSQL 备份与恢复 — the dump and the restore of a PostgreSQL database.

`pg_dump --format=custom` runs on a snapshot exported by the transaction that read the counts,
so dump and manifest see the same moment; an archive is trusted once its table of contents and
its Alembic revision read back with `pg_restore`. A restore drops the target's tables and loads
the archive in one psql transaction, so a failure changes nothing.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from models.backup_manifest import (
    BackupError,
    Manifest,
    count_rows,
    held_rows,
    refuse_held,
    sha256_of,
)
from models.backup_pg_clients import (
    CLIENT_HINT,
    check_versions,
    find_tool,
    libpq,
    major_version,
    run_tool,
)
from models.db import make_engine


def backup_postgres(
    url: str, part: Path, *, target: Path, bindir: Path | None, at: str
) -> Manifest:
    """Dump the database at `url` into `part` (the staged `target`) and check the archive."""
    pg_dump = find_tool("pg_dump", bindir)
    pg_restore = find_tool("pg_restore", bindir)
    conninfo, env = libpq(url)
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            client = check_versions(conn, pg_dump, pg_restore)
            # the counts and the dump share one snapshot: the manifest is the dump's moment
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            try:
                revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            except SQLAlchemyError as exc:
                raise BackupError(
                    "这不是 relief 数据库（没有数据库结构版本）",
                    "not a relief database (no alembic_version)",
                ) from exc
            counts = count_rows(lambda sql: conn.execute(text(sql)).scalar_one())
            run_tool([pg_dump, "--format=custom", f"--file={part}", f"--snapshot={snapshot}",
                      "--no-password", f"--dbname={conninfo}"], env, what="pg_dump")  # fmt: skip
    except SQLAlchemyError as exc:
        raise _unreachable(exc) from exc
    finally:
        engine.dispose()
    if _archive_revision(pg_restore, part, env) != revision or not revision:
        raise BackupError(
            "pg_dump 写出的备份读不回数据库结构版本", "the archive does not read back its revision"
        )
    return Manifest("postgresql", revision, sha256_of(part), part.stat().st_size, counts, at,
                    client=f"pg_dump {client}", client_major=client)  # fmt: skip


def restore_postgres(
    url: str, source: Path, manifest: Manifest, *, force: bool, bindir: Path | None
) -> None:
    """Load the checked archive `source` into the database at `url`, in one transaction."""
    pg_restore = find_tool("pg_restore", bindir)
    psql = find_tool("psql", bindir)
    conninfo, env = libpq(url)
    client = major_version(pg_restore)
    if manifest.client_major and manifest.client_major > client:
        raise BackupError(
            f"备份由 pg_dump {manifest.client_major} 写出，pg_restore 是 {client}：{CLIENT_HINT}",
            f"the archive was written by pg_dump {manifest.client_major}, pg_restore is {client}",
        )
    if _archive_revision(pg_restore, source, env) != manifest.revision:
        raise BackupError(
            f"备份文件的内容与清单不符：{source}",
            f"the backup does not match its manifest: {source}",
        )
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            check_versions(conn, pg_restore, psql)
            tables = list(conn.execute(text(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )).scalars())  # fmt: skip
            held = held_rows(tables, lambda sql: conn.execute(text(sql)).scalar_one())
    except SQLAlchemyError as exc:
        raise _unreachable(exc) from exc
    finally:
        engine.dispose()
    refuse_held(held, make_url(url).database or url, force=force)
    with tempfile.TemporaryDirectory(prefix="relief-restore-") as work:
        prelude, script = Path(work, "prelude.sql"), Path(work, "restore.sql")
        # the target's own tables go first, in the restore's transaction: a table of a newer
        # schema than the backup's would otherwise survive and block the migrations after
        prelude.write_text(
            "DO $$ DECLARE t record; BEGIN FOR t IN SELECT tablename FROM pg_tables "
            "WHERE schemaname = current_schema() LOOP "
            "EXECUTE format('DROP TABLE IF EXISTS %I CASCADE', t.tablename); END LOOP; END $$;\n",
            encoding="utf-8",
        )
        run_tool([pg_restore, "--clean", "--if-exists", "--no-owner", "--no-privileges",
                  f"--file={script}", str(source)], env, what="pg_restore")  # fmt: skip
        # one transaction for all of it (psql -1 over both files): a failure changes nothing
        run_tool([psql, "--no-psqlrc", "--quiet", "--single-transaction", "--set=ON_ERROR_STOP=1",
                  "--no-password", f"--dbname={conninfo}", f"--file={prelude}",
                  f"--file={script}"], env, what="psql")  # fmt: skip


def _archive_revision(pg_restore: str, archive: Path, env: dict[str, str]) -> str | None:
    """The alembic_version row read back from a custom-format archive (None if it has none)."""
    run_tool([pg_restore, "--list", str(archive)], env, what="pg_restore")  # is it an archive?
    out = run_tool([pg_restore, "--data-only", "--table=alembic_version", "--file=-",
                    str(archive)], env, what="pg_restore")  # fmt: skip
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("COPY ") and "alembic_version" in line and i + 1 < len(lines):
            value = lines[i + 1].strip()
            return value if value and value != "\\." else None
    return None


def _unreachable(exc: SQLAlchemyError) -> BackupError:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return BackupError(f"无法连接或读取数据库：{first}", f"could not read the database: {first}")
