"""The 20 scenarios through the engine, on SQLite and on PostgreSQL, to their end state."""

from __future__ import annotations

import itertools
from datetime import date, datetime
from decimal import Decimal

import pytest
import scenarios as S
import staff
from conftest import make_case_engine
from drive import case, count, decide, submit, tasks
from sqlalchemy import select
from sqlmodel import Session

from base.civil_dates import SHANGHAI
from models.input_errors import InvalidApplication
from models.tables import (
    Applicant,
    CapAccount,
    Case,
    CaseEvent,
    CreditExemptionRecord,
    LicenceExtensionRecord,
    Notice,
    Payout,
    RentWaiverRecord,
)
from states.engine import CaseEngine
from states.errors import TransitionRefused
from states.rules import Prior7Entry

D = Decimal


def submit_one(engine: CaseEngine, sid: str) -> int:
    [result] = submit(engine, S.application(sid))
    assert result.state == "under_review", result
    return result.case_id


@pytest.mark.parametrize(
    ("sid", "amount", "months"),
    [("RENT-01", "24000", 3), ("RENT-02", "180000", 6)],
)
def test_state_property_rent_waived(engine: CaseEngine, sid: str, amount: str, months: int) -> None:
    case_id = submit_one(engine, sid)
    result = decide(engine, case_id, approve=True)
    assert result.state == "closed"
    with Session(engine.db) as s:
        waiver = s.execute(select(RentWaiverRecord)).scalar_one()
    assert (waiver.amount, waiver.months) == (D(amount), months)
    assert count(engine, Payout) == 0  # a landlord's waiver, not a government payment


def test_chain_store_cases_per_store(engine: CaseEngine) -> None:
    results = submit(engine, S.application("RENT-03"))
    assert [r.state for r in results] == ["under_review"] * 3
    for r in results:
        decide(engine, r.case_id, approve=True)
    with Session(engine.db) as s:
        waivers = {w.object_id: w.amount for w in s.execute(select(RentWaiverRecord)).scalars()}
    assert waivers == {"S1": D(30000), "S2": D(72000), "S3": D(45000)}
    assert sum(waivers.values()) == D(147000)


@pytest.mark.parametrize("sid", ["RENT-04", "RENT-05", "RENT-10", "LOAN-02", "LOAN-03", "CRED-02"])
def test_refused_cases_cannot_be_approved_and_end_rejected(engine: CaseEngine, sid: str) -> None:
    case_id = submit_one(engine, sid)
    for task in tasks(engine, case_id, kind="review"):
        assert task.id is not None
        engine.decide_task(task.id, decision="pass", actor=staff.of_task(engine, task))
    if case(engine, case_id).state == "awaiting_confirmation":
        engine.fire(case_id, "confirm", actor=staff.holder(engine, case_id, "confirm"))
    decider = staff.holder(engine, case_id, "decide")
    with pytest.raises(TransitionRefused) as refused:
        engine.fire(case_id, "approve", actor=decider)
    assert "审查规则认定符合条件" in refused.value.message_zh
    result = engine.fire(case_id, "reject", actor=decider, payload={"reason": "不符合条件"})
    assert result.state == "rejected"
    kinds = [n.kind for n in _notices(engine, case_id)]
    assert kinds[-1] == "decision_refused"


def test_double_benefit_from_register_refuses(engine: CaseEngine) -> None:
    engine.import_prior7(
        [
            Prior7Entry(
                "91110101MA00DD7756",
                "state_property_rent",
                None,
                date(2022, 1, 1),
                date(2022, 3, 31),
            )
        ]
    )
    application = S.application("RENT-06")
    application["enjoyed_under_7"] = False  # the register alone must catch it
    [result] = submit(engine, application)
    row = case(engine, result.case_id)
    assert row.decision == "refused" and row.manual_review
    assert decide(engine, result.case_id, approve=False).state == "rejected"


