"""Each check of the credit-exemption and licence-extension rules (measure 9), passing and
failing, with its reasons in both languages, the decision and the effect: the new expiry, the
green channel, the penalty kept out of the credit record. Written from the survivors of
mutation testing (tools/mutation.py, docs/mutation.md): each test here is something a wrong
rule would get wrong."""

from __future__ import annotations

import copy
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import scenarios as S
import staff
from conftest import FIXED_NOW, make_case_engine
from drive import case, decide, submit
from sqlalchemy import select
from sqlmodel import Session

from base.civil_dates import SHANGHAI
from models.db import migrate
from models.input_errors import parse_application
from models.tables import CaseEvent, LicenceExtensionRecord
from states.catalog import assess
from states.credit_exemption import exemption_record
from states.edition import Edition, Setting, edition_for
from states.licence_extension import extension_record
from states.lifecycle import EffectFacts
from states.rules import Assessment, Decision

IN_WINDOW = date(2022, 12, 30)
LATE = date(2023, 1, 5)
INDIVIDUAL = {"uscc": "92110101MA00CY404T", "kind": "individual_business"}
SERVICE = "为受到行政处罚并被公示的企业开通“信用豁免申请”便捷服务。"
RULE = "因疫情影响导致的行政处罚等失信行为，不纳入信用记录。"
MONTHS = "食品生产许可证（非特殊食品）到期的，有效期顺延6个月。"
LIFT = (
    "封管控区内无法及时换发食品生产许可证（特殊食品）、食品经营许可证的，"
    "有效期顺延至封管控解除后30日。"
)
GREEN = "凭有效的北京市封管控文件，为申请人开通绿色通道，点对点协助办理许可延续的申请手续。"


def judged(
    data: dict[str, Any], *, on: date = IN_WINDOW, edition: Edition | None = None
) -> Assessment:
    [a] = assess(parse_application(data, today=on), filed_on=on, register=[], edition=edition)
    return a


def said(a: Assessment) -> dict[str, tuple[bool, str, str]]:
    return {c.code: (c.passed, c.reason_zh, c.reason_en) for c in a.checks}


def codes(a: Assessment) -> list[str]:
    return [c.code for c in a.checks]


def routes(a: Assessment) -> list[str]:
    return [f"{r.kind}:{r.bureau_code}.{r.section_code}" for r in a.routes]


# ---------------------------------------------------------------- credit exemption
def credit(**penalty: Any) -> dict[str, Any]:
    data = copy.deepcopy(S.application("CRED-01"))
    data["penalty"].update(penalty)
    return data


def refusing_individual_businesses() -> Edition:
    e = edition_for(IN_WINDOW)
    setting = Setting(value="refuse", description="individual businesses may not apply")
    settings = e.settings.model_copy(update={"credit_individual_business": setting})
    return e.model_copy(update={"settings": settings})


def test_a_publicised_penalty_caused_by_the_epidemic_is_exempt() -> None:
    """第9条: a publicised penalty caused by the epidemic is kept out of the credit record."""
    a = judged(credit())
    assert a.decision == Decision.GRANTED
    assert codes(a) == ["window", "penalty.publicised", "penalty.caused_by_epidemic"]
    assert said(a)["penalty.publicised"] == (True, "行政处罚已被公示", "the penalty was publicised")
    assert said(a)["penalty.caused_by_epidemic"] == (
        True,
        "失信行为系因疫情影响导致（由审核人员核实）",
        "caused by the epidemic (confirmed by the reviewing officer)",
    )
    clauses = {c.code: c.clause for c in a.checks}
    assert (clauses["penalty.publicised"], clauses["penalty.caused_by_epidemic"]) == (SERVICE, RULE)
    assert a.effect == {"penalty": "2022-05-10", "credit_record": "exempt"}
    assert a.subject_key == "2022-05-10"
    assert not a.needs_confirmation and not a.pays_out
    assert a.manual_review_reasons == []
    assert routes(a) == ["review:samr.credit", "decide:samr.credit"]


def test_an_unpublicised_penalty_needs_no_exemption() -> None:
    """第9条 service: only a penalty that was publicised opens the 信用豁免申请."""
    a = judged(credit(publicised=False))
    assert a.decision == Decision.REFUSED
    assert [c.code for c in a.checks if not c.passed] == ["penalty.publicised"]
    assert said(a)["penalty.publicised"] == (
        False, "行政处罚未被公示，无需申请信用豁免", "penalty not publicised"
    )  # fmt: skip


