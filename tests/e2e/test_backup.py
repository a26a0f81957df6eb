"""`relief backup` and `relief restore`, proven by restoring into a fresh database, on SQLite and
PostgreSQL: casework built through the engine (a paid subsidy, a notice delivered to a real
SMTP server, an incident), backed up while another thread keeps filing, restored into a new
SQLite file or a new PostgreSQL database and compared row by row. Hostile and careless input
(truncated, random, a checksum edited, a non-empty target, a newer schema, missing or old
PostgreSQL client programs) is refused with a Chinese message, exit 2, the target unchanged."""

from __future__ import annotations

import hashlib
import itertools
import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import scenarios as S
from aiosmtpd.controller import Controller
from conftest import FIXED_NOW, make_case_engine
from drive import run_to_the_end, submit
from pg_server import find_bindir
from smtp_sink import Sink
from sqlalchemy import text
from sqlalchemy.pool import NullPool
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from cli.main import app
from models.backup import BackupError, backup, restore, sidecar
from models.db import (
    SCHEMA_HEAD,
    alembic_config,
    database_revision,
    make_engine,
    migrate,
    read_only,
)
from models.settings import Settings, get_settings
from models.tables import Case, CaseEvent, Incident, Notice, NoticeDelivery, Payout
from notifications.delivery import deliver

runner = CliRunner()
BINDIR = find_bindir()  # the suite's PostgreSQL programs, found as tests/pg_server.py does


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def fresh(
    request: pytest.FixtureRequest, db_url: str, tmp_path: Path
) -> Iterator[Callable[[], str]]:
    """Makes an empty database of db_url's kind: a new SQLite file in a folder whose name has
    spaces and Chinese, or a new database (CREATE DATABASE) on the suite's PostgreSQL server."""
    made: list[str] = []
    server = request.getfixturevalue("postgres_server") if db_url.startswith("postgres") else None

    def make() -> str:
        made.append(f"restore_{uuid.uuid4().hex[:12]}")
        if server is not None:
            return str(server.create_database(made[-1]))
        folder = tmp_path / f"恢复 目标 {len(made)}"
        folder.mkdir()
        return f"sqlite:///{folder}/新 库.db"

    yield make
    if server is not None:
        for name in made:
            server.drop_database(name)


def build_casework(url: str) -> dict[str, str]:
    """A paid subsidy, a granted and a refused case, a notice delivered over SMTP and one whose
    delivery failed into an incident. Returns the case numbers by role."""
    engine = make_case_engine(url)
    paid = run_to_the_end(engine, S.application("RENT-07"), approve=True)
    refused = run_to_the_end(engine, S.application("LOAN-02"), approve=False)
    mailed, failing = S.application("CRED-01"), S.application("RENT-01")
    for data in (mailed, failing):
        data["applicant"]["email"] = "owner@example.com"
    [delivered] = submit(engine, mailed)
    [broken] = submit(engine, failing)
    port = free_port()
    settings = Settings(database_url=url, now=FIXED_NOW, smtp_host="127.0.0.1", smtp_port=port,
                        notice_max_attempts=1, notice_retry_seconds=0)  # fmt: skip
    with Session(engine.db) as s:
        first = {c: s.exec(select(Notice.id).where(col(Notice.case_id) == c)).first()
                 for c in (delivered.case_id, broken.case_id)}  # fmt: skip
    assert deliver(engine.db, first[broken.case_id], settings, FIXED_NOW) == "failed"  # no SMTP
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        assert deliver(engine.db, first[delivered.case_id], settings, FIXED_NOW) == "delivered"
    finally:
        controller.stop()
    assert len(sink.messages) == 1
    with Session(engine.db) as s:
        numbers = {c.id: c.case_no for c in s.exec(select(Case))}
        assert s.exec(select(Incident)).one().case_id == broken.case_id
        assert s.exec(select(Payout)).one().status == "paid"
    engine.db.dispose()
    ids = {"paid": paid, "refused": refused, "delivered": delivered.case_id,
           "incident": broken.case_id}  # fmt: skip
    return {role: str(numbers[i]) for role, i in ids.items()}


