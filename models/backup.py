"""备份与恢复 — a backup of the application database that a restore can trust.

The entry points `relief backup` and `relief restore` call; the backends do the copying
(models/backup_sqlite.py, models/backup_postgres.py) and models/backup_manifest.py says what a
backup is. Either way the file is written beside its target under a temporary name, checked by
its backend and only then renamed, so a failure leaves no half-written backup; its JSON sidecar
`<file>.json` (the manifest) follows. A restore checks all of it before it touches the target;
it refuses a target that holds data unless forced and a backup made by newer code, and migrates
an older one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from base.civil_dates import SHANGHAI
from models.backup_manifest import BackupError, Manifest, count_rows, read_backup, sidecar
from models.backup_postgres import backup_postgres, restore_postgres
from models.backup_sqlite import backup_sqlite, restore_sqlite
from models.db import make_engine, migrate, schema_state

__all__ = ["BackupError", "Manifest", "backup", "read_backup", "restore", "sidecar"]


def backup(
    url: str,
    target: Path,
    *,
    overwrite: bool = False,
    pg_bindir: Path | None = None,
    now: datetime | None = None,
) -> Manifest:
    """Back up the database at `url` to `target` (and its manifest beside it)."""
    backend = _backend(url)
    target = target.expanduser().absolute()
    if not target.parent.is_dir():
        raise BackupError(
            f"备份的目标文件夹不存在：{target.parent}", f"no such folder: {target.parent}"
        )
    if target.is_dir():
        raise BackupError(f"备份目标是一个文件夹：{target}", f"the target is a folder: {target}")
    if target.exists() and not overwrite:
        raise BackupError(
            f"备份文件已存在：{target}（加 --force 覆盖）",
            f"the backup file exists: {target} (--force replaces it)",
        )
    at = (now or datetime.now(SHANGHAI)).astimezone(SHANGHAI).isoformat(timespec="seconds")
    make = backup_sqlite if backend == "sqlite" else backup_postgres
    with _staged(target) as part:
        manifest = make(url, part, target=target, bindir=pg_bindir, at=at)
    try:
        _write_atomically(sidecar(target), manifest.to_json())
    except BaseException:
        target.unlink(missing_ok=True)  # a backup without its manifest is no backup
        raise
    return manifest


def restore(
    url: str, source: Path, *, force: bool = False, pg_bindir: Path | None = None
) -> Manifest:
    """Restore the backup `source` into the database at `url`, then migrate it to this code's
    head; returns the backup's manifest. Every check comes before the target is touched."""
    backend = _backend(url)
    source = source.expanduser().absolute()
    manifest = read_backup(source)
    if manifest.backend != backend:
        raise BackupError(
            f"备份来自 {manifest.backend} 数据库，不能恢复到 {backend} 数据库",
            f"a {manifest.backend} backup cannot be restored into a {backend} database",
        )
    if schema_state(manifest.revision) == "ahead":
        from models.db import head_revision

        head = head_revision()
        raise BackupError(
            f"备份的数据库结构（版本 {manifest.revision}）比本程序新（本程序最新为 {head}），"
            "请用与备份时相同或更新版本的 relief 恢复",
            f"the backup's schema ({manifest.revision}) is newer than this code's ({head}): "
            "restore it with the relief that made it, or a newer one",
        )
    if backend == "sqlite":
        restore_sqlite(url, source, manifest, force=force)
    else:
        restore_postgres(url, source, manifest, force=force, bindir=pg_bindir)
    if schema_state(manifest.revision) == "behind":
        migrate(url)
    counts = _counts_at(url)
    if counts != manifest.counts:
        raise BackupError(
            f"恢复后的记录数 {counts} 与清单 {manifest.counts} 不符",
            f"the restored counts {counts} differ from the manifest's {manifest.counts}",
        )
    return manifest


def _backend(url: str) -> str:
    name = make_url(url).get_backend_name()
    if name not in ("sqlite", "postgresql"):
        raise BackupError(f"不支持的数据库：{name}", f"unsupported database: {name}")
    return name


def _counts_at(url: str) -> dict[str, int]:
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return count_rows(lambda sql: conn.execute(text(sql)).scalar_one())
    finally:
        engine.dispose()


@contextlib.contextmanager
def _staged(target: Path) -> Iterator[Path]:
    """A temporary file beside `target` (mode 0600: a backup holds personal data), renamed onto
    it when the block succeeds and removed when it fails: never a half-written target."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    part = Path(name)
    try:
        yield part
        with part.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(part, target)
        _fsync_dir(target.parent)
    finally:
        for suffix in ("", "-journal"):
            Path(f"{part}{suffix}").unlink(missing_ok=True)


def _write_atomically(path: Path, data: bytes) -> None:
    with _staged(path) as part:
        part.write_bytes(data)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
