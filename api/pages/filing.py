"""在线申请 — an applicant files on the web: the type's form, its documents, a preview of what
the rules would say, then the filing and its receipt.

The form is generated from the type's schema (api/pages/application_form.py), so a new type
needs no page code. Every step is a plain form post (no JavaScript): adding a row, previewing,
going back, confirming. Uploaded files are stored as they arrive and carried between steps as
signed references, so nothing chosen is lost and nobody can slip in another's file. The
filing goes through the engine with a request key made when the form was first opened: a
double click or a reload files once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from itsdangerous import BadSignature
from sqlmodel import Session, col, select

from api import web_session
from api.deps import EngineDep
from api.pages.application_form import (
    FormField,
    add_row,
    find,
    form_fields,
    form_values,
    read_form,
    remove_row,
    row_count,
)
from api.pages.views import MaybeSession, back, page, require_csrf
from api.schemas import PUBLIC_STATUS
from api.web_session import CSRF_FIELD, PageSession
from base.identifiers import bounded_key
from base.money import format_cny
from base.query_codes import display as display_code
from models.document_store import DocumentRefused, keep
from models.input_errors import InvalidApplication, parse_application
from models.tables import Applicant, Case, RequestRecord
from states.actors import actor_of
from states.catalog import spec_for
from states.documents import clean_filename, missing_slots
from states.edition import Edition, edition_for
from states.engine import CaseEngine
from states.errors import DatabaseUnavailable, EngineError, StorageFull
from states.labels import DECISION_ZH

router = APIRouter(include_in_schema=False)
REF_SALT = "relief-docref"


async def applicant_session(session: MaybeSession) -> PageSession:
    if session is None or session.account is None or session.account.role != "applicant":
        raise HTTPException(303, headers={"Location": "/login"})
    return session


ApplicantSession = Annotated[PageSession, Depends(applicant_session)]


@dataclass(frozen=True)
class HeldDocument:
    """An uploaded file the form carries between steps (signed: slot, sha256, name, size)."""

    token: str
    slot: str
    sha256: str
    filename: str
    size: int

    @property
    def size_kb(self) -> int:
        return max(1, self.size // 1024)

    def ref(self) -> dict[str, str]:
        return {"slot": self.slot, "sha256": self.sha256, "filename": self.filename}


def _current_edition(engine: CaseEngine) -> Edition:
    return edition_for(engine.clock.today())


def _type_or_404(case_type: str, edition: Edition) -> str:
    """A type the edition in force carries (core or configured), else 404."""
    if case_type[:40] not in edition.type_codes():
        raise HTTPException(404)
    return case_type[:40]


@router.get("/apply", response_class=HTMLResponse)
def apply_index(request: Request, session: ApplicantSession, engine: EngineDep) -> Response:
    edition = _current_edition(engine)
    types = [
        {
            "code": code,
            "label": spec_for(code).label_zh,
            "measure": edition.measure_of(code),
            "documents": "、".join(
                s.label for s in edition.slots_for(code) if s.required == "always"
            ),
        }
        for code in edition.type_codes()
    ]
    return page(request, engine, session, "apply_index.html.j2", types=types)


def _initial(engine: CaseEngine, session: PageSession) -> dict[str, list[str]]:
    """The applicant's own details, filled in (they may change them)."""
    account = session.account
    assert account is not None
    with Session(engine.read_db) as s:
        row = s.exec(select(Applicant).where(col(Applicant.identity) == account.uscc)).first()
    party: dict[str, Any] = {"uscc": account.uscc, "name": account.display_name}
    if row is not None:
        party.update(name=row.name or account.display_name, kind=row.kind, size=row.size,
                     email=row.email, phone=row.phone, notify=row.notify or None)  # fmt: skip
    return form_values({"applicant": party, "licensee": party})