def contents(url: str, cases: set[str] | None = None) -> dict[str, Any]:
    """Everything the comparison looks at, keyed by what survives a restore (case numbers,
    notice and payout keys); only the cases in `cases` if given."""
    engine = make_engine(url, poolclass=NullPool)
    try:
        with Session(read_only(engine)) as s:
            no = {c.id: c.case_no for c in s.exec(select(Case))}
            keep = (lambda case_id: True) if cases is None else (lambda c: no.get(c) in cases)
            notices = [n for n in s.exec(select(Notice)) if keep(n.case_id)]
            key = {n.id: n.idempotency_key for n in notices}
            out = {
                "cases": {c.case_no: (c.case_type, c.state, c.version, c.decision,
                                      c.amount_ceiling, c.amount_granted)
                          for c in s.exec(select(Case)) if keep(c.id)},
                "events": sorted((no[e.case_id], e.seq, e.from_state, e.to_state, e.trigger,
                                  e.actor) for e in s.exec(select(CaseEvent)) if keep(e.case_id)),
                "notices": {n.idempotency_key: (no[n.case_id], n.kind, n.content_hash, n.status,
                                                n.doc_number) for n in notices},
                "deliveries": sorted((key[d.notice_id], d.channel, d.attempt_no, d.status,
                                      d.receipt) for d in s.exec(select(NoticeDelivery))
                                     if d.notice_id in key),
                "payouts": {p.idempotency_key: (no[p.case_id], p.amount, p.status, p.external_ref)
                            for p in s.exec(select(Payout)) if keep(p.case_id)},
                "incidents": sorted((i.ref, i.kind, i.status, no.get(i.case_id))
                                    for i in s.exec(select(Incident)) if keep(i.case_id)),
            }  # fmt: skip
        out["revision"] = database_revision(engine)
        return out
    finally:
        engine.dispose()


def whole(found: dict[str, Any]) -> None:
    """Every case has all its events: seq 1..n, each starting where the last ended, the last
    ending in the case's state (a copy taken mid-transaction would break this)."""
    by_case: dict[str, list[Any]] = {}
    for event in found["events"]:
        by_case.setdefault(event[0], []).append(event)
    assert set(by_case) == set(found["cases"])
    for case_no, events in by_case.items():
        assert [e[1] for e in events] == list(range(1, len(events) + 1)), case_no
        assert events[0][2] == "draft" and all(
            a[3] == b[2] for a, b in itertools.pairwise(events)
        ), case_no
        assert events[-1][3] == found["cases"][case_no][1], case_no