def test_incubator_subsidy_paid_once_ordered(engine: CaseEngine) -> None:
    case_id = submit_one(engine, "RENT-07")
    assert [t.unit for t in tasks(engine, case_id)] == ["东城园管委会企业处"]
    result = decide(engine, case_id, approve=True)
    assert result.state == "payout_ordered"
    assert [s.to_state for s in result.steps] == ["partially_approved", "payout_ordered"]
    with Session(engine.db) as s:
        payout = s.execute(select(Payout)).scalar_one()
    assert payout.amount == D(75000) and payout.payer_bureau == "finance"
    assert payout.idempotency_key == f"payout:{result.case_no}"


@pytest.mark.parametrize(("sid", "granted"), [("RENT-08", "1000000"), ("RENT-09", "250000")])
def test_park_building_cap(engine: CaseEngine, sid: str, granted: str) -> None:
    case_id = submit_one(engine, sid)
    review_units = {t.unit for t in tasks(engine, case_id)}
    result = decide(engine, case_id, approve=True)
    assert result.state == "payout_ordered"
    assert case(engine, case_id).amount_granted == D(granted)
    with Session(engine.db) as s:
        account = s.execute(select(CapAccount)).scalar_one()
    assert account.cap_limit == D(1_000_000)
    assert account.opening + account.granted == D(1_000_000)  # both cases use the cap up
    if sid == "RENT-09":
        assert review_units == {"东城园管委会企业处", "区投促中心战略发展部"}


def test_second_application_finds_cap_used_up(engine: CaseEngine) -> None:
    first = S.application("RENT-08")
    first["applicant"]["property"]["property_id"] = "PARK-1"
    second = S.application("RENT-08")
    second["applicant"]["property"]["property_id"] = "PARK-1"
    second["applicant"]["role"] = "owner"
    second["confirmed_total_reduced"] = 100000
    [a] = submit(engine, first)
    [b] = submit(engine, second)
    decide(engine, a.case_id, approve=True)
    with pytest.raises(TransitionRefused) as refused:
        decide(engine, b.case_id, approve=True)
    assert "封顶额度已用尽" in refused.value.message_zh
    decider = staff.holder(engine, b.case_id, "decide")
    assert (
        engine.fire(b.case_id, "reject", actor=decider, payload={"reason": "额度已用尽"}).state
        == "rejected"
    )


def test_loan_more_information_loop_then_paid_order(engine: CaseEngine) -> None:
    case_id = submit_one(engine, "LOAN-01")
    assert {t.unit for t in tasks(engine, case_id)} == {"区金融办金融发展科", "区国资委财务预算科"}
    engine.fire(
        case_id,
        "request_info",
        actor=staff.holder(engine, case_id, "review", n=1),
        payload={"items": ["利息支付凭证"]},
    )
    assert case(engine, case_id).state == "more_info_requested"
    engine.fire(
        case_id,
        "supply_info",
        actor=staff.applicant_of_case(engine, case_id),
        payload={"facts": {"eligible_interest": "400000"}},
    )
    assert case(engine, case_id).amount_ceiling == D(200000) + D(100000)  # re-assessed
    result = decide(engine, case_id, approve=True)
    assert result.state == "payout_ordered"
    assert case(engine, case_id).amount_granted == D(300000)
    kinds = [n.kind for n in _notices(engine, case_id)]
    assert kinds == ["acceptance", "more_info", "decision_granted"]


def test_guarantee_cap_is_per_enterprise_across_cases(engine: CaseEngine) -> None:
    a = S.application("LOAN-01")
    b = S.application("LOAN-01")
    b["loans"] = [b["loans"][1]]
    b["eligible_interest"] = 0
    b["guarantee_fee_paid"] = 30000
    [ra] = submit(engine, a)
    [rb] = submit(engine, b)
    decide(engine, ra.case_id, approve=True)
    with pytest.raises(TransitionRefused):
        decide(engine, rb.case_id, approve=True)  # 100,000 already granted to this enterprise