def test_a_penalty_not_caused_by_the_epidemic_is_refused() -> None:
    """第9条 rule: only a penalty caused by the epidemic stays out of the credit record."""
    a = judged(credit(caused_by_epidemic=False))
    assert a.decision == Decision.REFUSED
    assert [c.code for c in a.checks if not c.passed] == ["penalty.caused_by_epidemic"]
    assert said(a)["penalty.caused_by_epidemic"] == (
        False, "失信行为并非因疫情影响导致", "not caused by the epidemic"
    )  # fmt: skip


@pytest.mark.parametrize("publicised", [True, False])
def test_a_late_credit_application_is_not_accepted(publicised: bool) -> None:
    """Closing clause: an application after 2022-12-31 is not accepted, whatever its penalty."""
    a = judged(credit(publicised=publicised), on=LATE)
    assert a.decision == Decision.NOT_ACCEPTED
    assert not a.checks[0].passed and a.checks[0].code == "window"


def test_a_timely_application_failing_both_penalty_checks_is_refused_not_unaccepted() -> None:
    """A timely application failing a rule is refused (with remedies), not left unaccepted."""
    assert judged(credit(publicised=False, caused_by_epidemic=False)).decision == Decision.REFUSED


def test_the_penalty_is_named_by_its_decision_number_when_given() -> None:
    """信用豁免登记: the penalty kept out is its 处罚决定书文号, else its decision date."""
    a = judged(credit(decision_no="东市监罚〔2022〕12号"))
    assert a.effect == {"penalty": "东市监罚〔2022〕12号", "credit_record": "exempt"}
    assert a.subject_key == "东市监罚〔2022〕12号"


def test_an_individual_business_is_accepted_with_manual_review() -> None:
    """Setting credit_individual_business (default): accepted, flagged for manual review."""
    data = credit()
    data["applicant"] = dict(INDIVIDUAL)
    a = judged(data)
    assert a.decision == Decision.GRANTED
    assert codes(a) == [
        "window", "applicant.enterprise", "penalty.publicised", "penalty.caused_by_epidemic"
    ]  # fmt: skip
    [check] = [c for c in a.checks if c.code == "applicant.enterprise"]
    assert (check.passed, check.manual_review) == (True, True)
    assert (check.reason_zh, check.reason_en) == (
        "个体工商户未在文件中列明，按默认做法受理并转人工复核",
        "individual businesses are not named; accepted with manual review",
    )
    assert check.clause == SERVICE and check.basis.value == "PROPOSAL"
    assert a.manual_review_reasons == ["个体工商户未在文件中列明，按默认做法受理并转人工复核"]


def test_an_individual_business_is_refused_when_the_edition_says_so() -> None:
    """Setting credit_individual_business = refuse: the check fails, no manual review."""
    data = credit()
    data["applicant"] = dict(INDIVIDUAL)
    a = judged(data, edition=refusing_individual_businesses())
    assert a.decision == Decision.REFUSED
    [check] = [c for c in a.checks if c.code == "applicant.enterprise"]
    assert (check.passed, check.manual_review) == (False, False)
    assert check.reason_zh == "个体工商户未在文件中列明，本机关按现行做法不予办理"  # not "受理"
    assert check.reason_en == "individual businesses are not named; not taken under this edition"
    late = judged(data, on=LATE, edition=refusing_individual_businesses())
    assert late.decision == Decision.NOT_ACCEPTED  # the window is judged first


def test_an_enterprise_is_not_asked_about_being_an_individual_business() -> None:
    """An enterprise applicant is in scope: no applicant check, under either setting."""
    a = judged(credit(), edition=refusing_individual_businesses())
    assert a.decision == Decision.GRANTED
    assert "applicant.enterprise" not in codes(a)


def test_the_exemption_register_row_names_the_penalty() -> None:
    """信用豁免登记: the row names the case, the enterprise and the penalty kept out."""
    facts = credit(decision_no="东市监罚〔2022〕12号")
    a = judged(facts)
    at = datetime(2022, 12, 30, 10, tzinfo=SHANGHAI)
    table, row = exemption_record(EffectFacts(7, a.subject_key, facts, a, None, at))
    assert table.__name__ == "CreditExemptionRecord"
    assert row == {
        "case_id": 7, "subject": "91110101MA00XY6089", "penalty_ref": "东市监罚〔2022〕12号",
        "at": at,
    }  # fmt: skip