class Filer(threading.Thread):
    """Keeps filing applications through its own engine until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.filed: list[str] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        engine = make_case_engine(self.url)
        try:
            n = 0
            while not self.stop.is_set():
                data = S.application(("CRED-01", "LOAN-01", "RENT-01")[n % 3])
                for result in submit(engine, data):
                    with Session(engine.db) as s:
                        self.filed.append(str(s.get(Case, result.case_id).case_no))  # type: ignore[union-attr]
                n += 1
        except BaseException as exc:  # surfaced by the test
            self.error = exc
        finally:
            engine.db.dispose()

    def wait_for(self, n: int) -> None:
        for _ in range(600):
            if len(self.filed) >= n or self.error or not self.is_alive():
                break
            self.stop.wait(0.05)
        assert self.error is None and len(self.filed) >= n


def test_a_backup_taken_while_filing_restores_into_a_fresh_database(
    db_url: str, fresh: Callable[[], str], tmp_path: Path
) -> None:
    roles = build_casework(db_url)
    filer = Filer(db_url)
    filer.start()
    try:
        filer.wait_for(2)
        before = set(filer.filed)
        manifest = backup(db_url, tmp_path / "relief.backup", pg_bindir=BINDIR)
        filer.wait_for(len(filer.filed) + 2)  # and it goes on filing
    finally:
        filer.stop.set()
        filer.join(60)
    assert filer.error is None
    target = fresh()
    restored = restore(target, tmp_path / "relief.backup", pg_bindir=BINDIR)
    assert restored == manifest
    got = contents(target)
    whole(got)
    assert set(roles.values()) | before <= set(got["cases"])  # nothing committed before is lost
    assert len(got["cases"]) < len(contents(db_url)["cases"])  # filing went on after the copy
    assert got == contents(db_url, set(got["cases"]))  # each copied case exactly as it is
    assert got["revision"] == manifest.revision == SCHEMA_HEAD
    assert {k: len(got[t]) for k, t in [("cases", "cases"), ("events", "events"),
            ("notices", "notices"), ("payouts", "payouts")]} == manifest.counts  # fmt: skip
    paid = got["payouts"][f"payout:{roles['paid']}"]
    assert paid[0] == roles["paid"] and paid[2] == "paid"
    assert got["cases"][roles["paid"]][1] == "closed"
    assert any(d[3] == "delivered" and d[4] for d in got["deliveries"])  # with its receipt
    assert [i[3] for i in got["incidents"]] == [roles["incident"]]
    meta = json.loads(sidecar(tmp_path / "relief.backup").read_text(encoding="utf-8"))
    digest = hashlib.sha256((tmp_path / "relief.backup").read_bytes()).hexdigest()
    assert meta["sha256"] == digest and meta["created_at"].endswith("+08:00")


def test_an_open_write_transaction_neither_blocks_the_backup_nor_gets_into_it(
    db_url: str, fresh: Callable[[], str], tmp_path: Path
) -> None:
    engine = make_case_engine(db_url)
    [case] = submit(engine, S.application("CRED-01"))
    engine.db.dispose()
    writer = make_engine(db_url, poolclass=NullPool)
    with writer.connect() as held:  # on SQLite this holds the write lock (BEGIN IMMEDIATE)
        held.execute(text("UPDATE relief_case SET version = version + 100"))
        held.execute(text("DELETE FROM notice"))
        backup(db_url, tmp_path / "b.db", pg_bindir=BINDIR)  # does not wait for the writer
        held.rollback()
    writer.dispose()
    target = fresh()
    restore(target, tmp_path / "b.db", pg_bindir=BINDIR)
    assert contents(target) == contents(db_url)
    assert contents(target)["notices"] and case.case_no in contents(target)["cases"]


def test_an_older_backup_is_migrated_and_replaces_a_newer_target_with_force(
    db_url: str, fresh: Callable[[], str], tmp_path: Path
) -> None:
    """A backup at 0009 (before measure_effect_record) onto a current database holding cases:
    refused without --force; with it, the newer table goes too and the migrations run."""
    from alembic import command

    old = fresh()
    command.upgrade(alembic_config(old), "0009")
    assert backup(old, tmp_path / "old.db", pg_bindir=BINDIR).revision == "0009"
    engine = make_case_engine(db_url)
    submit(engine, S.application("CRED-01"))
    engine.db.dispose()
    kept = contents(db_url)
    with pytest.raises(BackupError) as refused:
        restore(db_url, tmp_path / "old.db", pg_bindir=BINDIR)
    assert "已有数据" in refused.value.message_zh and "--force" in refused.value.message_zh
    assert contents(db_url) == kept
    restore(db_url, tmp_path / "old.db", force=True, pg_bindir=BINDIR)
    got = contents(db_url)
    assert got["revision"] == SCHEMA_HEAD and got["cases"] == {}
    engine = make_case_engine(db_url)  # the migrated schema takes casework again
    [case] = submit(engine, S.application("CRED-01"))
    assert case.state == "under_review"
    engine.db.dispose()


def test_a_backup_from_newer_code_is_refused(
    db_url: str, fresh: Callable[[], str], tmp_path: Path
) -> None:
    writer = make_engine(db_url, poolclass=NullPool)
    with writer.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    writer.dispose()
    assert backup(db_url, tmp_path / "new.db", pg_bindir=BINDIR).revision == "0099"
    target = fresh()
    with pytest.raises(BackupError) as refused:
        restore(target, tmp_path / "new.db", pg_bindir=BINDIR)
    assert "比本程序新" in refused.value.message_zh and "0099" in refused.value.message_zh
    assert SCHEMA_HEAD in refused.value.message_zh
    if target.startswith("sqlite"):
        assert not Path(target.removeprefix("sqlite:///")).exists()
    else:
        assert database_revision(make_engine(target, poolclass=NullPool)) is None


# --- the command line -----------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`relief --database` writes RELIEF_DATABASE_URL into the environment: put it back."""
    monkeypatch.setenv("RELIEF_DATABASE_URL", "sqlite:///unused.db")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def relief(database: str, *args: str) -> Any:
    get_settings.cache_clear()
    result = runner.invoke(app, ["--database", database, *args], env={"COLUMNS": "200"})
    assert "Traceback" not in result.output
    if result.exit_code:
        assert isinstance(result.exception, SystemExit), result.exception  # said, not raised
    return result


def refused(result: Any, *said: str) -> None:
    assert result.exit_code == 2, result.output
    for words in said:
        assert words in result.stderr, result.stderr


