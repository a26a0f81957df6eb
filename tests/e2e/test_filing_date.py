"""The filing date is when relief receives an application; only an intake officer or an
operator may record an earlier paper receipt (补录), with a reason and evidence, as its own event.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
import scenarios as S
import staff
from conftest import make_case_engine
from drive import case, count, submit
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session

from api.main import create_app
from api.security import create_account
from base.civil_dates import SHANGHAI
from models.input_errors import InvalidApplication
from models.receipts import parse_receipt
from models.settings import Settings
from models.tables import Case, CaseEvent, Notice
from states.errors import NotPermitted

JANUARY = datetime(2023, 1, 10, 9, 30, tzinfo=SHANGHAI)  # after the window closed


def test_a_claimed_2022_date_is_judged_on_the_receipt_date(db_url: str) -> None:
    engine = make_case_engine(db_url, JANUARY)
    application = S.application("RENT-07")
    assert application["application_date"] == "2022-07-01"  # what the applicant wrote
    [result] = submit(engine, application)
    filed = case(engine, result.case_id)
    assert filed.filed_on.isoformat() == "2023-01-10"
    assert filed.received_at is not None and filed.received_at == JANUARY
    assert result.state == "not_accepted"  # judged on the day it arrived
    assert filed.assessment["checks"][0]["code"] == "window"
    assert filed.facts["application_date"] == "2022-07-01"  # kept as stated, nothing more
    with Session(engine.db) as s:
        [notice] = s.execute(select(Notice).where(Notice.case_id == result.case_id)).scalars()
    assert "于2023年1月10日提交" in notice.body_text
    assert "2022年7月1日" not in notice.body_text


def test_an_intake_officer_records_a_paper_receipt(db_url: str) -> None:
    engine = make_case_engine(db_url, JANUARY)
    officer = staff.intake_officer(engine, "zgc_dongcheng.enterprise")
    receipt = parse_receipt(
        {"received_at": "2022-12-28", "reason": "窗口收取的纸质申请，系统故障后补录",
         "evidence": "收件登记第0031号"},
        now=engine.clock.now(),
    )  # fmt: skip
    [result] = engine.submit(S.application("RENT-07"), actor=officer, receipt=receipt)
    filed = case(engine, result.case_id)
    assert filed.filed_on.isoformat() == "2022-12-28" and result.state == "under_review"
    with Session(engine.db) as s:
        first = (
            s.execute(
                select(CaseEvent).where(CaseEvent.case_id == result.case_id).order_by(CaseEvent.seq)  # type: ignore[arg-type]
            )
            .scalars()
            .first()
        )
        [notice] = s.execute(select(Notice).where(Notice.case_id == result.case_id)).scalars()
    assert first is not None and first.trigger == "record_paper_receipt"
    assert first.account_id == officer.account_id and first.actor == officer.username
    assert first.payload["reason"] == "窗口收取的纸质申请，系统故障后补录"
    assert first.payload["evidence"] == "收件登记第0031号"
    assert first.payload["received_at"].startswith("2022-12-28")
    assert "于2022年12月28日提交" in notice.body_text


def test_an_applicant_cannot_backdate(db_url: str) -> None:
    engine = make_case_engine(db_url, JANUARY)
    application = S.application("RENT-07")
    receipt = parse_receipt(
        {"received_at": "2022-07-01", "reason": "我早就交了", "evidence": "无"},
        now=engine.clock.now(),
    )
    with pytest.raises(NotPermitted) as refused:
        engine.submit(application, actor=staff.applicant_for(engine, application), receipt=receipt)
    assert "受理人员或运营人员" in refused.value.message_zh
    assert count(engine, Case) == 0 and count(engine, CaseEvent) == 0


@pytest.mark.parametrize(
    ("given", "field", "rule"),
    [
        ({"received_at": "2022-07-01", "evidence": "第1号"}, "receipt.reason", "missing"),
        ({"received_at": "2022-07-01", "reason": "  ", "evidence": "第1号"},
         "receipt.reason", "blank"),
        ({"received_at": "2022-07-01", "reason": "补录"}, "receipt.evidence", "missing"),
        ({"received_at": "2023-02-01", "reason": "补录", "evidence": "第1号"},
         "receipt.received_at", "receipt.future"),
        ({"received_at": "昨天", "reason": "补录", "evidence": "第1号"},
         "receipt.received_at", "datetime_from_date_parsing"),
        ({"received_at": "2022-07-01", "reason": "x" * 501, "evidence": "第1号"},
         "receipt.reason", "string_too_long"),
        ({"received_at": "2022-07-01", "reason": "补录", "evidence": "第1号", "by": "x"},
         "receipt.by", "extra_forbidden"),
    ],
)  # fmt: skip
def test_a_receipt_without_its_grounds_is_refused(given: dict, field: str, rule: str) -> None:
    with pytest.raises(InvalidApplication) as bad:
        parse_receipt(given, now=JANUARY)
    errors = {e.field: e for e in bad.value.errors}
    assert field in errors, errors
    assert errors[field].rule.startswith(rule.split("_")[0]), errors[field]
    assert errors[field].message_zh  # in Chinese, naming the field


def test_the_api_stamps_the_receipt_time(sqlite_url: str) -> None:
    engine = make_case_engine(sqlite_url, JANUARY)
    application = S.application("CRED-01")
    _, token = create_account(
        engine.db, username="a", role="applicant", now=JANUARY,
        uscc=application["applicant"]["uscc"],
    )  # fmt: skip
    client = TestClient(create_app(Settings(database_url=sqlite_url, now=JANUARY)))
    r = client.post(
        "/api/applications", json=application, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 201, r.text
    [made] = r.json()
    assert made["filed_on"] == "2023-01-10" and made["state"] == "not_accepted"
    sneaky = {**application, "receipt": {"received_at": "2022-07-01", "reason": "x",
                                         "evidence": "y"}}  # fmt: skip
    r = client.post("/api/applications", json=sneaky, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "receipt"


def test_intake_batch_rows_carry_their_receipts(flow_db: str, tmp_path: Path) -> None:
    """An operator's batch of paper applications: rows with a receipt are filed on its date;
    a receipt without its reason is an invalid row, kept with its errors."""
    from flows.common import case_engine
    from flows.intake import IntakeParams, intake_flow

    engine = case_engine()
    rows = [
        {**S.application("CRED-01"), "receipt": {"received_at": "2022-12-01",
                                                 "reason": "窗口纸质申请", "evidence": "第7号"}},
        {**S.application("RENT-01"), "receipt": {"received_at": "2022-12-02",
                                                 "evidence": "第8号"}},
        S.application("LOAN-01"),
    ]  # fmt: skip
    path = tmp_path / "paper.json"
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    ops = staff.operator(engine)
    summary = intake_flow(IntakeParams(file=path, batch_id="paper", account=ops.username))
    assert summary.submitted == 2 and summary.invalid == 1
    with Session(engine.db) as s:
        filed = {c.case_type: c.filed_on.isoformat() for c in s.execute(select(Case)).scalars()}
    assert filed == {"credit_exemption": "2022-12-01", "loan_subsidy": "2022-12-30"}