def test_licence_ex_officio_grant(engine: CaseEngine) -> None:
    [result] = engine.grant_ex_officio(S.application("LIC-01"), actor=staff.system(engine))
    assert result.state == "closed"
    assert [s.trigger for s in result.steps] == ["grant_ex_officio", "apply_effect", "close"]
    with Session(engine.db) as s:
        record = s.execute(select(LicenceExtensionRecord)).scalar_one()
    assert record.new_expiry == date(2023, 2, 28)
    assert [n.kind for n in _notices(engine, result.case_id)] == ["extension"]


def test_licence_pending_lift_then_lifted(engine: CaseEngine) -> None:
    application = S.application("LIC-02")
    del application["lockdown_lift_date"]
    case_id = submit_one(engine, "LIC-02") if False else submit(engine, application)[0].case_id
    result = decide(engine, case_id, approve=True)
    assert result.state == "extended_pending_lift"
    lifted = engine.fire(
        case_id,
        "lockdown_lifted",
        actor=staff.operator(engine),
        payload={"facts": {"lockdown_lift_date": "2022-11-20"}},
    )
    assert lifted.state == "closed"
    with Session(engine.db) as s:
        record = s.execute(select(LicenceExtensionRecord)).scalar_one()
    assert record.new_expiry == date(2022, 12, 20)


def test_licence_with_lift_date_and_not_applicable(engine: CaseEngine) -> None:
    case_id = submit_one(engine, "LIC-02")
    assert decide(engine, case_id, approve=True).state == "closed"
    [other] = submit(engine, S.application("LIC-03"))
    assert other.state == "not_accepted"
    assert [n.kind for n in _notices(engine, other.case_id)] == ["not_accepted"]


def test_credit_exemption_recorded(engine: CaseEngine) -> None:
    case_id = submit_one(engine, "CRED-01")
    assert decide(engine, case_id, approve=True).state == "closed"
    assert count(engine, CreditExemptionRecord) == 1


def test_late_filing_not_accepted(db_url: str) -> None:
    engine = make_case_engine(db_url, datetime(2023, 1, 10, 9, tzinfo=SHANGHAI))
    [result] = submit(engine, S.application("VAL-01"))
    assert result.state == "not_accepted"
    assert case(engine, result.case_id).assessment["checks"][0]["code"] == "window"


@pytest.mark.parametrize("variant", range(3))
def test_invalid_uscc_writes_nothing(engine: CaseEngine, variant: int) -> None:
    with pytest.raises(InvalidApplication) as bad:
        submit(engine, S.invalid_variants()[variant])
    assert bad.value.errors[0].field == "applicant.uscc"
    for table in (Applicant, Case, CaseEvent, Notice):
        assert count(engine, table) == 0


def test_submission_key_makes_resubmission_harmless(engine: CaseEngine) -> None:
    first = submit(engine, S.application("RENT-03"), request_key="batch-1:RENT-03")
    again = submit(engine, S.application("RENT-03"), request_key="batch-1:RENT-03")
    assert [r.case_id for r in again] == [r.case_id for r in first]
    assert all(r.replayed for r in again)
    assert count(engine, Case) == 3


def test_every_change_is_audited_with_version(engine: CaseEngine) -> None:
    case_id = submit_one(engine, "RENT-07")
    decide(engine, case_id, approve=True)
    with Session(engine.db) as s:
        events = list(
            s.execute(
                select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.seq)
            ).scalars()
        )
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    chain = [(e.from_state, e.to_state) for e in events]
    for (_, to), (frm, _) in itertools.pairwise(chain):
        assert to == frm  # no gap in the history
    assert all(e.at.tzinfo is not None for e in events)
    assert case(engine, case_id).version == 1 + len(
        {
            (e.trigger, e.seq)
            for e in events
            if e.trigger in ("submit", "review_decided", "confirm", "approve")
        }
    )


def _notices(engine: CaseEngine, case_id: int) -> list[Notice]:
    with Session(engine.db) as s:
        stmt = select(Notice).where(Notice.case_id == case_id).order_by(Notice.id)
        return list(s.execute(stmt).scalars())