def test_the_commands_refuse_bad_backups_and_leave_the_target_as_it_was(
    sqlite_url: str, tmp_path: Path, cli_env: None
) -> None:
    engine = make_case_engine(sqlite_url)
    submit(engine, S.application("CRED-01"))
    engine.db.dispose()
    folder = tmp_path / "备份 文件夹"
    folder.mkdir()
    good = folder / "案件 备份 2022.db"
    done = relief(sqlite_url, "backup", str(good))
    assert done.exit_code == 0 and "已备份" in done.stdout, done.output
    refused(relief(sqlite_url, "backup", str(good)), "备份文件已存在", "--force")
    assert relief(sqlite_url, "backup", str(good), "--force").exit_code == 0

    target_dir = tmp_path / "新 库"
    target_dir.mkdir()
    target = target_dir / "数据 库.db"  # careless: spaces and Chinese in every part
    restored = relief(str(target), "restore", str(good))
    assert restored.exit_code == 0 and "已恢复" in restored.stdout, restored.output
    kept = contents(f"sqlite:///{target}")
    assert kept == contents(sqlite_url)
    fresh_target = target_dir / "没有的.db"

    def bad(name: str, data: bytes, meta: dict[str, Any] | None) -> Path:
        path = folder / name
        path.write_bytes(data)
        if meta is not None:
            sidecar(path).write_text(json.dumps(meta), encoding="utf-8")
        return path

    real = good.read_bytes()
    meta = json.loads(sidecar(good).read_text(encoding="utf-8"))
    noise = bytes(range(256)) * 64
    cases = [
        (folder / "nowhere.db", ["备份文件不存在"]),
        (bad("truncated.db", real[: len(real) // 2], meta), ["校验和", "sha256"]),
        (bad("random.db", noise, None), ["不是 relief 备份", "清单"]),
        (bad("random-with-copied-manifest.db", noise, meta), ["校验和"]),
        (bad("random-with-its-own-sha.db", noise,
             {**meta, "sha256": hashlib.sha256(noise).hexdigest(), "size": len(noise)}),
         ["不是 relief 数据库的备份"]),
        (bad("edited-checksum.db", real, {**meta, "sha256": "0" * 64}), ["校验和"]),
        (bad("garbled-manifest.db", real, None), ["清单"]),
        (good, ["已有数据", "--force"]),  # a target that holds data
    ]  # fmt: skip
    sidecar(folder / "garbled-manifest.db").write_text("{not json", encoding="utf-8")
    for source, said in cases:
        refused(relief(str(target), "restore", str(source)), *said)
        assert contents(f"sqlite:///{target}") == kept, source
        if source != good:
            refused(relief(str(fresh_target), "restore", str(source)), *said[:1])
            assert not fresh_target.exists(), source

    with make_engine(sqlite_url, poolclass=NullPool).begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    newer = folder / "newer.db"
    assert relief(sqlite_url, "backup", str(newer)).exit_code == 0
    refused(relief(str(target), "restore", str(newer), "--force"), "比本程序新", "0099")
    assert contents(f"sqlite:///{target}") == kept
    refused(
        relief(str(tmp_path / "missing.db"), "backup", str(folder / "x.db")), "数据库文件不存在"
    )
    assert not (tmp_path / "missing.db").exists()
    refused(relief(sqlite_url, "backup", str(tmp_path / "no such dir" / "x.db")), "文件夹不存在")


def test_the_commands_on_postgresql(
    postgres_url: str, postgres_server: Any, tmp_path: Path, cli_env: None
) -> None:
    migrate(postgres_url)
    engine = make_case_engine(postgres_url)
    submit(engine, S.application("CRED-01"))
    engine.db.dispose()
    file, bindir = tmp_path / "pg 备份.dump", ["--pg-bindir", str(BINDIR)]
    assert relief(postgres_url, "backup", str(file), *bindir).exit_code == 0
    target = postgres_server.create_database(f"restore_{uuid.uuid4().hex[:12]}")
    try:
        assert relief(target, "restore", str(file), *bindir).exit_code == 0
        assert contents(target) == contents(postgres_url)
        refused(relief(target, "restore", str(file), *bindir), "已有数据", "--force")
        assert relief(target, "restore", str(file), "--force", *bindir).exit_code == 0
        assert contents(target) == contents(postgres_url)
    finally:
        postgres_server.drop_database(target.rsplit("/", 1)[1])

    empty = tmp_path / "empty bin"
    empty.mkdir()
    refused(relief(postgres_url, "backup", str(tmp_path / "x.dump"), "--pg-bindir", str(empty)),
            "找不到 pg_dump", "postgresql-client")  # fmt: skip
    old = tmp_path / "old bin"
    old.mkdir()
    for name in ("pg_dump", "pg_restore", "psql"):
        (old / name).write_text(f"#!/bin/sh\necho '{name} (PostgreSQL) 9.6.24'\n")
        (old / name).chmod(0o755)
    refused(relief(postgres_url, "backup", str(tmp_path / "x.dump"), "--pg-bindir", str(old)),
            "服务器是 PostgreSQL", "而 pg_dump 是 9")  # fmt: skip
    refused(relief(postgres_url, "restore", str(file), "--force", "--pg-bindir", str(old)),
            "pg_restore 是 9")  # fmt: skip
    assert not (tmp_path / "x.dump").exists()
    assert not list(tmp_path.glob(".x.dump*"))  # no half-written backup left behind
