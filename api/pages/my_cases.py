"""我的申请 — an applicant's cases: plain-language status, every notice, what is asked of them
and by when; answering a 补正 / 补充 with files (and corrected facts), adding 容缺 materials,
withdrawing; and where notices go (contact details).

Every act goes through the same engine call as the API; the engine decides who may.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session, col, select

from api import web_session
from api.deps import EngineDep, case_id_of, load_visible_case
from api.pages.application_form import form_fields, form_values, read_form, row_count
from api.pages.filing import ApplicantSession, read_posted
from api.pages.views import Csrf, MaybeSession, act_and_return, back, page, require_csrf
from api.routes.common import case_notices, documents_on
from api.schemas import PUBLIC_STATUS
from base.civil_dates import zh_date
from models.input_errors import InvalidApplication
from models.statuses import RequestStatus
from models.tables import Applicant, ApplicantRequest, Case
from states.actors import actor_of
from states.catalog import spec_for
from states.contacts import stored_contact
from states.documents import missing_slots
from states.edition import edition_by_id
from states.engine import CaseEngine
from states.errors import ConflictError, EngineError
from states.labels import NOTICE_ZH
from states.lifecycle import FINAL_STATES

router = APIRouter(include_in_schema=False)
ANSWERS = {"correction": "补正", "more_info": "补充材料", "deferred_acceptance": "补齐容缺材料"}


def _requests(engine: CaseEngine, case_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    if not case_ids:
        return out
    with Session(engine.read_db) as s:
        rows = s.exec(
            select(ApplicantRequest)
            .where(
                col(ApplicantRequest.case_id).in_(case_ids),
                col(ApplicantRequest.status) == RequestStatus.OPEN,
            )
            .order_by(col(ApplicantRequest.id))
        ).all()
    today = engine.clock.today()
    for r in rows:
        out.setdefault(r.case_id, []).append(
            {
                "id": r.id,
                "kind": r.kind,
                "title": NOTICE_ZH.get(r.kind, r.kind),
                "answer": ANSWERS.get(r.kind, "答复"),
                "items": r.items,
                "slots": r.slots,
                "deadline": zh_date(r.deadline),
                "late": r.deadline < today,
            }
        )
    return out


@router.get("/my", response_class=HTMLResponse)
def my_cases(request: Request, session: ApplicantSession, engine: EngineDep) -> Response:
    account = session.account
    assert account is not None
    with Session(engine.read_db) as s:
        applicant = s.exec(select(Applicant).where(col(Applicant.identity) == account.uscc)).first()
        cases = (
            list(
                s.exec(
                    select(Case)
                    .where(col(Case.applicant_id) == applicant.id)
                    .order_by(col(Case.id).desc())
                ).all()
            )
            if applicant
            else []
        )
    asks = _requests(engine, [c.id for c in cases if c.id is not None])
    rows = [
        {
            "case_no": c.case_no,
            "type_label": spec_for(c.case_type).label_zh,
            "status": PUBLIC_STATUS.get(c.state, c.state),
            "filed_on": zh_date(c.filed_on),
            "asks": asks.get(c.id or 0, []),
        }
        for c in cases
    ]
    return page(request, engine, session, "my_cases.html.j2", cases=rows)


def _own_case(engine: CaseEngine, session: web_session.PageSession, case_no: str) -> Case:
    assert session.account is not None
    return load_visible_case(engine, session.account, case_no[:30])  # else: 案件不存在 (404)


@router.get("/my/cases/{case_no}", response_class=HTMLResponse)
def my_case(
    request: Request, case_no: str, session: ApplicantSession, engine: EngineDep
) -> Response:
    case = _own_case(engine, session, case_no)
    assert case.id is not None
    edition = edition_by_id(case.edition_id)
    documents = documents_on(engine, case)
    asks = _requests(engine, [case.id]).get(case.id, [])
    slots = edition.slots_for(case.case_type)
    labels = {s.slot: s.label for s in slots}
    for ask in asks:
        ask["slot_labels"] = [(s, labels.get(s, s)) for s in ask["slots"]]
    correcting = any(a["kind"] in ("correction", "more_info") for a in asks)
    fields = form_fields_for(case) if correcting else ()
    values = form_values(case.facts)
    return page(
        request,
        engine,
        session,
        "my_case.html.j2",
        case=case,
        type_label=spec_for(case.case_type).label_zh,
        status=PUBLIC_STATUS.get(case.state, case.state),
        notices=case_notices(engine, case),
        documents=documents,
        asks=asks,
        slots=slots,
        missing=[
            s.label
            for s in missing_slots(edition, case.case_type, case.facts, {d.slot for d in documents})
        ],
        ended=case.state in FINAL_STATES,
        undecided=bool(spec_for(case.case_type).machine.rows_from("withdraw", case.state)),
        fields=fields,
        values=values,
        errors={},
        rows_of=lambda name, f: row_count(values, name, f),
        row_buttons=False,  # a correction keeps the rows it has (the answer is one form)
        max_mb=engine.settings.document_max_mb,
    )


def form_fields_for(case: Case) -> Any:
    edition = edition_by_id(case.edition_id)
    return form_fields(
        spec_for(case.case_type).case_type, edition.clauses_for_fields(case.case_type)
    )


@router.post("/my/cases/{case_no}/answer")
async def answer(
    request: Request, case_no: str, session: MaybeSession, engine: EngineDep
) -> Response:
    """补正 / 补充 / 容缺: the files asked for (and, for 补正 / 补充, corrected facts)."""
    url = f"/my/cases/{case_no[:30]}"
    with Session(engine.read_db) as s:
        case = s.exec(select(Case).where(col(Case.case_no) == case_no[:30])).first()
    if case is None:
        raise HTTPException(404)
    slots = {s.slot for s in edition_by_id(case.edition_id).slots_for(case.case_type)}
    form_session, values, held, doc_errors = await read_posted(request, engine, slots, session)
    for text in doc_errors.values():
        web_session.push_flash(engine.db, form_session, f"未保存：{text}", "error")
    if doc_errors:
        return back(url)
    assert form_session.account is not None
    actor = actor_of(form_session.account)
    documents = [h.ref() for h in held]
    version = (values.pop("version", None) or [""])[-1]
    expected = int(version) if version.isdigit() and len(version) < 12 else None

    def call() -> Any:
        case_id = case_id_of(engine, case_no[:30])
        visible = load_visible_case(engine, form_session.account, case_no[:30])  # type: ignore[arg-type]
        if visible.state in ("correction_requested", "more_info_requested"):
            trigger = "resubmit" if visible.state == "correction_requested" else "supply_info"
            payload: dict[str, Any] = {"documents": documents} if documents else {}
            if "_facts" in values:
                fields = form_fields_for(visible)
                facts = {**read_form(fields, values), "type": visible.case_type}
                if facts != {**visible.facts, "type": visible.case_type}:
                    payload["facts"] = facts
            return engine.fire(case_id, trigger, actor=actor, payload=payload,
                               expected_version=expected)  # fmt: skip
        return engine.add_documents(case_id, documents, actor=actor, expected_version=expected)

    return act_and_return(engine, form_session, url, call)


@router.post("/my/cases/{case_no}/withdraw")
def withdraw(
    case_no: str, session: MaybeSession, engine: EngineDep, csrf: Csrf = "",
    version: Annotated[int, Form(ge=1, le=2**62)] = 1,
) -> Response:  # fmt: skip
    form = require_csrf(engine, session, csrf)
    url = f"/my/cases/{case_no[:30]}"
    if form.account is None:
        return back("/login")
    actor = actor_of(form.account)
    return act_and_return(
        engine, form, url,
        lambda: engine.fire(case_id_of(engine, case_no[:30]), "withdraw", actor=actor,
                            expected_version=version),
    )  # fmt: skip


# ---------------------------------------------------------------- contact details
@router.get("/my/contact", response_class=HTMLResponse)
def contact_form(request: Request, session: ApplicantSession, engine: EngineDep) -> Response:
    assert session.account is not None
    with Session(engine.read_db) as s:
        row = s.exec(
            select(Applicant).where(col(Applicant.identity) == session.account.uscc)
        ).first()
    current = stored_contact(row) if row else None
    return page(request, engine, session, "my_contact.html.j2", current=current, errors={})


@router.post("/my/contact")
def contact_post(
    request: Request,
    session: MaybeSession,
    engine: EngineDep,
    csrf: Csrf = "",
    email: Annotated[str, Form(max_length=200)] = "",
    phone: Annotated[str, Form(max_length=40)] = "",
    im_url: Annotated[str, Form(max_length=500)] = "",
    notify: Annotated[list[str] | None, Form(max_length=5)] = None,
    was_email: Annotated[str, Form(max_length=200)] = "",
    was_phone: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    form = require_csrf(engine, session, csrf)
    if form.account is None or form.account.role != "applicant":
        return back("/login")
    details = {
        "email": email.strip() or None,
        "phone": phone.strip() or None,
        "im_url": im_url.strip() or None,
        "notify": [n[:10] for n in notify or []],
    }
    try:
        engine.update_contact(
            form.account.uscc or "", details, actor=actor_of(form.account),
            expected={"email": was_email or None, "phone": was_phone or None},
        )  # fmt: skip
    except InvalidApplication as exc:
        errors = {e.field: e.message_zh for e in exc.errors}
        current = {**details}
        return page(request, engine, form, "my_contact.html.j2", status_code=422,
                    current=current, errors=errors)  # fmt: skip
    except (ConflictError, EngineError) as exc:
        web_session.push_flash(engine.db, form, f"未保存：{exc.message_zh}", "error")
        return back("/my/contact")
    web_session.push_flash(engine.db, form, "联系方式已更新，此后的通知书将发送到新的联系方式")
    return back("/my/contact")
