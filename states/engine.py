"""引擎 — the one writer of case state.

Every change is one database transaction: load the case at its version, run the type's state
machine on a plain object, then write the new state (version-checked), the append-only event,
the review tasks, the outbox notices, the payout order, cap grants and effect registers, and
commit. A stale version is a ConflictError; a repeated request key returns the earlier result.
After the explicit trigger the engine fires the machine's automatic transitions (intake,
opening reviews, ordering payouts) in the same transaction, each with its own event.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Engine, func, insert, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, SQLModel, col, select
from transitions import MachineError

from base.clock import Clock
from base.money import to_money
from base.query_codes import new_query_code
from base.working_days import add_working_days, working_days_between
from models.applications import Application, StoreLease, applicant_of, identity_in
from models.db import insert_if_absent
from models.input_errors import FieldError, InvalidApplication, parse_application
from models.receipts import PaperReceipt
from models.settings import Settings
from models.tables import (
    Account,
    Applicant,
    CapAccount,
    CapGrant,
    Case,
    CaseEvent,
    Notice,
    Payout,
    Prior7Benefit,
    ReviewTask,
)
from notifications.context import NoticeInput, issuer_route
from notifications.context import build as build_notice_context
from notifications.doc_numbers import next_doc_number
from notifications.render import render_notice
from states.actors import Actor
from states.authority import authorize, authorize_filing, can_see, may_replay
from states.catalog import CaseTypeSpec, spec_for
from states.catalog import assess as assess_application
from states.edition import edition_by_id
from states.errors import (
    ConflictError,
    NotPermitted,
    TransitionRefused,
    WrongState,
    no_such_case,
    no_such_task,
)
from states.labels import state_zh
from states.lifecycle import (
    BUREAU_NOTICES,
    CLAIMED_AS,
    PERMITS,
    CaseState,
    CaseSubject,
    EffectFacts,
    Effects,
    NoticeKind,
)
from states.permits import TaskView
from states.rules import Assessment, Component, Decision, Prior7Entry, Route, TaskKind

log = logging.getLogger(__name__)

MAX_AUTO_STEPS = 20
REPLY_NOTICES = frozenset(
    {NoticeKind.CORRECTION, NoticeKind.DEFERRED_ACCEPTANCE, NoticeKind.MORE_INFO}
)


# ---------------------------------------------------------------- results
@dataclass(frozen=True)
class Step:
    from_state: str | None
    to_state: str
    trigger: str


@dataclass(frozen=True)
class FireResult:
    case_id: int
    case_no: str
    state: str
    version: int
    steps: tuple[Step, ...]
    replayed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "case_no": self.case_no,
            "state": self.state,
            "state_zh": state_zh(self.state),
            "version": self.version,
            "steps": [
                {"from": s.from_state, "to": s.to_state, "trigger": s.trigger} for s in self.steps
            ],
            "replayed": self.replayed,
        }


# ---------------------------------------------------------------- one transaction's work
@dataclass
class _Run:
    """The writes one transaction owes, gathered while the machine runs."""

    case: Case
    spec: CaseTypeSpec
    subject: CaseSubject
    actor: Actor
    next_seq: int
    tasks: list[TaskView] = field(default_factory=list)  # the case's tasks, as read
    owner: str | None = None  # the applicant's identity, read when an applicant acts
    steps: list[Step] = field(default_factory=list)
    # rows as column values, inserted with Core by _write (an ORM object costs ~100 µs here)
    events: list[dict[str, Any]] = field(default_factory=list)
    new_tasks: list[dict[str, Any]] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)
    changes: dict[str, Any] = field(default_factory=dict)
    machine_bound: bool = False
    # rows needing the case row first: (table model, column values)
    after_update: list[tuple[type[SQLModel], dict[str, Any]]] = field(default_factory=list)


@dataclass
class CapBalance:
    """A cap account as an approval sees it, under its lock."""

    cap_limit: Decimal
    opening: Decimal
    granted: Decimal


class CaseEngine:
    """Submit applications and fire triggers on cases; the only code that changes a case."""

    def __init__(self, db: Engine, *, settings: Settings, clock: Clock | None = None) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock or Clock(settings.now)

    # ------------------------------------------------------------ transactions
    @contextmanager
    def _tx(self) -> Iterator[Session]:
        with Session(self.db, expire_on_commit=False) as session:
            try:
                with session.begin():
                    yield session
            except IntegrityError as exc:
                raise ConflictError(
                    "数据已被他人同时修改，请刷新后重试",
                    f"concurrent change detected: {exc.orig}",
                ) from None
            except OperationalError as exc:
                if "could not serialize" in str(exc) or "deadlock" in str(exc):
                    raise ConflictError(
                        "数据已被他人同时修改，请刷新后重试", f"concurrent change: {exc.orig}"
                    ) from None
                raise

    # ------------------------------------------------------------ who is acting
    def _check_account(self, s: Session, actor: Actor) -> None:
        """The actor's account exists, is active and still has the role and unit it claims.

        Read in the step's transaction: an account disabled or moved a moment ago acts no more.
        Once per account and transaction (a batch's chunk acts as one account many times).
        """
        checked: set[Actor] = s.info.setdefault("checked_actors", set())
        if actor in checked:
            return
        row = s.get(Account, actor.account_id)
        current = (
            row is not None
            and row.active
            and (row.username, row.role, row.bureau_code, row.uscc)
            == (actor.username, actor.role.value, actor.bureau, actor.identity)
            and (row.section_code or None) == (actor.section or None)
        )
        if not current:
            raise NotPermitted(
                f"账户“{actor.username}”不存在、已停用或权限已变更",
                f"account {actor.username!r} is unknown, inactive or changed",
            )
        checked.add(actor)

    def actor(self, username: str) -> Actor:
        """The Actor of an account by its login name (the CLI's --as, a flow's account)."""
        from states.actors import actor_of

        with Session(self.db) as s:
            account = s.exec(select(Account).where(col(Account.username) == username)).first()
        if account is None or not account.active:
            raise NotPermitted(
                f"账户“{username}”不存在或已停用（用 relief account create 创建）",
                f"no active account {username!r}",
            )
        return actor_of(account)

    def _authorize(
        self, s: Session, run: _Run, trigger: str, *, task_id: int | None = None
    ) -> TaskView | None:
        """Raise unless the run's actor may take `trigger` on the case now (states/authority)."""
        actor = run.actor
        self._check_account(s, actor)
        if actor.role.value == "applicant" and run.owner is None:
            run.owner = s.exec(
                select(Applicant.identity).where(col(Applicant.id) == run.case.applicant_id)
            ).first()
        rule = (
            PERMITS.get(trigger)
            if trigger in ("review", "note_task")
            else (run.spec.machine.permit_for(trigger))
        )
        return authorize(actor, trigger, rule, owner=run.owner, tasks=run.tasks, task_id=task_id)

    # ------------------------------------------------------------ submit
    def submit(
        self,
        data: Any,
        *,
        actor: Actor,
        request_key: str | None = None,
        receipt: PaperReceipt | None = None,
    ) -> list[FireResult]:
        """File an application: one case per benefit object (a chain: one per store).

        The filing date is the moment relief receives it; `receipt` records an earlier paper
        receipt (补录), which only an intake officer or an operator may do.
        """
        return self._create(
            data, actor=actor, request_key=request_key, ex_officio=False, receipt=receipt
        )

    def grant_ex_officio(
        self, data: Any, *, actor: Actor, request_key: str | None = None
    ) -> list[FireResult]:
        """依职权 — a case the authority grants without an application (starts at approved)."""
        return self._create(
            data, actor=actor, request_key=request_key, ex_officio=True, receipt=None
        )

    def _create(
        self,
        data: Any,
        *,
        actor: Actor,
        request_key: str | None,
        ex_officio: bool,
        receipt: PaperReceipt | None,
    ) -> list[FireResult]:
        today = self.clock.today()
        app = parse_application(data, today=today)
        received_at = receipt.received_at if receipt else self.clock.now()
        if received_at > self.clock.now():
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
        filed_on = received_at.astimezone(self.clock.now().tzinfo).date()
        with self._tx() as s:
            if request_key:
                existing = s.exec(
                    select(Case)
                    .where(col(Case.submission_key) == request_key)
                    .order_by(col(Case.id))
                ).all()
                if existing:
                    self._may_see(s, actor, existing)
                    return [self._result(c, (), replayed=True) for c in existing]
            party = applicant_of(app)
            self._check_account(s, actor)
            trigger = "grant_ex_officio" if ex_officio else "submit"
            spec = spec_for(app.type.value)
            authorize_filing(
                actor, spec.machine.permit_for(trigger), party.identity, trigger=trigger,
                backdated=receipt is not None,
            )  # fmt: skip
            register = self._register(s, party.identity)
            assessments = assess_application(app, filed_on=filed_on, register=register)
            if ex_officio and assessments[0].decision not in (
                Decision.EXTENDED_EX_OFFICIO,
                Decision.EXTENDED,
                Decision.EXTENDED_PENDING_LIFT,
            ):
                raise TransitionRefused(
                    "该许可证不属于依职权顺延的范围",
                    "ex-officio grant refused: the rules do not extend this licence",
                    reasons=[c.reason_zh for c in assessments[0].failed],
                )
            applicant_id = self._applicant_id(s, app)
            results = []
            for facts, assessment in zip(_facts_per_case(app), assessments, strict=True):
                case = self._insert_case(
                    s, app, facts, assessment, applicant_id, filed_on, request_key, received_at
                )
                run = self._start_run(s, case, actor)
                self._record_receipt(run, app, received_at, receipt)
                self._step(s, run, trigger, {}, request_key=None)
                self._auto(s, run)
                version = self._write(s, run, loaded_version=case.version)
                results.append(self._result(case, run.steps, version=version, run=run))
            return results

    def _record_receipt(
        self,
        run: _Run,
        app: Application,
        received_at: datetime,
        receipt: PaperReceipt | None,
    ) -> None:
        """A 补录 is its own audit event: who recorded which receipt, why, on what evidence."""
        if receipt is None:
            return
        self._record(
            run,
            Step(CaseState.DRAFT.value, CaseState.DRAFT.value, "record_paper_receipt"),
            {
                "received_at": received_at.isoformat(),
                "reason": receipt.reason,
                "evidence": receipt.evidence,
                "recorded_at": self.clock.now().isoformat(),
                "stated_application_date": app.application_date,
            },
            None,
        )

    def _applicant_id(self, s: Session, app: Application) -> int:
        party = applicant_of(app)
        found = s.exec(
            select(Applicant.id).where(col(Applicant.identity) == party.identity)
        ).first()
        if found is not None:
            return found
        row = Applicant(**self._applicant_values(app))
        s.add(row)
        s.flush()
        assert row.id is not None
        return row.id

    def _applicant_values(self, app: Application) -> dict[str, Any]:
        """The applicant row an application brings (for a party not yet on file)."""
        party = applicant_of(app)
        return dict(
            identity=party.identity,
            uscc=party.uscc,
            registration_no=party.registration_no,
            name=party.name,
            kind=party.kind.value,
            size=party.size.value if party.size else None,
            email=party.email,
            phone=party.phone,
            notify=list(party.notify)
            if party.notify is not None
            else (["email"] if party.email else []),
            im_url=party.im_url,
            created_at=self.clock.now(),
        )

    def _insert_case(
        self,
        s: Session,
        app: Application,
        facts: dict[str, Any],
        assessment: Assessment,
        applicant_id: int,
        filed_on: date,
        submission_key: str | None,
        received_at: datetime | None = None,
    ) -> Case:
        case = Case(
            **self._case_values(
                app, facts, assessment, applicant_id, filed_on, submission_key, received_at
            )
        )
        s.add(case)
        s.flush()
        assert case.id is not None
        case.case_no = f"DC-{filed_on.year}-{case.id:06d}"
        s.flush()
        return case

    def _case_values(
        self,
        app: Application,
        facts: dict[str, Any],
        assessment: Assessment,
        applicant_id: int,
        filed_on: date,
        submission_key: str | None,
        received_at: datetime | None = None,
    ) -> dict[str, Any]:
        """A new case row, in draft at version 1 (its number follows from its id)."""
        now = self.clock.now()
        return dict(
            case_type=app.type.value,
            state=CaseState.DRAFT.value,
            version=1,
            applicant_id=applicant_id,
            subject_key=assessment.subject_key,
            facts=facts,
            assessment=assessment.as_dict(),
            decision=assessment.decision.value,
            edition_id=assessment.edition_id,
            filed_on=filed_on,
            received_at=received_at or now,
            amount_ceiling=assessment.amount,
            manual_review=bool(assessment.manual_review_reasons),
            query_code=new_query_code(),
            submission_key=submission_key,
            created_at=now,
            updated_at=now,
        )

    # ------------------------------------------------------------ fire
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
        payload = dict(payload or {})
        with self._tx() as s:
            replay = self._replay(s, request_key, actor=actor, case_id=case_id, trigger=trigger)
            if replay is not None:
                return replay
            case = self._load(s, case_id)
            run = self._fire_on(
                s, case, trigger, actor=actor, payload=payload, request_key=request_key,
                expected_version=expected_version,
            )  # fmt: skip
            version = self._write(s, run, loaded_version=case.version)
            return self._result(case, run.steps, version=version, run=run)

    def _fire_on(
        self,
        s: Session,
        case: Case,
        trigger: str,
        *,
        actor: Actor,
        payload: dict[str, Any],
        request_key: str | None,
        expected_version: int | None = None,
    ) -> _Run:
        """Who may, then the trigger and the automatic transitions after it, for one write."""
        run = self._start_run(s, case, actor)
        self._authorize(s, run, trigger)
        self._check_version(case, expected_version)
        if "facts" in payload:
            self._refacts(s, run, trigger, payload["facts"])
        self._step(s, run, trigger, payload, request_key=request_key)
        self._auto(s, run)
        return run

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
        self._check_review(decision, reason)
        with self._tx() as s:
            replay = self._replay(s, request_key, actor=actor, task_id=task_id)
            if replay is not None:
                return replay
            case_id = s.exec(
                select(ReviewTask.case_id).where(col(ReviewTask.id) == task_id)
            ).first()
            if case_id is None:
                raise no_such_task()
            case = self._load(s, case_id)
            run = self._start_run(s, case, actor)
            task = self._authorize_review(s, run, task_id)
            done = s.exec(
                update(ReviewTask)
                .where(col(ReviewTask.id) == task_id, col(ReviewTask.status) == "open")
                .values(
                    status="done",
                    decision=decision,
                    reason=reason,
                    decided_at=self.clock.now(),
                    decided_by=actor.username,
                )
            )
            if done.rowcount != 1:
                raise ConflictError(
                    "该任务已办理或已关闭，不能重复办理", f"task {task_id} is not open"
                )
            self._review_decided(
                s, run, task=task, decision=decision, reason=reason, request_key=request_key
            )
            version = self._write(s, run, loaded_version=case.version)
            return self._result(case, run.steps, version=version, run=run)

    def _authorize_review(self, s: Session, run: _Run, task_id: int) -> TaskView:
        """The review task the actor decides: their section's, open, not claimed by another."""
        view = next((t for t in run.tasks if t.id == task_id), None)
        if view is not None and view.kind != TaskKind.REVIEW.value:
            self._authorize(s, run, "review", task_id=None)  # visibility and role first
            raise TransitionRefused(
                "确认和决定任务请通过 confirm / approve / reject 办理",
                f"task {task_id} is a {view.kind} task, not a review",
            )
        held = self._authorize(s, run, "review", task_id=task_id)
        assert held is not None
        return held

    @staticmethod
    def _check_review(decision: str, reason: str | None) -> None:
        if decision not in ("pass", "fail"):
            raise TransitionRefused(
                "审核意见只能是 pass（通过）或 fail（不通过）", f"unknown decision {decision!r}"
            )
        if decision == "fail" and not (reason and reason.strip()):
            raise TransitionRefused("审核不通过须说明理由", "a failing review needs a reason")

    def _review_decided(
        self,
        s: Session,
        run: _Run,
        *,
        task: TaskView,
        decision: str,
        reason: str | None,
        request_key: str | None,
    ) -> None:
        """The case after one of its review tasks was decided (the gateway may advance)."""
        task.status, task.decision, task.decided_by = "done", decision, run.actor.username
        run.subject.review_tasks = [
            (t.status, t.decision) for t in run.tasks if t.kind == TaskKind.REVIEW.value
        ]
        case = run.case
        self._record(
            run,
            Step(case.state, case.state, "review_decided"),
            {"task_id": task.id, "unit": _unit_of(task), "decision": decision, "reason": reason},
            request_key,
        )
        self._auto(s, run)

    def claim_task(self, task_id: int, *, actor: Actor) -> FireResult:
        """认领 — take a task of one's own section that one may act on; another's claim is a
        conflict (a claim by a disabled account holds nobody off)."""
        return self._assign(task_id, actor=actor, claim=True)

    def release_task(self, task_id: int, *, actor: Actor) -> FireResult:
        """释放 — give back a task one has claimed, so that a colleague can take it."""
        return self._assign(task_id, actor=actor, claim=False)

    def _assign(self, task_id: int, *, actor: Actor, claim: bool) -> FireResult:
        with self._tx() as s:
            found = s.exec(
                select(ReviewTask.case_id, ReviewTask.kind).where(col(ReviewTask.id) == task_id)
            ).first()
            if found is None:
                raise no_such_task()
            case = self._load(s, found[0])
            run = self._start_run(s, case, actor)
            task = self._authorize(s, run, CLAIMED_AS.get(found[1], "review"), task_id=task_id)
            assert task is not None
            if claim and task.assignee == actor.username:
                return self._result(case, (), replayed=True)  # claimed already: nothing to do
            if not claim and task.assignee != actor.username:
                raise ConflictError("只有认领人可以释放该任务", f"task {task_id} is not yours")
            held = col(ReviewTask.assignee).is_(None) | (col(ReviewTask.assignee) == task.assignee)
            changed = s.exec(
                update(ReviewTask)
                .where(col(ReviewTask.id) == task_id, col(ReviewTask.status) == "open", held)
                .values(assignee=actor.username if claim else None)
            )
            if changed.rowcount != 1:
                raise ConflictError("该任务已由他人认领或已办结", f"task {task_id} was taken")
            self._record(
                run,
                Step(case.state, case.state, "claim_task" if claim else "release_task"),
                {"task_id": task_id, "unit": _unit_of(task), "assignee": actor.username,
                 "before": task.assignee},
                None,
            )  # fmt: skip
            version = self._write(s, run, loaded_version=case.version)
            return self._result(case, run.steps, version=version, run=run)

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
        with self._tx() as s:
            task = s.get(ReviewTask, task_id)
            if task is None:
                raise no_such_task()
            case = self._load(s, task.case_id)
            run = self._start_run(s, case, actor)
            self._authorize(s, run, "note_task")
            marked = s.exec(
                update(ReviewTask)
                .where(
                    col(ReviewTask.id) == task_id,
                    col(ReviewTask.status) == "open",
                    col(ReviewTask.paused_on).is_(None),
                    getattr(ReviewTask, column).is_(None),
                )
                .values({column: self.clock.today()})
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
            self._record(run, Step(case.state, case.state, f"sla_{kind}"), detail, None)
            assert case.id is not None
            run.notices.append(
                self._issue_notice(s, run, notice_kind, {}, run.next_seq - 1, task=detail)
            )
            version = self._write(s, run, loaded_version=case.version)
            return self._result(case, run.steps, version=version, run=run)

    def replay(self, request_key: str, *, actor: Actor) -> FireResult | None:
        """The earlier result of a request key, if that request was already carried out."""
        with Session(self.db) as s:
            return self._replay(s, request_key, actor=actor)

    # ------------------------------------------------------------ pieces of a run
    def _replay(
        self,
        s: Session,
        request_key: str | None,
        *,
        actor: Actor,
        case_id: int | None = None,
        trigger: str | None = None,
        task_id: int | None = None,
    ) -> FireResult | None:
        """The earlier result of this very request — to someone who may see it and take that
        step; a key used for another step or another case is refused, not answered."""
        if not request_key:
            return None
        ev = s.exec(select(CaseEvent).where(col(CaseEvent.request_key) == request_key)).first()
        if ev is None:
            return None
        if task_id is not None:
            trigger = "review_decided"
        same = (
            (case_id is None or ev.case_id == case_id)
            and (trigger is None or ev.trigger == trigger)
            and (task_id is None or ev.payload.get("task_id") == task_id)
        )
        if not same:
            raise ConflictError(
                "该请求编号已用于其他办理事项，本次未办理；请换用新的请求编号",
                f"request key {request_key!r} was used for another step",
            )
        case = s.get(Case, ev.case_id)
        assert case is not None
        step = "review" if ev.trigger == "review_decided" else ev.trigger
        rule = (
            PERMITS.get(step)
            if step in ("review", "note_task")
            else (spec_for(case.case_type).machine.permit_for(step))
        )
        owner = s.exec(
            select(Applicant.identity).where(col(Applicant.id) == case.applicant_id)
        ).first()
        bureaus = s.exec(
            select(ReviewTask.bureau_code).where(col(ReviewTask.case_id) == case.id)
        ).all()
        if not may_replay(actor, rule, owner, bureaus):
            if not can_see(actor, owner, bureaus):
                raise no_such_case()
            raise NotPermitted(
                "该请求编号已由他人用于办理本案件，本次未办理", "request key of someone else's step"
            )
        return self._result(case, (), replayed=True)

    def _may_see(self, s: Session, actor: Actor, cases: Sequence[Any]) -> None:
        """A repeated submission's cases go back only to someone who may see them."""
        for case in cases:
            owner = s.exec(
                select(Applicant.identity).where(col(Applicant.id) == case.applicant_id)
            ).first()
            if not can_see(actor, owner, ()):
                raise ConflictError(
                    "该请求编号已被使用，本次未办理；请换用新的请求编号",
                    "request key already used by someone else",
                )

    def _load(self, s: Session, case_id: int) -> Case:
        case = s.get(Case, case_id)
        if case is None:
            raise no_such_case()
        return case

    @staticmethod
    def _check_version(case: Case, expected_version: int | None) -> None:
        if expected_version is not None and case.version != expected_version:
            raise ConflictError(
                f"案件已被他人修改（当前版本{case.version}，您看到的是版本{expected_version}），"
                "请刷新后重试",
                f"stale version: case {case.id} is at {case.version}, not {expected_version}",
            )

    def _start_run(self, s: Session, case: Case, actor: Actor) -> _Run:
        assert case.id is not None
        spec = spec_for(case.case_type)
        views, last_seq = self._run_context(s, case.id)
        subject = CaseSubject(
            state=case.state,
            assessment=_assessment_from(case),
            review_tasks=[(t.status, t.decision) for t in views if t.kind == "review"],
            decide_task_opened=any(t.kind == "decide" for t in views),
            lift_known=bool(case.facts.get("lockdown_lift_date")),
            manual_intake=self.settings.intake_review,
            intake_task_open=any(t.kind == "intake" and t.status == "open" for t in views),
            today=self.clock.today(),
        )
        return _Run(
            case=case, spec=spec, subject=subject, actor=actor, next_seq=last_seq + 1, tasks=views
        )

    def _run_context(self, s: Session, case_id: int) -> tuple[list[TaskView], int]:
        """The case's tasks, and its last event number."""
        rows = s.exec(
            select(*TASK_VIEW_COLUMNS)
            .where(col(ReviewTask.case_id) == case_id)
            .order_by(col(ReviewTask.id))
        ).all()
        last_seq = s.exec(
            select(func.max(CaseEvent.seq)).where(col(CaseEvent.case_id) == case_id)
        ).one()
        views = [task_view(r) for r in rows]
        mark_inactive_assignees(s, views)
        return views, int(last_seq or 0)

    def _refacts(self, s: Session, run: _Run, trigger: str, patch: Any) -> None:
        """Apply corrected or confirmed facts, re-validate and re-assess (before the guards)."""
        if trigger not in run.spec.machine.fact_triggers:
            raise TransitionRefused(
                f"“{trigger}”不接受修改申请事实",
                f"trigger {trigger} does not take facts",
            )
        if not isinstance(patch, dict):
            raise InvalidApplication(
                [FieldError("facts", "model_type", "facts须为JSON对象", "facts must be an object")]
            )
        merged = _deep_merge(run.case.facts, patch)
        app = parse_application(merged, today=self.clock.today())
        party = applicant_of(app)
        edition = edition_by_id(run.case.edition_id)
        assessments = assess_application(
            app,
            filed_on=run.case.filed_on,
            register=self._register(s, party.identity),
            edition=edition,
        )
        assessment = assessments[0]
        if (
            app.type.value != run.case.case_type
            or party.identity != identity_in(run.case.facts)
            or len(assessments) != 1
            or assessment.subject_key != run.case.subject_key
        ):
            # a correction corrects; it does not move the case to another enterprise, type,
            # store, property or licence (their caps and the 7号 register would follow)
            raise InvalidApplication(
                [
                    FieldError(
                        "facts",
                        "facts.subject_fixed",
                        "补正、补充或确认不能更改申请人（统一社会信用代码/注册号）、申请类型或"
                        "申请对象（门店、房屋、许可证）；如需更改，请撤回后重新申请",
                        "a correction may not change the applicant, the type or the object "
                        "of the case; withdraw and apply again",
                    )
                ]
            )
        run.subject.assessment = assessment
        run.subject.lift_known = bool(merged.get("lockdown_lift_date"))
        run.changes.update(
            facts=app.model_dump(mode="json", exclude_none=True),
            assessment=assessment.as_dict(),
            decision=assessment.decision.value,
            amount_ceiling=assessment.amount,
            manual_review=bool(assessment.manual_review_reasons),
        )

    def _step(
        self,
        s: Session,
        run: _Run,
        trigger: str,
        payload: dict[str, Any],
        request_key: str | None,
        *,
        explain: bool = True,
    ) -> None:
        """Fire one trigger on the machine and gather the effects it owes."""
        machine = run.spec.machine
        source = run.subject.state
        rows = machine.conditions_for(trigger, source)
        if not rows:
            raise WrongState(
                f"案件当前状态为“{state_zh(source)}”，不能执行“{trigger}”",
                f"trigger {trigger!r} is not allowed in state {source!r}",
            )
        grant = None
        if any(
            machine.effects(trigger, source, r.dest).grant for r in _rows(machine, trigger, source)
        ):
            grant = self._grant_plan(s, run, payload)
        kwargs: dict[str, Any] = {"payload": payload}
        if grant is not None:
            kwargs.update(granted=grant.total, capped=grant.capped)
        if not run.machine_bound:  # one machine per subject: rebinding would be skipped
            self._bind(run)
            run.machine_bound = True
        try:
            moved = run.subject.trigger(trigger, **kwargs)  # type: ignore[attr-defined]
        except MachineError as exc:
            raise WrongState(
                f"案件当前状态为“{state_zh(source)}”，不能执行“{trigger}”", str(exc)
            ) from None
        if not moved:
            # an automatic transition that does not apply is normal: no reasons are owed
            reasons = (
                _failed_guards(machine, run.subject, trigger, source, kwargs) if explain else []
            )
            raise TransitionRefused(
                f"不能执行“{trigger}”：" + "；".join(reasons),
                f"guards of {trigger!r} do not hold in {source!r}",
                reasons=reasons,
            )
        dest = run.subject.state
        effects = machine.effects(trigger, source, dest)
        event_payload = {k: v for k, v in payload.items() if k != "facts"}
        if "facts" in payload:
            event_payload["facts_changed"] = sorted(payload["facts"])
        if grant is not None and effects.grant:
            self._apply_grant(s, run, grant)
            event_payload["granted"] = str(grant.total)
            event_payload["capped"] = grant.capped
        self._record(run, Step(source, dest, trigger), event_payload, request_key)
        self._effects(s, run, effects, payload)

    def _auto(self, s: Session, run: _Run) -> None:
        """Fire automatic transitions until none applies."""
        for _ in range(MAX_AUTO_STEPS):
            for trigger in run.spec.machine.auto_triggers(run.subject.state):
                try:
                    self._step(s, run, trigger, {}, request_key=None, explain=False)
                except TransitionRefused:
                    continue
                break
            else:
                return
        raise RuntimeError(f"automatic transitions did not settle for case {run.case.id}")

    def _record(
        self, run: _Run, step: Step, payload: dict[str, Any], request_key: str | None
    ) -> None:
        assert run.case.id is not None
        run.steps.append(step)
        run.events.append(
            dict(
                case_id=run.case.id,
                seq=run.next_seq,
                from_state=step.from_state,
                to_state=step.to_state,
                trigger=step.trigger,
                actor=run.actor.username,
                account_id=run.actor.account_id,
                at=self.clock.now(),
                payload=_jsonable(payload),
                request_key=request_key,
            )
        )
        run.next_seq += 1

    def _bind(self, run: _Run) -> None:
        """Give the run's subject a machine (here its own; the batch path shares one)."""
        run.spec.machine.build(run.subject)

    # ------------------------------------------------------------ effects
    def _effects(self, s: Session, run: _Run, effects: Effects, payload: dict[str, Any]) -> None:
        assert run.case.id is not None
        now = self.clock.now()
        seq = run.next_seq - 1
        if effects.closes_tasks:
            run.subject.intake_task_open = False
            decision = effects.closing
            self._close_tasks(
                s,
                run.case.id,
                dict(
                    status="done" if decision else "cancelled",
                    decision=decision,
                    reason=payload.get("reason"),
                    decided_at=now,
                    decided_by=run.actor.username,
                ),
            )
            run.subject.review_tasks = [
                ("done" if st == "open" else st, d) for st, d in run.subject.review_tasks
            ]
        for kind in effects.open_tasks:
            if kind == TaskKind.INTAKE:  # the first reviewing section also receives the case
                intake = next(r for r in run.subject.assessment.routes if r.kind == TaskKind.REVIEW)
                run.new_tasks.append(self._task(run.case.id, intake, kind))
                run.subject.intake_task_open = True
                continue
            for r in run.subject.assessment.routes:
                if r.kind == kind:
                    run.new_tasks.append(self._task(run.case.id, r, kind))
                    if kind == TaskKind.REVIEW:
                        run.subject.review_tasks.append(("open", None))
                    if kind == TaskKind.DECIDE:
                        run.subject.decide_task_opened = True
        for notice in effects.notices:
            run.notices.append(self._issue_notice(s, run, notice, payload, seq))
        if effects.order_payout:
            amount = run.changes.get("amount_granted", run.case.amount_granted)
            assert amount is not None, "a payout follows a grant"
            payer = next(
                r.bureau_code for r in run.subject.assessment.routes if r.kind == TaskKind.PAYOUT
            )
            run.after_update.append(
                (
                    Payout,
                    dict(
                        case_id=run.case.id,
                        amount=to_money(amount),
                        payer_bureau=payer,
                        idempotency_key=f"payout:{run.case.case_no}",
                        created_at=now,
                        updated_at=now,
                    ),
                )
            )
        if effects.apply_effect:
            register = run.spec.machine.effect_register
            assert register is not None, f"{run.case.case_type} has no effect register"
            run.after_update.append(
                register(
                    EffectFacts(
                        case_id=run.case.id,
                        subject_key=run.case.subject_key,
                        facts=run.changes.get("facts", run.case.facts),
                        assessment=run.subject.assessment,
                        granted=run.changes.get("amount_granted", run.case.amount_granted),
                        at=now,
                    )
                )
            )
        if effects.settle_payout:
            self._settle_payout(
                s,
                run.case.id,
                dict(status="paid", external_ref=payload.get("external_ref"), updated_at=now),
            )
        if effects.pause_clock:
            s.exec(
                update(ReviewTask)
                .where(col(ReviewTask.case_id) == run.case.id, col(ReviewTask.status) == "open")
                .values(paused_on=self.clock.today())
            )
        if effects.resume_clock:
            self._resume_clock(s, run.case.id)

    def _close_tasks(self, s: Session, case_id: int, values: dict[str, Any]) -> None:
        """Close the case's open tasks (done with a decision, or cancelled)."""
        s.execute(
            update(ReviewTask)
            .where(col(ReviewTask.case_id) == case_id, col(ReviewTask.status) == "open")
            .values(**values)
        )

    def _settle_payout(self, s: Session, case_id: int, values: dict[str, Any]) -> None:
        """Mark the case's payout paid; a payout settled already is a conflict."""
        settled = s.exec(
            update(Payout)
            .where(col(Payout.case_id) == case_id, col(Payout.status) != "paid")
            .values(**values)
        )
        if settled.rowcount != 1:
            raise ConflictError("该案件的拨付已登记", f"payout of case {case_id} settled")

    def _doc_number(self, s: Session, prefix: str, year: int) -> str:
        """The issuer's next document number (its serial row locked until commit)."""
        return next_doc_number(s, prefix, year)

    def _issue_notice(
        self,
        s: Session,
        run: _Run,
        kind: NoticeKind,
        payload: dict[str, Any],
        seq: int,
        *,
        task: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Number, render and hash a notice now; the outbox keeps it unchanged."""
        case, a = run.case, run.subject.assessment
        assert case.id is not None
        edition = edition_by_id(case.edition_id)
        today = self.clock.today()
        to_bureau = kind in BUREAU_NOTICES
        number = None
        if not to_bureau:
            issuer = issuer_route(kind, a)
            prefix = edition.bureau(issuer.bureau_code if issuer else "district_government")
            number = self._doc_number(s, prefix.doc_prefix, today.year)
        deadline = None
        if kind in REPLY_NOTICES:
            given = payload.get("deadline")
            deadline = (
                date.fromisoformat(str(given))
                if given
                else add_working_days(today, self.settings.applicant_reply_working_days)
            )
        items = payload.get("items") or []
        inp = NoticeInput(
            kind=kind,
            case_no=case.case_no or "",
            case_type=case.case_type,
            query_code=case.query_code,
            filed_on=case.filed_on,
            issued_on=today,
            facts=run.changes.get("facts", case.facts),
            assessment=a,
            edition=edition,
            doc_number=number,
            granted=run.changes.get("amount_granted", case.amount_granted),
            items=[str(i) for i in items],
            reason=payload.get("reason"),
            deadline=deadline,
            reference=payload.get("external_ref"),
            task=_jsonable(task or {}),
            working_days=self.settings.review_due_working_days,
        )
        context = build_notice_context(inp)
        rendered = render_notice(kind.value, context)
        return dict(
            case_id=case.id,
            kind=kind.value,
            audience="bureau" if to_bureau else "applicant",
            event_seq=seq,
            payload=_jsonable(
                {
                    "state": run.subject.state,
                    "decision": a.decision.value,
                    "items": items or None,
                    "reason": payload.get("reason"),
                    "deadline": deadline,
                    **(task or {}),
                }
            ),
            idempotency_key=f"notice:{case.id}:{seq}:{kind.value}"
            + (f":task{task['task_id']}" if task else ""),
            created_at=self.clock.now(),
            doc_number=number,
            issuer=context["issuer"]["unit"],
            recipient=context["task"].get("unit") if to_bureau else context["recipient"],
            title=rendered.title,
            body_text=rendered.text,
            body_html=rendered.html,
            content_hash=rendered.content_hash,
        )

    def _resume_clock(self, s: Session, case_id: int) -> None:
        """Move each paused deadline on by the working days the applicant took."""
        today = self.clock.today()
        paused = s.exec(
            select(ReviewTask).where(
                col(ReviewTask.case_id) == case_id, col(ReviewTask.paused_on).is_not(None)
            )
        ).all()
        for task in paused:
            assert task.paused_on is not None and task.id is not None
            stopped = working_days_between(task.paused_on, today)
            due = add_working_days(task.due_on, stopped) if task.due_on else None
            s.exec(
                update(ReviewTask)
                .where(col(ReviewTask.id) == task.id)
                .values(due_on=due, paused_on=None)
            )

    def _task(self, case_id: int, r: Route, kind: TaskKind) -> dict[str, Any]:
        days = {
            TaskKind.REVIEW: self.settings.review_due_working_days,
            TaskKind.CONFIRM: self.settings.confirm_due_working_days,
            TaskKind.INTAKE: self.settings.intake_due_working_days,
        }.get(kind, self.settings.decide_due_working_days)
        today = self.clock.today()
        return dict(
            case_id=case_id,
            kind=kind.value,
            bureau_code=r.bureau_code,
            section_code=r.section_code,
            unit=r.unit,
            due_on=add_working_days(today, days),
            created_at=self.clock.now(),
        )

    # ------------------------------------------------------------ grants and caps
    def _grant_plan(self, s: Session, run: _Run, payload: dict[str, Any]) -> _GrantPlan:
        """What an approval grants, cut by cross-case caps read under a lock."""
        a = run.subject.assessment
        wanted = _allocate(a.components, payload.get("amount"))
        plan = _GrantPlan()
        for comp in a.components:
            want = wanted[comp.code]
            if comp.cap_key and comp.cap_limit is not None and want > 0:
                account = self._lock_cap(s, comp)
                remaining = max(
                    Decimal("0.00"), account.cap_limit - account.opening - account.granted
                )
                got = min(want, remaining)
                plan.caps.append((comp.cap_key, got, account.granted))
            else:
                got = want
            plan.parts[comp.code] = got
            if got < want:
                plan.capped = True
        plan.total = to_money(sum(plan.parts.values(), Decimal(0)))
        return plan

    def _lock_cap(self, s: Session, comp: Component) -> CapBalance:
        """The cap's account row, created on first use and locked for this transaction."""
        assert comp.cap_key and comp.cap_limit is not None
        insert_if_absent(
            s,
            CapAccount,
            {
                "key": comp.cap_key,
                "cap_limit": comp.cap_limit,
                "opening": comp.cap_opening,
                "granted": Decimal("0.00"),
                "updated_at": self.clock.now(),
            },
        )
        row = s.exec(
            select(CapAccount)
            .where(col(CapAccount.key) == comp.cap_key)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one()
        return CapBalance(row.cap_limit, row.opening, row.granted)

    def _apply_grant(self, s: Session, run: _Run, plan: _GrantPlan) -> None:
        """Book the grant against each cap (rows locked by _grant_plan) and on the case."""
        assert run.case.id is not None
        now = self.clock.now()
        for key, amount, granted_before in plan.caps:
            self._book_cap(s, key, to_money(granted_before + amount), now)
            run.after_update.append(
                (CapGrant, dict(cap_key=key, case_id=run.case.id, amount=amount, at=now))
            )
        run.changes["amount_granted"] = plan.total

    def _book_cap(self, s: Session, key: str, granted: Decimal, now: datetime) -> None:
        """The cap account's new granted total (its row is locked by _lock_cap)."""
        s.execute(
            update(CapAccount)
            .where(col(CapAccount.key) == key)
            .values(granted=granted, updated_at=now)
        )

    # ------------------------------------------------------------ write
    def _write(self, s: Session, run: _Run, *, loaded_version: int) -> int:
        """Version-checked update of the case first, then every row the run owes."""
        assert run.case.id is not None
        done = s.exec(
            update(Case)
            .where(col(Case.id) == run.case.id, col(Case.version) == loaded_version)
            .values(**self._case_changes(run, loaded_version))
        )
        if done.rowcount != 1:
            raise ConflictError(
                "案件已被他人同时修改，本次操作未生效，请刷新后重试",
                f"case {run.case.id} changed concurrently (expected version {loaded_version})",
            )
        insert_rows(s, rows_owed([run]))
        for step in run.steps:
            log.info(
                "case %s %s: %s -> %s by %s",
                run.case.case_no,
                step.trigger,
                step.from_state,
                step.to_state,
                run.actor.username,
            )
        return loaded_version + 1

    def _case_changes(self, run: _Run, loaded_version: int) -> dict[str, Any]:
        """The case columns a run sets: its changes, the new state and the next version."""
        values = dict(run.changes)
        values.update(
            state=run.subject.state, version=loaded_version + 1, updated_at=self.clock.now()
        )
        return values

    def _result(
        self,
        case: Case,
        steps: tuple[Step, ...] | list[Step],
        *,
        version: int | None = None,
        replayed: bool = False,
        run: _Run | None = None,
    ) -> FireResult:
        assert case.id is not None
        return FireResult(
            case_id=case.id,
            case_no=case.case_no or "",
            state=run.subject.state if run else case.state,
            version=version if version is not None else case.version,
            steps=tuple(steps),
            replayed=replayed,
        )

    def _register(self, s: Session, identity: str) -> list[Prior7Entry]:
        rows = s.exec(select(Prior7Benefit).where(col(Prior7Benefit.subject) == identity)).all()
        return [
            Prior7Entry(r.subject, r.family, r.object_id or None, r.period_from, r.period_to)
            for r in rows
        ]

    # ------------------------------------------------------------ 7号 register
    def import_prior7(self, entries: list[Prior7Entry], *, note: str = "") -> int:
        """Load 7号 register rows; a row already present is skipped. Returns rows added."""
        added = 0
        with self._tx() as s:
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
                        subject=e.subject,
                        family=e.family,
                        object_id=e.object_id or "",
                        period_from=e.period_from,
                        period_to=e.period_to,
                        note=note,
                        imported_at=self.clock.now(),
                    )
                )
                added += 1
        return added


# ---------------------------------------------------------------- helpers
def insert_rows(s: Session, rows: Iterable[tuple[type[SQLModel], dict[str, Any]]]) -> None:
    """Insert rows with SQLAlchemy Core, one executemany per table and column set, in order.

    The ORM would build an object per row (~100 µs each here) to write the same thing.
    """
    groups: dict[tuple[type[SQLModel], tuple[str, ...]], list[dict[str, Any]]] = {}
    for model, values in rows:
        groups.setdefault((model, tuple(values)), []).append(values)
    for (model, _), batch in groups.items():
        s.execute(insert(model.__table__), batch)  # type: ignore[attr-defined]


def rows_owed(runs: Iterable[_Run]) -> list[tuple[type[SQLModel], dict[str, Any]]]:
    """Every row the runs owe: events, new tasks, notices, then payouts, grants, registers."""
    done = list(runs)
    return [
        *((CaseEvent, e) for r in done for e in r.events),
        *((ReviewTask, t) for r in done for t in r.new_tasks),
        *((Notice, n) for r in done for n in r.notices),
        *(row for r in done for row in r.after_update),
    ]


@dataclass
class _GrantPlan:
    parts: dict[str, Decimal] = field(default_factory=dict)
    caps: list[tuple[str, Decimal, Decimal]] = field(default_factory=list)  # key, got, before
    total: Decimal = Decimal("0.00")
    capped: bool = False


def _rows(machine: Any, trigger: str, source: str) -> list[Any]:
    return list(machine.rows_from(trigger, source))


def _allocate(components: tuple[Component, ...], amount: Any) -> dict[str, Decimal]:
    """Spread a decided total over the components in order, each up to its ceiling."""
    if amount is None:
        return {c.code: c.ceiling for c in components}
    try:
        left = to_money(Decimal(str(amount)))
    except (InvalidOperation, ValueError):
        return {c.code: Decimal("0.00") for c in components}
    out = {}
    for c in components:
        take = min(left, c.ceiling)
        out[c.code] = take
        left -= take
    return out


def _failed_guards(
    machine: Any, subject: CaseSubject, trigger: str, source: str, kwargs: dict[str, Any]
) -> list[str]:
    """The first line of each failing guard's docstring (Chinese), for the refusal message."""
    event = SimpleNamespace(model=subject, kwargs=kwargs)  # guards read only these two
    reasons: list[str] = []
    for conds in machine.conditions_for(trigger, source):
        for cond in conds:
            if not cond(event):
                doc = (cond.__doc__ or cond.__name__).strip().splitlines()[0]
                if doc not in reasons:
                    reasons.append(doc)
                break
    return reasons


TASK_VIEW_COLUMNS: tuple[Any, ...] = tuple(
    col(c)
    for c in (
        ReviewTask.id,
        ReviewTask.kind,
        ReviewTask.status,
        ReviewTask.decision,
        ReviewTask.bureau_code,
        ReviewTask.section_code,
        ReviewTask.assignee,
        ReviewTask.decided_by,
        ReviewTask.due_on,
    )
)


def mark_inactive_assignees(s: Session, views: list[TaskView]) -> None:
    """Flag open tasks claimed by an account that is no longer active (one query, if any)."""
    names = {v.assignee for v in views if v.assignee and v.status == "open"}
    if not names:
        return
    active = set(
        s.exec(
            select(Account.username).where(
                col(Account.username).in_(names), col(Account.active).is_(True)
            )
        ).all()
    )
    for v in views:
        if v.assignee in names and v.assignee not in active:
            v.assignee_active = False


def task_view(row: Any) -> TaskView:
    """A task row (the columns of TASK_VIEW_COLUMNS, in order) as the engine reads it."""
    return TaskView(*row)


def _unit_of(task: TaskView) -> str:
    return f"{task.bureau}.{task.section}" if task.section else task.bureau


def _assessment_from(case: Case) -> Assessment:
    """The assessment stored with the case (what judged it, 7号 register included)."""
    return Assessment.from_dict(case.assessment)


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


def _deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _jsonable(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _jsonable(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_jsonable(v) for v in node]
    if isinstance(node, Decimal):
        return str(node)
    if isinstance(node, date):
        return node.isoformat()
    return node
