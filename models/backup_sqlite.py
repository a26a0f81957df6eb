"""SQLite 备份与恢复 — the copy and the restore of a SQLite database file.

The sqlite3 backup API copies the whole database in one step, inside one read transaction, so
the copy is one consistent moment even while `relief serve` writes (in WAL mode a reader holds
nothing a writer waits for). A copy is trusted once `PRAGMA integrity_check` passes and the
Alembic revision and counts read back from it; a restore goes into the target through SQLite,
in one write transaction.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy.engine import make_url

from models.backup_manifest import (
    BackupError,
    Manifest,
    count_rows,
    held_rows,
    refuse_held,
    sha256_of,
)


def backup_sqlite(url: str, part: Path, *, target: Path, bindir: Path | None, at: str) -> Manifest:
    """Copy the database at `url` into `part` (the staged `target`) and check the copy."""
    path = _sqlite_path(url)
    if not path.is_file():
        raise BackupError(f"数据库文件不存在：{path}", f"no such database file: {path}")
    if target.resolve() in {path.resolve(), *(Path(f"{path}{s}") for s in ("-wal", "-shm"))}:
        raise BackupError(
            f"备份不能写到数据库自己的文件上：{target}", f"the target is the database: {target}"
        )
    try:
        src = _open_sqlite(path, "rw")  # never "rwc": a missing database is not created
        dst = sqlite3.connect(part)
        try:
            # one step (pages=-1): one read transaction, one consistent moment; a writer in
            # another connection goes on (WAL), where a stepwise copy would start over
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal
        finally:
            dst.close()
            src.close()
    except sqlite3.Error as exc:
        raise BackupError(
            f"无法读取数据库 {path}：{exc}", f"could not copy the database {path}: {exc}"
        ) from exc
    revision, counts = _check_sqlite_copy(part)
    return Manifest("sqlite", revision, sha256_of(part), part.stat().st_size, counts, at,
                    client=f"sqlite {sqlite3.sqlite_version}")  # fmt: skip


def restore_sqlite(url: str, source: Path, manifest: Manifest, *, force: bool) -> None:
    """Put the checked backup `source` into the database file at `url`."""
    path = _sqlite_path(url)
    if path.resolve() == source.resolve():
        raise BackupError(f"不能恢复到备份文件自身：{path}", f"the target is the backup: {path}")
    revision, counts = _check_sqlite_copy(source)
    if (revision, counts) != (manifest.revision, manifest.counts):
        raise BackupError(
            f"备份文件的内容与清单不符：{source}",
            f"the backup does not match its manifest: {source}",
        )
    if not path.parent.is_dir():
        raise BackupError(f"目标文件夹不存在：{path.parent}", f"no such folder: {path.parent}")
    created = not path.exists()
    if not created:
        try:
            conn = _open_sqlite(path, "ro")
            try:
                held = held_rows(_sqlite_tables(conn), lambda sql: conn.execute(sql).fetchone()[0])
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise BackupError(
                f"目标文件不是可用的 SQLite 数据库，未改动：{path}（{exc}）",
                f"the target is not a usable SQLite database (left as it was): {path}: {exc}",
            ) from exc
        refuse_held(held, path, force=force)
    try:
        src = _open_sqlite(source, "ro")
        dst = sqlite3.connect(path, timeout=30)
        try:
            # into the target through SQLite, in one write transaction: a target in WAL mode
            # stays consistent with its -wal file, and a failure rolls back
            src.backup(dst)
        finally:
            dst.close()
            src.close()
    except sqlite3.Error as exc:
        if created:
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        raise BackupError(
            f"恢复失败，目标未改变：{exc}", f"the restore failed; the target is unchanged: {exc}"
        ) from exc


def _check_sqlite_copy(path: Path) -> tuple[str, dict[str, int]]:
    """A SQLite file that is whole and a relief database: its revision and counts."""
    not_ours = BackupError(
        f"不是 relief 数据库的备份（无法读出数据库结构版本）：{path}",
        f"not a backup of a relief database (no schema revision): {path}",
    )
    try:
        conn = _open_sqlite(path, "ro")
        try:
            checked = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            if checked != ["ok"]:
                raise BackupError(
                    f"备份文件未通过完整性检查：{'；'.join(checked[:5])}",
                    f"the backup fails PRAGMA integrity_check: {checked[:5]}",
                )
            revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            counts = count_rows(lambda sql: conn.execute(sql).fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise not_ours from exc
    if not revision or not isinstance(revision[0], str):
        raise not_ours
    return revision[0], counts


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("内存数据库不能备份或恢复", "an in-memory database has no file")
    return Path(database).expanduser().absolute()


def _open_sqlite(path: Path, mode: str) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.absolute().as_uri()}?mode={mode}", uri=True, timeout=30)


def _sqlite_tables(conn: sqlite3.Connection) -> list[str]:
    sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    return [row[0] for row in conn.execute(sql)]
