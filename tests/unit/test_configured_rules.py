"""The evaluator of configured types (states/configured_rules.py): decisions, amounts, caps,
reasons and faults, on declarations written here and on the shipped scenarios."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from models.input_errors import parse_application
from states import configured_rules as R
from states.catalog import catalog
from states.configured_schema import schema_of
from states.configured_types import CheckSpec, ConfiguredType
from states.edition import Edition, all_editions
from states.rules import Decision

ROOT = Path(__file__).parents[2]
SHIPPED = all_editions()[0]
ON = date(2022, 8, 1)
PARTY = {"uscc": "91110101MA00JR107G", "name": "示例", "kind": "enterprise", "size": "small"}
CLAUSE = "全额返还工会经费"
SCENARIOS = yaml.safe_load(
    (ROOT / "tests" / "data" / "configured_scenarios.yaml").read_text(encoding="utf-8")
)["scenarios"]


def check(code: str, test: str, **extra: Any) -> dict[str, Any]:
    reasons = {"passed_zh": f"{code}通过", "failed_zh": f"{code}不通过",
               "passed_en": f"{code} ok", "failed_en": f"{code} failed"}  # fmt: skip
    return {"code": code, "test": test, **reasons, "clause": CLAUSE, **extra}


def declared(**overrides: Any) -> ConfiguredType:
    spec: dict[str, Any] = {
        "measure": "17",
        "label": "试点",
        "facts": {
            "paid": {"kind": "money", "label": "已缴（元）"},
            "heads": {"kind": "integer", "label": "人数", "required": False, "default": 0},
            "ok": {"kind": "boolean", "label": "声明", "required": False, "default": True},
            "group": {"kind": "choice", "label": "类别", "choices": {"a": "甲类", "b": "乙类"},
                      "required": False, "default": "a"},
        },
        "params": {"share": {"value": "0.50", "clause": CLAUSE},
                   "cap": {"value": "100.00", "clause": CLAUSE},
                   "each": {"value": "30.00", "clause": CLAUSE}},
        "checks": [check("paid.some", "facts.paid > 0.0")],
        "components": [{"code": "refund", "label": "返还", "base": "paid", "share": "share",
                        "clause": CLAUSE}],
        "stages": {"review": ["union.grassroots"], "decide": "union.grassroots",
                   "payout": "union.grassroots"},
    }  # fmt: skip
    spec.update(overrides)
    return ConfiguredType.model_validate(spec)


def edition_with(decl: ConfiguredType) -> Edition:
    return SHIPPED.model_copy(update={"configured_types": {"pilot": decl}})


def judge(decl: ConfiguredType, on: date = ON, **facts: Any) -> Any:
    app = schema_of("pilot", decl).model_validate({"type": "pilot", "applicant": PARTY, **facts})
    [a] = R.assess(app, edition_with(decl), filed_on=on, register=[])
    return a


def test_every_check_passing_grants_the_share() -> None:
    """base × share, rounded half up to the fen, is granted when every check passes."""
    a = judge(declared(), paid="80.01")
    assert a.decision == Decision.GRANTED
    [c] = a.components
    assert (c.gross, c.ceiling, c.cap_key, c.cap_limit) == (Decimal("40.01"), Decimal("40.01"),
                                                             None, None)  # fmt: skip
    assert c.formula_zh == "已缴80.01元 × 50%" and c.label_zh == "返还" and c.clause == CLAUSE
    assert a.claimed == Decimal("40.01") and a.amount == Decimal("40.01")
    assert [x.code for x in a.checks] == ["window", "paid.some"]
    assert a.checks[1].reason_zh == "paid.some通过" and a.checks[1].reason_en == "paid.some ok"


def test_a_failing_check_refuses_and_grants_nothing() -> None:
    a = judge(declared(), paid="0")
    assert a.decision == Decision.REFUSED and a.amount == Decimal("0.00")
    assert [x.code for x in a.failed] == ["paid.some"]
    assert (
        a.failed[0].reason_zh == "paid.some不通过" and a.failed[0].reason_en == "paid.some failed"
    )
    assert a.components[0].gross == Decimal("0.00")


def test_a_cap_cuts_the_claim_and_the_decision_is_partial() -> None:
    comp = [{"code": "refund", "label": "返还", "base": "paid", "share": "share", "cap": "cap",
             "clause": CLAUSE}]  # fmt: skip
    a = judge(declared(components=comp), paid="300.00")
    [c] = a.components
    assert (c.gross, c.ceiling) == (Decimal("150.00"), Decimal("100.00"))
    assert c.formula_zh == "已缴300.00元 × 50%，最高100.00元"
    assert c.cap_key is None and c.cap_limit is None and not c.partial_when_capped  # per case
    assert a.decision == Decision.PARTIALLY_GRANTED and a.claimed == Decimal("150.00")
    exact = judge(declared(components=comp), paid="200.00")  # exactly the cap: not cut
    assert exact.decision == Decision.GRANTED and exact.amount == Decimal("100.00")


def test_a_per_enterprise_cap_is_kept_in_an_account_per_enterprise() -> None:
    comp = [{"code": "refund", "label": "返还", "base": "paid", "share": "share", "cap": "cap",
             "cap_scope": "per_enterprise", "clause": CLAUSE}]  # fmt: skip
    [c] = judge(declared(components=comp), paid="10.00").components
    assert c.cap_key == "pilot:refund:91110101MA00JR107G" and c.cap_limit == Decimal("100.00")
    assert c.partial_when_capped
    no_cap = [{"code": "refund", "label": "返还", "base": "paid", "share": "share",
               "cap_scope": "per_enterprise", "clause": CLAUSE}]  # fmt: skip
    [u] = judge(declared(components=no_cap), paid="10.00").components
    assert u.cap_key is None and u.cap_limit is None and not u.partial_when_capped


def test_a_count_times_an_amount_per_head() -> None:
    comp = [{"code": "bonus", "label": "补贴", "base": "heads", "share": "each", "clause": CLAUSE}]
    [c] = judge(declared(components=comp), paid="1", heads=3).components
    assert c.gross == Decimal("90.00") and c.formula_zh == "人数3 × 30.00元"


def test_late_filing_is_not_accepted_before_anything_else() -> None:
    a = judge(declared(), on=date(2023, 1, 5), paid="0")
    assert a.decision == Decision.NOT_ACCEPTED
    assert [x.code for x in a.failed] == ["window", "paid.some"]


def test_a_scope_check_puts_the_application_outside_the_measure() -> None:
    checks = [check("paid.some", "facts.paid > 0.0"), check("group.a", "facts.group == 'a'",
                                                             scope=True)]  # fmt: skip
    assert judge(declared(checks=checks), paid="1", group="b").decision == Decision.NOT_APPLICABLE
    assert judge(declared(checks=checks), paid="0", group="a").decision == Decision.REFUSED
    assert judge(declared(checks=checks), paid="0", group="b").decision == Decision.NOT_APPLICABLE


def test_a_reviewer_confirmed_check_flags_only_a_case_that_would_be_granted() -> None:
    checks = [check("paid.some", "facts.paid > 0.0"),
              check("declared", "facts.ok", confirmed_by_reviewer=True)]  # fmt: skip
    granted = judge(declared(checks=checks), paid="1")
    assert granted.manual_review_reasons == ["declared通过"]
    assert judge(declared(checks=checks), paid="0").manual_review_reasons == []
    assert judge(declared(checks=checks), paid="1", ok=False).manual_review_reasons == []
    plain = judge(declared(), paid="1")
    assert plain.manual_review_reasons == []


def test_reasons_see_facts_labels_and_filters() -> None:
    text = ("{{ facts.paid|yuan }}|{{ params.share|pct }}|{{ labels.group }}|{{ labels.size }}|"
            "{{ labels.kind }}|{{ filed_on }}|{{ applicant.name }}")  # fmt: skip
    checks = [{**check("cc", "true"), "passed_zh": text}]
    [_, c] = judge(declared(checks=checks), paid="12345.6", group="b").checks
    assert c.reason_zh == "12,345.60|50%|乙类|小型|企业|2022-08-01|示例"


def test_the_applicant_without_a_size_reads_not_given() -> None:
    values = R.choice_labels(declared(), lambda n: "a", {"kind": "individual_business"})
    assert values == {"group": "甲类", "size": "未填写", "kind": "个体工商户"}


def test_numbers_reach_cel_as_doubles_and_dates_as_text() -> None:
    assert R._number(True) is True and R._number(None) is None
    assert R._number(3) == 3.0 and isinstance(R._number(3), float)
    assert R._number(Decimal("1.50")) == 1.5
    assert R._number(date(2022, 8, 1)) == "2022-08-01"
    converted = R._number({"a": [1, "x"]})
    assert converted == {"a": [1.0, "x"]} and isinstance(converted["a"][0], float)
    assert R._number("text") == "text"


def test_a_fault_of_the_declaration_is_named() -> None:
    bad = declared(checks=[check("typo", "facts.nope > 0.0")])
    with pytest.raises(R.DeclarationError, match="pilot: check typo"):
        judge(bad, paid="1")
    not_bool = declared(checks=[check("number", "facts.paid")])
    with pytest.raises(R.DeclarationError, match="not true/false"):
        judge(not_bool, paid="1")
    assert R.problems(bad, "pilot", ON) and "typo" in R.problems(bad, "pilot", ON)[0]
    broken_reason = declared(checks=[{**check("rr", "true"), "failed_zh": "{{ facts.nope }}"}])
    assert "check rr" in R.problems(broken_reason, "pilot", ON)[0]
    effect = {"kind": "effect", "code": "xx", "statement_zh": "{{ nope.x }}", "clause": CLAUSE}
    stages = {"review": ["union.grassroots"], "decide": "union.grassroots"}
    no_money = declared(components=[], effect=effect, stages=stages)
    [fault] = R.problems(no_money, "pilot", ON)
    assert fault.startswith("pilot: effect:")
    assert R.problems(declared(), "pilot", ON) == []


def test_an_effect_is_stated_and_a_referral_names_its_body() -> None:
    stages = {"review": ["union.grassroots"], "decide": "union.grassroots"}
    effect = {"kind": "referral", "code": "refer", "referred_to": "市级主管部门",
              "statement_zh": "已缴{{ facts.paid|yuan }}元", "clause": CLAUSE}  # fmt: skip
    a = judge(declared(components=[], effect=effect, stages=stages), paid="5")
    assert a.effect == {"kind": "referral", "code": "refer", "statement": "已缴5.00元",
                        "clause": CLAUSE, "referred_to": "市级主管部门"}  # fmt: skip
    assert a.components == () and a.amount == Decimal("0.00")
    plain = {**effect, "kind": "effect", "referred_to": None}
    assert "referred_to" not in judge(declared(components=[], effect=plain, stages=stages),
                                      paid="5").effect  # fmt: skip


def test_routes_follow_the_stages() -> None:
    stages = {"review": ["hrss.fund_collection", "tax.social_insurance"],
              "confirm": "hrss.labour_service", "decide": "hrss.fund_collection",
              "payout": "finance"}  # fmt: skip
    a = judge(declared(stages=stages), paid="1")
    assert [(r.kind.value, r.bureau_code, r.section_code) for r in a.routes] == [
        ("review", "hrss", "fund_collection"), ("review", "tax", "social_insurance"),
        ("confirm", "hrss", "labour_service"), ("decide", "hrss", "fund_collection"),
        ("payout", "finance", ""),
    ]  # fmt: skip


def test_a_type_the_judging_edition_lacks_is_not_applicable() -> None:
    a = R.not_in_edition("pilot", SHIPPED)
    assert a.decision == Decision.NOT_APPLICABLE and [c.code for c in a.failed] == [
        "measure.in_edition"
    ]
    assert a.checks[0].reason_zh == "东政发〔2022〕8号未规定此项措施"
    app = schema_of("pilot", declared()).model_validate({"type": "pilot", "applicant": PARTY,
                                                         "paid": "1"})  # fmt: skip
    [b] = R.assess(app, SHIPPED, filed_on=ON, register=[])
    assert b.decision == Decision.NOT_APPLICABLE and b.case_type == "pilot"


def test_the_sample_values_cover_every_kind() -> None:
    d = declared()
    assert R.sample_value(d.facts["paid"], ON) == Decimal(1)
    assert R.sample_value(d.facts["heads"], ON) == 0  # the default
    text = d.facts["group"].model_copy(update={"kind": "text", "default": None, "choices": {}})
    assert R.sample_value(text, ON) == "示例"
    assert R.sample_value(text.model_copy(update={"kind": "date"}), ON) == ON
    assert R.sample_value(text.model_copy(update={"kind": "boolean"}), ON) is True
    assert R.sample_value(text.model_copy(update={"kind": "integer"}), ON) == 1
    choice = text.model_copy(update={"kind": "choice", "choices": {"x": "X"}})
    assert R.sample_value(choice, ON) == "x"


@pytest.mark.parametrize("s", SCENARIOS, ids=lambda s: s["id"])
def test_the_shipped_measures_say_what_the_scenarios_say(s: dict[str, Any]) -> None:
    on = s.get("filed_on") or ON
    [a] = catalog()[s["application"]["type"]].assess(
        parse_application(s["application"], today=on), SHIPPED, filed_on=on, register=[]
    )
    assert a.decision == s["expect"]["decision"]
    assert [c.code for c in a.failed] == (
        [s["expect"]["failed"]] if "failed" in s["expect"] else []
    )


def test_a_declaration_that_does_not_hold_together_is_refused() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        declared(effect={"kind": "effect", "code": "xx", "statement_zh": "s", "clause": CLAUSE})
    with pytest.raises(ValueError, match="not a money or integer fact"):
        declared(components=[{"code": "rr", "label": "r", "base": "ok", "share": "share",
                              "clause": CLAUSE}])  # fmt: skip
    with pytest.raises(ValueError, match="no parameter"):
        declared(components=[{"code": "rr", "label": "r", "base": "paid", "share": "nope",
                              "clause": CLAUSE}])  # fmt: skip
    with pytest.raises(ValueError, match="payout"):
        declared(stages={"review": ["union.grassroots"], "decide": "union.grassroots"})
    with pytest.raises(ValueError, match="twice"):
        declared(checks=[check("a.b", "true"), check("a.b", "true")])
    with pytest.raises(ValueError, match="lower_snake_case"):
        declared(facts={"type": {"kind": "money", "label": "x"}})
    with pytest.raises(ValueError, match="default"):
        declared(facts={"paid": {"kind": "money", "label": "x", "required": False}})
    with pytest.raises(ValueError, match="choices"):
        declared(facts={"paid": {"kind": "choice", "label": "x"}})
    with pytest.raises(ValueError, match="referred_to"):
        declared(components=[], effect={"kind": "referral", "code": "xx", "statement_zh": "s",
                                        "clause": CLAUSE})  # fmt: skip
    assert isinstance(CheckSpec.model_validate(check("a.b", "true")), CheckSpec)


def test_a_refused_claim_keeps_its_gross_and_grants_nothing() -> None:
    """A claim refused on another check: what was asked is shown, nothing is allowed."""
    checks = [check("paid.some", "facts.paid > 0.0"), check("declared", "facts.ok")]
    a = judge(declared(checks=checks), paid="80.00", ok=False)
    [c] = a.components
    assert a.decision == Decision.REFUSED
    assert (c.gross, c.ceiling) == (Decimal("40.00"), Decimal("0.00")) and a.amount == 0


def test_reasons_are_text_not_html() -> None:
    """A reason goes into a notice's text: an ampersand or a bracket is kept as written."""
    facts = {"paid": {"kind": "money", "label": "已缴（元）"},
             "name": {"kind": "text", "label": "名称"}}  # fmt: skip
    checks = [{**check("cc", "true"), "passed_zh": "{{ facts.name }}"}]
    a = judge(declared(facts=facts, checks=checks), paid="1", name="A&B <公司>")
    assert a.checks[1].reason_zh == "A&B <公司>"
