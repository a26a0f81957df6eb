"""SQLite on a full disk: a clear refusal at every door, and no half-written case.

The database lives on a 2 MB tmpfs (mounting one needs root: without it the tests are skipped,
and in CI as root a mount that fails is a failure). A filler file takes the rest of the space;
the next filing must grow the WAL file, SQLite answers SQLITE_FULL, and the engine's unit of
work turns it into `StorageFull` (states/errors.py): the API answers 507 with message_zh, the
CLI exit 3 with the message, the filing page 507 with the message on the form. Every table is
then exactly as before the failed call (row counts and max rowids, `PRAGMA integrity_check`),
and once the filler is deleted the same request succeeds.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import scenarios as S
from conftest import FIXED_NOW, make_accounts, make_case_engine
from drive import submit
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool
from test_filing_pages import as_form, csrf_of, example, files_for, flat, hidden
from typer.testing import CliRunner

from api.main import create_app
from api.pages.application_form import form_values
from api.security import create_account
from cli.main import app as cli_app
from models.applications import applicant_of
from models.db import engine_for, migrate
from models.input_errors import parse_application
from models.settings import Settings, get_settings
from states.errors import StorageFull

STORAGE_FULL_ZH = "存储空间已满，本次操作未保存，请联系运维人员"
WATCHED = ("relief_case", "case_event", "notice", "request_record", "review_task", "applicant")
Snapshot = dict[str, tuple[int, int | None]]


def _unavailable(reason: str) -> None:
    """Skip; but in CI, as root, the test must run: a mount that fails there is a failure."""
    if os.environ.get("CI") and os.geteuid() == 0:
        pytest.fail(f"CI is set and we are root, yet: {reason}")
    pytest.skip(reason)


@dataclass
class SmallDisk:
    path: Path
    url: str
    tokens: dict[str, str]

    @property
    def filler(self) -> Path:
        return self.path / "filler"

    def fill(self) -> None:
        """Write the filler until the file system says it is full (unbuffered: no flush left
        to fail at close)."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while True:
                os.write(fd, b"x" * 4096)
        except OSError as exc:
            assert exc.errno == 28, exc  # ENOSPC
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink()


@pytest.fixture
def disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmallDisk]:
    """A migrated relief database with the test accounts on a fresh 2 MB tmpfs."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        _unavailable(f"cannot mount a tmpfs: {done.stderr.strip() or done.returncode}")
    url = f"sqlite:///{mount}/relief.db"
    try:
        monkeypatch.setenv("RELIEF_DATABASE_URL", url)
        monkeypatch.setenv("RELIEF_NOW", FIXED_NOW.isoformat())
        get_settings.cache_clear()
        migrate(url)
        yield SmallDisk(mount, url, make_accounts(url))
    finally:
        engine_for(url).dispose()  # the API's and the CLI's engine: no file held open
        get_settings.cache_clear()
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=True)


def snapshot(url: str) -> Snapshot:
    """Every table's row count and largest rowid; the file checked whole."""
    db = create_engine(url, poolclass=NullPool)
    try:
        with db.connect() as conn:
            names = conn.execute(
                text(
                    "select name from sqlite_master where type = 'table'"
                    " and name not like 'sqlite_%' order by name"
                )
            ).scalars()
            out: Snapshot = {
                name: tuple(conn.execute(text(f'select count(*), max(rowid) from "{name}"')).one())  # type: ignore[misc]
                for name in list(names)
            }
            assert conn.execute(text("pragma integrity_check")).scalars().all() == ["ok"]
    finally:
        db.dispose()
    assert set(WATCHED) <= set(out)
    return out


def grown_by_one_filing(before: Snapshot, after: Snapshot) -> None:
    """The retried filing wrote one case with its events and request record, nothing else
    went missing."""
    assert after["relief_case"][0] == before["relief_case"][0] + 1
    assert after["case_event"][0] > before["case_event"][0]
    for name, (count, _) in before.items():
        assert after[name][0] >= count, name


def test_the_engine_refuses_with_storage_full_and_writes_nothing(disk: SmallDisk) -> None:
    engine = make_case_engine(disk.url)
    try:
        [first] = submit(engine, S.application("CRED-01"))  # the database holds a case
        disk.fill()
        before = snapshot(disk.url)
        with pytest.raises(StorageFull) as refused:
            submit(engine, S.application("CRED-01"), request_key="full-disk-1")
        assert refused.value.message_zh == STORAGE_FULL_ZH
        assert "storage is full" in refused.value.message_en
        assert refused.value.as_dict()["error"] == "storage_full"
        assert isinstance(refused.value.__cause__, OperationalError)  # kept for the log
        assert snapshot(disk.url) == before
        # still full: a second try is refused the same way, still nothing written
        with pytest.raises(StorageFull):
            submit(engine, S.application("CRED-01"), request_key="full-disk-1")
        assert snapshot(disk.url) == before

        disk.free()
        [again] = submit(engine, S.application("CRED-01"), request_key="full-disk-1")
        assert again.case_id > first.case_id and not again.replayed
        after = snapshot(disk.url)
        grown_by_one_filing(before, after)
        assert after["request_record"][0] == before["request_record"][0] + 1
    finally:
        engine.db.dispose()


