"""An operator acts on incidents: retry now (a failed notice is delivered at once; a failed
payout goes back to the queue with its key, paid once) or resolve with a note — each an audit
event on the case, decided by the engine whatever door asks (API here, the page in the
dashboard's browser test). Real SMTP (aiosmtpd), a real HTTP treasury, a real SQLite file."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import scenarios as S
from aiosmtpd.controller import Controller
from conftest import FIXED_NOW, Accounts, make_case_engine
from drive import decide, submit
from fastapi.testclient import TestClient
from smtp_sink import Sink
from sqlmodel import Session, col, select
from treasury_server import Treasury

from api.main import create_app
from api.security import create_account
from flows.payout import pay_one
from flows.treasury import HttpTreasury
from models.settings import Settings
from models.tables import CaseEvent, Incident, Notice, Payout
from notifications.delivery import deliver


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def world(api_db: Accounts) -> Iterator[dict[str, Any]]:
    """A credit case whose acceptance notice failed twice (SMTP down): an open incident."""
    port = free_port()
    settings = Settings(
        database_url=api_db.url, now=FIXED_NOW, smtp_host="127.0.0.1", smtp_port=port,
        notice_max_attempts=2, notice_retry_seconds=0, payout_retry_seconds=0,
    )  # fmt: skip
    engine = make_case_engine(api_db.url)
    app = S.application("CRED-01")
    app["applicant"]["email"] = "owner@example.com"
    [case] = submit(engine, app)
    with Session(engine.db) as s:
        [notice_id] = s.exec(select(Notice.id).where(col(Notice.case_id) == case.case_id)).all()
    assert notice_id is not None
    assert deliver(engine.db, notice_id, settings, FIXED_NOW) == "pending"
    assert deliver(engine.db, notice_id, settings, FIXED_NOW) == "failed"
    with Session(engine.db) as s:
        incident = s.exec(select(Incident)).one()
    client = TestClient(create_app(settings))
    yield {
        "client": client, "tokens": api_db.tokens, "engine": engine, "case": case,
        "incident": incident, "notice_id": notice_id, "port": port, "settings": settings,
    }  # fmt: skip
    engine.db.dispose()


def auth(w: dict[str, Any], who: str = "operator") -> dict[str, str]:
    return {"Authorization": f"Bearer {w['tokens'][who]}"}


def events(w: dict[str, Any], trigger: str) -> list[CaseEvent]:
    with Session(w["engine"].db) as s:
        return list(
            s.exec(
                select(CaseEvent).where(
                    col(CaseEvent.case_id) == w["case"].case_id, col(CaseEvent.trigger) == trigger
                )
            ).all()
        )


def test_retry_delivers_the_notice_now_and_resolves_the_incident(world: dict[str, Any]) -> None:
    w, iid = world, world["incident"].id
    listed = w["client"].get("/api/operator/incidents", headers=auth(w)).json()
    assert [(i["id"], i["case_no"], i["kind_zh"]) for i in listed] == [
        (iid, w["case"].case_no, "通知书送达失败")
    ]
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=w["port"])
    controller.start()
    try:
        r = w["client"].post(f"/api/operator/incidents/{iid}/retry", headers=auth(w))
    finally:
        controller.stop()
    assert r.status_code == 200, r.text
    assert r.json() == {"incident_id": iid, "case_no": w["case"].case_no,
                        "outcome": "delivered", "status": "resolved"}  # fmt: skip
    assert list(sink.message_ids().values()) == [1]
    with Session(w["engine"].db) as s:
        incident = s.get(Incident, iid)
        assert incident is not None
        assert (incident.status, incident.retries, incident.resolved_by) == (
            "resolved", 1, "system",
        )  # fmt: skip
    [event] = events(w, "retry_incident")
    assert event.actor == "operator" and event.payload["ref"] == w["incident"].ref
    assert event.from_state == event.to_state  # an audit event, not a move of the case
    again = w["client"].post(f"/api/operator/incidents/{iid}/retry", headers=auth(w))
    assert again.status_code == 409 and "已由他人处理" in again.json()["message_zh"]
    assert w["client"].get("/api/operator/incidents", headers=auth(w)).json() == []


def test_a_retry_that_fails_again_reopens_the_incident(world: dict[str, Any]) -> None:
    """A retry gives the notice a fresh round of attempts (RELIEF_NOTICE_MAX_ATTEMPTS): the
    first fails at once (SMTP still down), the outbox tries the rest, then it is open again."""
    w, iid = world, world["incident"].id
    r = w["client"].post(f"/api/operator/incidents/{iid}/retry", headers=auth(w))
    assert r.status_code == 200
    assert (r.json()["outcome"], r.json()["status"]) == ("pending", "retrying")
    db, settings = w["engine"].db, w["settings"]
    assert deliver(db, w["notice_id"], settings, FIXED_NOW) == "failed"  # the round's last
    with Session(db) as s:
        incident = s.get(Incident, iid)
        notice = s.get(Notice, w["notice_id"])
        assert incident is not None and notice is not None
        assert (incident.status, incident.retries) == ("open", 1)
        assert (notice.status, notice.attempts) == ("failed", 4)
    assert len(events(w, "retry_incident")) == 1
    listed = w["client"].get("/api/operator/incidents", headers=auth(w)).json()
    assert [i["id"] for i in listed] == [iid]


def test_resolve_needs_a_note_and_happens_once(world: dict[str, Any]) -> None:
    w, iid, c = world, world["incident"].id, world["client"]
    url = f"/api/operator/incidents/{iid}/resolve"
    for body in ({}, {"note": ""}, {"note": "   "}):
        r = c.post(url, json=body, headers=auth(w))
        assert r.status_code == 403 and "处理说明" in r.json()["message_zh"], body
    assert c.post(url, json={"note": "x" * 2001}, headers=auth(w)).status_code == 422
    note = "已电话告知申请人，<script>alert(1)</script>'; DROP TABLE incident;--"
    r = c.post(url, json={"note": note}, headers=auth(w))
    assert r.status_code == 200 and r.json()["status"] == "resolved"
    with Session(w["engine"].db) as s:
        incident = s.get(Incident, iid)
        assert incident is not None
        assert (incident.status, incident.note, incident.resolved_by) == ("resolved", note,
                                                                          "operator")  # fmt: skip
    [event] = events(w, "resolve_incident")
    assert event.payload["note"] == note
    assert c.post(url, json={"note": "again"}, headers=auth(w)).status_code == 409
    assert c.post(f"/api/operator/incidents/{iid}/retry", headers=auth(w)).status_code == 409


def test_only_an_operator_may_act_and_bad_ids_are_clear(world: dict[str, Any]) -> None:
    w, iid, c = world, world["incident"].id, world["client"]
    for who in ("rev_credit", "applicant_a"):
        r = c.post(f"/api/operator/incidents/{iid}/retry", headers=auth(w, who))
        assert r.status_code == 403, who
        r = c.post(f"/api/operator/incidents/{iid}/resolve", json={"note": "n"},
                   headers=auth(w, who))  # fmt: skip
        assert r.status_code == 403, who
        assert c.get("/api/operator/incidents", headers=auth(w, who)).status_code == 403
    assert c.post(f"/api/operator/incidents/{iid}/retry").status_code == 401
    assert c.post("/api/operator/incidents/999999/retry", headers=auth(w)).status_code == 404
    for bad in ("0", "-1", "abc", "1e9", "99999999999999999999", "1;DROP"):
        r = c.post(f"/api/operator/incidents/{bad}/retry", headers=auth(w))
        assert r.status_code in (404, 422), bad
    r = c.get("/api/operator/incidents?status=<script>", headers=auth(w))
    assert r.status_code == 422
    assert events(w, "retry_incident") == events(w, "resolve_incident") == []
    with Session(w["engine"].db) as s:
        assert s.get(Incident, iid).status == "open"  # type: ignore[union-attr]


def test_a_failed_payout_retried_is_paid_once(api_db: Accounts) -> None:
    treasury = Treasury().start()
    try:
        engine = make_case_engine(api_db.url)
        engine.settings.payout_retry_seconds = 0
        [r] = submit(engine, S.application("RENT-07"))
        assert decide(engine, r.case_id, approve=True).state == "payout_ordered"
        with Session(engine.db) as s:
            payout = s.exec(select(Payout).where(col(Payout.case_id) == r.case_id)).one()
        assert payout.id is not None
        treasury.reject_keys = {payout.idempotency_key}
        system = engine.actor("system")
        assert pay_one(engine, HttpTreasury(treasury.url), payout.id, system) == "failed"
        settings = Settings(database_url=api_db.url, now=FIXED_NOW)
        client = TestClient(create_app(settings))
        with Session(engine.db) as s:
            incident = s.exec(select(Incident)).one()
        headers = {"Authorization": f"Bearer {api_db.tokens['operator']}"}
        answer = client.post(f"/api/operator/incidents/{incident.id}/retry", headers=headers)
        assert answer.status_code == 200, answer.text
        assert (answer.json()["outcome"], answer.json()["status"]) == ("queued", "retrying")
        with Session(engine.db) as s:
            assert s.get(Payout, payout.id).status == "ordered"  # type: ignore[union-attr]
        treasury.reject_keys = set()  # the payee's account was corrected
        assert pay_one(engine, HttpTreasury(treasury.url), payout.id, system) == "paid"
        assert pay_one(engine, HttpTreasury(treasury.url), payout.id, system) == "skipped"
        assert treasury.paid_count()[payout.idempotency_key] == 1
        with Session(engine.db) as s:
            incident = s.get(Incident, incident.id)  # type: ignore[arg-type]
            paid = s.get(Payout, payout.id)
        assert incident is not None and paid is not None
        assert (incident.status, incident.note) == ("resolved", "重试后已拨付")
        assert paid.status == "paid"
        engine.db.dispose()
    finally:
        treasury.stop()


def failed_notice(engine: Any) -> tuple[int, Settings]:
    """A credit case whose acceptance notice failed on an SMTP server that is down."""
    settings = Settings(
        database_url=str(engine.db.url), smtp_host="127.0.0.1", smtp_port=free_port(),
        notice_max_attempts=1, notice_retry_seconds=0,
    )  # fmt: skip
    app = S.application("CRED-01")
    app["applicant"]["email"] = "owner@example.com"
    [case] = submit(engine, app)
    with Session(engine.db) as s:
        [notice_id] = s.exec(select(Notice.id).where(col(Notice.case_id) == case.case_id)).all()
    assert notice_id is not None
    assert deliver(engine.db, notice_id, settings, FIXED_NOW) == "failed"
    return notice_id, settings


@pytest.mark.parametrize("action", ["resolve", "retry"])
def test_two_operators_at_once_one_wins(engine: Any, action: str) -> None:
    """Two operators resolve (or retry) the same incident at the same moment, on each
    database: exactly one action, one audit event, the other a conflict. (A retry then a
    resolve is allowed: an incident being retried may still be closed by hand.)"""
    import threading

    from states.errors import ConflictError

    failed_notice(engine)
    with Session(engine.db) as s:
        incident = s.exec(select(Incident)).one()
    assert incident.id is not None
    for name in ("op_a", "op_b"):
        create_account(engine.db, username=name, role="operator", now=FIXED_NOW)
    start, answers = threading.Barrier(2), []

    def act(name: str, action: str) -> None:
        start.wait()
        try:
            engine.act_on_incident(incident.id, action=action, actor=engine.actor(name),
                                   note="handled by phone")  # fmt: skip
            answers.append("done")
        except ConflictError:
            answers.append("conflict")

    threads = [threading.Thread(target=act, args=(name, action)) for name in ("op_a", "op_b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == ["conflict", "done"], answers
    with Session(engine.db) as s:
        acted = s.exec(
            select(CaseEvent).where(col(CaseEvent.trigger).in_(["retry_incident",
                                                                "resolve_incident"]))
        ).all()  # fmt: skip
    assert len(acted) == 1


def test_a_delivery_that_finds_its_attempt_taken_sends_nothing(engine: Any) -> None:
    """Two deliveries of one notice at once (an operator's retry while the outbox runs): the
    one that finds the attempt claimed sends nothing; the other sends it once."""
    import threading

    from notifications.delivery import CLAIM_SECONDS, _claim

    notice_id, settings = failed_notice(engine)
    with Session(engine.db) as s:
        incident = s.exec(select(Incident)).one()
    create_account(engine.db, username="op_c", role="operator", now=FIXED_NOW)
    engine.act_on_incident(incident.id, action="retry", actor=engine.actor("op_c"))
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=settings.smtp_port)
    controller.start()
    try:
        assert _claim(engine.db, notice_id, 1, 2, FIXED_NOW)  # another delivery took it
        assert deliver(engine.db, notice_id, settings, FIXED_NOW) == "skipped"
        assert sink.messages == []
        with Session(engine.db) as s:
            assert s.get(Notice, notice_id).attempts == 2  # type: ignore[union-attr]
        # that delivery died while sending: when its claim runs out, two deliveries at once
        later = FIXED_NOW + timedelta(seconds=CLAIM_SECONDS + 1)
        start, outcomes = threading.Barrier(2), []

        def run() -> None:
            start.wait()
            outcomes.append(deliver(engine.db, notice_id, settings, later))

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        controller.stop()
    assert sorted(outcomes) == ["delivered", "skipped"], outcomes
    assert list(sink.message_ids().values()) == [1]
    with Session(engine.db) as s:
        assert s.get(Incident, incident.id).status == "resolved"  # type: ignore[union-attr]


def test_the_command_line_lists_retries_and_resolves(
    api_db: Accounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    """relief incident: the same engine steps from a terminal, refusals as exit codes."""
    from typer.testing import CliRunner

    from cli.main import app
    from models.settings import get_settings

    engine = make_case_engine(api_db.url)
    failed_notice(engine)
    with Session(engine.db) as s:
        incident = s.exec(select(Incident)).one()
    monkeypatch.setenv("RELIEF_DATABASE_URL", api_db.url)
    monkeypatch.setenv("RELIEF_NOW", FIXED_NOW.isoformat())
    get_settings.cache_clear()
    run = CliRunner().invoke
    try:
        listed = run(app, ["incident", "list"])
        assert listed.exit_code == 0 and "通知书送达失败" in listed.output, listed.output
        assert run(app, ["incident", "list", "--status", "<script>"]).exit_code == 2
        missing = run(app, ["incident", "resolve", str(incident.id), "--as", "operator"])
        assert missing.exit_code == 2  # --note is required
        empty = run(app, ["incident", "resolve", str(incident.id), "--note", " ", "--as",
                          "operator"])  # fmt: skip
        assert empty.exit_code == 3 and "处理说明" in empty.output
        refused = run(app, ["incident", "resolve", str(incident.id), "--note", "x", "--as",
                            "rev_credit"])  # fmt: skip
        assert refused.exit_code == 3 and "Traceback" not in refused.output
        assert run(app, ["incident", "retry", "99999", "--as", "operator"]).exit_code == 3
        done = run(app, ["incident", "resolve", str(incident.id), "--note", "电话告知",
                         "--as", "operator"])  # fmt: skip
        assert done.exit_code == 0, done.output
        again = run(app, ["incident", "retry", str(incident.id), "--as", "operator"])
        assert again.exit_code == 3 and "已由他人处理" in again.output
    finally:
        get_settings.cache_clear()
        engine.db.dispose()
    with Session(engine.db) as s:
        assert s.get(Incident, incident.id).note == "电话告知"  # type: ignore[union-attr]
