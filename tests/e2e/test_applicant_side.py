"""The applicant's side in the engine: documents on a case, what a case asks of its applicant and
by when, the sweep that ends an unanswered request, and contact details that reach the next
notice. On SQLite and PostgreSQL; every rule here holds for every door (API, pages, CLI, flows).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import scenarios as S
import staff
from conftest import FIXED_NOW, make_case_engine
from drive import case, decide, pass_reviews, submit, tasks
from sqlmodel import Session, col, select

from models.document_store import DirectoryStore, DocumentRefused, StoredBlob, keep
from models.input_errors import InvalidApplication
from models.tables import (
    ApplicantEvent,
    ApplicantRequest,
    CaseDocument,
    CaseEvent,
    Incident,
    Notice,
)
from states.engine import CaseEngine
from states.errors import CaseNotFound, ConflictError, NotPermitted, TransitionRefused, WrongState

UPLOADS = Path(__file__).parents[1] / "data" / "uploads"
MB = 1024 * 1024


def stored(engine: CaseEngine, tmp_path: Path, name: str) -> StoredBlob:
    store = DirectoryStore(tmp_path / "docs")
    return keep(engine.db, store, (UPLOADS / name).read_bytes(), max_bytes=10 * MB, now=FIXED_NOW)


def ref(slot: str, blob: StoredBlob, filename: str = "f.pdf") -> dict[str, str]:
    return {"slot": slot, "sha256": blob.sha256, "filename": filename}


def documents_of(engine: CaseEngine, case_id: int) -> list[CaseDocument]:
    with Session(engine.db) as s:
        return list(
            s.exec(
                select(CaseDocument)
                .where(col(CaseDocument.case_id) == case_id)
                .order_by(col(CaseDocument.id))
            ).all()
        )


def requests_of(engine: CaseEngine, case_id: int) -> list[ApplicantRequest]:
    with Session(engine.db) as s:
        return list(
            s.exec(
                select(ApplicantRequest)
                .where(col(ApplicantRequest.case_id) == case_id)
                .order_by(col(ApplicantRequest.id))
            ).all()
        )


def events_of(engine: CaseEngine, case_id: int) -> list[CaseEvent]:
    with Session(engine.db) as s:
        return list(
            s.exec(
                select(CaseEvent)
                .where(col(CaseEvent.case_id) == case_id)
                .order_by(col(CaseEvent.seq))
            ).all()
        )


# ---------------------------------------------------------------- documents
def test_documents_filed_with_the_application_are_on_the_case_with_its_event(
    engine: CaseEngine, tmp_path: Path
) -> None:
    contract = stored(engine, tmp_path, "loan-contract.pdf")
    voucher = stored(engine, tmp_path, "voucher.png")
    [r] = submit(
        engine,
        S.application("LOAN-01"),
        documents=[
            ref("loan_contracts", contract, "贷款合同.pdf"),
            ref("interest_vouchers", voucher, "../../etc/付息凭证.png"),
            ref("interest_vouchers", voucher, "again.png"),  # the same file twice: kept once
        ],
    )
    docs = documents_of(engine, r.case_id)
    assert [(d.slot, d.media_type, d.filename) for d in docs] == [
        ("loan_contracts", "application/pdf", "贷款合同.pdf"),
        ("interest_vouchers", "image/png", "付息凭证.png"),  # no path survives
    ]
    submit_event = next(e for e in events_of(engine, r.case_id) if e.trigger == "submit")
    assert {d.event_seq for d in docs} == {submit_event.seq}
    assert [d["slot"] for d in submit_event.payload["documents"]] == [
        "loan_contracts",
        "interest_vouchers",
        "interest_vouchers",
    ]
    # the guarantee fee (150,000) asks for its vouchers: the event says it is missing
    assert submit_event.payload["documents_missing"] == ["guarantee_fee_vouchers"]


def test_a_document_in_a_slot_the_type_does_not_have_or_never_stored_is_refused(
    engine: CaseEngine, tmp_path: Path
) -> None:
    contract = stored(engine, tmp_path, "loan-contract.pdf")
    with pytest.raises(InvalidApplication) as wrong_slot:
        submit(engine, S.application("LOAN-01"), documents=[ref("lease_contract", contract)])
    assert wrong_slot.value.errors[0].field == "documents.0.slot"
    assert "贷款合同" in wrong_slot.value.errors[0].message_zh  # the slots it does have
    with pytest.raises(InvalidApplication) as unknown:
        submit(
            engine,
            S.application("LOAN-01"),
            documents=[{"slot": "loan_contracts", "sha256": "ab" * 32}],
        )
    assert unknown.value.errors[0].field == "documents.0.sha256"
    with pytest.raises(InvalidApplication) as hostile:
        submit(
            engine,
            S.application("LOAN-01"),
            documents=[{"slot": "loan_contracts", "sha256": "../../../etc/passwd"}],
        )
    assert hostile.value.errors[0].rule == "document.sha256"
    with Session(engine.db) as s:
        assert s.exec(select(CaseDocument)).all() == []  # nothing half-written


def test_the_store_refuses_by_content_and_size_and_keeps_a_file_once(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "docs")
    with pytest.raises(DocumentRefused) as renamed:
        store.put((UPLOADS / "not-really.pdf").read_bytes(), max_bytes=MB)
    assert "PDF、JPEG或PNG" in renamed.value.message_zh
    with pytest.raises(DocumentRefused) as big:
        store.put(b"%PDF-1.4\n" + b"0" * (2 * MB), max_bytes=MB)
    assert "文件过大" in big.value.message_zh
    a = store.put((UPLOADS / "voucher.png").read_bytes(), max_bytes=MB)
    b = store.put((UPLOADS / "voucher.png").read_bytes(), max_bytes=MB)
    assert a == b and len(list((tmp_path / "docs").rglob("*"))) == 2  # one folder, one file
    with pytest.raises(KeyError):
        store.get("../" * 10 + "etc/passwd")


# ---------------------------------------------------------------- requests and answers
def more_info(engine: CaseEngine, case_id: int, **payload: Any) -> None:
    reviewer = staff.holder(engine, case_id, "review", n=1)
    engine.fire(case_id, "request_info", actor=reviewer, payload=payload)


def test_a_request_names_document_slots_and_the_answer_must_bring_them(
    engine: CaseEngine, tmp_path: Path
) -> None:
    [r] = submit(engine, S.application("LOAN-01"))
    with pytest.raises(InvalidApplication) as bad:
        more_info(engine, r.case_id, slots=["no_such_slot"])
    assert bad.value.errors[0].field == "slots.0"
    for deadline in ("2023-13-45", "yesterday", "2022-12-29"):  # malformed, or already past
        with pytest.raises(InvalidApplication) as late:
            more_info(engine, r.case_id, items=["x"], deadline=deadline)
        assert late.value.errors[0].field == "deadline"
    assert case(engine, r.case_id).state == "under_review"  # nothing written
    more_info(engine, r.case_id, slots=["interest_vouchers"], deadline="2023-01-13")
    [req] = requests_of(engine, r.case_id)
    assert (req.kind, req.slots, req.items, req.status) == (
        "more_info",
        ["interest_vouchers"],
        ["付息凭证"],
        "open",
    )
    [notice] = [n for n in notices(engine, r.case_id) if n.kind == "more_info"]
    assert "1. 付息凭证" in notice.body_text and "2023年1月13日" in notice.body_text
    applicant = staff.applicant_of_case(engine, r.case_id)
    with pytest.raises(TransitionRefused) as without:
        engine.fire(r.case_id, "supply_info", actor=applicant)
    assert "付息凭证" in without.value.message_zh
    assert case(engine, r.case_id).state == "more_info_requested"
    voucher = stored(engine, tmp_path, "voucher.png")
    other = staff.applicant(engine, staff.uscc_for(77))
    with pytest.raises(CaseNotFound):  # another applicant cannot even see it
        engine.fire(
            r.case_id, "supply_info", actor=other,
            payload={"documents": [ref("interest_vouchers", voucher)]},
        )  # fmt: skip
    engine.fire(
        r.case_id,
        "supply_info",
        actor=applicant,
        payload={"documents": [ref("interest_vouchers", voucher, "凭证.png")]},
    )
    [req] = requests_of(engine, r.case_id)
    assert req.status == "answered" and case(engine, r.case_id).state == "under_review"
    assert [d.slot for d in documents_of(engine, r.case_id)] == ["interest_vouchers"]
    # asked again for the same slot: the voucher already there does not answer it
    more_info(engine, r.case_id, slots=["interest_vouchers"])
    with pytest.raises(TransitionRefused):
        engine.fire(
            r.case_id, "supply_info", actor=applicant,
            payload={"documents": [ref("interest_vouchers", voucher)]},  # the same file again
        )  # fmt: skip
    second = stored(engine, tmp_path, "guarantee.jpg")
    engine.fire(r.case_id, "supply_info", actor=applicant,
                payload={"documents": [ref("interest_vouchers", second)]})  # fmt: skip
    assert [q.status for q in requests_of(engine, r.case_id)] == ["answered", "answered"]


def notices(engine: CaseEngine, case_id: int) -> list[Notice]:
    with Session(engine.db) as s:
        return list(
            s.exec(select(Notice).where(col(Notice.case_id) == case_id).order_by(col(Notice.id)))
        )


def on_day(engine: CaseEngine, when: datetime) -> CaseEngine:
    url = engine.db.url.render_as_string(hide_password=False)
    return make_case_engine(url, when)


def test_the_sweep_reminds_then_ends_an_unanswered_request_and_spares_an_answered_one(
    engine: CaseEngine, tmp_path: Path
) -> None:
    [quiet] = submit(engine, S.application("LOAN-01"))
    [prompt] = submit(engine, S.application("CRED-01"))
    more_info(engine, quiet.case_id, items=["2022年贷款利息支付凭证"], deadline="2023-01-13")
    more_info(engine, prompt.case_id, items=["处罚决定书"], deadline="2023-01-13")
    engine.fire(
        prompt.case_id, "supply_info", actor=staff.applicant_of_case(engine, prompt.case_id)
    )
    [q_req] = requests_of(engine, quiet.case_id)
    [p_req] = requests_of(engine, prompt.case_id)
    assert q_req.id is not None and p_req.id is not None
    system = staff.system(engine)

    eve = on_day(engine, datetime(2023, 1, 11, 9, 0, tzinfo=FIXED_NOW.tzinfo))
    assert eve.note_request(q_req.id, actor=system) is not None
    assert eve.note_request(q_req.id, actor=system) is None  # once
    assert eve.note_request(p_req.id, actor=system) is None  # answered: no reminder
    [reminder] = [n for n in notices(engine, quiet.case_id) if n.kind == "reply_reminder"]
    assert "2023年1月13日前" in reminder.body_text and reminder.doc_number is None
    on_deadline = on_day(engine, datetime(2023, 1, 13, 17, 0, tzinfo=FIXED_NOW.tzinfo))
    assert on_deadline.lapse_request(q_req.id, actor=system) is None  # the day itself counts

    after = on_day(engine, datetime(2023, 1, 16, 9, 0, tzinfo=FIXED_NOW.tzinfo))
    with pytest.raises(NotPermitted):
        after.lapse_request(q_req.id, actor=staff.applicant_of_case(after, quiet.case_id))
    result = after.lapse_request(q_req.id, actor=system)
    assert result is not None and result.state == "expired"
    assert after.lapse_request(q_req.id, actor=system) is None  # a second sweep: nothing
    assert after.lapse_request(p_req.id, actor=system) is None
    [ended] = requests_of(engine, quiet.case_id)
    assert ended.status == "expired"
    [notice] = [n for n in notices(engine, quiet.case_id) if n.kind == "expired"]
    assert "未在2023年1月13日前补充要求的材料" in notice.body_text
    assert all(t.status != "open" for t in tasks(engine, quiet.case_id, status="open"))
    assert case(engine, prompt.case_id).state == "under_review"


def test_deferred_materials_answered_by_adding_them_and_overdue_after_a_decision(
    db_url: str, tmp_path: Path
) -> None:
    from base.clock import Clock
    from models.settings import Settings
    from notifications.issuer import engine_with_notices

    manual = engine_with_notices(
        make_case_engine(db_url).db,
        settings=Settings(database_url=db_url, intake_review=True),
        clock=Clock(FIXED_NOW),
    )
    [a] = submit(manual, S.application("LOAN-01"))
    other = S.application("LOAN-01")
    other["applicant"] = {**other["applicant"], "uscc": staff.uscc_for(31)}
    [b] = submit(manual, other)
    for r in (a, b):
        manual.fire(
            r.case_id, "accept_deferred", actor=staff.intake_holder(manual, r.case_id),
            payload={"slots": ["guarantee_fee_vouchers"], "deadline": "2023-01-13"},
        )  # fmt: skip
    voucher = stored(manual, tmp_path, "guarantee.jpg")
    owner = staff.applicant_of_case(manual, a.case_id)
    manual.add_documents(a.case_id, [ref("guarantee_fee_vouchers", voucher)], actor=owner)
    assert [q.status for q in requests_of(manual, a.case_id)] == ["answered"]
    with pytest.raises(InvalidApplication):
        manual.add_documents(a.case_id, [], actor=owner)
    with pytest.raises(NotPermitted):
        manual.add_documents(
            a.case_id, [ref("guarantee_fee_vouchers", voucher)], actor=staff.system(manual)
        )
    # b is decided before its deferred material comes: the sweep cannot end it, an operator must
    pass_reviews(manual, b.case_id)
    from drive import fire_as_holder

    if case(manual, b.case_id).state == "awaiting_confirmation":
        fire_as_holder(manual, b.case_id, "confirm", "confirm")
    fire_as_holder(manual, b.case_id, "approve", "decide")
    [req] = requests_of(manual, b.case_id)
    assert req.id is not None
    after = on_day(manual, datetime(2023, 1, 16, 9, 0, tzinfo=FIXED_NOW.tzinfo))
    result = after.lapse_request(req.id, actor=staff.system(after))
    assert result is not None and result.state != "expired"
    [req] = requests_of(manual, b.case_id)
    assert req.status == "overdue"
    with Session(manual.db) as s:
        [incident] = s.exec(select(Incident).where(col(Incident.case_id) == b.case_id)).all()
    assert incident.kind == "request_overdue" and "请人工处理" in incident.message
    # c is refused before its deferred material comes: nothing is owed any more, so the
    # request ends with the refusal (no reminder, no lapse, no incident)
    third = S.application("LOAN-01")
    third["applicant"] = {**third["applicant"], "uscc": staff.uscc_for(32)}
    [c] = submit(manual, third)
    manual.fire(
        c.case_id, "accept_deferred", actor=staff.intake_holder(manual, c.case_id),
        payload={"slots": ["guarantee_fee_vouchers"], "deadline": "2023-01-13"},
    )  # fmt: skip
    assert decide(manual, c.case_id, approve=False).state == "rejected"
    [req] = requests_of(manual, c.case_id)
    assert req.status == "cancelled" and req.id is not None
    assert after.note_request(req.id, actor=staff.system(after)) is None
    assert after.lapse_request(req.id, actor=staff.system(after)) is None
    with Session(manual.db) as s:
        assert s.exec(select(Incident).where(col(Incident.case_id) == c.case_id)).all() == []
    assert [n.kind for n in notices(manual, c.case_id)][-1] == "decision_refused"
    [withdrawn] = submit(manual, S.application("CRED-01"))
    manual.fire(
        withdrawn.case_id, "withdraw", actor=staff.applicant_of_case(manual, withdrawn.case_id)
    )
    with pytest.raises(WrongState):  # an ended case takes no more material
        manual.add_documents(
            withdrawn.case_id, [ref("penalty_decision", voucher)],
            actor=staff.applicant_of_case(manual, withdrawn.case_id),
        )  # fmt: skip


# ---------------------------------------------------------------- contact details
def test_contact_details_change_with_an_audit_event_and_conflicts_are_refused(
    engine: CaseEngine,
) -> None:
    [r] = submit(engine, S.application("CRED-01"))
    owner = staff.applicant_of_case(engine, r.case_id)
    identity = owner.identity
    assert identity is not None
    before = engine.update_contact(identity, {"email": "a@example.com", "notify": ["email"]},
                                   actor=owner)  # fmt: skip
    assert before["email"] == "a@example.com" and before["notify"] == ["email"]
    with pytest.raises(InvalidApplication) as bad:
        engine.update_contact(identity, {"notify": ["sms"]}, actor=owner)
    assert bad.value.errors[0].field == "notify" or "手机号" in bad.value.errors[0].message_zh
    with pytest.raises(InvalidApplication):
        engine.update_contact(identity, {"email": "not an address"}, actor=owner)
    with pytest.raises(InvalidApplication):
        engine.update_contact(identity, {"im_url": "https://169.254.169.254/hook"}, actor=owner)
    with pytest.raises(NotPermitted):
        engine.update_contact(
            identity, {"email": "x@example.com"}, actor=staff.applicant(engine, staff.uscc_for(5))
        )
    with pytest.raises(ConflictError):  # the form showed an older address
        engine.update_contact(
            identity, {"email": "b@example.com", "notify": ["email"]}, actor=owner,
            expected={"email": None},
        )  # fmt: skip
    engine.update_contact(
        identity, {"email": "b@example.com", "notify": ["email"]}, actor=owner,
        expected={"email": "a@example.com"},
    )  # fmt: skip
    with Session(engine.db) as s:
        trail = s.exec(select(ApplicantEvent).order_by(col(ApplicantEvent.id))).all()
    assert [(e.trigger, e.payload["after"].get("email")) for e in trail] == [
        ("contact_changed", "a@example.com"),
        ("contact_changed", "b@example.com"),
    ]
    assert trail[1].payload["before"]["email"] == "a@example.com"


def test_a_later_filing_with_an_email_reaches_an_applicant_who_had_none(
    engine: CaseEngine,
) -> None:
    first = S.application("CRED-01")
    [r1] = submit(engine, first)
    second = S.application("CRED-01")
    second["applicant"] = {**second["applicant"], "email": "later@example.com"}
    second["penalty"] = {**second["penalty"], "decision_no": "京东市监罚〔2022〕99号"}
    [r2] = submit(engine, second)
    with Session(engine.db) as s:
        [event] = s.exec(select(ApplicantEvent)).all()
    assert event.trigger == "contact_from_filing"
    assert event.payload["after"] == {"email": "later@example.com", "notify": ["email"]}
    assert r1.case_id != r2.case_id