# ---------------------------------------------------------------- licence extension
def production(expiry: str, **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(S.application("LIC-01"))
    data["licence"]["expiry"] = expiry
    data.update(changes)
    return data


def business(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(S.application("LIC-02"))
    licence = changes.pop("licence", {})
    data["licence"].update(licence)
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


EX_OFFICIO = (
    True,
    "依职权顺延，不以申请日期为准",
    "granted ex officio; the filing date does not apply",
)


@pytest.mark.parametrize(
    ("expiry", "new"),
    [("2022-06-15", "2022-12-15"), ("2022-08-31", "2023-02-28"), ("2022-12-31", "2023-06-30")],
)
def test_an_ordinary_production_licence_in_the_range_gets_six_months(expiry: str, new: str) -> None:
    """第9条: a non-special food production licence expiring 2022-06-15–12-31 gets +6 months."""
    a = judged(production(expiry))
    assert a.decision == Decision.EXTENDED_EX_OFFICIO
    assert codes(a) == ["window", "licence.ordinary_food_production"]
    assert said(a)["window"] == EX_OFFICIO
    assert said(a)["licence.ordinary_food_production"] == (
        True,
        f"食品生产许可证（非特殊食品）于{expiry}到期，有效期顺延6个月至{new}",
        f"non-special food production licence expiring {expiry}: +6 months",
    )
    assert a.manual_review_reasons == []
    assert {c.code: c.clause for c in a.checks} == {
        "window": MONTHS, "licence.ordinary_food_production": MONTHS
    }  # fmt: skip
    assert a.effect == {"original_expiry": expiry, "new_expiry": new}
    assert routes(a) == ["review:samr.food_production", "decide:samr.food_production"]
    assert not a.needs_confirmation and not a.pays_out


def test_a_production_licence_expiring_before_the_range_goes_to_manual_review() -> None:
    """Setting licence_auto_extension_expiry_from: an earlier expiry is extended, reviewed."""
    a = judged(production("2022-06-14"))
    assert a.decision == Decision.EXTENDED_EX_OFFICIO
    assert said(a)["licence.ordinary_food_production"] == (
        True,
        "到期日2022-06-14早于2022-06-15，是否顺延转人工复核",
        "expiry 2022-06-14 before 2022-06-15: manual review",
    )
    assert a.manual_review_reasons == ["到期日2022-06-14早于2022-06-15，是否顺延转人工复核"]
    assert a.effect == {"original_expiry": "2022-06-14", "new_expiry": "2022-12-14"}


def test_a_production_licence_expiring_after_the_range_is_not_covered() -> None:
    """Setting licence_auto_extension_expiry_to: an expiry after 2022-12-31 is not extended."""
    a = judged(production("2023-01-01"))
    assert a.decision == Decision.NOT_APPLICABLE
    assert said(a)["licence.ordinary_food_production"] == (
        False,
        "到期日2023-01-01晚于2022-12-31，不在顺延范围内",
        "expiry 2023-01-01 after 2022-12-31: not covered",
    )
    assert a.manual_review_reasons == []


def test_the_ex_officio_extension_does_not_depend_on_a_filing_date() -> None:
    """依职权 (无感推送): the +6 months is granted even when "filed" after the window."""
    a = judged(production("2022-08-31"), on=LATE)
    assert a.decision == Decision.EXTENDED_EX_OFFICIO
    assert said(a)["window"] == EX_OFFICIO


def test_the_licence_is_named_by_its_number_when_given() -> None:
    """The case's subject is the licence number, else the licence's expiry."""
    data = production("2022-08-31")
    data["licence"]["licence_no"] = "SC10611010100123"
    assert judged(data).subject_key == "SC10611010100123"
    assert judged(production("2022-08-31")).subject_key == "2022-08-31"


def test_a_business_licence_in_a_lockdown_area_runs_to_lift_plus_thirty_days() -> None:
    """第9条: a food business licence in a sealed area that could not renew: lift + 30 days."""
    a = judged(business())
    assert a.decision == Decision.EXTENDED
    assert codes(a) == ["window", "licence.lockdown_area", "green_channel"]
    assert said(a)["window"] == (
        True, "申请日期2022年12月30日在本细则有效期内",
        "filed 2022-12-30 within the window 2022-06-15–2022-12-31",
    )  # fmt: skip
    assert said(a)["licence.lockdown_area"] == (
        True,
        "位于封管控区内且无法及时换发，有效期顺延至封管控解除后30日",
        "in a sealed/controlled area and could not renew: lift + 30 days",
    )
    assert said(a)["green_channel"] == (
        True, "凭有效的北京市封管控文件开通绿色通道，点对点协助办理延续", "green channel opened"
    )  # fmt: skip
    clauses = {c.code: c.clause for c in a.checks}
    assert (clauses["licence.lockdown_area"], clauses["green_channel"]) == (LIFT, GREEN)
    assert a.effect == {
        "original_expiry": "2022-11-10", "new_expiry": "2022-12-20", "green_channel": "opened"
    }  # fmt: skip
    assert routes(a) == ["review:samr.catering", "decide:samr.catering"]


def test_lift_plus_thirty_days_never_shortens_a_licence() -> None:
    """PROPOSAL (core_rules §3B): the new expiry is the later of the old one and lift + 30."""
    a = judged(business(licence={"expiry": "2022-12-31"}))
    assert a.decision == Decision.EXTENDED
    assert a.effect["new_expiry"] == "2022-12-31"
    later = judged(business(licence={"expiry": "2022-12-19"}))
    assert later.effect["new_expiry"] == "2022-12-20"


def test_a_lockdown_not_yet_lifted_leaves_the_licence_pending() -> None:
    """第9条: until the lockdown is lifted the new expiry is not known (extended_pending_lift)."""
    a = judged(business(lockdown_lift_date=None))
    assert a.decision == Decision.EXTENDED_PENDING_LIFT
    assert a.effect["new_expiry"] == "pending_lift"
    assert said(a)["licence.lockdown_area"][0] is True


@pytest.mark.parametrize(
    "changes",
    [
        {"could_not_renew_in_time": False},
        {"in_lockdown_area": False, "lockdown_lift_date": None,
         "valid_beijing_lockdown_document": False},
    ],
)  # fmt: skip
def test_a_business_licence_outside_the_lockdown_rule_is_not_extended(
    changes: dict[str, Any],
) -> None:
    """第9条: a business licence is extended only in a sealed area when it could not renew."""
    a = judged(business(**changes))
    assert a.decision == Decision.NOT_APPLICABLE
    assert said(a)["licence.lockdown_area"] == (
        False,
        "食品经营许可证、特殊食品生产许可证仅在封管控区内无法及时换发时顺延；请按一般程序申请延续",
        "only extended inside a sealed/controlled area; ordinary continuation applies",
    )
    assert "new_expiry" not in a.effect


def test_outside_a_lockdown_area_there_is_no_green_channel_check() -> None:
    """The green channel belongs to the lockdown area: none is judged outside it."""
    a = judged(business(in_lockdown_area=False, lockdown_lift_date=None))
    assert codes(a) == ["window", "licence.lockdown_area"]
    assert "green_channel" not in a.effect


def test_without_a_lockdown_document_the_normal_channel_applies() -> None:
    """第9条 green channel: only a valid Beijing lockdown document opens it; it never refuses."""
    a = judged(business(valid_beijing_lockdown_document=False))
    assert a.decision == Decision.EXTENDED
    assert said(a)["green_channel"] == (
        True,
        "未提供有效的北京市封管控文件，不开通绿色通道，按一般渠道办理延续",
        "no lockdown document: normal channel",
    )
    assert a.effect["green_channel"] == "not_opened"


def test_a_special_food_production_licence_follows_the_lockdown_rule() -> None:
    """第9条: a special-food production licence is not extended by 6 months, only in lockdown."""
    data = business(licence={"type": "food_production", "special_food": True})
    a = judged(data)
    assert a.decision == Decision.EXTENDED
    assert codes(a) == ["window", "licence.lockdown_area", "green_channel"]
    assert a.effect["new_expiry"] == "2022-12-20"
    assert routes(a) == ["review:samr.food_production", "decide:samr.food_production"]
    outside = production("2022-08-31")
    outside["licence"]["special_food"] = True
    b = judged(outside)
    assert b.decision == Decision.NOT_APPLICABLE
    assert codes(b) == ["window", "licence.lockdown_area"]


def test_an_ordinary_production_licence_in_a_lockdown_area_still_gets_six_months() -> None:
    """第9条: a non-special production licence is extended 6 months, lockdown or not."""
    data = production("2022-08-31", in_lockdown_area=True, valid_beijing_lockdown_document=True)
    a = judged(data)
    assert a.decision == Decision.EXTENDED_EX_OFFICIO
    assert codes(a) == ["window", "licence.ordinary_food_production", "green_channel"]
    assert a.effect == {
        "original_expiry": "2022-08-31", "new_expiry": "2023-02-28", "green_channel": "opened"
    }  # fmt: skip


def test_a_late_business_licence_application_is_not_accepted() -> None:
    """Closing clause: a lockdown-extension application after 2022-12-31 is not accepted."""
    a = judged(business(), on=LATE)
    assert a.decision == Decision.NOT_ACCEPTED
    assert said(a)["window"][0] is False


@pytest.mark.parametrize(
    ("category", "unit"),
    [("catering", "samr.catering"), ("circulation", "samr.food_circulation"),
     (None, "samr.food_circulation")],
)  # fmt: skip
def test_business_licences_go_to_the_section_of_their_category(
    category: str | None, unit: str
) -> None:
    """Routing (INTERP): catering licences to 餐饮科, the others to 食品流通科."""
    a = judged(business(licence={"business_category": category}))
    assert routes(a) == [f"review:{unit}", f"decide:{unit}"]


def test_the_extension_register_row_keeps_the_old_and_new_expiry() -> None:
    """许可证有效期顺延登记: licence number, licensee, original and new expiry."""
    data = production("2022-08-31")
    data["licence"]["licence_no"] = "SC10611010100123"
    a = judged(data)
    at = datetime(2022, 12, 30, 10, tzinfo=SHANGHAI)
    table, row = extension_record(EffectFacts(3, a.subject_key, data, a, None, at))
    assert table.__name__ == "LicenceExtensionRecord"
    assert row == {
        "case_id": 3, "licensee": "91110101MA00FP3063", "licence_no": "SC10611010100123",
        "original_expiry": date(2022, 8, 31), "new_expiry": date(2023, 2, 28), "at": at,
    }  # fmt: skip
    nameless = production("2022-08-31")
    _, row = extension_record(EffectFacts(3, "", nameless, judged(nameless), None, at))
    assert row["licence_no"] == ""
    _, row = extension_record(EffectFacts(3, "", {}, judged(nameless), None, at))
    assert row["licence_no"] == ""


# ---------------------------------------------------------------- the extension, in the engine
def test_an_extension_is_recorded_as_granted_both_ex_officio_and_on_approval(
    tmp_path: Path,
) -> None:
    """依职权顺延 and 准予顺延 are both grant decisions (of no money), written to the register."""
    url = f"sqlite:///{tmp_path}/licences.db"
    migrate(url)
    engine = make_case_engine(url, FIXED_NOW)
    [ex_officio] = engine.grant_ex_officio(production("2022-08-31"), actor=staff.system(engine))
    [applied] = submit(engine, business())
    assert decide(engine, applied.case_id, approve=True).state == "closed"
    with Session(engine.db) as s:
        granting = {
            (e.case_id, e.trigger): e.payload.get("granted")
            for e in s.execute(select(CaseEvent)).scalars()
            if e.trigger in ("grant_ex_officio", "approve")
        }
        expiries = {
            r.case_id: (r.original_expiry, r.new_expiry)
            for r in s.execute(select(LicenceExtensionRecord)).scalars()
        }
    assert granting == {
        (ex_officio.case_id, "grant_ex_officio"): "0.00", (applied.case_id, "approve"): "0.00"
    }  # fmt: skip
    for case_id in (ex_officio.case_id, applied.case_id):
        assert case(engine, case_id).amount_granted == Decimal("0.00")
    assert expiries == {
        ex_officio.case_id: (date(2022, 8, 31), date(2023, 2, 28)),
        applied.case_id: (date(2022, 11, 10), date(2022, 12, 20)),
    }
    engine.db.dispose()
