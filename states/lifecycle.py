"""案件生命周期 — the shared state vocabulary and the transition tables built from it.

Each application type gets one `transitions` machine over these states (DESIGN.md, "The case
lifecycle"). A transition declares the effects it owes (tasks to open, notices to issue, a
payout to order, an effect to apply); the engine performs them. Guards only read.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, cast

from transitions import EventData, Machine

from base.money import CENT
from models.statuses import TaskStatus
from states.actors import Role
from states.permits import Permit, permit
from states.rules import GRANTING, Assessment, Decision, TaskKind


class CaseState(StrEnum):
    """案件状态 — where a relief case stands."""

    DRAFT = "draft"  # 草稿
    SUBMITTED = "submitted"  # 已提交
    ACCEPTED = "accepted"  # 已受理
    CORRECTION_REQUESTED = "correction_requested"  # 补正
    RESUBMITTED = "resubmitted"  # 已补正
    NOT_ACCEPTED = "not_accepted"  # 不予受理
    UNDER_REVIEW = "under_review"  # 审核中
    MORE_INFO_REQUESTED = "more_info_requested"  # 待补充材料（计时中止）
    AWAITING_CONFIRMATION = "awaiting_confirmation"  # 待确认
    CONFIRMED = "confirmed"  # 已确认
    APPROVED = "approved"  # 准予
    PARTIALLY_APPROVED = "partially_approved"  # 部分准予
    REJECTED = "rejected"  # 不予
    PAYOUT_ORDERED = "payout_ordered"  # 已下达拨付
    PAID = "paid"  # 已拨付
    EFFECT_APPLIED = "effect_applied"  # 已生效（减免/顺延/豁免）
    EXTENDED_PENDING_LIFT = "extended_pending_lift"  # 顺延待解封
    CLOSED = "closed"  # 办结
    WITHDRAWN = "withdrawn"  # 已撤回
    EXPIRED = "expired"  # 已逾期终止


FINAL_STATES = frozenset(
    {
        CaseState.NOT_ACCEPTED,
        CaseState.REJECTED,
        CaseState.CLOSED,
        CaseState.WITHDRAWN,
        CaseState.EXPIRED,
    }
)


class NoticeKind(StrEnum):
    """通知书种类 — the notices a transition owes the applicant or a bureau."""

    ACCEPTANCE = "acceptance"  # 受理通知书
    DEFERRED_ACCEPTANCE = "deferred_acceptance"  # 容缺受理通知书
    CORRECTION = "correction"  # 补正材料通知书
    NOT_ACCEPTED = "not_accepted"  # 不予受理通知书
    MORE_INFO = "more_info"  # 补充材料通知
    DECISION_GRANTED = "decision_granted"  # 准予决定书
    DECISION_PARTIAL = "decision_partial"  # 部分准予决定书
    DECISION_REFUSED = "decision_refused"  # 不予决定书
    PAYOUT = "payout"  # 资金拨付通知书
    EXTENSION = "extension"  # 有效期顺延告知书
    REFERRAL = "referral"  # 移送告知书（受理后移送有权机关）
    WITHDRAWN = "withdrawn"  # 撤回确认
    EXPIRED = "expired"  # 终止办理告知
    REPLY_REMINDER = "reply_reminder"  # 补正、补充材料期限提醒（致申请人）
    TASK_REMINDER = "task_reminder"  # 办理期限提醒（致承办科室）
    TASK_ESCALATION = "task_escalation"  # 逾期督办（致科室负责人）


BUREAU_NOTICES = frozenset({NoticeKind.TASK_REMINDER, NoticeKind.TASK_ESCALATION})
# reminders are not documents of the authority: they carry no document number
UNNUMBERED_NOTICES = BUREAU_NOTICES | {NoticeKind.REPLY_REMINDER}
# notices that ask the applicant for something by a deadline
REPLY_NOTICES = frozenset(
    {NoticeKind.CORRECTION, NoticeKind.DEFERRED_ACCEPTANCE, NoticeKind.MORE_INFO}
)


@dataclass(frozen=True)
class Effects:
    """What a transition owes; the engine writes these in the same transaction."""

    open_tasks: tuple[TaskKind, ...] = ()
    close_tasks: bool = False  # the case's open tasks end, cancelled (withdrawn, expired)
    end_requests: bool = False  # open 容缺 requests end, cancelled: a refusal owes no material
    closing: str | None = None  # ... or done, recording this decision (approve, confirmed, …)
    notices: tuple[NoticeKind, ...] = ()
    order_payout: bool = False
    apply_effect: bool = False
    grant: bool = False  # record the granted amount (and consume caps)
    settle_payout: bool = False  # the payout order is paid (treasury reference in payload)
    pause_clock: bool = False  # task deadlines stop while the applicant answers
    resume_clock: bool = False  # deadlines move on by the working days paused

    @property
    def closes_tasks(self) -> bool:
        return self.close_tasks or self.closing is not None


@dataclass(eq=False)
class CaseSubject:
    """The plain object a machine drives (never the SQLModel row).

    Compared by identity: `Machine.add_model` skips a model equal to one it has, and two
    cases can look alike field by field.
    """

    state: str
    assessment: Assessment
    review_tasks: list[tuple[str, str | None]] = field(default_factory=list)  # (status, decision)
    decide_task_opened: bool = False
    granted: Decimal | None = None
    lift_known: bool = False
    manual_intake: bool = False  # an intake officer accepts (setting RELIEF_INTAKE_REVIEW)
    intake_task_open: bool = False
    today: date | None = None  # the engine's clock, for guards about dates that must have passed


# ---------------------------------------------------------------- guards (read, never write)
def _m(event: EventData) -> CaseSubject:
    return cast(CaseSubject, event.model)


def _payload(event: EventData) -> dict[str, Any]:
    return event.kwargs.get("payload") or {}


def acceptable(event: EventData) -> bool:
    """规则认定属于受理范围 (within the window and the document's scope)."""
    return _m(event).assessment.decision not in (Decision.NOT_ACCEPTED, Decision.NOT_APPLICABLE)


def not_acceptable(event: EventData) -> bool:
    """规则认定不属于受理范围."""
    return not acceptable(event)


def auto_intake(event: EventData) -> bool:
    """即申即享：规则直接受理，无需受理人员."""
    return not _m(event).manual_intake


def manual_intake(event: EventData) -> bool:
    """由受理人员受理."""
    return _m(event).manual_intake


def no_open_intake_task(event: EventData) -> bool:
    """尚未交受理人员办理."""
    return not _m(event).intake_task_open


def refusal_grounds(event: EventData) -> bool:
    """不予受理须有理由：规则认定不属于受理范围，或受理人员说明理由."""
    return not_acceptable(event) or has_reason(event)


def has_items(event: EventData) -> bool:
    """须一次性列明需补正或补充的全部内容 (payload.items)."""
    items = _payload(event).get("items")
    return isinstance(items, list) and len(items) > 0 and all(isinstance(i, str) for i in items)


def has_reason(event: EventData) -> bool:
    """须说明理由 (payload.reason)."""
    reason = _payload(event).get("reason")
    return isinstance(reason, str) and bool(reason.strip())


def reviews_done(event: EventData) -> bool:
    """全部审核单位均已作出审核意见."""
    tasks = _m(event).review_tasks
    return bool(tasks) and all(status == TaskStatus.DONE for status, _ in tasks)


def reviews_all_pass(event: EventData) -> bool:
    """全部审核单位审核通过."""
    return reviews_done(event) and all(d == "pass" for _, d in _m(event).review_tasks)


def needs_confirmation(event: EventData) -> bool:
    """该类申请须经确认."""
    return _m(event).assessment.needs_confirmation


def no_decide_task(event: EventData) -> bool:
    """尚未交由决定单位决定."""
    return not _m(event).decide_task_opened


def decision_ready(event: EventData) -> bool:
    """审核（及确认）已完成，可以作出决定."""
    m = _m(event)
    if m.state == CaseState.CONFIRMED:
        return True
    return reviews_all_pass(event) and not m.assessment.needs_confirmation


def rules_allow_grant(event: EventData) -> bool:
    """审查规则认定符合条件."""
    return _m(event).assessment.decision in GRANTING


def amount_within_ceiling(event: EventData) -> bool:
    """决定金额不得超过规则核定的上限，且应精确到分.

    A tenth of a fen is refused, not rounded: 23,999.999 against a ceiling of 24,000.00 would
    round to the whole ceiling and yet be decided and told as 部分准予 (found by
    tests/e2e/test_random_sequences.py).
    """
    amount = _payload(event).get("amount")
    if amount is None:
        return True
    value = decided_amount(amount)
    return (
        value is not None
        and Decimal(0) <= value <= _m(event).assessment.amount
        and value == value.quantize(CENT)  # in range, so small enough to quantize
    )


def decided_amount(amount: Any) -> Decimal | None:
    """A decided amount as a finite Decimal, or None (absent, NaN, infinite, not a number)."""
    if amount is None or isinstance(amount, bool):
        return None
    try:
        value = Decimal(str(amount))
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def is_partial(event: EventData) -> bool:
    """部分准予: the rules or a cap cut the claim, or the decided amount is below the ceiling."""
    a: Assessment = _m(event).assessment
    if a.decision == Decision.PARTIALLY_GRANTED or event.kwargs.get("capped"):
        return True
    value = decided_amount(_payload(event).get("amount"))
    return value is not None and value < a.amount


def has_amount_to_grant(event: EventData) -> bool:
    """补贴类须有可拨付的金额（封顶额度已用尽时不能准予）."""
    if not _m(event).assessment.pays_out:
        return True
    granted = event.kwargs.get("granted")
    return granted is None or granted > 0


def pays_out(event: EventData) -> bool:
    """补贴类：须拨付资金."""
    return _m(event).assessment.pays_out


def no_payout(event: EventData) -> bool:
    """非补贴类：决定即生效，不拨付资金."""
    return not _m(event).assessment.pays_out


def lift_pending(event: EventData) -> bool:
    """封管控尚未解除，顺延日期待定."""
    return _m(event).assessment.decision == Decision.EXTENDED_PENDING_LIFT and not (
        _m(event).lift_known
    )


def lift_resolved(event: EventData) -> bool:
    """顺延日期已确定（非待解封）."""
    return not lift_pending(event)


def has_lift_date(event: EventData) -> bool:
    """须提供已经发生的封管控解除日期 (payload.facts.lockdown_lift_date, not after today)."""
    given = (_payload(event).get("facts") or {}).get("lockdown_lift_date")
    today = _m(event).today
    try:
        lifted = date.fromisoformat(str(given))
    except ValueError:
        return False
    return today is None or lifted <= today


# ---------------------------------------------------------------- the table
S = CaseState
OPEN_STATES: list[CaseState] = [s for s in CaseState if s not in FINAL_STATES and s != S.DRAFT]
WITHDRAWABLE: list[CaseState] = [
    s
    for s in OPEN_STATES
    if s
    not in (
        S.PAYOUT_ORDERED,
        S.PAID,
        S.EFFECT_APPLIED,
        S.APPROVED,
        S.PARTIALLY_APPROVED,
        S.EXTENDED_PENDING_LIFT,  # granted already; only the lift date is awaited
    )
]
DECISION_SOURCES: list[CaseState] = [S.UNDER_REVIEW, S.CONFIRMED]


@dataclass(frozen=True)
class Row:
    trigger: str
    source: list[CaseState] | CaseState
    dest: CaseState
    conditions: tuple[Any, ...] = ()
    effects: Effects = Effects()
    auto: bool = False  # the engine fires it by itself when its guards hold
    takes_facts: bool = False  # the trigger may carry corrected or confirmed facts
    takes_documents: bool = False  # the trigger may carry the applicant's documents
    answers: str | None = None  # the applicant request (NoticeKind) this trigger answers

    def sources(self) -> list[CaseState]:
        return self.source if isinstance(self.source, list) else [self.source]


def lifecycle_rows() -> list[Row]:
    """The shared lifecycle; a type adds rows for its own states."""
    return list(_lifecycle_table())


@functools.cache
def _lifecycle_table() -> tuple[Row, ...]:
    """Built once: the engine consults the table several times per step."""
    n = NoticeKind
    return (
        Row("submit", S.DRAFT, S.SUBMITTED, takes_documents=True),
        # 即申即享: the rules accept or refuse at once (default) ...
        Row("auto_accept", S.SUBMITTED, S.ACCEPTED, (auto_intake, acceptable),
            Effects(notices=(n.ACCEPTANCE,)), auto=True),
        Row("auto_refuse", S.SUBMITTED, S.NOT_ACCEPTED, (auto_intake, not_acceptable),
            Effects(notices=(n.NOT_ACCEPTED,)), auto=True),
        # ... or an intake officer does (RELIEF_INTAKE_REVIEW=true).
        Row("await_intake", S.SUBMITTED, S.SUBMITTED, (manual_intake, no_open_intake_task),
            Effects(open_tasks=(TaskKind.INTAKE,)), auto=True),
        Row("accept", S.SUBMITTED, S.ACCEPTED, (manual_intake, acceptable),
            Effects(closing="accept", notices=(n.ACCEPTANCE,))),
        Row("accept_deferred", S.SUBMITTED, S.ACCEPTED, (manual_intake, acceptable, has_items),
            Effects(closing="accept_deferred", notices=(n.DEFERRED_ACCEPTANCE,))),
        Row("refuse_acceptance", S.SUBMITTED, S.NOT_ACCEPTED, (manual_intake, refusal_grounds),
            Effects(closing="refuse", notices=(n.NOT_ACCEPTED,))),
        Row("request_correction", S.SUBMITTED, S.CORRECTION_REQUESTED, (manual_intake, has_items),
            Effects(closing="correction", notices=(n.CORRECTION,))),
        Row("resubmit", S.CORRECTION_REQUESTED, S.RESUBMITTED, takes_facts=True,
            takes_documents=True, answers=n.CORRECTION),
        Row("recheck", S.RESUBMITTED, S.SUBMITTED, auto=True),
        Row("start_review", S.ACCEPTED, S.UNDER_REVIEW, (),
            Effects(open_tasks=(TaskKind.REVIEW,)), auto=True),
        Row("request_info", S.UNDER_REVIEW, S.MORE_INFO_REQUESTED, (has_items,),
            Effects(notices=(n.MORE_INFO,), pause_clock=True)),
        Row("supply_info", S.MORE_INFO_REQUESTED, S.UNDER_REVIEW, (),
            Effects(resume_clock=True), takes_facts=True, takes_documents=True,
            answers=n.MORE_INFO),
        Row("complete_reviews", S.UNDER_REVIEW, S.AWAITING_CONFIRMATION,
            (reviews_all_pass, needs_confirmation), Effects(open_tasks=(TaskKind.CONFIRM,)),
            auto=True),
        Row("complete_reviews", S.UNDER_REVIEW, S.UNDER_REVIEW, (reviews_done, no_decide_task),
            Effects(open_tasks=(TaskKind.DECIDE,)), auto=True),
        Row("confirm", S.AWAITING_CONFIRMATION, S.CONFIRMED, (),
            Effects(closing="confirmed", open_tasks=(TaskKind.DECIDE,)),
            takes_facts=True),
        Row("approve", DECISION_SOURCES, S.PARTIALLY_APPROVED,
            (decision_ready, rules_allow_grant, amount_within_ceiling, has_amount_to_grant,
             is_partial),
            Effects(closing="approve", grant=True, notices=(n.DECISION_PARTIAL,))),
        Row("approve", DECISION_SOURCES, S.APPROVED,
            (decision_ready, rules_allow_grant, amount_within_ceiling, has_amount_to_grant),
            Effects(closing="approve", grant=True, notices=(n.DECISION_GRANTED,))),
        Row("reject", [S.UNDER_REVIEW, S.AWAITING_CONFIRMATION, S.CONFIRMED], S.REJECTED,
            (has_reason,),
            Effects(closing="reject", end_requests=True, notices=(n.DECISION_REFUSED,))),
        Row("order_payout", [S.APPROVED, S.PARTIALLY_APPROVED], S.PAYOUT_ORDERED, (pays_out,),
            Effects(order_payout=True), auto=True),
        Row("record_payment", S.PAYOUT_ORDERED, S.PAID, (),
            Effects(notices=(n.PAYOUT,), settle_payout=True)),
        Row("apply_effect", [S.APPROVED, S.PARTIALLY_APPROVED], S.EFFECT_APPLIED,
            (no_payout, lift_resolved), Effects(apply_effect=True), auto=True),
        Row("close", [S.PAID, S.EFFECT_APPLIED], S.CLOSED, auto=True),
        Row("withdraw", WITHDRAWABLE, S.WITHDRAWN, (),
            Effects(close_tasks=True, notices=(n.WITHDRAWN,))),
        Row("expire", WITHDRAWABLE, S.EXPIRED, (has_reason,),
            Effects(close_tasks=True, notices=(n.EXPIRED,))),
    )  # fmt: skip


# ---------------------------------------------------------------- who may fire what
_R = Role
_T = TaskKind
_INTAKE_STEP = permit(_R.INTAKE_OFFICER, task=(_T.INTAKE,))
# A trigger without a permit is internal: only the engine fires it (the automatic rows).
PERMITS: dict[str, Permit] = {
    "submit": permit(_R.APPLICANT, _R.INTAKE_OFFICER, _R.OPERATOR),
    "accept": _INTAKE_STEP,
    "accept_deferred": _INTAKE_STEP,
    "refuse_acceptance": _INTAKE_STEP,
    "request_correction": _INTAKE_STEP,
    "resubmit": permit(_R.APPLICANT),
    "review": permit(_R.REVIEWER, task=(_T.REVIEW,)),  # CaseEngine.decide_task
    "request_info": permit(_R.REVIEWER, task=(_T.REVIEW,)),
    "supply_info": permit(_R.APPLICANT),
    "confirm": permit(_R.REVIEWER, task=(_T.CONFIRM,), not_the_reviewer=True),
    "approve": permit(_R.REVIEWER, task=(_T.DECIDE,), not_the_reviewer=True),
    "reject": permit(_R.REVIEWER, task=(_T.DECIDE, _T.CONFIRM), not_the_reviewer=True),
    "record_payment": permit(_R.OPERATOR, _R.SYSTEM),
    "withdraw": permit(_R.APPLICANT),
    "expire": permit(_R.OPERATOR, _R.SYSTEM),
    "note_task": permit(_R.OPERATOR, _R.SYSTEM),  # CaseEngine.note_task (SLA)
    "note_request": permit(_R.OPERATOR, _R.SYSTEM),  # CaseEngine.note_request (reminder)
    "add_documents": permit(_R.APPLICANT),  # CaseEngine.add_documents (容缺, more material)
    "migrate_edition": permit(_R.OPERATOR),  # CaseEngine.migrate_edition
    "retry_incident": permit(_R.OPERATOR),  # CaseEngine.act_on_incident
    "resolve_incident": permit(_R.OPERATOR),
}
# 认领: a task is claimed (or released) by whoever may take the step it is for, so a claim can
# never keep out the people who may act, nor let in one who may not (the case's reviewer)
CLAIMED_AS: dict[str, str] = {
    TaskKind.INTAKE: "accept",
    TaskKind.REVIEW: "review",
    TaskKind.CONFIRM: "confirm",
    TaskKind.DECIDE: "approve",
}


@dataclass(frozen=True)
class EffectFacts:
    """What an effect register row is made from."""

    case_id: int
    subject_key: str
    facts: dict[str, Any]
    assessment: Assessment
    granted: Decimal | None
    at: datetime

    @property
    def party(self) -> str:
        """The enterprise as the registers name it: its USCC, else REG:<注册号>."""
        p = self.facts.get("applicant") or self.facts.get("licensee") or {}
        return str(p.get("uscc") or f"REG:{p.get('registration_no')}")


@dataclass(frozen=True)
class TypeMachine:
    """One application type's machine: the shared rows plus the type's own."""

    case_type: str
    needs_confirmation: bool
    pays_out: bool
    extra_rows: tuple[Row, ...] = ()
    extra_permits: tuple[tuple[str, Permit], ...] = ()
    # the register an approved effect is written to (rent waiver, licence expiry, exemption)
    effect_register: Callable[[EffectFacts], tuple[Any, dict[str, Any]]] | None = None

    def rows(self) -> list[Row]:
        return [*self.extra_rows, *_lifecycle_table()]

    def states(self) -> list[CaseState]:
        used: set[CaseState] = set()
        for r in self.rows():
            used.update(r.sources())
            used.add(r.dest)
        return [s for s in CaseState if s in used]

    @functools.cached_property
    def _by_source(self) -> dict[str, list[Row]]:
        """The rows leaving each state, in table order (the engine asks several times a step)."""
        index: dict[str, list[Row]] = {}
        for r in self.rows():
            for s in r.sources():
                index.setdefault(s.value, []).append(r)
        return index

    @functools.cached_property
    def _by_trigger(self) -> dict[tuple[str, str], tuple[Row, ...]]:
        return {
            (state, t): tuple(r for r in rows if r.trigger == t)
            for state, rows in self._by_source.items()
            for t in {r.trigger for r in rows}
        }

    def rows_from(self, trigger: str, state: str) -> tuple[Row, ...]:
        """The rows `trigger` may take from `state`, in table order."""
        key = state.value if isinstance(state, CaseState) else state
        return self._by_trigger.get((key, trigger), ())

    def effects(self, trigger: str, source: str, dest: str) -> Effects:
        for r in self.rows_from(trigger, source):
            if r.dest == dest:
                return r.effects
        return Effects()

    def auto_triggers(self, state: str) -> list[str]:
        """Triggers the engine tries by itself in `state`, in table order, without repeats."""
        key = state.value if isinstance(state, CaseState) else state
        seen: list[str] = []
        for r in self._by_source.get(key, ()):
            if r.auto and r.trigger not in seen:
                seen.append(r.trigger)
        return seen

    @functools.cached_property
    def permits(self) -> dict[str, Permit]:
        return {**PERMITS, **dict(self.extra_permits)}

    @functools.cached_property
    def document_triggers(self) -> frozenset[str]:
        """The triggers that may carry documents (filing, 补正, 补充)."""
        return frozenset(r.trigger for r in self.rows() if r.takes_documents)

    def answered_by(self, trigger: str) -> str | None:
        """The kind of applicant request `trigger` answers (补正 by resubmit, 补充 by
        supply_info); 容缺 is answered by adding the documents (CaseEngine.add_documents)."""
        return self._answers.get(trigger)

    @functools.cached_property
    def _answers(self) -> dict[str, str]:
        return {r.trigger: r.answers for r in self.rows() if r.answers}

    @functools.cached_property
    def fact_triggers(self) -> frozenset[str]:
        """The triggers that may carry facts (补正, 补充, 确认, 解封日期)."""
        return frozenset(r.trigger for r in self.rows() if r.takes_facts)

    def permit_for(self, trigger: str) -> Permit | None:
        """Who may fire `trigger` from outside the engine; None: internal (automatic) only."""
        return self.permits.get(trigger)

    def conditions_for(self, trigger: str, state: str) -> list[list[Any]]:
        """The guard lists of each row `trigger` may take from `state`."""
        return [list(r.conditions) for r in self.rows_from(trigger, state)]

    def build(self, subject: CaseSubject | None = None) -> Machine:
        """A fresh machine bound to one subject (never a growing shared one).

        Without a subject, the machine every subject of the type shares: states/case_run.py
        fires its events for each subject, and it keeps no list of models.
        """
        transitions = [
            {"trigger": r.trigger, "source": [s.value for s in r.sources()],
             "dest": r.dest.value, "conditions": list(r.conditions)}
            for r in self.rows()
        ]  # fmt: skip
        return Machine(
            model=subject,
            states=[s.value for s in self.states()],
            transitions=transitions,
            initial=subject.state if subject is not None else CaseState.DRAFT.value,
            auto_transitions=False,
            send_event=True,
            ignore_invalid_triggers=False,
        )


def EffectOnlyMachine(
    case_type: str,
    *,
    needs_confirmation: bool,
    register: Callable[[EffectFacts], tuple[Any, dict[str, Any]]],
    extra: tuple[Row, ...] = (),
    permits: tuple[tuple[str, Permit], ...] = (),
) -> TypeMachine:
    """A type whose approval takes effect without a payout (rent waiver, licence, credit),
    written to its register."""
    return TypeMachine(
        case_type,
        needs_confirmation=needs_confirmation,
        pays_out=False,
        extra_rows=extra,
        extra_permits=permits,
        effect_register=register,
    )


def ReferralMachine(
    case_type: str,
    *,
    needs_confirmation: bool,
    register: Callable[[EffectFacts], tuple[Any, dict[str, Any]]],
) -> TypeMachine:
    """Intake and referral: the district takes the application in, checks it, and refers it to
    the body that decides (a municipal or 中关村 measure); the approval is the referral, told
    by a referral notice, never a 准予 decision the district has no power to make."""
    refer = Row("approve", DECISION_SOURCES, S.APPROVED, (decision_ready, rules_allow_grant),
                Effects(closing="approve", grant=True, notices=(NoticeKind.REFERRAL,)))  # fmt: skip
    return EffectOnlyMachine(
        case_type, needs_confirmation=needs_confirmation, register=register, extra=(refer,)
    )


def SubsidyMachine(case_type: str, *, needs_confirmation: bool) -> TypeMachine:
    """A subsidy type: approval orders a payout from the paying bureau."""
    return TypeMachine(case_type, needs_confirmation=needs_confirmation, pays_out=True)
