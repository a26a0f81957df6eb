"""一个案件的一次办理 — one case's step through its machine, gathered for the unit of work.

A CaseRun holds the case as read, the plain object its machine drives, and what the step owes
(events, tasks, notices, payout, grants, registers). Stepper fires the explicit trigger after
the permission checks (states/authority.py), then the automatic transitions, each with its own
event; it writes nothing itself — the unit of work does, for the whole set, at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from sqlmodel import col, select
from transitions import Machine, MachineError

from base.clock import Clock
from base.money import to_money
from base.working_days import add_working_days, working_days_between
from models.applications import Application, applicant_of, identity_in
from models.incidents import settle_retried_payout
from models.input_errors import FieldError, InvalidApplication, parse_application
from models.receipts import PaperReceipt
from models.settings import Settings
from models.statuses import RequestStatus, TaskStatus
from models.tables import ApplicantRequest, CapGrant, CaseDocument, Notice, Payout, ReviewTask
from states.actors import Actor
from states.authority import authorize
from states.catalog import CaseTypeSpec, spec_for
from states.catalog import assess as assess_application
from states.documents import DocumentRef, check_slots, missing_slots, parse_refs
from states.edition import Edition, edition_by_id
from states.errors import ConflictError, TransitionRefused, WrongState
from states.grants import GrantPlan, plan_grant
from states.labels import state_zh, trigger_zh
from states.lifecycle import (
    PERMITS,
    REPLY_NOTICES,
    CaseState,
    CaseSubject,
    EffectFacts,
    Effects,
    NoticeKind,
    TypeMachine,
)
from states.notice_issuer import NoticeRequest
from states.permits import Permit, TaskView
from states.rules import Assessment, Route, TaskKind
from states.unit_of_work import CaseWrite, UnitOfWork
from states.work import Step

MAX_AUTO_STEPS = 20
# permits of CaseEngine operations, not machine rows
ENGINE_STEPS = ("review", "note_task", "note_request", "add_documents", "migrate_edition",
                "retry_incident", "resolve_incident")  # fmt: skip


@dataclass
class CaseRun:
    """One case's step: the case as read and what the step owes."""

    case: Any
    spec: CaseTypeSpec
    subject: CaseSubject
    actor: Actor
    next_seq: int
    tasks: list[TaskView]
    owner: str | None
    loaded_version: int
    steps: list[Step] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    new_tasks: list[dict[str, Any]] = field(default_factory=list)
    notices: list[NoticeRequest] = field(default_factory=list)
    changes: dict[str, Any] = field(default_factory=dict)
    after: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)

    def facts(self) -> dict[str, Any]:
        return dict(self.changes.get("facts", self.case.facts))

    def granted(self) -> Decimal | None:
        return self.changes.get("amount_granted", self.case.amount_granted)


_MACHINES: dict[str, Machine] = {}


def shared_machine(machine: TypeMachine) -> Machine:
    """One transitions Machine per type for the whole process, driving any number of subjects.

    Not through `add_model`, which hangs ~40 helpers on each model (~0.7 ms a case) and keeps a
    list of models that would grow forever: a subject's trigger goes straight to the machine's
    event, which runs the same transitions and guards. With `queued=False` the machine keeps no
    state of its own between triggers, so threads can share it.
    """
    built = _MACHINES.get(machine.case_type)
    if built is None:  # two threads may both build it once; either machine will do
        built = _MACHINES[machine.case_type] = machine.build()
    return built


def permit_of(spec: CaseTypeSpec, trigger: str) -> Permit | None:
    return PERMITS.get(trigger) if trigger in ENGINE_STEPS else spec.machine.permit_for(trigger)


