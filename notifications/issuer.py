"""通知书撰写 — the notice issuer the engine is given: the prefix, the number's form, the text.

states/ records what a notice must say (states/notice_issuer.NoticeRequest); this module turns
that into the outbox row: number, title, text, HTML and its hash, rendered once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from base.clock import Clock
from models.settings import Settings
from notifications.context import NoticeInput, issuer_route
from notifications.context import build as build_context
from notifications.doc_numbers import doc_number
from notifications.render import render_notice
from states.case_run import jsonable
from states.edition import edition_by_id
from states.engine import CaseEngine
from states.lifecycle import BUREAU_NOTICES, UNNUMBERED_NOTICES
from states.notice_issuer import NoticeRequest


class NoticeWriter:
    """Numbers and renders notices (notifications/ templates) for the engine."""

    def __init__(
        self, *, working_days: int, form_confirmed: bool = False, seal_line: str = ""
    ) -> None:
        self.working_days = working_days  # stated on the 受理通知书 (办理时限)
        self.form_confirmed = form_confirmed  # RELIEF_NOTICE_FORM_CONFIRMED
        self.seal_line = seal_line

    def doc_prefix(self, request: NoticeRequest) -> str | None:
        if request.kind in UNNUMBERED_NOTICES:
            return None
        route = issuer_route(request.kind, request.assessment)
        bureau = edition_by_id(request.edition_id).bureau(
            route.bureau_code if route else "district_government"
        )
        return bureau.doc_prefix

    def number(self, prefix: str, year: int, serial: int) -> str:
        return doc_number(prefix, year, serial)

    def render(self, request: NoticeRequest, doc_number: str | None) -> dict[str, Any]:
        edition = edition_by_id(request.edition_id)
        to_bureau = request.kind in BUREAU_NOTICES
        context = build_context(
            NoticeInput(
                kind=request.kind,
                case_no=request.case_no,
                case_type=request.case_type,
                query_code=request.query_code,
                filed_on=request.filed_on,
                issued_on=request.issued_on,
                facts=request.facts,
                assessment=request.assessment,
                edition=edition,
                doc_number=doc_number,
                granted=request.granted,
                items=list(request.items),
                reason=request.reason,
                deadline=request.deadline,
                reference=request.reference,
                task=jsonable(request.task),
                working_days=self.working_days,
                decision_ref=request.decision_ref,
                form_confirmed=self.form_confirmed,
                seal_line=self.seal_line,
            )
        )
        rendered = render_notice(request.kind.value, context)
        task = request.task
        return dict(
            case_id=request.case_id,
            kind=request.kind.value,
            audience="bureau" if to_bureau else "applicant",
            event_seq=request.event_seq,
            payload=jsonable(
                {
                    "state": request.state,
                    "decision": request.assessment.decision.value,
                    "items": list(request.items) or None,
                    "reason": request.reason,
                    "deadline": request.deadline,
                    **task,
                }
            ),
            idempotency_key=f"notice:{request.case_id}:{request.event_seq}:{request.kind.value}"
            + (f":task{task['task_id']}" if "task_id" in task else "")
            + (f":request{task['request_id']}" if "request_id" in task else ""),
            created_at=request.created_at,
            doc_number=doc_number,
            issuer=context["issuer"]["unit"],
            recipient=context["task"].get("unit") if to_bureau else context["recipient"],
            title=rendered.title,
            body_text=rendered.text,
            body_html=rendered.html,
            content_hash=rendered.content_hash,
        )


def engine_with_notices(
    db: Engine, *, settings: Settings, clock: Clock | None = None
) -> CaseEngine:
    """The case engine, writing its notices with this module's NoticeWriter (every door makes
    its engine here: states/ does not import notifications/)."""
    writer = NoticeWriter(
        working_days=settings.review_due_working_days,
        form_confirmed=settings.notice_form_confirmed,
        seal_line=settings.notice_seal_line,
    )
    return CaseEngine(db, settings=settings, clock=clock, issuer=writer)
