"""What the API returns: `…Public` schemas that show a role only what it may see."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from models.statuses import TaskStatus
from models.tables import Case, CaseEvent, Notice, ReviewTask
from states.labels import DECISION_ZH, TASK_ZH, state_zh
from states.rules import Decision

# 对申请人的公开状态 — plain language, separate from internal state names
PUBLIC_STATUS: dict[str, str] = {
    "draft": "尚未提交",
    "submitted": "已提交，等待受理",
    "accepted": "已受理，正在审核",
    "correction_requested": "需要您补正材料",
    "resubmitted": "已补正，等待受理",
    "not_accepted": "不予受理",
    "under_review": "正在审核",
    "more_info_requested": "需要您补充材料",
    "awaiting_confirmation": "正在审核（待确认）",
    "confirmed": "正在审核（已确认，待决定）",
    "approved": "已批准",
    "partially_approved": "已部分批准",
    "rejected": "未获批准",
    "payout_ordered": "已批准，资金拨付中",
    "paid": "资金已拨付",
    "effect_applied": "已生效",
    "extended_pending_lift": "已顺延，待封管控解除后确定日期",
    "closed": "已办结",
    "withdrawn": "已撤回",
    "expired": "已终止办理",
}


class NoticePublic(BaseModel):
    id: int
    kind: str
    title: str
    doc_number: str | None
    status: str
    created_at: datetime
    text: str

    @classmethod
    def of(cls, n: Notice) -> NoticePublic:
        assert n.id is not None
        return cls(
            id=n.id,
            kind=n.kind,
            title=n.title,
            doc_number=n.doc_number,
            status=n.status,
            created_at=n.created_at,
            text=n.body_text,
        )


class StatusPublic(BaseModel):
    """What anyone with the case number and query code may see."""

    case_no: str
    type_label: str
    status: str
    filed_on: date
    notices: list[NoticePublic]


class TaskPublic(BaseModel):
    id: int
    case_no: str
    case_type: str
    kind: str
    kind_zh: str
    unit: str
    status: str
    due_on: date | None
    overdue: bool
    assignee: str | None
    decision: str | None


class CaseSummary(BaseModel):
    case_no: str
    case_type: str
    state: str
    state_zh: str
    public_status: str
    version: int
    filed_on: date
    amount_ceiling: str
    amount_granted: str | None


class EventPublic(BaseModel):
    seq: int
    at: datetime
    trigger: str
    from_state: str | None
    to_state: str
    actor: str
    payload: dict[str, Any]


class CaseDetail(CaseSummary):
    decision: str
    decision_zh: str
    edition: str
    manual_review: bool
    facts: dict[str, Any]
    checks: list[dict[str, Any]]
    components: list[dict[str, Any]]
    routes: list[dict[str, Any]]
    tasks: list[TaskPublic]
    history: list[EventPublic]
    notices: list[NoticePublic]


def summary(c: Case) -> dict[str, Any]:
    return {
        "case_no": c.case_no or "",
        "case_type": c.case_type,
        "state": c.state,
        "state_zh": state_zh(c.state),
        "public_status": PUBLIC_STATUS.get(c.state, c.state),
        "version": c.version,
        "filed_on": c.filed_on,
        "amount_ceiling": str(c.amount_ceiling),
        "amount_granted": None if c.amount_granted is None else str(c.amount_granted),
    }


def task_public(t: ReviewTask, case_no: str, case_type: str, today: date) -> TaskPublic:
    assert t.id is not None
    return TaskPublic(
        id=t.id,
        case_no=case_no,
        case_type=case_type,
        kind=t.kind,
        kind_zh=TASK_ZH.get(t.kind, t.kind),
        unit=t.unit,
        status=t.status,
        due_on=t.due_on,
        overdue=bool(
            t.status == TaskStatus.OPEN and t.due_on and t.due_on < today and t.paused_on is None
        ),
        assignee=t.assignee,
        decision=t.decision,
    )


def detail(
    c: Case, tasks: list[ReviewTask], events: list[CaseEvent], notices: list[Notice], today: date
) -> CaseDetail:
    a = c.assessment
    return CaseDetail(
        **summary(c),
        decision=c.decision,
        decision_zh=DECISION_ZH.get(Decision(c.decision), c.decision),
        edition=c.edition_id,
        manual_review=c.manual_review,
        facts=c.facts,
        checks=a["checks"],
        components=a["components"],
        routes=a["routes"],
        tasks=[task_public(t, c.case_no or "", c.case_type, today) for t in tasks],
        history=[
            EventPublic(
                seq=e.seq,
                at=e.at,
                trigger=e.trigger,
                from_state=e.from_state,
                to_state=e.to_state,
                actor=e.actor,
                payload=e.payload,
            )
            for e in events
        ],
        notices=[NoticePublic.of(n) for n in notices],
    )


class ReviewDecision(BaseModel):
    decision: str = Field(pattern="^(pass|fail)$", description="pass 通过 / fail 不通过")
    reason: str | None = Field(default=None, max_length=2000)


class CaseDecision(BaseModel):
    action: str = Field(pattern="^(approve|reject|request_info)$")
    amount: str | None = Field(
        default=None,
        max_length=20,
        description="approve: at or below the ceiling; below it is a partial approval",
    )
    reason: str | None = Field(default=None, max_length=2000)
    items: list[str] | None = Field(default=None, max_length=50)
    slots: list[str] | None = Field(
        default=None, max_length=20, description="request_info: the document slots asked for"
    )
    expected_version: int | None = Field(
        default=None, ge=1, description="the version you saw; a later change gives 409"
    )


class Confirmation(BaseModel):
    facts: dict[str, Any] | None = Field(
        default=None, description="confirmed figures, e.g. confirmed_total_reduced"
    )
    expected_version: int | None = Field(default=None, ge=1)


class DocumentRefIn(BaseModel):
    slot: str = Field(max_length=60, description="a document slot of the case's type")
    sha256: str = Field(max_length=64, description="as POST /api/documents answered")
    filename: str = Field(default="", max_length=300)


class Supply(BaseModel):
    facts: dict[str, Any] = Field(
        default_factory=dict, description="the corrected or additional facts"
    )
    documents: list[DocumentRefIn] = Field(default_factory=list, max_length=50)
    expected_version: int | None = Field(default=None, ge=1)


class AddDocuments(BaseModel):
    documents: list[DocumentRefIn] = Field(min_length=1, max_length=50)
    expected_version: int | None = Field(default=None, ge=1)


class StoredDocument(BaseModel):
    sha256: str
    size: int
    media_type: str


class CaseDocumentPublic(BaseModel):
    id: int
    slot: str
    slot_label: str
    filename: str
    media_type: str
    size: int
    uploaded_by: str
    at: str
    url: str


class ContactIn(BaseModel):
    email: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    notify: list[str] = Field(default_factory=list, max_length=5)
    im_url: str | None = Field(default=None, max_length=500)
    expected: dict[str, Any] | None = Field(
        default=None, description="the details as you last saw them; a change since gives 409"
    )


class FireResultPublic(BaseModel):
    case_no: str
    state: str
    state_zh: str
    version: int
    replayed: bool
