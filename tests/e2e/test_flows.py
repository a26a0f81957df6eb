"""Real Prefect flow runs on SQLite and PostgreSQL: every type from submission to closed."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import scenarios as S
import staff
from sqlalchemy import func
from sqlmodel import Session, col, select

from base.civil_dates import SHANGHAI
from flows.bureau_decisions import DecisionsParams, bureau_decisions_flow
from flows.common import case_engine
from flows.intake import IntakeParams, intake_flow
from flows.licence_grant import LicenceGrantParams, licence_grant_flow
from flows.payout import PayoutParams, payout_flow
from flows.reconcile import ReconcileParams, reconcile_flow
from flows.sla import SlaParams, sla_flow
from models.tables import (
    Case,
    CaseEvent,
    Incident,
    IntakeRecord,
    Notice,
    PaymentBatch,
    Payout,
    PayoutAttempt,
    ReviewTask,
)

CORE = [
    "RENT-01",
    "RENT-03",
    "RENT-07",
    "RENT-09",
    "CRED-01",
    "LIC-02",
    "LOAN-01",
    "RENT-04",
    "CRED-02",
]


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def open_rows(kind: str) -> dict[str, list[dict[str, Any]]]:
    """Each reviewer's actions on their section's open tasks: pass/approve what the rules
    allow. The first reviewer of a section reviews, the second confirms and decides."""
    engine = case_engine()
    rows: dict[str, list[dict[str, Any]]] = {}
    with Session(engine.db) as s:
        found = [
            (t, s.get(Case, t.case_id))
            for t in s.exec(
                select(ReviewTask).where(
                    col(ReviewTask.kind) == kind, col(ReviewTask.status) == "open"
                )
            ).all()
        ]
    # accounts are made after the read session ends (SQLite has one writer at a time)
    for t, case in found:
        assert case is not None
        ok = case.decision in (
            "granted",
            "partially_granted",
            "extended",
            "extended_ex_officio",
        )
        unit = f"{t.bureau_code}.{t.section_code}" if t.section_code else t.bureau_code
        action = {
            "review": "review_pass" if ok else "review_fail",
            "confirm": "confirm",
            "decide": "approve" if ok else "reject",
        }[kind]
        who = staff.reviewer(engine, unit, 1 if kind == "review" else 2)
        rows.setdefault(who.username, []).append(
            {
                "case_no": case.case_no,
                "unit": unit,
                "action": action,
                "reason": None if ok else "不符合条件",
            }
        )
    return rows


def intake_params(path: Path, batch_id: str | None = None) -> IntakeParams:
    """An intake batch entered by an operator."""
    return IntakeParams(
        file=path, batch_id=batch_id, account=staff.operator(case_engine()).username
    )


def decide_all(tmp_path: Path) -> list[DecisionsParams]:
    """Every reviewer's spreadsheet of each round, run as a flow; the params, for re-runs."""
    done = []
    for n, kind in enumerate(("review", "confirm", "decide"), start=1):
        for account, rows in sorted(open_rows(kind).items()):
            params = DecisionsParams(
                file=write_json(tmp_path / f"d{n}-{account}.json", rows),
                batch_id=f"d{n}-{account}",
                account=account,
            )
            result = bureau_decisions_flow(params)
            assert not result.refused, result.refused
            done.append(params)
    return done


def snapshot() -> dict[str, Any]:
    """Everything a re-run must leave alone."""
    engine = case_engine()
    with Session(engine.db) as s:
        counts = {
            t.__name__: s.exec(select(func.count()).select_from(t)).one()
            for t in (
                Case,
                CaseEvent,
                Notice,
                ReviewTask,
                Payout,
                PayoutAttempt,
                PaymentBatch,
                IntakeRecord,
                Incident,
            )
        }
        versions = sorted((c.id, c.state, c.version) for c in s.exec(select(Case)).all())
    return {"counts": counts, "versions": versions}


def treasury_pays_everything(folder: Path, out: Path) -> Path:
    with out.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["idempotency_key", "status", "reference"])
        for path in sorted(folder.glob("*.csv")):
            for row in csv.DictReader(path.open(encoding="utf-8")):
                w.writerow([row["idempotency_key"], "paid", "GK-" + row["case_no"]])
    return out


