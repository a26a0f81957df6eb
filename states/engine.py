"""引擎 — the one writer of case state, over a unit of work, for a set of cases at a time.

Every operation — file, fire a trigger, decide a review task, grant ex officio, record a
payment — takes a set of items (an API or CLI call is a set of one): a few queries read what
the whole set needs, each case runs through its type's machine (one per type, built once per
process), and the rows the set owes are written with executemany in one transaction,
version-checked per case (states/unit_of_work.py, states/case_run.py). Who may do what is
checked in the same transaction (states/authority.py). A conflict in a set is retried item by
item, so only the loser is refused and nothing is lost; a repeated request key returns the
earlier result; of two filings racing with one key, the loser is answered with the winner's
cases. The engine writes notices through the issuer it is given (notifications/ renders them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from types import SimpleNamespace
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy import Engine, insert, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlmodel import Session, col, select

from base.civil_dates import zh_date
from base.clock import Clock
from base.query_codes import new_query_code
from models.applications import Application, ContactDetails, StoreLease, applicant_of
from models.db import read_only
from models.input_errors import FieldError, InvalidApplication, describe, parse_application
from models.receipts import PaperReceipt
from models.settings import Settings
from models.statuses import (
    NOTICE_MOVES,
    PAYOUT_MOVES,
    NoticeStatus,
    PayoutStatus,
    RequestStatus,
    TaskStatus,
)
from models.statuses import check as check_move
from models.tables import (
    Account,
    Applicant,
    ApplicantRequest,
    Incident,
    IntakeRecord,
    Notice,
    Payout,
    Prior7Benefit,
    ReviewTask,
)
from states.actors import ROLE_ZH, SECTION_ROLES, Actor, Role, actor_of
from states.authority import authorize, authorize_filing, can_see, may_replay
from states.case_run import CaseRun, Stepper, check_version, permit_of, unit_of
from states.catalog import assess as assess_application
from states.catalog import spec_for
from states.contacts import CONTACT_FIELDS, details_patch, stored_contact
from states.edition import edition_by_id
from states.errors import (
    CaseNotFound,
    ConflictError,
    EngineError,
    NotPermitted,
    TransitionRefused,
    WrongState,
    connection_lost,
    database_unavailable,
    no_such_case,
    no_such_task,
    storage_full,
)
from states.labels import state_zh
from states.lifecycle import CLAIMED_AS, FINAL_STATES, CaseState, NoticeKind
from states.notice_issuer import NoticeIssuer
from states.permits import TaskView
from states.rules import Assessment, Decision, Prior7Entry
from states.unit_of_work import CASES, UnitOfWork, new_applicant
from states.work import FireItem, FireResult, Outcome, ReviewItem, Step, SubmitItem

log = logging.getLogger(__name__)

UNIT_SIZE = 500  # cases per transaction: big enough to amortise, small enough to retry
EX_OFFICIO = frozenset(
    {Decision.EXTENDED_EX_OFFICIO, Decision.EXTENDED, Decision.EXTENDED_PENDING_LIFT}
)
T = TypeVar("T")
# a new case's columns as its insert leaves them (defaults), for the run to read
NEW_CASE = {
    c.name: c.default.arg if c.default is not None and c.default.is_scalar else None
    for c in CASES.columns
}
Body = Callable[[UnitOfWork, Stepper, list[tuple[int, Any]], Outcome[Any]], None]


class CaseEngine:
    """Files applications and moves cases; the only code that changes a case."""

    def __init__(
        self,
        db: Engine,
        *,
        settings: Settings,
        issuer: NoticeIssuer,
        clock: Clock | None = None,
    ) -> None:
        self.db = db
        self.read_db = read_only(db)  # SQLite: reads never wait for the write lock
        self.settings = settings
        self.issuer = issuer
        self.clock = clock or Clock(settings.now)

    # ------------------------------------------------------------ who is acting
    def actor(self, username: str) -> Actor:
        """The Actor of an account by its login name (the CLI's --as, a flow's account)."""
        with Session(self.read_db) as s:
            account = s.exec(select(Account).where(col(Account.username) == username)).first()
        if account is None or not account.active:
            raise NotPermitted(
                f"账户“{username}”不存在或已停用（用 relief account create 创建）",
                f"no active account {username!r}",
            )
        return actor_of(account)

    # ------------------------------------------------------------ single calls: sets of one
    def submit(
        self,
        data: Any,
        *,
        actor: Actor,
        request_key: str | None = None,
        receipt: PaperReceipt | None = None,
        documents: Sequence[dict[str, Any]] = (),
    ) -> list[FireResult]:
        """File an application, filed when relief receives it: one case per benefit object (a
        chain: one per store). `receipt` records an earlier paper receipt (补录), which only an
        intake officer or an operator may do; `documents` are stored files to attach."""
        item = SubmitItem(
            data, actor, request_key=request_key, receipt=receipt, documents=tuple(documents)
        )
        return self.submit_many([item]).one()

    def grant_ex_officio(
        self, data: Any, *, actor: Actor, request_key: str | None = None
    ) -> list[FireResult]:
        """依职权 — a case the authority grants without an application (starts at approved)."""
        return self.grant_ex_officio_many([SubmitItem(data, actor, request_key)]).one()

    def grant_ex_officio_many(
        self, items: Sequence[SubmitItem], *, unit_size: int = UNIT_SIZE
    ) -> Outcome[list[FireResult]]:
        """Many ex-officio grants (a register of licences), `unit_size` per transaction."""
        out: Outcome[list[FireResult]] = Outcome()
        body = self._submit_unit(ex_officio=True)
        self._run(out, items, lambda it: it.request_key, body, unit_size)
        return out

    def fire(
        self,
        case_id: int,
        trigger: str,
        *,
        actor: Actor,
        payload: dict[str, Any] | None = None,
        expected_version: int | None = None,
        request_key: str | None = None,
    ) -> FireResult:
        """Run `trigger` on a case (then its automatic transitions) in one transaction."""
        item = FireItem(case_id, trigger, actor, payload, expected_version, request_key)
        return self.fire_many([item]).one()

    def decide_task(
        self,
        task_id: int,
        *,
        decision: str,
        actor: Actor,
        reason: str | None = None,
        request_key: str | None = None,
    ) -> FireResult:
        """A bureau's review decision ('pass' or 'fail'); the gateway advances when all decided."""
        return self.decide_tasks([ReviewItem(task_id, decision, actor, reason, request_key)]).one()

    # ------------------------------------------------------------ set operations
    def submit_many(
        self, items: Sequence[SubmitItem], *, unit_size: int = UNIT_SIZE
    ) -> Outcome[list[FireResult]]:
        """File many applications, `unit_size` per transaction (a chain's stores together)."""
        out: Outcome[list[FireResult]] = Outcome()
        self._run(out, items, lambda it: it.request_key, self._submit_unit(), unit_size)
        return out

    def fire_many(
        self, items: Sequence[FireItem], *, unit_size: int = UNIT_SIZE
    ) -> Outcome[FireResult]:
        """Fire a trigger on many cases, `unit_size` cases per transaction."""
        out: Outcome[FireResult] = Outcome()
        self._run(out, items, lambda it: it.case_id, self._fire_unit, unit_size)
        return out

    def decide_tasks(
        self, items: Sequence[ReviewItem], *, unit_size: int = UNIT_SIZE
    ) -> Outcome[FireResult]:
        """Many bureau review decisions; two decisions on one case go to successive units."""
        out: Outcome[FireResult] = Outcome()
        case_of: dict[int | None, int] = {}
        if len(items) > 1:  # a single decision (an API call) needs no cutting
            with Session(self.read_db) as s:
                case_of = dict(
                    s.exec(
                        select(ReviewTask.id, ReviewTask.case_id).where(
                            col(ReviewTask.id).in_([it.task_id for it in items])
                        )
                    ).all()
                )
        self._run(out, items, lambda it: case_of.get(it.task_id), self._review_unit, unit_size)
        return out

    # ------------------------------------------------------------ units of work
    @contextmanager
    def _unit(self) -> Iterator[tuple[UnitOfWork, Stepper]]:
        """One transaction: its unit of work and the stepper on it; written, then committed.

        A database out of reach, or a connection that dies in the transaction, is answered as
        DatabaseUnavailable once the session has rolled back; it is not retried here (a write
        is retried by its caller, whose request key makes that safe)."""
        committing = False
        with Session(self.db, expire_on_commit=False) as s:
            try:
                with s.begin():
                    uow = UnitOfWork(s, issuer=self.issuer, now=self.clock.now())
                    yield uow, Stepper(uow, settings=self.settings, clock=self.clock)
                    uow.flush()
                    committing = True  # lost from here on, the COMMIT may have been applied
            except IntegrityError as exc:
                raise ConflictError(
                    "数据已被他人同时修改，请刷新后重试", f"concurrent change: {exc.orig}"
                ) from None
            except OperationalError as exc:
                if "could not serialize" in str(exc) or "deadlock" in str(exc):
                    raise ConflictError(
                        "数据已被他人同时修改，请刷新后重试", f"concurrent change: {exc.orig}"
                    ) from None
                if _disk_full(exc.orig):  # rolled back: the doors answer it, no stack trace
                    raise storage_full(exc.orig) from exc
                if connection_lost(exc):
                    raise database_unavailable(exc.orig, in_doubt=committing) from exc
                raise
            except DBAPIError as exc:  # e.g. InterfaceError on a connection already closed
                if connection_lost(exc):
                    raise database_unavailable(exc.orig, in_doubt=committing) from exc
                raise

    def _run(
        self,
        out: Outcome[Any],
        items: Sequence[Any],
        key: Callable[[Any], Hashable | None],
        body: Body,
        unit_size: int = UNIT_SIZE,
    ) -> None:
        for chunk in chunks(list(enumerate(items)), unit_size, key=lambda it: key(it[1])):
            self._in_unit(out, chunk, body)

    def _in_unit(self, out: Outcome[Any], chunk: list[tuple[int, Any]], body: Body) -> None:
        """One unit for the chunk. On a conflict nothing of it stays, and its items are run
        again one by one: only the loser is refused. A single item is run once more (the
        winner of a race is visible then: a request key replays), then refused."""
        try:
            with self._unit() as (uow, stepper):
                body(uow, stepper, chunk, out)
            out.units += 1
            return
        except ConflictError as exc:
            for index, _ in chunk:
                out.done.pop(index, None)
                out.refused.pop(index, None)
            conflict = exc
        if len(chunk) > 1:
            out.retried += 1
            log.warning("unit of %d items rolled back (%s); one by one", len(chunk), conflict)
            for one in chunk:
                self._in_unit(out, [one], body)
            return
        try:
            with self._unit() as (uow, stepper):
                body(uow, stepper, chunk, out)
            out.units += 1
        except ConflictError as again:
            out.done.pop(chunk[0][0], None)
            out.refused[chunk[0][0]] = again

    def _fire_unit(
        self, uow: UnitOfWork, st: Stepper, chunk: list[tuple[int, Any]], out: Outcome[Any]
    ) -> None:
        replays = uow.event_replays(it.request_key for _, it in chunk)
        uow.load([it.case_id for _, it in chunk] + [e.case_id for e in replays.values()])
        uow.lock_caps(_cap_keys(uow, [(it.case_id, it.trigger) for _, it in chunk]))
        for index, item in chunk:
            try:
                if item.request_key in replays:
                    out.done[index] = self._replayed(
                        uow, replays[item.request_key], item.actor,
                        case_id=item.case_id, trigger=item.trigger,
                    )  # fmt: skip
                    continue
                case = uow.cases.get(item.case_id)
                if case is None:
                    raise no_such_case()
                run = st.start(case, item.actor)
                st.fire(
                    run,
                    item.trigger,
                    dict(item.payload or {}),
                    request_key=item.request_key,
                    expected_version=item.expected_version,
                )
            except (EngineError, InvalidApplication) as exc:
                out.refused[index] = exc
                continue
            st.owe(run)
            out.done[index] = result(run)

    def _review_unit(
        self, uow: UnitOfWork, st: Stepper, chunk: list[tuple[int, Any]], out: Outcome[Any]
    ) -> None:
        replays = uow.event_replays(it.request_key for _, it in chunk)
        case_of = uow.task_cases([it.task_id for _, it in chunk])
        uow.load(list(case_of.values()) + [e.case_id for e in replays.values()])
        for index, item in chunk:
            try:
                check_review(item.decision, item.reason)
                if item.request_key in replays:
                    out.done[index] = self._replayed(
                        uow, replays[item.request_key], item.actor, task_id=item.task_id
                    )
                    continue
                case = uow.cases.get(case_of.get(item.task_id, -1))
                if case is None:
                    raise no_such_task()
                run = st.start(case, item.actor)
                st.review(run, item.task_id, item.decision, item.reason, item.request_key)
            except (EngineError, InvalidApplication) as exc:
                out.refused[index] = exc
                continue
            st.owe(run)
            out.done[index] = result(run)

    def _submit_unit(self, *, ex_officio: bool = False) -> Body:
        trigger = "grant_ex_officio" if ex_officio else "submit"

        def body(
            uow: UnitOfWork, st: Stepper, chunk: list[tuple[int, Any]], out: Outcome[Any]
        ) -> None:
            replayed = uow.submission_replays(it.request_key for _, it in chunk)
            parsed: list[tuple[int, SubmitItem, Application]] = []
            for index, item in chunk:
                try:
                    if item.request_key and item.request_key in replayed:
                        cases = replayed[item.request_key]
                        self._may_see(uow, item.actor, [c.id for c in cases])
                        out.done[index] = [replay_result(c) for c in cases]
                        continue
                    parsed.append((index, item, parse_application(item.data, today=uow.now.date())))
                except (EngineError, InvalidApplication) as exc:
                    out.refused[index] = exc
            uow.load_register(applicant_of(app).identity for _, _, app in parsed)  # one read
            accepted: list[tuple[int, SubmitItem, Application, list[Assessment]]] = []
            for index, item, app in parsed:
                try:
                    assessments = self._judged(uow, item, app, trigger)
                except (EngineError, InvalidApplication) as exc:
                    out.refused[index] = exc
                    continue
                accepted.append((index, item, app, assessments))
            if not accepted:
                return
            parties: dict[str, dict[str, Any]] = {}
            for _, _, app, _ in accepted:
                party = applicant_of(app)
                parties.setdefault(party.identity, new_applicant(party, uow.now))
            applicant_ids = uow.applicant_ids(parties)
            uow.refresh_contacts(
                {applicant_of(app).identity: (applicant_of(app), item.actor)
                 for _, item, app, _ in accepted}
            )  # fmt: skip
            rows = [
                (index, item, app, facts, assessment)
                for index, item, app, assessments in accepted
                for facts, assessment in zip(_facts_per_case(app), assessments, strict=True)
            ]
            new_rows = [
                self._new_case(app, facts, a, applicant_ids[applicant_of(app).identity], item)
                for _, item, app, facts, a in rows
            ]
            ids = uow.insert_cases(new_rows)
            made: dict[int, list[FireResult]] = {}
            for case_id, values, (index, item, app, _, _) in zip(ids, new_rows, rows, strict=True):
                case = SimpleNamespace(**{**NEW_CASE, **values, "id": case_id})
                case.case_no = f"DC-{values['filed_on'].year}-{case_id:06d}"
                uow.new_case_nos[case_id] = case.case_no
                uow.adopt(case, applicant_of(app).identity)
                run = st.start(case, item.actor)
                st.filed(run, app, trigger=trigger, receipt=item.receipt, documents=item.documents)
                st.owe(run)
                made.setdefault(index, []).append(result(run))
            for index, item, *_ in accepted:
                if item.request_key:
                    uow.record_request(item.request_key, [r.case_id for r in made[index]])
                if item.intake:  # the batch row's record, in the same transaction as its cases
                    row = item.intake
                    uow.extra.append(
                        (IntakeRecord, {"batch_id": row.batch_id, "row_no": row.row_no,
                                        "status": "submitted", "raw": row.raw,
                                        "case_ids": [r.case_id for r in made[index]],
                                        "errors": [], "at": uow.now})
                    )  # fmt: skip
                out.done[index] = made[index]

        return body

    def _judged(
        self, uow: UnitOfWork, item: SubmitItem, app: Application, trigger: str
    ) -> list[Assessment]:
        """Check who may file (before anything is written), and judge by the edition in force
        on the filing date."""
        received_at = item.receipt.received_at if item.receipt else uow.now
        if received_at > uow.now:
            raise InvalidApplication(
                [
                    FieldError(
                        "receipt.received_at",
                        "receipt.future",
                        "补录的收件时间不能晚于当前时间",
                        "a recorded receipt cannot be later than now",
                    )
                ]
            )
        uow.check_account(item.actor)
        party = applicant_of(app)
        authorize_filing(
            item.actor, spec_for(str(app.type)).machine.permit_for(trigger), party.identity,
            trigger=trigger, backdated=item.receipt is not None,
        )  # fmt: skip
        filed_on = received_at.astimezone(uow.now.tzinfo).date()
        assessments = assess_application(
            app, filed_on=filed_on, register=uow.register_of(party.identity)
        )
        if trigger == "grant_ex_officio" and assessments[0].decision not in EX_OFFICIO:
            raise TransitionRefused(
                "该许可证不属于依职权顺延的范围",
                "ex-officio grant refused: the rules do not extend this licence",
                reasons=[c.reason_zh for c in assessments[0].failed],
            )
        return assessments

    def _new_case(
        self,
        app: Application,
        facts: dict[str, Any],
        a: Assessment,
        applicant_id: int,
        item: SubmitItem,
    ) -> dict[str, Any]:
        """A new case row, in draft at version 1 (its number follows from its id)."""
        now = self.clock.now()
        received_at = item.receipt.received_at if item.receipt else now
        return dict(
            case_type=str(app.type),
            state=CaseState.DRAFT.value,
            version=1,
            applicant_id=applicant_id,
            subject_key=a.subject_key,
            facts=facts,
            assessment=a.as_dict(),
            decision=a.decision.value,
            edition_id=a.edition_id,
            filed_on=received_at.astimezone(now.tzinfo).date(),
            received_at=received_at,
            amount_ceiling=a.amount,
            manual_review=bool(a.manual_review_reasons),
            query_code=new_query_code(),
            submission_key=item.request_key,
            created_at=now,
            updated_at=now,
        )

    # ------------------------------------------------------------ replays
    def replay(self, request_key: str, *, actor: Actor) -> FireResult | None:
        """The earlier result of a request key, if that request was already carried out."""
        with Session(self.read_db) as s:
            uow = UnitOfWork(s, issuer=self.issuer, now=self.clock.now())
            ev = uow.event_replays([request_key]).get(request_key)
            if ev is None:
                return None
            uow.load([ev.case_id])
            return self._replayed(uow, ev, actor)

    def _replayed(
        self,
        uow: UnitOfWork,
        ev: Any,
        actor: Actor,
        *,
        case_id: int | None = None,
        trigger: str | None = None,
        task_id: int | None = None,
    ) -> FireResult:
        """The earlier result of this very request — to someone who may see it and take that
        step; a key used for another step or another case is refused, not answered."""
        if task_id is not None:
            trigger = "review_decided"
        same = (
            (case_id is None or ev.case_id == case_id)
            and (trigger is None or ev.trigger == trigger)
            and (task_id is None or (ev.payload or {}).get("task_id") == task_id)
        )
        if not same:
            raise ConflictError(
                "该请求编号已用于其他办理事项，本次未办理；请换用新的请求编号",
                f"request key {ev.request_key!r} was used for another step",
            )
        case = uow.cases[ev.case_id]
        step = "review" if ev.trigger == "review_decided" else ev.trigger
        owner = uow.owners.get(case.id)
        bureaus = [t.bureau for t in uow.tasks[case.id]]
        if not may_replay(actor, permit_of(spec_for(case.case_type), step), owner, bureaus):
            if not can_see(actor, owner, bureaus):
                raise no_such_case()
            raise NotPermitted(
                "该请求编号已由他人用于办理本案件，本次未办理", "request key of someone else's step"
            )
        return replay_result(case)

    def _may_see(self, uow: UnitOfWork, actor: Actor, case_ids: list[int]) -> None:
        """A repeated filing's cases go back only to someone who may see them."""
        for case_id in case_ids:
            if not can_see(actor, uow.owners.get(case_id), ()):
                raise ConflictError(
                    "该请求编号已被使用，本次未办理；请换用新的请求编号",
                    "request key already used by someone else",
                )

    # ------------------------------------------------------------ tasks: claim, release, SLA
    def claim_task(self, task_id: int, *, actor: Actor) -> FireResult:
        """认领 — take a task of one's own section that one may act on; another's claim is a
        conflict (a claim by a disabled account holds nobody off)."""
        return self._assign(task_id, actor=actor, claim=True)

    def release_task(self, task_id: int, *, actor: Actor) -> FireResult:
        """释放 — give back a task one has claimed, so that a colleague can take it; a section
        head may release anyone's claim in the section."""
        return self._assign(task_id, actor=actor, claim=False)

    def reassign_task(self, task_id: int, *, to: str, actor: Actor) -> FireResult:
        """改派 — a section head gives an open task of the section to a colleague of the same
        section who may take its step (the same checks as the colleague's own claim, so the
        case's reviewer is never given its confirmation or decision); one audit event."""
        with self._unit() as (uow, st):
            run, view = self._task_run(uow, st, task_id, actor)
            return self._hand_over(uow, st, run, view, to=to)

    def _task_run(
        self, uow: UnitOfWork, st: Stepper, task_id: int, actor: Actor
    ) -> tuple[CaseRun, TaskView]:
        if not 0 < task_id < 2**31:  # ids are INTEGER columns: PostgreSQL refuses a larger one
            raise no_such_task()
        case_id = uow.task_cases([task_id]).get(task_id)
        uow.load([case_id] if case_id is not None else [])
        case = uow.cases.get(case_id) if case_id is not None else None
        if case is None:
            raise no_such_task()
        run = st.start(case, actor)
        return run, next(t for t in run.tasks if t.id == task_id)

    def _hand_over(
        self, uow: UnitOfWork, st: Stepper, run: CaseRun, view: TaskView, *, to: str | None
    ) -> FireResult:
        """A section head's release (to=None) or reassignment, checked in this transaction:
        the head's account re-read, the task of the head's own section and open, the colleague
        active in that section and allowed the step; written only if nobody changed the claim
        meanwhile."""
        actor = run.actor
        uow.check_account(actor)
        if not can_see(actor, run.owner, (t.bureau for t in run.tasks)):
            raise no_such_task()
        if actor.role not in SECTION_ROLES:
            raise NotPermitted(
                f"{ROLE_ZH[actor.role]}无权改派或释放任务",
                f"role {actor.role.value} may not reassign",
            )
        if (view.bureau, view.section) != (actor.bureau, actor.section or ""):
            raise no_such_task()  # another section's task: as for a claim
        row = uow.s.get(Account, actor.account_id)
        if not (actor.section_head and row is not None and row.section_head):
            raise NotPermitted(
                "只有本科室负责人可以改派任务或释放他人认领的任务",
                f"{actor.username} is not the head of {actor.unit}",
            )
        if view.status != TaskStatus.OPEN:
            raise ConflictError("该任务已办结，不能改派", f"task {view.id} is {view.status}")
        after = None if to is None else self._colleague(uow, run, view, to)
        if after == view.assignee:
            return replay_result(run.case)  # held by them already: nothing to do
        held = (
            col(ReviewTask.assignee).is_(None)
            if view.assignee is None
            else col(ReviewTask.assignee) == view.assignee
        )
        changed = uow.s.exec(
            update(ReviewTask)
            .where(col(ReviewTask.id) == view.id, col(ReviewTask.status) == TaskStatus.OPEN, held)
            .values(assignee=after)
        )
        if changed.rowcount != 1:
            raise ConflictError("该任务已被他人同时改动，请刷新后重试", f"task {view.id} changed")
        state = run.subject.state
        st.record(
            run, Step(state, state, "release_task" if to is None else "reassign_task"),
            {"task_id": view.id, "unit": unit_of(view), "before": view.assignee, "after": after,
             "by": actor.username},
            None,
        )  # fmt: skip
        st.owe(run)
        return result(run)

    def _colleague(self, uow: UnitOfWork, run: CaseRun, view: TaskView, username: str) -> str:
        """The login of whom a task may be given to: active, of the task's own section, and
        allowed its step by the engine's own checks, as if the task were unclaimed."""
        name = username.strip()[:80]
        if not name:
            raise NotPermitted("请选择改派给本科室的哪位人员", "reassign to whom?")
        row = uow.s.exec(select(Account).where(col(Account.username) == name)).first()
        if row is None or not row.active or row.role == Role.SYSTEM:
            raise NotPermitted(
                f"账户“{name}”不存在或已停用，不能改派", f"no active account {name!r}"
            )
        target = actor_of(row)
        if target.role not in SECTION_ROLES or (target.bureau, target.section or "") != (
            view.bureau,
            view.section,
        ):
            raise NotPermitted(
                f"只能改派给本科室的人员，“{name}”不属于{unit_of(view)}",
                f"{name} is not of {unit_of(view)}",
            )
        uow.check_account(target)
        step = CLAIMED_AS.get(view.kind, "review")
        free = [replace(t, assignee=None) if t.id == view.id else t for t in run.tasks]
        authorize(target, step, permit_of(run.spec, step), owner=run.owner, tasks=free,
                  task_id=view.id)  # fmt: skip
        return target.username

    def _assign(self, task_id: int, *, actor: Actor, claim: bool) -> FireResult:
        with self._unit() as (uow, st):
            run, view = self._task_run(uow, st, task_id, actor)
            case = run.case
            if not claim and actor.section_head and view.assignee not in (None, actor.username):
                return self._hand_over(uow, st, run, view, to=None)  # the head frees a claim
            task = st.authorize(run, CLAIMED_AS.get(view.kind, "review"), task_id=task_id)
            assert task is not None
            if claim and task.assignee == actor.username:
                return replay_result(case)  # claimed already: nothing to do
            if not claim and task.assignee != actor.username:
                raise ConflictError("只有认领人可以释放该任务", f"task {task_id} is not yours")
            held = col(ReviewTask.assignee).is_(None) | (col(ReviewTask.assignee) == task.assignee)
            changed = uow.s.exec(
                update(ReviewTask)
                .where(
                    col(ReviewTask.id) == task_id, col(ReviewTask.status) == TaskStatus.OPEN, held
                )
                .values(assignee=actor.username if claim else None)
            )
            if changed.rowcount != 1:
                raise ConflictError("该任务已由他人认领或已办结", f"task {task_id} was taken")
            st.record(
                run,
                Step(case.state, case.state, "claim_task" if claim else "release_task"),
                {"task_id": task_id, "unit": unit_of(task), "assignee": actor.username,
                 "before": task.assignee},
                None,
            )  # fmt: skip
            st.owe(run)
            return result(run)

    def note_task(self, task_id: int, *, kind: str, actor: Actor) -> FireResult | None:
        """SLA: remind a section of a task coming due, or escalate an overdue one to its head.

        Written as a case event and a bureau notice in one transaction, once per task and
        kind; returns None when the task is closed or was already reminded/escalated.
        """
        column = {"reminder": "reminded_on", "escalation": "escalated_on"}[kind]
        notice_kind = {
            "reminder": NoticeKind.TASK_REMINDER,
            "escalation": NoticeKind.TASK_ESCALATION,
        }[kind]
        with self._unit() as (uow, st):
            task = uow.s.get(ReviewTask, task_id)
            if task is None:
                raise no_such_task()
            uow.load([task.case_id])
            run = st.start(uow.cases[task.case_id], actor)
            st.authorize(run, "note_task")
            marked = uow.s.exec(
                update(ReviewTask)
                .where(
                    col(ReviewTask.id) == task_id,
                    col(ReviewTask.status) == TaskStatus.OPEN,
                    col(ReviewTask.paused_on).is_(None),
                    getattr(ReviewTask, column).is_(None),
                )
                .values({column: uow.now.date()})
            )
            if marked.rowcount != 1:
                return None
            detail = {
                "task_id": task_id,
                "task_kind": task.kind,
                "unit": task.unit,
                "bureau": task.bureau_code,
                "section": task.section_code,
                "due_on": task.due_on,
                "to": "section_head" if kind == "escalation" else "section",
            }
            state = run.subject.state
            st.record(run, Step(state, state, f"sla_{kind}"), detail, None)
            run.notices.append(st.notice(run, notice_kind, {}, run.next_seq - 1, task=detail))
            st.owe(run)
            return result(run)

    # ------------------------------------------------------------ estimate (no write)
    def estimate(
        self, data: Any, *, with_register: bool = True
    ) -> tuple[Application, list[Assessment]]:
        """What the rules would say of an application filed today (the filing form's preview,
        `relief estimate`, the public estimate): the same parse and rules as a filing, the 7号
        register included unless the asker may not learn it; nothing is written."""
        app = parse_application(data, today=self.clock.today())
        register: list[Prior7Entry] = []
        if with_register:
            with Session(self.read_db) as s:
                uow = UnitOfWork(s, issuer=self.issuer, now=self.clock.now())
                register = uow.register_of(applicant_of(app).identity)
        return app, assess_application(app, filed_on=self.clock.today(), register=register)

    # ------------------------------------------------------------ editions
    def migrate_edition(
        self,
        case_id: int,
        edition_id: str,
        *,
        actor: Actor,
        expected_version: int | None = None,
        request_key: str | None = None,
    ) -> FireResult:
        """An operator moves an undecided case to another edition: its stored facts judged
        again by that edition's rules, in one transaction with one audit event (from, to, the
        decision and the ceiling before and after). A decided case keeps its edition."""
        with self._unit() as (uow, st):
            uow.load([case_id])
            if case_id not in uow.cases:
                raise no_such_case()
            run = st.start(uow.cases[case_id], actor)
            st.authorize(run, "migrate_edition")
            check_version(run.case, expected_version)
            state = run.subject.state
            if not run.spec.machine.rows_from("withdraw", state):  # decided, or ended
                raise WrongState(
                    f"案件当前状态为“{state_zh(state)}”，已作出决定或已办结，不能改用其他政策版本",
                    f"a case in state {state!r} keeps its edition",
                )
            try:
                target = edition_by_id(edition_id)
            except KeyError:
                raise InvalidApplication(
                    [FieldError("edition", "edition.unknown", f"没有政策版本“{edition_id[:60]}”",
                                f"no policy edition {edition_id[:60]!r}")]
                ) from None  # fmt: skip
            before = run.subject.assessment
            if target.id == run.case.edition_id:
                raise WrongState(
                    f"案件已按政策版本“{target.id}”审查", f"the case is on {target.id} already"
                )
            st.rejudge(run, target)
            after = run.subject.assessment
            st.record(
                run, Step(state, state, "migrate_edition"),
                {"from": before.edition_id, "to": target.id,
                 "decision": [before.decision.value, after.decision.value],
                 "amount": [str(before.amount), str(after.amount)]},
                request_key,
            )  # fmt: skip
            st.owe(run)
            return result(run)

    # ------------------------------------------------------------ the applicant's side
    def add_documents(
        self,
        case_id: int,
        documents: Sequence[dict[str, Any]],
        *,
        actor: Actor,
        expected_version: int | None = None,
        request_key: str | None = None,
    ) -> FireResult:
        """The applicant puts more stored files on an open case (容缺 材料, or unasked); a 容缺
        request whose documents are now all there is answered."""
        with self._unit() as (uow, st):
            uow.load([case_id])
            if case_id not in uow.cases:
                raise no_such_case()
            run = st.start(uow.cases[case_id], actor)
            st.authorize(run, "add_documents")
            check_version(run.case, expected_version)
            state = run.subject.state
            if state in FINAL_STATES or state == CaseState.DRAFT:
                raise WrongState(
                    f"案件当前状态为“{state_zh(state)}”，不能再提交材料",
                    f"documents cannot be added in state {state!r}",
                )
            seq = run.next_seq
            refs = st.attach(run, "add_documents", list(documents), seq)
            if not refs:
                raise InvalidApplication(
                    [FieldError("documents", "missing", "请选择要提交的文件", "no documents")]
                )
            st.answer(run, NoticeKind.DEFERRED_ACCEPTANCE, seq, partial=True)
            st.record(
                run, Step(state, state, "add_documents"),
                {"documents": [r.as_dict() for r in refs]}, request_key,
            )  # fmt: skip
            st.owe(run)
            return result(run)

    def update_contact(
        self,
        identity: str,
        details: Any,
        *,
        actor: Actor,
        expected: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The applicant (or an operator) changes where notices go; later deliveries use it.
        `expected` is what the form showed: a change made meanwhile is refused, not merged."""
        try:
            new = ContactDetails.model_validate(details)
        except ValidationError as exc:
            raise InvalidApplication(describe(exc)) from None
        with self._unit() as (uow, _):
            uow.check_account(actor)
            if actor.role not in (Role.APPLICANT, Role.OPERATOR) or (
                actor.role == Role.APPLICANT and actor.identity != identity
            ):
                raise NotPermitted(
                    "只能修改本账户绑定单位的联系方式", "only your own contact details"
                )
            row = uow.s.exec(select(Applicant).where(col(Applicant.identity) == identity)).first()
            if row is None or row.id is None:
                raise NotPermitted("尚无该单位的申请人信息", f"no applicant {identity!r}")
            stored = stored_contact(row)
            if expected is not None and any(
                expected.get(k) != stored[k] for k in CONTACT_FIELDS if k in expected
            ):
                raise ConflictError(
                    "联系方式已被修改，请刷新后重新填写", "contact details changed meanwhile"
                )
            patch = details_patch(stored, new)
            if patch:
                uow.change_contact(row.id, stored, patch, actor, "contact_changed")
            return {**stored, **patch}

    def note_request(self, request_id: int, *, actor: Actor) -> FireResult | None:
        """Remind the applicant of a 补正 / 容缺 / 补充 deadline, once per request (the sweep);
        None when the request is answered or ended, or was reminded already."""
        with self._unit() as (uow, st):
            req = uow.s.get(ApplicantRequest, request_id)
            if req is None:
                raise no_such_case()
            uow.load([req.case_id])
            run = st.start(uow.cases[req.case_id], actor)
            st.authorize(run, "note_request")
            marked = uow.s.exec(
                update(ApplicantRequest)
                .where(
                    col(ApplicantRequest.id) == request_id,
                    col(ApplicantRequest.status) == RequestStatus.OPEN,
                    col(ApplicantRequest.reminded_on).is_(None),
                )
                .values(reminded_on=uow.now.date())
            )
            if marked.rowcount != 1:
                return None
            state = run.subject.state
            detail = request_detail(req)
            st.record(run, Step(state, state, "reply_reminder"), detail, None)
            run.notices.append(
                st.notice(
                    run, NoticeKind.REPLY_REMINDER,
                    {"items": req.items, "deadline": req.deadline.isoformat()},
                    run.next_seq - 1, task=detail,
                )
            )  # fmt: skip
            st.owe(run)
            return result(run)

    def lapse_request(self, request_id: int, *, actor: Actor) -> FireResult | None:
        """A 补正 / 容缺 / 补充 request past its deadline unanswered: the case ends as its
        notice said (终止办理, with the 终止办理告知书). A 容缺 request on a case decided
        meanwhile cannot end it here (the decision would be revoked, 撤销): it is marked
        overdue and becomes an incident for an operator. None when answered or not yet due."""
        with self._unit() as (uow, st):
            req = uow.s.get(ApplicantRequest, request_id)
            if req is None:
                raise no_such_case()
            if req.status != RequestStatus.OPEN or req.deadline >= uow.now.date():
                return None
            uow.load([req.case_id])
            run = st.start(uow.cases[req.case_id], actor)
            verb = {"correction": "补正", "deferred_acceptance": "补齐", "more_info": "补充"}
            reason = f"你单位未在{zh_date(req.deadline)}前{verb.get(req.kind, '补交')}要求的材料"
            if run.spec.machine.rows_from("expire", run.subject.state):
                st.fire(
                    run, "expire", {"reason": reason, "request_id": request_id},
                    request_key=f"lapse:{request_id}", expected_version=None,
                )  # fmt: skip
            else:
                st.authorize(run, "note_request")
                state = run.subject.state
                uow.s.exec(
                    update(ApplicantRequest)
                    .where(col(ApplicantRequest.id) == request_id)
                    .values(status=RequestStatus.OVERDUE, closed_seq=run.next_seq,
                            closed_at=uow.now)
                )  # fmt: skip
                detail = request_detail(req)
                st.record(run, Step(state, state, "request_overdue"), detail, None)
                uow.extra.append(
                    (Incident, {"ref": f"request:{request_id}", "kind": "request_overdue",
                                "case_id": req.case_id, "status": "open", "created_at": uow.now,
                                "message": f"{reason}；案件已{state_zh(state)}，请人工处理"})
                )  # fmt: skip
            st.owe(run)
            return result(run)

    # ------------------------------------------------------------ 7号 register
    def act_on_incident(
        self, incident_id: int, *, action: str, actor: Actor, note: str = ""
    ) -> FireResult:
        """An operator acts on an open incident: `retry` puts the failed notice back in the
        outbox, or the failed payout back in the payment queue (same idempotency key, so the
        receiver can never pay or deliver twice); `resolve` closes it with a note (handled
        outside relief, say by phone). One transaction: the incident, the row it concerns, and
        an audit event on its case; a second action on the same incident is a conflict."""
        if action not in ("retry", "resolve"):
            raise NotPermitted("未知的异常处理方式", f"unknown incident action {action!r}")
        note = note.strip()
        if action == "resolve" and not note:
            raise NotPermitted("办结异常须填写处理说明", "resolving an incident needs a note")
        if len(note) > 2000:
            raise NotPermitted("处理说明不得超过2000字", "the note is longer than 2000 characters")
        with self._unit() as (uow, st):
            incident = uow.s.get(Incident, incident_id)
            if incident is None or incident.case_id is None:
                raise CaseNotFound("没有该异常", f"no incident {incident_id}")
            uow.load([incident.case_id])
            run = st.start(uow.cases[incident.case_id], actor)
            st.authorize(run, f"{action}_incident")
            done = {"status": "resolved", "resolved_at": uow.now, "resolved_by": actor.username,
                    "note": note}  # fmt: skip
            # a retry starts from an open incident; one being retried may still be resolved
            # (handled outside relief while the queue waits)
            acting_on = ("open",) if action == "retry" else ("open", "retrying")
            changed = uow.s.exec(
                update(Incident)
                .where(col(Incident.id) == incident_id, col(Incident.status).in_(acting_on),
                       col(Incident.retries) == incident.retries)
                .values(done if action == "resolve" else {"retries": incident.retries + 1})
                .values(status="resolved" if action == "resolve" else "retrying")
            )  # fmt: skip
            if changed.rowcount != 1:
                raise ConflictError(
                    "该异常已由他人处理，请刷新", f"incident {incident_id} is {incident.status}"
                )
            if action == "retry":
                self._requeue(uow, incident)
            state = run.subject.state
            st.record(
                run, Step(state, state, f"{action}_incident"),
                {"incident_id": incident_id, "ref": incident.ref, "kind": incident.kind,
                 "note": note},
                None,
            )  # fmt: skip
            st.owe(run)
            return result(run)

    def _requeue(self, uow: UnitOfWork, incident: Incident) -> None:
        """Put what failed back where its flow picks it up: the same row, the same key."""
        what, _, key = incident.ref.partition(":")
        if what == "notice":
            check_move(NOTICE_MOVES, NoticeStatus.FAILED, NoticeStatus.PENDING)
            moved = uow.s.exec(
                update(Notice)
                .where(col(Notice.idempotency_key) == key, col(Notice.status) == "failed")
                .values(status="pending", next_attempt_at=uow.now)
            )
        elif what == "payout":
            check_move(PAYOUT_MOVES, PayoutStatus.FAILED, PayoutStatus.ORDERED)
            moved = uow.s.exec(  # out of its old instruction file, into the next one
                update(Payout)
                .where(col(Payout.idempotency_key) == key, col(Payout.status) == "failed")
                .values(status="ordered", batch_ref=None, updated_at=uow.now)
            )
        else:
            raise NotPermitted("该异常不能重试，只能办结", f"{incident.ref} cannot be retried")
        if moved.rowcount != 1:
            raise ConflictError("该异常涉及的记录已不在失败状态", f"{incident.ref} is not failed")

    def import_prior7(self, entries: list[Prior7Entry], *, note: str = "") -> int:
        """Load 7号 register rows; a row already present is skipped. Returns rows added."""
        added = 0
        with Session(self.db) as s, s.begin():
            for e in entries:
                exists = s.exec(
                    select(Prior7Benefit.id).where(
                        col(Prior7Benefit.subject) == e.subject,
                        col(Prior7Benefit.family) == e.family,
                        col(Prior7Benefit.object_id) == (e.object_id or ""),
                        col(Prior7Benefit.period_from) == e.period_from,
                        col(Prior7Benefit.period_to) == e.period_to,
                    )
                ).first()
                if exists:
                    continue
                s.execute(
                    insert(Prior7Benefit).values(
                        subject=e.subject, family=e.family, object_id=e.object_id or "",
                        period_from=e.period_from, period_to=e.period_to, note=note,
                        imported_at=self.clock.now(),
                    )
                )  # fmt: skip
                added += 1
        return added


# ---------------------------------------------------------------- helpers
def request_detail(req: Any) -> dict[str, Any]:
    """What a reminder or an overdue mark says about the request (the event's payload)."""
    return {
        "request_id": req.id,
        "request_kind": req.kind,
        "opened_on": req.created_at.date().isoformat(),
        "deadline": req.deadline.isoformat(),
        "slots": list(req.slots),
    }


def result(run: CaseRun) -> FireResult:
    return FireResult(
        case_id=run.case.id,
        case_no=run.case.case_no or "",
        state=run.subject.state,
        version=run.loaded_version + 1,
        steps=tuple(run.steps),
    )


def replay_result(case: Any) -> FireResult:
    return FireResult(case.id, case.case_no or "", case.state, case.version, (), replayed=True)


def _disk_full(orig: BaseException | None) -> bool:
    """The driver's error is a full disk: SQLite's SQLITE_FULL (13), PostgreSQL's 53100."""
    return (
        getattr(orig, "sqlite_errorcode", None) == 13
        or getattr(orig, "sqlstate", None) == "53100"
        or "database or disk is full" in str(orig)
    )


def check_review(decision: str, reason: str | None) -> None:
    if decision not in ("pass", "fail"):
        raise TransitionRefused(
            "审核意见只能是 pass（通过）或 fail（不通过）", f"unknown decision {decision!r}"
        )
    if decision == "fail" and not (reason and reason.strip()):
        raise TransitionRefused("审核不通过须说明理由", "a failing review needs a reason")


def _cap_keys(uow: UnitOfWork, wanted: list[tuple[int, str]]) -> list[str]:
    """The cap accounts the unit's grants may draw on (locked up front, in key order)."""
    keys: set[str] = set()
    for case_id, trigger in wanted:
        case = uow.cases.get(case_id)
        if case is None:
            continue
        machine = spec_for(case.case_type).machine
        if any(r.effects.grant for r in machine.rows() if r.trigger == trigger):
            keys.update(
                c["cap_key"] for c in case.assessment.get("components", []) if c.get("cap_key")
            )
    return sorted(keys)


def _facts_per_case(app: Application) -> list[dict[str, Any]]:
    """The facts each case keeps: a chain's application split into one per store."""
    data = app.model_dump(mode="json", exclude_none=True)
    stores = getattr(app, "stores", None)
    if not stores:
        return [data]
    out = []
    for store in stores:
        assert isinstance(store, StoreLease)
        one = dict(data)
        one["stores"] = [store.model_dump(mode="json", exclude_none=True)]
        out.append(one)
    return out


def chunks(items: list[T], size: int, *, key: Callable[[T], Hashable | None]) -> Iterator[list[T]]:
    """Cut items into chunks of at most `size`, never two items with the same key in one (so
    every item sees the state the previous one left, as one-by-one calls do)."""
    chunk: list[T] = []
    seen: set[Hashable] = set()
    for item in items:
        k = key(item)
        if len(chunk) >= size or (k is not None and k in seen):
            yield chunk
            chunk, seen = [], set()
        chunk.append(item)
        if k is not None:
            seen.add(k)
    if chunk:
        yield chunk