def test_the_api_answers_507_with_message_zh(disk: SmallDisk) -> None:
    app = create_app(Settings(database_url=disk.url, now=FIXED_NOW))
    headers = {"Authorization": f"Bearer {disk.tokens['applicant_a']}"}
    with TestClient(app, raise_server_exceptions=False) as client:
        made = client.post("/api/applications", json=S.application("CRED-01"), headers=headers)
        assert made.status_code == 201, made.text
        disk.fill()
        before = snapshot(disk.url)
        full = client.post("/api/applications", json=S.application("CRED-01"), headers=headers)
        assert full.status_code == 507, full.text
        body = full.json()
        assert body["error"] == "storage_full" and body["message_zh"] == STORAGE_FULL_ZH
        assert "Traceback" not in full.text
        assert snapshot(disk.url) == before

        disk.free()
        ok = client.post("/api/applications", json=S.application("CRED-01"), headers=headers)
        assert ok.status_code == 201, ok.text
        grown_by_one_filing(before, snapshot(disk.url))


def test_the_cli_answers_a_message_and_exit_3(disk: SmallDisk, tmp_path: Path) -> None:
    runner = CliRunner()
    application = tmp_path / "申请 CRED-01.json"  # outside the small disk
    application.write_text(json.dumps(S.application("CRED-01"), ensure_ascii=False), "utf-8")

    def file_it() -> Any:
        args = ["--database", disk.url, "submit", str(application), "--as", "applicant_a"]
        return runner.invoke(cli_app, args, env={"COLUMNS": "240"})

    made = file_it()
    assert made.exit_code == 0, made.output
    disk.fill()
    before = snapshot(disk.url)
    full = file_it()
    assert full.exit_code == 3, full.output
    assert STORAGE_FULL_ZH in full.stderr and "storage is full" in full.stderr
    assert "Traceback" not in full.output and not isinstance(full.exception, OperationalError)
    assert snapshot(disk.url) == before

    disk.free()
    ok = file_it()
    assert ok.exit_code == 0, ok.output
    assert "DC-2022-" in ok.stdout
    grown_by_one_filing(before, snapshot(disk.url))


def test_the_filing_page_shows_the_message_on_the_form(disk: SmallDisk, tmp_path: Path) -> None:
    data = example("credit_exemption")
    party = applicant_of(parse_application(data, today=FIXED_NOW.date()))
    engine = make_case_engine(disk.url)
    create_account(engine.db, username="app-credit", role="applicant", now=FIXED_NOW,
                   uscc=party.identity, password="pw-applicant-1")  # fmt: skip
    engine.db.dispose()
    settings = Settings(database_url=disk.url, now=FIXED_NOW, document_store=str(tmp_path / "d"))
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        form = c.get("/login").text
        login = {"csrf_token": csrf_of(form), "username": "app-credit"}
        login["password"] = "pw-applicant-1"
        signed = c.post("/login", data=login, follow_redirects=False)
        assert signed.status_code == 303, signed.text
        form = c.get("/apply/credit_exemption").text
        fields = {k: v for k, v in form_values(data).items() if k != "type"}
        posted = [("csrf_token", csrf_of(form)), ("_draft", dict(hidden(form))["_draft"]),
                  ("_action", "preview"), *flat(fields)]  # fmt: skip
        preview = c.post("/apply/credit_exemption", data=as_form(posted),
                         files=files_for("credit_exemption", data))  # fmt: skip
        assert preview.status_code == 200, preview.text
        confirm = as_form([*((k, v) for k, v in hidden(preview.text) if k != "_action"),
                           ("_action", "confirm")])  # fmt: skip
        disk.fill()
        before = snapshot(disk.url)
        full = c.post("/apply/credit_exemption", data=confirm, follow_redirects=False)
        assert full.status_code == 507, full.text
        assert STORAGE_FULL_ZH in full.text and "Traceback" not in full.text
        assert snapshot(disk.url) == before

        disk.free()
        done = c.post("/apply/credit_exemption", data=confirm, follow_redirects=False)
        assert done.status_code == 303 and done.headers["location"].startswith("/my/receipt/")
        grown_by_one_filing(before, snapshot(disk.url))
