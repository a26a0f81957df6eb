"""备份清单 — what a backup says about itself, and the row counts a backup and a restore check.

The sidecar `<file>.json` carries the sha256, size, schema revision, row counts and time of its
backup file; a restore trusts a file only once it matches. Both backends count rows the same way
(`COUNTED`) and refuse a restore target that holds data the same way, so those live here too,
below the backend modules, with the one error every part of backup and restore raises.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "relief-backup"
FORMAT_VERSION = 1
COUNTED = {"cases": "relief_case", "events": "case_event", "notices": "notice",
           "payouts": "payout"}  # fmt: skip
SEEDED = {"account": "username <> 'system'"}  # rows the migrations write are not "data"


class BackupError(Exception):
    """A backup or restore refused or failed, said in Chinese and English; nothing changed."""

    def __init__(self, message_zh: str, message_en: str) -> None:
        super().__init__(message_en)
        self.message_zh = message_zh
        self.message_en = message_en


@dataclass(frozen=True)
class Manifest:
    """备份清单 — what the sidecar `<file>.json` says about its backup file."""

    backend: str  # sqlite or postgresql
    revision: str  # the Alembic revision of the copy
    sha256: str
    size: int
    counts: dict[str, int]  # cases, events, notices, payouts
    created_at: str  # ISO 8601, Asia/Shanghai
    client: str = ""  # what wrote it: "sqlite 3.40.1", "pg_dump 15"
    client_major: int | None = None  # pg_dump's major version (an archive needs one as new)
    format: str = field(default=FORMAT)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False, indent=2).encode() + b"\n"

    @classmethod
    def parse(cls, raw: bytes, where: Path) -> Manifest:
        bad = BackupError(
            f"清单文件无效，不是 relief 备份的清单：{where}",
            f"the manifest is not a relief backup's manifest: {where}",
        )
        try:
            data = json.loads(raw)
            manifest = cls(**data)
        except (ValueError, TypeError) as exc:
            raise bad from exc
        counts_ok = isinstance(manifest.counts, dict) and set(manifest.counts) == set(COUNTED)
        if not (
            manifest.format == FORMAT
            and manifest.format_version == FORMAT_VERSION
            and manifest.backend in ("sqlite", "postgresql")
            and isinstance(manifest.revision, str)
            and isinstance(manifest.size, int)
            and re.fullmatch(r"[0-9a-f]{64}", str(manifest.sha256))
            and counts_ok
            and all(isinstance(n, int) for n in manifest.counts.values())
        ):
            raise bad
        return manifest


def sidecar(path: Path) -> Path:
    """The manifest beside a backup file: `<file>.json`."""
    return path.with_name(path.name + ".json")


def read_backup(source: Path) -> Manifest:
    """The manifest of the backup `source`, once its file matches it (size and sha256)."""
    source = source.expanduser().absolute()
    if not source.is_file():
        raise BackupError(f"备份文件不存在：{source}", f"no such backup file: {source}")
    meta = sidecar(source)
    if not meta.is_file():
        raise BackupError(
            f"不是 relief 备份：缺少清单文件 {meta}（relief backup 与备份一同写出）",
            f"not a relief backup: its manifest {meta} is missing",
        )
    manifest = Manifest.parse(meta.read_bytes(), meta)
    if source.stat().st_size != manifest.size or sha256_of(source) != manifest.sha256:
        raise BackupError(
            f"备份文件与清单的校验和（sha256）不符，文件已损坏或被改动：{source}",
            f"the backup's sha256 does not match its manifest (damaged or altered): {source}",
        )
    return manifest


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def count_rows(scalar: Callable[[str], Any]) -> dict[str, int]:
    """The manifest's counts (`COUNTED`), each read through `scalar(sql)`."""
    return {key: int(scalar(f"SELECT count(*) FROM {table}")) for key, table in COUNTED.items()}


def held_rows(tables: list[str], scalar: Callable[[str], Any]) -> dict[str, int]:
    """Rows per table the target holds, beyond what the migrations write themselves."""
    held = {}
    for table in tables:
        if table == "alembic_version":
            continue
        where = f" WHERE {SEEDED[table]}" if table in SEEDED else ""
        n = int(scalar(f'SELECT count(*) FROM "{table}"{where}'))
        if n:
            held[table] = n
    return held


def refuse_held(held: dict[str, int], where: object, *, force: bool) -> None:
    """Refuse a restore into a target that holds data, unless forced."""
    if held and not force:
        some = "，".join(f"{t} {n} 行" for t, n in sorted(held.items())[:6])
        more = "…" if len(held) > 6 else ""
        raise BackupError(
            f"目标数据库 {where} 已有数据（{some}{more}），未改动；确要覆盖请加 --force",
            f"the target {where} holds data ({len(held)} tables); --force overwrites it",
        )