def test_all_types_to_closed_and_reruns_change_nothing(flow_db: str, tmp_path: Path) -> None:
    apps = write_json(
        tmp_path / "apps.json", [S.application(sid) for sid in CORE] + [{"type": "loan_subsidy"}]
    )
    intake = intake_params(apps, "b1")
    summary = intake_flow(intake)
    assert summary.invalid == 1 and summary.submitted == len(CORE)
    engine = case_engine()
    with Session(engine.db) as s:
        bad = s.exec(select(IntakeRecord).where(col(IntakeRecord.status) == "invalid")).one()
    assert bad.errors and bad.raw == {"type": "loan_subsidy"}  # the invalid row is kept, not lost

    # the loan's reviewer asks for more information; the applicant answers (clock stopped)
    with Session(engine.db) as s:
        loan = s.exec(select(Case).where(col(Case.case_type) == "loan_subsidy")).one()
    more = write_json(
        tmp_path / "d0.json",
        [{"case_no": loan.case_no, "action": "request_info", "items": "利息凭证"}],
    )
    reviewer = staff.holder(engine, loan.id or 0, "review", n=1)
    assert bureau_decisions_flow(DecisionsParams(file=more, account=reviewer.username)).applied == 1
    assert loan.id is not None
    engine.fire(
        loan.id,
        "supply_info",
        actor=staff.applicant_of_case(engine, loan.id),
        payload={"facts": {"eligible_interest": 480000}},
    )

    runs: list[tuple[Any, Any]] = [(intake_flow, intake)]
    runs += [(bureau_decisions_flow, params) for params in decide_all(tmp_path)]
    pay = PayoutParams(adapter="file")
    out = payout_flow(pay)
    assert out.sent_in_files == 3  # the subsidies: incubator, building, loan
    runs.append((payout_flow, pay))
    recon = ReconcileParams(
        file=treasury_pays_everything(tmp_path / "payments", tmp_path / "recon.csv")
    )
    assert reconcile_flow(recon).paid == out.sent_in_files
    runs.append((reconcile_flow, recon))
    sla = SlaParams()
    sla_flow(sla)
    runs.append((sla_flow, sla))

    with Session(engine.db) as s:
        states = {c.case_no: c.state for c in s.exec(select(Case)).all()}
        payouts = s.exec(select(Payout)).all()
    assert set(states.values()) == {"closed", "rejected"}
    assert sorted(states.values()).count("rejected") == 2
    assert all(p.status == "paid" for p in payouts)

    before = snapshot()
    for flow_fn, params in runs:  # a second run of every flow does no work twice
        flow_fn(params)
    assert snapshot() == before


def test_counts_match_the_paper(flow_db: str, tmp_path: Path) -> None:
    """The payout instruction file has one line per ordered payout, amounts to the fen."""
    intake_flow(
        intake_params(
            write_json(tmp_path / "a.json", [S.application("RENT-07"), S.application("RENT-08")])
        )
    )
    decide_all(tmp_path)
    out = payout_flow(PayoutParams(adapter="file"))
    [path] = out.files
    lines = list(csv.DictReader(Path(path).open(encoding="utf-8")))
    assert sorted(line["amount"] for line in lines) == ["1000000.00", "75000.00"]
    assert all(line["idempotency_key"].startswith("payout:DC-2022-") for line in lines)


def test_reconciliation_failure_retries_then_incident(flow_db: str, tmp_path: Path) -> None:
    intake_flow(intake_params(write_json(tmp_path / "a.json", [S.application("RENT-07")])))
    decide_all(tmp_path)
    engine = case_engine()
    for attempt in range(1, engine.settings.payout_max_attempts + 1):
        out = payout_flow(PayoutParams(adapter="file"))
        assert out.sent_in_files == 1, attempt
        [path] = [p for p in out.files]
        key = next(csv.DictReader(Path(path).open(encoding="utf-8")))["idempotency_key"]
        recon = tmp_path / f"r{attempt}.csv"
        recon.write_text(
            f"idempotency_key,status,reference\n{key},failed,账户信息有误\n", encoding="utf-8"
        )
        reconcile_flow(ReconcileParams(file=recon))
    with Session(engine.db) as s:
        payout = s.exec(select(Payout)).one()
        incident = s.exec(select(Incident)).one()
    assert payout.status == "failed" and payout.attempts == engine.settings.payout_max_attempts
    assert incident.kind == "payout_failed" and "账户信息有误" in incident.message
    assert (
        payout_flow(PayoutParams(adapter="file")).sent_in_files == 0
    )  # never dropped, never resent
    # the payee's account is corrected; an operator retries: the payout leaves its old file
    # and goes into the next one with the same key, and a paid line settles the incident
    from api.security import create_account

    create_account(engine.db, username="op_retry", role="operator", now=engine.clock.now())
    assert incident.id is not None
    engine.act_on_incident(incident.id, action="retry", actor=engine.actor("op_retry"))
    out = payout_flow(PayoutParams(adapter="file"))
    assert out.sent_in_files == 1
    [path] = out.files
    [line] = list(csv.DictReader(Path(path).open(encoding="utf-8")))
    assert line["idempotency_key"] == payout.idempotency_key
    recon = tmp_path / "paid.csv"
    recon.write_text(f"idempotency_key,status,reference\n{payout.idempotency_key},paid,GK-1\n",
                     encoding="utf-8")  # fmt: skip
    reconcile_flow(ReconcileParams(file=recon))
    with Session(engine.db) as s:
        paid = s.exec(select(Payout)).one()
        settled = s.get(Incident, incident.id)
    assert paid.status == "paid" and settled is not None and settled.status == "resolved"
    assert payout_flow(PayoutParams(adapter="file")).sent_in_files == 0  # paid once