class Stepper:
    """Runs cases of one unit of work through their machines."""

    def __init__(self, uow: UnitOfWork, *, settings: Settings, clock: Clock) -> None:
        self.uow = uow
        self.settings = settings
        self.clock = clock
        self.now = clock.now()
        self.today = self.now.date()

    # ------------------------------------------------------------ starting
    def start(self, case: Any, actor: Actor) -> CaseRun:
        views = self.uow.tasks[case.id]
        subject = CaseSubject(
            state=case.state,
            assessment=Assessment.from_dict(case.assessment),
            review_tasks=[(t.status, t.decision) for t in views if t.kind == "review"],
            decide_task_opened=any(t.kind == "decide" for t in views),
            lift_known=bool(case.facts.get("lockdown_lift_date")),
            manual_intake=self.settings.intake_review,
            intake_task_open=any(t.kind == "intake" and t.status == TaskStatus.OPEN for t in views),
            today=self.today,
        )
        return CaseRun(
            case=case, spec=spec_for(case.case_type), subject=subject, actor=actor,
            next_seq=self.uow.last_seq[case.id] + 1, tasks=views,
            owner=self.uow.owners.get(case.id), loaded_version=case.version,
        )  # fmt: skip

    def authorize(
        self, run: CaseRun, trigger: str, *, task_id: int | None = None
    ) -> TaskView | None:
        """Raise unless the run's actor may take `trigger` on the case now (states/authority)."""
        self.uow.check_account(run.actor)
        return authorize(
            run.actor, trigger, permit_of(run.spec, trigger), owner=run.owner, tasks=run.tasks,
            task_id=task_id,
        )  # fmt: skip

    # ------------------------------------------------------------ the operations
    def fire(
        self,
        run: CaseRun,
        trigger: str,
        payload: dict[str, Any],
        *,
        request_key: str | None,
        expected_version: int | None,
    ) -> None:
        """Who may, then the trigger and the automatic transitions after it."""
        self.authorize(run, trigger)
        check_version(run.case, expected_version)
        if "facts" in payload:
            self.refacts(run, trigger, payload["facts"])
        if "slots" in payload:  # a 补正 / 容缺 / 补充 request naming the documents it asks for
            payload = self.requested_slots(run, payload)
        self.step(run, trigger, payload, request_key)
        self.auto(run)

    # ------------------------------------------------------------ documents and requests
    def requested_slots(self, run: CaseRun, payload: dict[str, Any]) -> dict[str, Any]:
        """The slots checked against the edition; each one's label among the items."""
        edition = edition_by_id(run.case.edition_id)
        slots = check_slots(edition, run.case.case_type, payload["slots"])
        items = [str(i) for i in payload.get("items") or []]
        items += [s.label for s in slots if s.label not in items]
        return {**payload, "slots": [s.slot for s in slots], "items": items}

    def attach(self, run: CaseRun, trigger: str, raw: Any, seq: int) -> list[DocumentRef]:
        """Put stored files on the case, with the event `seq` that carries them."""
        if trigger not in run.spec.machine.document_triggers and trigger != "add_documents":
            raise TransitionRefused(
                f"“{trigger_zh(trigger)}”不接受材料", f"trigger {trigger} takes no documents"
            )
        refs = parse_refs(raw, edition_by_id(run.case.edition_id), run.case.case_type)
        blobs = self.uow.blobs({r.sha256 for r in refs})
        have = self.uow.case_documents(run.case.id)
        for i, ref in enumerate(refs):
            blob = blobs.get(ref.sha256)
            if blob is None:
                raise InvalidApplication(
                    [FieldError(f"documents.{i}.sha256", "document.unknown",
                                "找不到该文件，请重新上传", "no stored file with this sha256")]
                )  # fmt: skip
            if (ref.slot, ref.sha256) in have:
                continue  # the same file in the same slot is kept once
            have[(ref.slot, ref.sha256)] = seq
            run.after.append(
                (CaseDocument, dict(case_id=run.case.id, slot=ref.slot, sha256=ref.sha256,
                                    filename=ref.filename, media_type=blob[1], size=blob[0],
                                    event_seq=seq, uploaded_by=run.actor.username,
                                    at=self.now))
            )  # fmt: skip
        return refs

    def answer(self, run: CaseRun, kind: str, seq: int, *, partial: bool = False) -> None:
        """The applicant's reply closes the open requests of `kind`; a reply must bring a
        document for every slot a request names, attached since it was asked (`partial`: a 容缺
        request stays open until it has them)."""
        documents = self.uow.case_documents(run.case.id)
        table = ApplicantRequest.__table__  # type: ignore[attr-defined]
        for req in self.uow.open_requests(run.case.id):
            if req.kind != kind:
                continue
            edition = edition_by_id(run.case.edition_id)
            since = {slot for (slot, _), at in documents.items() if at > req.opened_seq}
            lacking = [s for s in req.slots if s not in since]
            if lacking:
                if partial:
                    continue
                labels = "、".join(
                    (edition.slot(run.case.case_type, s) or SimpleNamespace(label=s)).label
                    for s in lacking
                )
                raise TransitionRefused(
                    f"请一并上传要求的材料：{labels}",
                    f"documents still missing: {lacking}",
                    reasons=[f"缺少：{labels}"],
                )
            self.uow.s.execute(
                table.update()
                .where(table.c.id == req.id, table.c.status == RequestStatus.OPEN)
                .values(status=RequestStatus.ANSWERED, closed_seq=seq, closed_at=self.now)
            )

    def end_requests(self, run: CaseRun, status: RequestStatus, seq: int) -> None:
        """A case that ends (withdrawn, expired, refused) asks nothing more of its applicant."""
        table = ApplicantRequest.__table__  # type: ignore[attr-defined]
        self.uow.s.execute(
            table.update()
            .where(table.c.case_id == run.case.id, table.c.status == RequestStatus.OPEN)
            .values(status=status, closed_seq=seq, closed_at=self.now)
        )

    def reply_deadline(self, payload: dict[str, Any]) -> date:
        """The deadline a 补正 / 容缺 / 补充 notice prints: as given, else N working days."""
        given = payload.get("deadline")
        if not given:
            return add_working_days(self.today, self.settings.applicant_reply_working_days)
        try:
            deadline = date.fromisoformat(str(given)[:10])
        except ValueError:
            deadline = None
        if deadline is None or deadline < self.today:
            raise InvalidApplication(
                [FieldError("deadline", "deadline.invalid",
                            "期限应为不早于今天的日期（YYYY-MM-DD）",
                            "the deadline must be a date (YYYY-MM-DD), not before today")]
            )  # fmt: skip
        return deadline

    def filed(
        self,
        run: CaseRun,
        app: Application,
        *,
        trigger: str,
        receipt: PaperReceipt | None,
        documents: tuple[dict[str, Any], ...] = (),
    ) -> None:
        """A new case's first steps: the paper receipt (补录) as its own event, then submit
        (or the ex-officio grant) with its documents and what follows it. The submit event
        names the required documents still missing (the form asks for them; a paper or API
        filing may bring them later, and a reviewer can ask: 补充 / 容缺)."""
        if receipt is not None:
            self.record(
                run,
                Step(CaseState.DRAFT.value, CaseState.DRAFT.value, "record_paper_receipt"),
                {
                    "received_at": receipt.received_at.isoformat(),
                    "reason": receipt.reason,
                    "evidence": receipt.evidence,
                    "recorded_at": self.now.isoformat(),
                    "stated_application_date": app.application_date,
                },
                None,
            )
        self.step(run, trigger, {"documents": list(documents)} if documents else {}, None)
        missing = missing_slots(
            edition_by_id(run.case.edition_id), run.case.case_type, run.facts(),
            {slot for slot, _ in self.uow.case_documents(run.case.id)},
        )  # fmt: skip
        if missing:
            run.events[-1]["payload"]["documents_missing"] = [s.slot for s in missing]
        self.auto(run)

    def review(
        self,
        run: CaseRun,
        task_id: int,
        decision: str,
        reason: str | None,
        request_key: str | None,
    ) -> None:
        """A bureau's review decision on its task; the gateway advances when all decided."""
        view = next((t for t in run.tasks if t.id == task_id), None)
        if view is not None and view.kind != TaskKind.REVIEW.value:
            self.authorize(run, "review")  # visibility and role first
            raise TransitionRefused(
                "确认和决定任务请通过 confirm / approve / reject 办理",
                f"task {task_id} is a {view.kind} task, not a review",
            )
        task = self.authorize(run, "review", task_id=task_id)
        assert task is not None
        self.uow.task_decisions.append(
            {"b_id": task_id, "status": TaskStatus.DONE, "decision": decision, "reason": reason,
             "decided_at": self.now, "decided_by": run.actor.username}
        )  # fmt: skip
        task.status, task.decision, task.decided_by = TaskStatus.DONE, decision, run.actor.username
        run.subject.review_tasks = [
            (t.status, t.decision) for t in run.tasks if t.kind == TaskKind.REVIEW.value
        ]
        self.record(
            run,
            Step(run.case.state, run.case.state, "review_decided"),
            {"task_id": task_id, "unit": unit_of(task), "decision": decision, "reason": reason},
            request_key,
        )
        self.auto(run)

    def owe(self, run: CaseRun) -> None:
        """Hand the run's rows to the unit of work (the new state and version included)."""
        changes = dict(run.changes)
        changes.update(state=run.subject.state, version=run.loaded_version + 1, updated_at=self.now)
        self.uow.owe(
            CaseWrite(
                case_id=run.case.id, loaded_version=run.loaded_version, changes=changes,
                events=run.events, new_tasks=run.new_tasks, notices=run.notices, after=run.after,
            )
        )  # fmt: skip

    # ------------------------------------------------------------ facts
    def refacts(self, run: CaseRun, trigger: str, patch: Any) -> None:
        """Apply corrected or confirmed facts, re-validate and re-assess (before the guards).

        A correction corrects; it does not move the case to another enterprise, type, store,
        property or licence (their caps and the 7号 register would follow).
        """
        if trigger not in run.spec.machine.fact_triggers:
            raise TransitionRefused(
                f"“{trigger_zh(trigger)}”不接受修改申请事实", f"trigger {trigger} takes no facts"
            )
        if not isinstance(patch, dict):
            raise InvalidApplication(
                [FieldError("facts", "model_type", "facts须为JSON对象", "facts must be an object")]
            )
        merged = deep_merge(run.case.facts, patch)
        self.rejudge(run, edition_by_id(run.case.edition_id), merged)
        run.subject.lift_known = bool(merged.get("lockdown_lift_date"))

    def rejudge(self, run: CaseRun, edition: Edition, facts: dict[str, Any] | None = None) -> None:
        """Judge the case again — corrected facts, or another edition — and keep the result.

        Neither moves the case to another enterprise, type, store, property or licence (their
        caps and the 7号 register would follow).
        """
        facts = run.case.facts if facts is None else facts
        app = parse_application(facts, today=self.today)
        party = applicant_of(app)
        assessments = assess_application(
            app,
            filed_on=run.case.filed_on,
            register=self.uow.register_of(party.identity),
            edition=edition,
        )
        assessment = assessments[0]
        if (
            str(app.type) != run.case.case_type
            or party.identity != identity_in(run.case.facts)
            or len(assessments) != 1
            or assessment.subject_key != run.case.subject_key
        ):
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
        run.changes.update(
            facts=app.model_dump(mode="json", exclude_none=True),
            assessment=assessment.as_dict(),
            decision=assessment.decision.value,
            amount_ceiling=assessment.amount,
            manual_review=bool(assessment.manual_review_reasons),
            edition_id=edition.id,
        )

    # ------------------------------------------------------------ the machine
    def step(
        self,
        run: CaseRun,
        trigger: str,
        payload: dict[str, Any],
        request_key: str | None,
        *,
        explain: bool = True,
    ) -> None:
        """Fire one trigger on the type's machine and gather the effects it owes."""
        machine = run.spec.machine
        source = run.subject.state
        rows = machine.rows_from(trigger, source)
        if not rows:
            raise WrongState(
                f"案件当前状态为“{state_zh(source)}”，不能执行“{trigger_zh(trigger)}”",
                f"trigger {trigger!r} is not allowed in state {source!r}",
            )
        grant = None
        if any(r.effects.grant for r in rows):
            grant = plan_grant(run.subject.assessment, payload.get("amount"), self.uow.cap)
        kwargs: dict[str, Any] = {"payload": payload}
        if grant is not None:
            kwargs.update(granted=grant.total, capped=grant.capped)
        event = shared_machine(machine).events.get(trigger)
        try:
            moved = bool(event.trigger(run.subject, **kwargs)) if event else False
        except MachineError as exc:
            raise WrongState(
                f"案件当前状态为“{state_zh(source)}”，不能执行“{trigger_zh(trigger)}”", str(exc)
            ) from None
        if not moved:
            # an automatic transition that does not apply is normal: no reasons are owed
            reasons = (
                failed_guards(machine, run.subject, trigger, source, kwargs) if explain else []
            )
            raise TransitionRefused(
                f"不能执行“{trigger_zh(trigger)}”：" + "；".join(reasons),
                f"guards of {trigger!r} do not hold in {source!r}",
                reasons=reasons,
            )
        dest = run.subject.state
        effects = machine.effects(trigger, source, dest)
        event_payload = {k: v for k, v in payload.items() if k != "facts"}
        if "facts" in payload:
            event_payload["facts_changed"] = sorted(payload["facts"])
        if grant is not None and effects.grant:
            self.apply_grant(run, grant)
            event_payload["granted"] = str(grant.total)
            event_payload["capped"] = grant.capped
        seq = run.next_seq
        if payload.get("documents") is not None:
            refs = self.attach(run, trigger, payload["documents"], seq)
            event_payload["documents"] = [r.as_dict() for r in refs]
        answers = machine.answered_by(trigger)
        if answers:
            self.answer(run, answers, seq)
        self.record(run, Step(source, dest, trigger), event_payload, request_key)
        self.effects(run, effects, payload)

    def auto(self, run: CaseRun) -> None:
        """Fire automatic transitions until none applies."""
        for _ in range(MAX_AUTO_STEPS):
            for trigger in run.spec.machine.auto_triggers(run.subject.state):
                try:
                    self.step(run, trigger, {}, None, explain=False)
                except TransitionRefused:
                    continue
                break
            else:
                return
        raise RuntimeError(f"automatic transitions did not settle for case {run.case.id}")

    def record(
        self, run: CaseRun, step: Step, payload: dict[str, Any], request_key: str | None
    ) -> None:
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
                at=self.now,
                payload=jsonable(payload),
                request_key=request_key,
            )
        )
        run.next_seq += 1

    # ------------------------------------------------------------ effects
    def effects(self, run: CaseRun, effects: Effects, payload: dict[str, Any]) -> None:
        case_id, seq = run.case.id, run.next_seq - 1
        if effects.closes_tasks:
            run.subject.intake_task_open = False
            self.uow.task_closures.append(
                {"b_case": case_id, "status": TaskStatus.DONE if effects.closing else "cancelled",
                 "decision": effects.closing, "reason": payload.get("reason"),
                 "decided_at": self.now, "decided_by": run.actor.username}
            )  # fmt: skip
            run.subject.review_tasks = [
                (TaskStatus.DONE if st == TaskStatus.OPEN else st, d)
                for st, d in run.subject.review_tasks
            ]
        for kind in effects.open_tasks:
            self.open_tasks(run, kind)
        for notice in effects.notices:
            run.notices.append(self.notice(run, notice, payload, seq))
            if notice in REPLY_NOTICES:
                run.after.append(
                    (ApplicantRequest, dict(case_id=case_id, kind=notice.value,
                                            items=[str(i) for i in payload.get("items") or []],
                                            slots=list(payload.get("slots") or []),
                                            deadline=self.reply_deadline(payload),
                                            status=RequestStatus.OPEN, opened_seq=seq,
                                            created_at=self.now))
                )  # fmt: skip
        if effects.close_tasks or effects.end_requests:
            self.end_requests(
                run,
                RequestStatus.EXPIRED
                if effects.notices == (NoticeKind.EXPIRED,)
                else RequestStatus.CANCELLED,
                seq,
            )
        if effects.order_payout:
            amount = run.granted()
            assert amount is not None, "a payout follows a grant"
            payer = next(
                r.bureau_code for r in run.subject.assessment.routes if r.kind == TaskKind.PAYOUT
            )
            run.after.append(
                (Payout, dict(case_id=case_id, amount=to_money(amount), payer_bureau=payer,
                              idempotency_key=f"payout:{run.case.case_no}",
                              created_at=self.now, updated_at=self.now))
            )  # fmt: skip
        if effects.apply_effect:
            register = run.spec.machine.effect_register
            assert register is not None, f"{run.case.case_type} has no effect register"
            run.after.append(
                register(
                    EffectFacts(case_id=case_id, subject_key=run.case.subject_key,
                                facts=run.facts(), assessment=run.subject.assessment,
                                granted=run.granted(), at=self.now)
                )
            )  # fmt: skip
        if effects.settle_payout:
            self.uow.settlements.append(
                {"b_case": case_id, "status": "paid",
                 "external_ref": payload.get("external_ref"), "updated_at": self.now}
            )  # fmt: skip
            settle_retried_payout(self.uow.s, case_id, self.now)
        if effects.pause_clock:  # the applicant has the case: its deadlines stop today
            tasks = ReviewTask.__table__  # type: ignore[attr-defined]
            self.uow.s.execute(
                tasks.update()
                .where(tasks.c.case_id == case_id, tasks.c.status == TaskStatus.OPEN)
                .values(paused_on=self.today)
            )
        if effects.resume_clock:
            self.resume_clock(case_id)

    def open_tasks(self, run: CaseRun, kind: TaskKind) -> None:
        a = run.subject.assessment
        if kind == TaskKind.INTAKE:  # the first reviewing section also receives the case
            intake = next(r for r in a.routes if r.kind == TaskKind.REVIEW)
            run.new_tasks.append(self.task_row(run.case.id, intake, kind))
            run.subject.intake_task_open = True
            return
        for r in a.routes:
            if r.kind == kind:
                run.new_tasks.append(self.task_row(run.case.id, r, kind))
                if kind == TaskKind.REVIEW:
                    run.subject.review_tasks.append((TaskStatus.OPEN, None))
                if kind == TaskKind.DECIDE:
                    run.subject.decide_task_opened = True

    def task_row(self, case_id: int, r: Route, kind: TaskKind) -> dict[str, Any]:
        days = {
            TaskKind.REVIEW: self.settings.review_due_working_days,
            TaskKind.CONFIRM: self.settings.confirm_due_working_days,
            TaskKind.INTAKE: self.settings.intake_due_working_days,
        }.get(kind, self.settings.decide_due_working_days)
        return dict(
            case_id=case_id, kind=kind.value, bureau_code=r.bureau_code,
            section_code=r.section_code, unit=r.unit, due_on=add_working_days(self.today, days),
            created_at=self.now,
        )  # fmt: skip

    def resume_clock(self, case_id: int) -> None:
        """Move each paused deadline on by the working days the applicant took."""
        table = ReviewTask.__table__  # type: ignore[attr-defined]
        paused = self.uow.s.execute(
            table.select().where(table.c.case_id == case_id, table.c.paused_on.is_not(None))
        ).all()
        for task in paused:
            stopped = working_days_between(task.paused_on, self.today)
            due = add_working_days(task.due_on, stopped) if task.due_on else None
            self.uow.s.execute(
                table.update().where(table.c.id == task.id).values(due_on=due, paused_on=None)
            )

    def apply_grant(self, run: CaseRun, plan: GrantPlan) -> None:
        """Book the grant against each cap (locked by the unit of work) and on the case."""
        for key, amount, granted_before in plan.caps:
            self.uow.book_cap(key, to_money(granted_before + amount))
            run.after.append(
                (CapGrant, dict(cap_key=key, case_id=run.case.id, amount=amount, at=self.now))
            )
        run.changes["amount_granted"] = plan.total

    def notice(
        self,
        run: CaseRun,
        kind: NoticeKind,
        payload: dict[str, Any],
        seq: int,
        *,
        task: dict[str, Any] | None = None,
    ) -> NoticeRequest:
        """What the notice this step owes will say, as the case stands now (numbered and
        rendered when the unit of work is written)."""
        asks = kind in REPLY_NOTICES or kind == NoticeKind.REPLY_REMINDER
        deadline = self.reply_deadline(payload) if asks else None
        case = run.case
        return NoticeRequest(
            kind=kind,
            case_id=case.id,
            case_no=case.case_no or "",
            case_type=case.case_type,
            query_code=case.query_code,
            filed_on=case.filed_on,
            edition_id=case.edition_id,
            state=run.subject.state,
            facts=run.facts(),
            assessment=run.subject.assessment,
            granted=run.granted(),
            event_seq=seq,
            issued_on=self.today,
            created_at=self.now,
            items=tuple(str(i) for i in payload.get("items") or []),
            reason=payload.get("reason"),
            deadline=deadline,
            reference=payload.get("external_ref"),
            task=jsonable(task or {}),
            decision_ref=self.decision_number(case.id) if kind == NoticeKind.PAYOUT else None,
        )

    def decision_number(self, case_id: int) -> str | None:
        """The document number of the case's decision (a payout notice cites it)."""
        kinds = [NoticeKind.DECISION_GRANTED.value, NoticeKind.DECISION_PARTIAL.value]
        row = self.uow.s.execute(
            select(Notice.doc_number)  # type: ignore[call-overload]
            .where(Notice.case_id == case_id, col(Notice.kind).in_(kinds))
            .order_by(col(Notice.id).desc())
            .limit(1)
        ).first()
        return row[0] if row else None


# ---------------------------------------------------------------- helpers
def check_version(case: Any, expected_version: int | None) -> None:
    if expected_version is not None and case.version != expected_version:
        raise ConflictError(
            f"案件已被他人修改（当前版本{case.version}，您看到的是版本{expected_version}），"
            "请刷新后重试",
            f"stale version: case {case.id} is at {case.version}, not {expected_version}",
        )


def unit_of(task: TaskView) -> str:
    return f"{task.bureau}.{task.section}" if task.section else task.bureau


def failed_guards(
    machine: TypeMachine, subject: CaseSubject, trigger: str, source: str, kwargs: dict[str, Any]
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


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def jsonable(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): jsonable(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [jsonable(v) for v in node]
    if isinstance(node, Decimal):
        return str(node)
    if isinstance(node, date):
        return node.isoformat()
    return node