def _context(
    engine: CaseEngine,
    case_type: str,
    values: dict[str, list[str]],
    *,
    draft: str,
    refs: list[HeldDocument],
    errors: dict[str, str] | None = None,
    doc_errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    edition = _current_edition(engine)
    fields = form_fields(case_type, edition.clauses_for_fields(case_type))
    slots = edition.slots_for(case_type)
    facts = read_form(fields, values)
    return {
        "case_type": case_type,
        "type_label": spec_for(case_type).label_zh,
        "summary": declared.summary
        if (declared := edition.configured_types.get(case_type))
        else "",
        "policy_title": edition.title,
        "policy_doc": edition.doc_number,
        "fields": fields,
        "values": values,
        "rows_of": lambda name, f: row_count(values, name, f),
        "errors": errors or {},
        "doc_errors": doc_errors or {},
        "labels": _ErrorLabels(_labels(fields)),
        "slot_labels": {s.slot: s.label for s in slots},
        "slots": slots,
        "missing": {s.slot for s in slots if s.required_for(facts)},
        "refs": refs,
        "draft": draft,
        "max_mb": engine.settings.document_max_mb,
    }


class _ErrorLabels(dict[str, str]):
    """A field's label by its posted name: `loans.0.principal` → 贷款 · 第1项 · 贷款本金."""

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        parts = name.split(".")
        plain = ".".join(p for p in parts if not p.isdigit())
        label = super().get(plain)
        if label is None:
            return default
        rows = [f"第{int(p) + 1}项" for p in parts if p.isdigit()]
        if rows:
            head, _, tail = label.rpartition(" · ")
            return f"{head} · {' · '.join(rows)} · {tail}" if head else f"{label}（{rows[0]}）"
        return label


def _labels(fields: tuple[FormField, ...], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for f in fields:
        out[f"{prefix}{f.name}"] = f.label
        for k, v in _labels(f.children, f"{prefix}{f.name}.").items():
            out[k] = f"{f.label} · {v}"
    return out


@router.get("/apply/{case_type}", response_class=HTMLResponse)
def apply_form(
    request: Request, case_type: str, session: ApplicantSession, engine: EngineDep
) -> Response:
    ct = _type_or_404(case_type, _current_edition(engine))
    context = _context(engine, ct, _initial(engine, session), draft=secrets.token_hex(16), refs=[])
    return page(request, engine, session, "apply.html.j2", **context)


def _held(engine: CaseEngine, tokens: list[str]) -> list[HeldDocument]:
    signer = web_session.signer(engine.db, engine.settings.secret_key, REF_SALT)
    out: list[HeldDocument] = []
    for token in tokens[:50]:
        try:
            slot, sha, name, size = signer.loads(token, max_age=web_session.SESSION_HOURS * 3600)
        except (BadSignature, ValueError, TypeError):
            continue  # a forged or stale reference is dropped, never followed
        if all(h.sha256 != sha or h.slot != slot for h in out):
            out.append(HeldDocument(token, str(slot), str(sha), str(name), int(size)))
    return out


def _hold(engine: CaseEngine, slot: str, sha: str, name: str, size: int) -> HeldDocument:
    signer = web_session.signer(engine.db, engine.settings.secret_key, REF_SALT)
    return HeldDocument(signer.dumps([slot, sha, name, size]), slot, sha, name, size)


async def read_posted(
    request: Request, engine: CaseEngine, slots: set[str], session: PageSession | None
) -> tuple[PageSession, dict[str, list[str]], list[HeldDocument], dict[str, str]]:
    """The form's session (its CSRF token checked before any file is kept), the posted
    values, the documents held (earlier ones and new uploads, stored now) and the refusals of
    uploads, by slot."""
    form = await request.form(max_files=20, max_fields=2000)
    values: dict[str, list[str]] = {}
    uploads: list[tuple[str, UploadFile]] = []
    for key, value in form.multi_items():
        if isinstance(value, str):
            values.setdefault(key, []).append(value)
        elif key.startswith("file.") and key[5:] in slots and value.filename:
            uploads.append((key[5:], value))
    form_session = require_csrf(engine, session, (values.pop(CSRF_FIELD, None) or [""])[-1])
    await applicant_session(form_session)  # signed in as an applicant, or off to the login page
    dropped = set(values.pop("_drop", []))
    held = [h for h in _held(engine, values.pop("docref", [])) if h.token not in dropped]
    errors: dict[str, str] = {}
    limit = engine.settings.document_max_mb * 1024 * 1024
    for slot, upload in uploads:
        content = await upload.read(limit + 1)
        try:
            blob = keep(engine.db, request.app.state.documents, content, max_bytes=limit,
                        now=engine.clock.now())  # fmt: skip
        except DocumentRefused as exc:
            errors[slot] = f"{clean_filename(upload.filename or '')}：{exc.message_zh}"
            continue
        if all(h.sha256 != blob.sha256 or h.slot != slot for h in held):
            name = clean_filename(upload.filename or "")
            held.append(_hold(engine, slot, blob.sha256, name, blob.size))
    return form_session, values, held, errors


@router.post("/apply/{case_type}", response_class=HTMLResponse)
async def apply_post(
    request: Request, case_type: str, session: MaybeSession, engine: EngineDep
) -> Response:
    edition = _current_edition(engine)
    ct = _type_or_404(case_type, edition)
    slots = {s.slot: s for s in edition.slots_for(ct)}
    form_session, values, held, doc_errors = await read_posted(request, engine, set(slots), session)
    assert form_session.account is not None
    action = (values.pop("_action", None) or ["preview"])[-1][:200]
    draft = (values.pop("_draft", None) or [""])[-1][:40] or secrets.token_hex(16)
    fields = form_fields(ct, edition.clauses_for_fields(ct))

    def again(errors: dict[str, str] | None = None, status: int = 200) -> HTMLResponse:
        context = _context(engine, ct, values, draft=draft, refs=held, errors=errors,
                           doc_errors=doc_errors)  # fmt: skip
        return page(request, engine, form_session, "apply.html.j2", status_code=status, **context)

    verb, _, path = action.partition(":")
    if verb in ("add", "remove"):
        target_path = path.rsplit(".", 1)[0] if verb == "remove" else path
        spec = find(fields, target_path)
        if spec is not None and spec.kind == "rows":
            if verb == "add":
                add_row(values, target_path, spec)
            elif path.rsplit(".", 1)[-1].isdigit():
                remove_row(values, target_path, int(path.rsplit(".", 1)[-1]), spec)
        return again()
    if verb == "edit":
        return again()
    data = {**read_form(fields, values), "type": ct}
    errors: dict[str, str] = {}
    facts: dict[str, Any] = data
    try:
        facts = parse_application(data, today=engine.clock.today()).model_dump(mode="json")
    except InvalidApplication as exc:
        for e in exc.errors:
            errors.setdefault(e.field, e.message_zh)
    for s in missing_slots(edition, ct, facts, {h.slot for h in held}):
        doc_errors.setdefault(s.slot, f"请上传{s.label}")
    if errors or doc_errors:  # every problem at once, each by its field
        return again(errors, 422)
    actor = actor_of(form_session.account)
    if verb != "confirm":
        try:
            _, assessments = engine.estimate(data)
        except (EngineError, InvalidApplication) as exc:
            return again({"(申请书)": getattr(exc, "message_zh", str(exc))}, 422)
        return page(
            request, engine, form_session, "apply_preview.html.j2",
            case_type=ct, type_label=spec_for(ct).label_zh, assessments=assessments,
            values=values, refs=[
                {"token": h.token, "label": slots[h.slot].label, "filename": h.filename}
                for h in held
            ],
            missing=[], draft=draft, decision_zh=lambda d: DECISION_ZH.get(str(d), str(d)),
            money=lambda m: format_cny(m),
        )  # fmt: skip
    key = bounded_key(actor.username, f"web:{draft}")
    try:
        engine.submit(data, actor=actor, request_key=key, documents=[h.ref() for h in held])
    except (EngineError, InvalidApplication) as exc:
        message = exc.message_zh if isinstance(exc, EngineError) else str(exc)
        if isinstance(exc, StorageFull):  # a flash is a write too: say it on this page
            return again({"(申请书)": message}, 507)
        if isinstance(exc, DatabaseUnavailable):  # the form again (if the database is back)
            return again({"(申请书)": message}, 503)
        web_session.push_flash(engine.db, form_session, f"未提交：{message}", "error")
        return again(status=422)
    return back(f"/my/receipt/{draft}")


@router.get("/my/receipt/{draft}", response_class=HTMLResponse)
def receipt(request: Request, draft: str, session: ApplicantSession, engine: EngineDep) -> Response:
    """The cases one filing made, with their query codes (only to the applicant who filed)."""
    account = session.account
    assert account is not None
    key = bounded_key(account.username, f"web:{draft[:40]}")
    with Session(engine.read_db) as s:
        record = s.get(RequestRecord, key)
        cases = (
            list(s.exec(select(Case).where(col(Case.id).in_(record.case_ids))).all())
            if record
            else []
        )
    if not cases:
        raise HTTPException(404)
    rows = [
        {
            "case_no": c.case_no,
            "type_label": spec_for(c.case_type).label_zh,
            "code": display_code(c.query_code),
            "status": PUBLIC_STATUS.get(c.state, c.state),
        }
        for c in cases
    ]
    received = cases[0].received_at or cases[0].created_at
    return page(
        request, engine, session, "receipt.html.j2", cases=rows,
        received=received.astimezone(engine.clock.now().tzinfo).strftime("%Y-%m-%d %H:%M"),
    )  # fmt: skip