def test_half_written_instruction_file_is_rewritten_not_duplicated(
    flow_db: str, tmp_path: Path
) -> None:
    intake_flow(
        intake_params(
            write_json(tmp_path / "a.json", [S.application("RENT-07"), S.application("LOAN-01")])
        )
    )
    decide_all(tmp_path)
    [path] = payout_flow(PayoutParams(adapter="file")).files
    content = Path(path).read_text(encoding="utf-8")
    engine = case_engine()
    with Session(engine.db) as s, s.begin():  # as if the process died before the file was written
        batch = s.exec(select(PaymentBatch)).one()
        batch.status = "writing"
        s.add(batch)
        for p in s.exec(select(Payout)).all():
            p.status = "ordered"
            s.add(p)
    Path(path).unlink()
    again = payout_flow(PayoutParams(adapter="file"))
    assert again.files == [path] and Path(path).read_text(encoding="utf-8") == content
    with Session(engine.db) as s:
        assert s.exec(select(func.count()).select_from(PaymentBatch)).one() == 1


def test_licence_grant_flow_ex_officio(flow_db: str, tmp_path: Path) -> None:
    register = tmp_path / "licences.csv"
    register.write_text(
        "licensee.uscc,licensee.name,licence.licence_no,licence.type,licence.special_food,licence.expiry\n"
        "91110101MA00FP3063,示例食品厂,SC1,food_production,false,2022-08-31\n"
        "91110101MA00LT501B,示例餐厅,JY2,food_business,,2022-10-15\n",
        encoding="utf-8",
    )
    first = licence_grant_flow(LicenceGrantParams(file=register))
    assert first.granted == 1 and [r["licence_no"] for r in first.not_in_scope] == ["JY2"]
    second = licence_grant_flow(LicenceGrantParams(file=register))
    assert second.granted == 0 and second.already_granted == 1
    engine = case_engine()
    with Session(engine.db) as s:
        case = s.exec(select(Case)).one()
        notices = s.exec(select(Notice.kind)).all()
    assert case.state == "closed" and notices == ["extension"]


def _task_due(engine: Any) -> ReviewTask:
    with Session(engine.db) as s:
        return s.exec(select(ReviewTask)).one()


