"""`relief backup` and `relief restore` — the configured database to a file and back
(models/backup.py; docs/reliability.md, "Backup and restore").

Every refusal (a missing file, a file that is not a backup, a wrong checksum, a target that
holds data, a backup from newer code, missing PostgreSQL client programs) is one message in
Chinese and English, exit 2, with nothing changed: never a stack trace.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

if TYPE_CHECKING:
    from models.backup import Manifest

T = TypeVar("T")
EXIT_INVALID = 2
PgBindir = Annotated[
    Path | None,
    typer.Option(
        "--pg-bindir",
        metavar="DIR",
        envvar="RELIEF_PG_BINDIR",
        help="PostgreSQL: the folder of pg_dump, pg_restore and psql (default: PATH); or "
        "RELIEF_PG_BINDIR",
        show_default=False,
    ),
]


def backup_command(
    file: Annotated[Path, typer.Argument(help="the backup file to write (and FILE.json beside)")],
    force: Annotated[bool, typer.Option("--force", help="replace an existing backup file")] = False,
    pg_bindir: PgBindir = None,
) -> None:
    """Back up the database to FILE while it is in use: a consistent copy (SQLite) or pg_dump
    (PostgreSQL), checked, with its manifest FILE.json (sha256, schema revision, counts)."""
    from cli import render
    from models.backup import backup
    from models.settings import get_settings

    manifest = _refusals(lambda: backup(get_settings().database_url, file, overwrite=force,
                                        pg_bindir=pg_bindir))  # fmt: skip
    render.line(f"已备份 backed up: {file}（{_summary(manifest)}）")
    render.line(f"清单 manifest: {file}.json  sha256 {manifest.sha256}")


def restore_command(
    file: Annotated[Path, typer.Argument(help="a backup written by relief backup")],
    force: Annotated[
        bool, typer.Option("--force", help="overwrite a target database that holds data")
    ] = False,
    pg_bindir: PgBindir = None,
) -> None:
    """Restore FILE into the database (stop relief serve first). Checks the sha256 and the
    schema revision before anything is touched; a target holding data needs --force; an older
    schema is migrated afterwards."""
    from cli import render
    from models.backup import restore
    from models.db import SCHEMA_HEAD
    from models.settings import get_settings

    url = get_settings().database_url
    manifest = _refusals(lambda: restore(url, file, force=force, pg_bindir=pg_bindir))
    render.line(f"已恢复 restored: {file} → 数据库 database（{_summary(manifest)}）")
    if manifest.revision != SCHEMA_HEAD:
        render.line(f"数据库结构已升级 schema migrated: {manifest.revision} → {SCHEMA_HEAD}")


def _summary(m: Manifest) -> str:
    c = m.counts
    return (
        f"案件 cases {c['cases']}，事件 events {c['events']}，通知书 notices {c['notices']}，"
        f"拨付 payouts {c['payouts']}；结构版本 revision {m.revision}；{m.created_at}"
    )


def _refusals(step: Callable[[], T]) -> T:
    """Run a backup or restore; a refusal or an unreadable file ends the command, exit 2."""
    from cli import render
    from models.backup import BackupError

    try:
        return step()
    except BackupError as exc:
        zh, en = exc.message_zh, exc.message_en
    except OSError as exc:
        name = exc.filename or ""
        zh, en = f"无法读写文件 {name}：{exc.strerror}", f"cannot read or write {name}: {exc}"
    render.line(zh, style="red", out=render.err_console)
    render.line(f"({en})", out=render.err_console)
    raise typer.Exit(EXIT_INVALID)
