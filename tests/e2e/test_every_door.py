"""One set of rules at every door: the API, the pages, the CLI, the decisions flow, the batch
path and the engine itself refuse the same things, with a clear message, writing nothing.

For each door, on SQLite and PostgreSQL: the reviewer who reviewed an incubator case may not
confirm it, nor (once someone else confirmed) approve it; a reviewer of another section may
not decide the credit section's review task; an applicant may not fire a bureau's or the
engine's own triggers. The right person, through the same door, then succeeds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import scenarios as S
import staff
from conftest import FIXED_NOW, make_case_engine
from drive import submit, tasks
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlmodel import Session
from typer.testing import CliRunner

from api.main import create_app
from api.security import create_account
from models.settings import Settings
from models.tables import Applicant, Case, CaseEvent, Notice, ReviewTask
from states.engine import CaseEngine
from states.errors import EngineError
from states.work import FireItem, ReviewItem, SubmitItem

PEOPLE = {
    "rev1": {"role": "reviewer", "bureau": "zgc_dongcheng", "section": "enterprise"},
    "rev2": {"role": "reviewer", "bureau": "zgc_dongcheng", "section": "enterprise"},
    "credit1": {"role": "reviewer", "bureau": "samr", "section": "credit"},
    "food": {"role": "reviewer", "bureau": "samr", "section": "food_production"},
    "owner": {"role": "applicant", "uscc": "91110101MA00XY6089"},  # the credit case's
}


class World:
    def __init__(self, url: str, tmp: Path) -> None:
        self.url, self.tmp = url, tmp
        self.engine = make_case_engine(url)
        self.tokens = {
            name: create_account(
                self.engine.db, username=name, now=FIXED_NOW, password=f"pw-{name}", **spec
            )[1]
            for name, spec in PEOPLE.items()
        }
        [incubator] = submit(self.engine, S.application("RENT-07"))
        [credit] = submit(self.engine, S.application("CRED-01"))
        self.incubator, self.credit = incubator, credit
        [self.incubator_review] = tasks(self.engine, incubator.case_id, kind="review")
        [self.credit_review] = tasks(self.engine, credit.case_id, kind="review")

    def snapshot(self) -> tuple[Any, ...]:
        with Session(self.engine.db) as s:
            return (
                tuple(s.execute(select(Case.id, Case.state, Case.version)).all()),
                s.execute(select(func.count()).select_from(CaseEvent)).scalar_one(),
                s.execute(select(func.count()).select_from(Notice)).scalar_one(),
                tuple(
                    s.execute(select(ReviewTask.id, ReviewTask.status, ReviewTask.assignee)).all()
                ),
                tuple(s.execute(select(Applicant.identity, Applicant.email)).all()),
            )


# ---------------------------------------------------------------- the doors
# Each door answers review(who, task) and fire(who, case, trigger): None when the step was
# done, else the refusal's (Chinese) message.
Door = Callable[[World], Any]


class EngineDoor:
    def __init__(self, w: World) -> None:
        self.w = w

    def review(self, who: str, task: ReviewTask) -> str | None:
        try:
            assert task.id is not None
            self.w.engine.decide_task(task.id, decision="pass", actor=self.w.engine.actor(who))
        except EngineError as exc:
            return exc.message_zh
        return None

    def fire(self, who: str, case: Any, trigger: str) -> str | None:
        try:
            self.w.engine.fire(case.case_id, trigger, actor=self.w.engine.actor(who))
        except EngineError as exc:
            return exc.message_zh
        return None


class BatchDoor(EngineDoor):
    def __init__(self, w: World) -> None:
        super().__init__(w)
        self.batch = w.engine  # the set operations, with a set of one

    def review(self, who: str, task: ReviewTask) -> str | None:
        assert task.id is not None
        out = self.batch.decide_tasks([ReviewItem(task.id, "pass", self.batch.actor(who))])
        return out.refused[0].message_zh if out.refused else None  # type: ignore[union-attr]

    def fire(self, who: str, case: Any, trigger: str) -> str | None:
        out = self.batch.fire_many([FireItem(case.case_id, trigger, self.batch.actor(who))])
        return out.refused[0].message_zh if out.refused else None  # type: ignore[union-attr]


class ApiDoor(EngineDoor):
    def __init__(self, w: World) -> None:
        super().__init__(w)
        self.client = TestClient(create_app(Settings(database_url=w.url, now=FIXED_NOW)))

    def _post(self, who: str, path: str, body: Any) -> str | None:
        r = self.client.post(
            path, json=body, headers={"Authorization": f"Bearer {self.w.tokens[who]}"}
        )
        return None if r.status_code < 300 else f"{r.status_code} {r.json()['message_zh']}"

    def review(self, who: str, task: ReviewTask) -> str | None:
        return self._post(who, f"/api/tasks/{task.id}/review", {"decision": "pass"})

    def fire(self, who: str, case: Any, trigger: str) -> str | None:
        if trigger == "confirm":
            return self._post(who, f"/api/cases/{case.case_no}/confirm", {})
        return self._post(who, f"/api/cases/{case.case_no}/decide", {"action": trigger})


class PagesDoor(ApiDoor):
    """A browser's forms: signed in with a password, each form with its CSRF token."""

    def _signed_in(self, who: str) -> TestClient:
        client = TestClient(self.client.app)
        token = csrf_of(client.get("/login").text)
        r = client.post(
            "/login",
            data={"username": who, "password": f"pw-{who}", "csrf_token": token},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        return client

    def _form(self, who: str, case_no: str, action: str, data: dict[str, Any]) -> str | None:
        client = self._signed_in(who)
        home = client.get("/")  # the tasklist, or the status page for an applicant
        token = csrf_of(home.text)
        r = client.post(
            f"/bureau/cases/{case_no}/{action}",
            data={"csrf_token": token, **data},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        shown = client.get(r.headers["location"] if PEOPLE[who]["role"] != "applicant" else "/")
        message = re.findall(r'<div class="msg[^"]*" role="status">([^<]*)</div>', shown.text)
        assert message, shown.text
        return None if message[0].startswith("已办理") else message[0]

    def review(self, who: str, task: ReviewTask) -> str | None:
        with Session(self.w.engine.db) as s:
            case = s.get(Case, task.case_id)
            assert case is not None and case.case_no
        return self._form(who, case.case_no, "review", {"decision": "pass"})

    def fire(self, who: str, case: Any, trigger: str) -> str | None:
        with Session(self.w.engine.db) as s:
            row = s.get(Case, case.case_id)
            assert row is not None
        if trigger == "confirm":
            return self._form(who, case.case_no, "confirm", {"version": row.version})
        return self._form(who, case.case_no, "decide", {"action": trigger, "version": row.version})


class CliDoor(EngineDoor):
    def __init__(self, w: World) -> None:
        super().__init__(w)
        self.runner = CliRunner()

    def _run(self, *args: str) -> str | None:
        from cli.main import app

        env = {"RELIEF_DATABASE_URL": self.w.url, "RELIEF_NOW": FIXED_NOW.isoformat(),
               "COLUMNS": "200"}  # fmt: skip
        from models.settings import get_settings

        get_settings.cache_clear()  # the CLI reads its settings from this environment
        try:
            r = self.runner.invoke(app, list(args), env=env)
        finally:
            get_settings.cache_clear()
        if r.exit_code == 0:
            return None
        assert r.exit_code == 3, (r.exit_code, r.stdout, r.stderr)
        return r.stderr

    def review(self, who: str, task: ReviewTask) -> str | None:
        return self._run("review", str(task.id), "pass", "--as", who)

    def fire(self, who: str, case: Any, trigger: str) -> str | None:
        return self._run("fire", case.case_no, trigger, "--as", who)


class DecisionsFlowDoor(EngineDoor):
    """A reviewer's spreadsheet of decisions, run as a Prefect flow started by that reviewer."""

    def _run(self, who: str, row: dict[str, Any]) -> str | None:
        from flows.bureau_decisions import DecisionsParams, bureau_decisions_flow

        self.n = getattr(self, "n", 0) + 1
        path = self.w.tmp / f"decisions-{self.n}.json"
        path.write_text(json.dumps([row], ensure_ascii=False), encoding="utf-8")
        out = bureau_decisions_flow(
            DecisionsParams(file=path, batch_id=f"door-{self.n}", account=who)
        )
        return out.refused[0]["message"] if out.refused else None

    def review(self, who: str, task: ReviewTask) -> str | None:
        with Session(self.w.engine.db) as s:
            case = s.get(Case, task.case_id)
            assert case is not None
        unit = f"{task.bureau_code}.{task.section_code}"
        return self._run(who, {"case_no": case.case_no, "action": "review_pass", "unit": unit})

    def fire(self, who: str, case: Any, trigger: str) -> str | None:
        return self._run(who, {"case_no": case.case_no, "action": trigger})


def csrf_of(html: str) -> str:
    [token] = set(re.findall(r'name="csrf_token" value="([^"]+)"', html))
    return token


DOORS = {
    "engine": EngineDoor,
    "batch": BatchDoor,
    "api": ApiDoor,
    "pages": PagesDoor,
    "cli": CliDoor,
    "decisions-flow": DecisionsFlowDoor,
}


@pytest.fixture
def flows_ready(request: pytest.FixtureRequest) -> None:
    if request.node.callspec.params.get("door") == "decisions-flow":
        request.getfixturevalue("flow_db")


@pytest.mark.parametrize("door", list(DOORS))
def test_every_door_obeys_the_same_rules(
    db_url: str, tmp_path: Path, door: str, flows_ready: None
) -> None:
    w = World(db_url, tmp_path)
    d = DOORS[door](w)

    def refused(message: str | None, *expected: str) -> None:
        assert message is not None, "the step was done; it must have been refused"
        assert any(e in message for e in expected), message
        assert w.snapshot() == before, "a refused step wrote something"

    # the first reviewer reviews the incubator case through this door: allowed
    assert d.review("rev1", w.incubator_review) is None
    assert case_state(w.engine, w.incubator.case_id) == "awaiting_confirmation"
    before = w.snapshot()
    # ... and then may not confirm it (separation of duties)
    refused(d.fire("rev1", w.incubator, "confirm"), "职责分离")
    w.engine.fire(w.incubator.case_id, "confirm", actor=w.engine.actor("rev2"))
    before = w.snapshot()
    # nor approve it once someone else confirmed
    refused(d.fire("rev1", w.incubator, "approve"), "职责分离")
    # a reviewer of another section may not take the credit section's review task
    refused(d.review("food", w.credit_review), "任务不存在", "本科室没有")
    # an applicant may not fire a bureau's trigger on their own case
    refused(d.fire("owner", w.credit, "approve"), "申请人无权")
    if door in ("engine", "batch", "cli"):  # doors that name any trigger
        refused(d.fire("owner", w.credit, "close"), "内部步骤")
        refused(d.fire("credit1", w.credit, "start_review"), "内部步骤")
    # the right people, through the same door
    assert d.review("credit1", w.credit_review) is None
    assert d.fire("rev2", w.incubator, "approve") is None
    assert case_state(w.engine, w.incubator.case_id) == "payout_ordered"
    w.engine.db.dispose()


def case_state(engine: CaseEngine, case_id: int) -> str:
    with Session(engine.db) as s:
        row = s.get(Case, case_id)
        assert row is not None
        return row.state


def test_events_record_the_account(sqlite_url: str, tmp_path: Path) -> None:
    """The audit event names the account (its id and login), never free text."""
    w = World(sqlite_url, tmp_path)
    w.engine.decide_task(w.incubator_review.id or 0, decision="pass", actor=w.engine.actor("rev1"))
    with Session(w.engine.db) as s:
        events = s.execute(
            select(CaseEvent.trigger, CaseEvent.actor, CaseEvent.account_id)
            .where(CaseEvent.case_id == w.incubator.case_id)
            .order_by(CaseEvent.seq)  # type: ignore[arg-type]
        ).all()
    rev1 = w.engine.actor("rev1")
    assert ("review_decided", "rev1", rev1.account_id) in events
    assert all(account_id is not None for _, _, account_id in events)


def test_a_disabled_account_acts_no_more(sqlite_url: str, tmp_path: Path) -> None:
    """The engine re-reads the account in the step's transaction: an Actor held by a door (a
    long flow run, an open page) stops working the moment the account is disabled or moved."""
    from sqlalchemy import update

    from models.tables import Account

    w = World(sqlite_url, tmp_path)
    rev1 = w.engine.actor("rev1")
    with Session(w.engine.db) as s, s.begin():
        s.execute(update(Account).where(Account.username == "rev1").values(active=False))  # type: ignore[arg-type]
    before = w.snapshot()
    with pytest.raises(EngineError) as refused:
        w.engine.decide_task(w.incubator_review.id or 0, decision="pass", actor=rev1)
    assert "已停用" in refused.value.message_zh and w.snapshot() == before
    with Session(w.engine.db) as s, s.begin():
        s.execute(
            update(Account)
            .where(Account.username == "rev1")  # type: ignore[arg-type]
            .values(active=True, section_code="other")
        )
    with pytest.raises(EngineError):  # moved to another section: the old Actor is stale
        w.engine.decide_task(w.incubator_review.id or 0, decision="pass", actor=rev1)
    assert w.snapshot() == before


def test_the_system_account_cannot_sign_in(sqlite_url: str, tmp_path: Path) -> None:
    w = World(sqlite_url, tmp_path)
    client = TestClient(create_app(Settings(database_url=sqlite_url, now=FIXED_NOW)))
    token = csrf_of(client.get("/login").text)
    r = client.post("/login", data={"username": "system", "password": "", "csrf_token": token})
    assert "用户名或密码不正确" in r.text
    assert w.engine.actor("system").role == "system"  # it exists, for the scheduled flows


# ---------------------------------------------------------------- found in review
def test_a_correction_cannot_move_the_case_to_another_enterprise(
    db_url: str, tmp_path: Path
) -> None:
    """补充材料 corrects facts; it does not swap the applicant (escaping the 7号 register or a
    cap), the store, the property or the licence."""
    w = World(db_url, tmp_path)
    rev1 = w.engine.actor("rev1")
    case_id = w.incubator.case_id
    w.engine.fire(case_id, "request_info", actor=rev1, payload={"items": ["减免确认书"]})
    owner = staff.applicant_of_case(w.engine, case_id)
    before = w.snapshot()
    from models.input_errors import InvalidApplication

    for patch in ({"applicant": {"uscc": "91110101MA00XY6089"}}, {"type": "loan_subsidy"}):
        with pytest.raises(InvalidApplication) as bad:
            w.engine.fire(case_id, "supply_info", actor=owner, payload={"facts": patch})
        if "applicant" in patch:
            assert bad.value.errors[0].rule == "facts.subject_fixed", bad.value
        assert w.snapshot() == before
    # a real correction goes through
    fixed = {"reductions": [{"tenant_size": "small", "amount": 100000, "confirmed": True}]}
    assert w.engine.fire(case_id, "supply_info", actor=owner, payload={"facts": fixed}).state


def test_claims_follow_who_may_take_the_step(db_url: str, tmp_path: Path) -> None:
    from sqlalchemy import update

    from models.tables import Account

    w = World(db_url, tmp_path)
    engine, review = w.engine, w.incubator_review
    assert review.id is not None
    intake = staff.intake_officer(engine, "zgc_dongcheng.enterprise")
    with pytest.raises(EngineError) as no:
        engine.claim_task(review.id, actor=intake)  # an intake officer does not review
    assert "受理人员无权" in no.value.message_zh
    engine.claim_task(review.id, actor=engine.actor("rev1"))
    with pytest.raises(EngineError) as taken:
        engine.decide_task(review.id, decision="pass", actor=engine.actor("rev2"))
    assert "已由rev1认领" in taken.value.message_zh
    with pytest.raises(EngineError):
        engine.release_task(review.id, actor=engine.actor("rev2"))  # not theirs to release
    engine.release_task(review.id, actor=engine.actor("rev1"))
    engine.claim_task(review.id, actor=engine.actor("rev2"))
    with Session(engine.db) as s, s.begin():  # rev2 leaves: their claim holds nobody off
        s.execute(update(Account).where(Account.username == "rev2").values(active=False))  # type: ignore[arg-type]
    engine.decide_task(review.id, decision="pass", actor=engine.actor("rev1"))
    engine.fire(
        w.incubator.case_id, "confirm", actor=staff.reviewer(engine, "zgc_dongcheng.enterprise", 3)
    )
    [decide] = tasks(engine, w.incubator.case_id, kind="decide")
    assert decide.id is not None
    with pytest.raises(EngineError) as sod:  # the reviewer may not even claim the decision
        engine.claim_task(decide.id, actor=engine.actor("rev1"))
    assert "职责分离" in sod.value.message_zh


def test_the_lift_date_is_confirmed_by_staff_and_not_in_the_future(
    db_url: str, tmp_path: Path
) -> None:
    from drive import decide

    from states.errors import TransitionRefused

    engine = make_case_engine(db_url)
    application = S.application("LIC-02")
    del application["lockdown_lift_date"]
    [r] = submit(engine, application)
    assert decide(engine, r.case_id, approve=True).state == "extended_pending_lift"
    owner = staff.applicant_of_case(engine, r.case_id)
    reviewer = staff.reviewer(engine, "samr.catering", 2)
    with pytest.raises(EngineError) as applicant:
        engine.fire(r.case_id, "lockdown_lifted", actor=owner,
                    payload={"facts": {"lockdown_lift_date": "2022-11-20"}})  # fmt: skip
    assert "申请人无权" in applicant.value.message_zh
    with pytest.raises(TransitionRefused) as future:
        engine.fire(r.case_id, "lockdown_lifted", actor=reviewer,
                    payload={"facts": {"lockdown_lift_date": "2026-06-30"}})  # fmt: skip
    assert "解除日期" in future.value.message_zh
    done = engine.fire(r.case_id, "lockdown_lifted", actor=reviewer,
                       payload={"facts": {"lockdown_lift_date": "2022-11-20"}})  # fmt: skip
    assert done.state == "closed"


def test_a_request_key_answers_only_its_own_request(db_url: str, tmp_path: Path) -> None:
    from states.errors import ConflictError, NotPermitted

    w = World(db_url, tmp_path)
    engine = w.engine
    assert w.incubator_review.id and w.credit_review.id
    engine.decide_task(w.incubator_review.id, decision="pass", actor=engine.actor("rev1"),
                       request_key="sheet:1")  # fmt: skip
    before = w.snapshot()
    with pytest.raises((NotPermitted, ConflictError)):  # another's key gives nothing away
        engine.fire(w.credit.case_id, "approve", actor=engine.actor("owner"),
                    request_key="sheet:1")  # fmt: skip
    with pytest.raises((ConflictError, EngineError)) as other:  # used for another task
        engine.decide_task(w.credit_review.id, decision="pass", actor=engine.actor("credit1"),
                           request_key="sheet:1")  # fmt: skip
    assert "请求编号" in other.value.message_zh
    assert w.snapshot() == before
    again = engine.decide_task(w.incubator_review.id, decision="pass",
                               actor=engine.actor("rev1"), request_key="sheet:1")  # fmt: skip
    assert again.replayed and w.snapshot() == before


def test_a_refused_batch_submission_writes_no_applicant(db_url: str, tmp_path: Path) -> None:
    from models.tables import Applicant

    w = World(db_url, tmp_path)
    batch = w.engine
    stranger = S.application("LOAN-01")
    stranger["applicant"].update(name="冒名", email="attacker@evil.example")
    out = batch.submit_many([SubmitItem(stranger, batch.actor("owner"))])  # not owner's USCC
    assert list(out.refused) == [0]
    with Session(w.engine.db) as s:
        identities = set(s.execute(select(Applicant.identity)).scalars())
    assert stranger["applicant"]["uscc"] not in identities


def test_a_receipt_in_the_future_is_refused_by_the_engine(db_url: str, tmp_path: Path) -> None:
    from datetime import timedelta

    from models.input_errors import InvalidApplication
    from models.receipts import PaperReceipt

    engine = make_case_engine(db_url)
    ahead = PaperReceipt(received_at=FIXED_NOW + timedelta(days=400), reason="x", evidence="y")
    with pytest.raises(InvalidApplication) as bad:
        engine.submit(S.application("CRED-01"), actor=staff.operator(engine), receipt=ahead)
    assert bad.value.errors[0].rule == "receipt.future"
    with Session(engine.db) as s:
        assert s.execute(select(func.count()).select_from(Case)).scalar_one() == 0