def test_sla_sweep_across_a_weekend(
    flow_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from models.settings import get_settings

    monkeypatch.setenv("RELIEF_REVIEW_DUE_WORKING_DAYS", "1")
    monkeypatch.setenv("RELIEF_SLA_REMIND_WORKING_DAYS", "1")
    monkeypatch.setenv("RELIEF_NOW", "2022-07-15T10:00:00+08:00")  # a Friday
    get_settings.cache_clear()
    intake_flow(intake_params(write_json(tmp_path / "a.json", [S.application("RENT-01")])))
    engine = case_engine()
    assert _task_due(engine).due_on.isoformat() == "2022-07-18"  # Monday, not Saturday
    saturday = datetime(2022, 7, 16, 9, tzinfo=SHANGHAI)
    assert sla_flow(SlaParams(now=saturday)).reminded == 1
    assert sla_flow(SlaParams(now=saturday)).reminded == 0  # once per task
    monday = datetime(2022, 7, 18, 17, tzinfo=SHANGHAI)
    assert sla_flow(SlaParams(now=monday)).escalated == 0  # due today is not overdue
    tuesday = datetime(2022, 7, 19, 9, tzinfo=SHANGHAI)
    assert sla_flow(SlaParams(now=tuesday)).escalated == 1
    with Session(engine.db) as s:
        notices = s.exec(select(Notice).where(col(Notice.audience) == "bureau")).all()
        events = s.exec(select(CaseEvent.trigger).order_by(col(CaseEvent.id))).all()
    assert [n.kind for n in notices] == ["task_reminder", "task_escalation"]
    assert notices[1].payload["to"] == "section_head"
    assert events[-2:] == ["sla_reminder", "sla_escalation"]


def test_sla_sweep_across_national_day_with_clock_stopped(
    flow_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from models.settings import get_settings

    monkeypatch.setenv("RELIEF_REVIEW_DUE_WORKING_DAYS", "3")
    monkeypatch.setenv("RELIEF_SLA_REMIND_WORKING_DAYS", "0")
    monkeypatch.setenv("RELIEF_NOW", "2022-09-29T10:00:00+08:00")  # Thursday before 国庆
    get_settings.cache_clear()
    intake_flow(intake_params(write_json(tmp_path / "a.json", [S.application("CRED-01")])))
    engine = case_engine()
    # 9-30 (Fri), then 10-01..07 holiday, 10-08 and 10-09 are 调休 working days
    assert _task_due(engine).due_on.isoformat() == "2022-10-09"
    holiday = datetime(2022, 10, 5, 9, tzinfo=SHANGHAI)
    assert sla_flow(SlaParams(now=holiday)).escalated == 0
    # the reviewer asks the applicant for more on 9-30; the applicant answers on 10-10
    case = engine.fire(
        _task_due(engine).case_id,
        "request_info",
        actor=staff.reviewer(engine, "samr.credit"),
        payload={"items": ["说明"]},
    )
    late = datetime(2022, 10, 12, 9, tzinfo=SHANGHAI)
    assert sla_flow(SlaParams(now=late)).escalated == 0  # the clock is stopped
    answered = case_engine(now=datetime(2022, 10, 10, 9, tzinfo=SHANGHAI))
    answered.fire(
        case.case_id, "supply_info", actor=staff.applicant_of_case(answered, case.case_id)
    )
    # paused 9-29 → 10-10 = 4 working days (9-30, 10-08, 10-09, 10-10): due moves 10-09 → 10-13
    assert _task_due(engine).due_on.isoformat() == "2022-10-13"
    assert sla_flow(SlaParams(now=late)).escalated == 0
    assert sla_flow(SlaParams(now=datetime(2022, 10, 14, 9, tzinfo=SHANGHAI))).escalated == 1


def test_sla_sweep_ends_an_unanswered_correction_and_spares_an_answered_one(
    flow_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """补正 asked on Friday 2023-01-06 with the default 10 working days (due Friday 01-20);
    reminded 2 working days before; the sweep of Monday 01-23 ends the one left unanswered."""
    from models.settings import get_settings
    from models.tables import ApplicantRequest

    monkeypatch.setenv("RELIEF_INTAKE_REVIEW", "true")
    monkeypatch.setenv("RELIEF_NOW", "2023-01-06T10:00:00+08:00")
    get_settings.cache_clear()
    intake_flow(
        intake_params(
            write_json(tmp_path / "a.json", [S.application("CRED-01"), S.application("LIC-01")])
        )
    )
    engine = case_engine()
    with Session(engine.db) as s:
        quiet, answered = [c.id for c in s.exec(select(Case).order_by(col(Case.id))).all()]
    for case_id in (quiet, answered):
        assert case_id is not None
        engine.fire(
            case_id, "request_correction", actor=staff.intake_holder(engine, case_id),
            payload={"items": ["处罚决定书复印件"]},
        )  # fmt: skip
    with Session(engine.db) as s:
        deadlines = {r.deadline.isoformat() for r in s.exec(select(ApplicantRequest)).all()}
    assert deadlines == {"2023-01-20"}
    reply = case_engine(now=datetime(2023, 1, 10, 9, tzinfo=SHANGHAI))
    assert answered is not None
    reply.fire(answered, "resubmit", actor=staff.applicant_of_case(reply, answered))
    wednesday = datetime(2023, 1, 18, 9, tzinfo=SHANGHAI)
    first = sla_flow(SlaParams(now=wednesday))
    assert (first.open_requests, first.applicants_reminded) == (1, 1)
    assert sla_flow(SlaParams(now=wednesday)).applicants_reminded == 0  # once
    friday = datetime(2023, 1, 20, 17, tzinfo=SHANGHAI)
    assert sla_flow(SlaParams(now=friday)).requests_lapsed == 0  # the deadline's own day
    monday = datetime(2023, 1, 23, 9, tzinfo=SHANGHAI)
    assert sla_flow(SlaParams(now=monday)).requests_lapsed == 1
    assert sla_flow(SlaParams(now=monday)).requests_lapsed == 0
    with Session(engine.db) as s:
        states = {c.id: c.state for c in s.exec(select(Case)).all()}
        kinds = s.exec(
            select(Notice.kind).where(col(Notice.case_id) == quiet).order_by(col(Notice.id))
        ).all()
    assert states[quiet] == "expired" and states[answered] != "expired"
    assert kinds[-2:] == ["reply_reminder", "expired"]
