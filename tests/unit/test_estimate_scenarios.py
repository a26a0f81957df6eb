"""All 20 scenarios through `relief estimate --json`: decision, amounts, units, reasons."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import scenarios as S
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()
IDS = [s["id"] for s in S.load() if s["id"] != "INV-01"]


def estimate(application: dict[str, Any], tmp_path: Path) -> tuple[int, dict[str, Any]]:
    path = tmp_path / "application.json"
    path.write_text(json.dumps(application, ensure_ascii=False), encoding="utf-8")
    result = runner.invoke(app, ["estimate", str(path), "--json"])
    return result.exit_code, json.loads(result.stdout)


def units(case: dict[str, Any], kind: str | None = None) -> list[str]:
    return [r["unit"] for r in case["routes"] if kind is None or r["kind"] == kind]


def money(value: Any) -> Decimal:
    return Decimal(str(value))


@pytest.mark.parametrize("sid", IDS)
def test_scenario_decision(sid: str, tmp_path: Path) -> None:
    code, out = estimate(S.application(sid), tmp_path)
    assert code == 0
    expected = S.by_id(sid)["expected"]["decision"]
    if expected == "granted_per_store":
        assert {c["decision"] for c in out["cases"]} == {"granted"}
    else:
        assert out["decision"] == expected
    for case in out["cases"]:
        for check in case["checks"]:  # every check carries reasons in both languages and a clause
            assert check["reason_zh"] and check["reason_en"] and check["clause"]


def only(out: dict[str, Any]) -> dict[str, Any]:
    assert len(out["cases"]) == 1
    return out["cases"][0]


def failed_codes(case: dict[str, Any]) -> set[str]:
    return {c["code"] for c in case["checks"] if not c["passed"]}


@pytest.mark.parametrize(
    ("sid", "amount", "months", "unit", "contact"),
    [
        ("RENT-01", "24000", "3", "区国资委资产管理科", ("王玉", "67196929")),
        ("RENT-02", "180000", "6", "区财政局行政事业资产管理科", ("英瑞鹏", "64153573")),
    ],
)
def test_state_property_amounts_and_supervisor(
    sid: str, amount: str, months: str, unit: str, contact: tuple[str, str], tmp_path: Path
) -> None:
    case = only(estimate(S.application(sid), tmp_path)[1])
    assert (
        money(case["amount"])
        == money(amount)
        == money(S.by_id(sid)["expected"]["reduction_amount"])
    )
    assert case["effect"]["months"] == months
    assert unit in units(case, "review")
    route = next(r for r in case["routes"] if r["unit"] == unit)
    assert {"person": contact[0], "phone": contact[1]} in route["contacts"]


def test_chain_store_is_one_case_per_store(tmp_path: Path) -> None:
    code, out = estimate(S.application("RENT-03"), tmp_path)
    expected = S.by_id("RENT-03")["expected"]
    assert code == 0
    per_store = {c["subject_key"]: money(c["amount"]) for c in out["cases"]}
    assert per_store == {k: money(v) for k, v in expected["per_store"].items()}
    assert money(out["total"]) == money(expected["total"])
    assert all("区发展改革委产业科" in units(c, "review") for c in out["cases"])


@pytest.mark.parametrize(
    ("sid", "failing"),
    [
        ("RENT-04", "tenant.small_micro_or_individual"),
        ("RENT-05", "tenant.service_industry"),
        ("RENT-06", "no_double_benefit"),
        ("RENT-10", "property.scope"),
        ("LOAN-02", "loans.cumulative_threshold"),
        ("LOAN-03", "applicant.sme"),
        ("LIC-03", "licence.lockdown_area"),
        ("CRED-02", "penalty.caused_by_epidemic"),
        ("VAL-01", "window"),
    ],
)
def test_refusals_name_the_failing_rule(sid: str, failing: str, tmp_path: Path) -> None:
    case = only(estimate(S.application(sid), tmp_path)[1])
    assert failed_codes(case) == {failing}
    assert money(case["amount"]) == 0


def test_double_benefit_is_refused_and_flagged_for_manual_review(tmp_path: Path) -> None:
    case = only(estimate(S.application("RENT-06"), tmp_path)[1])
    assert case["manual_review"], "7号 overlap goes to manual review (README default)"
    check = next(c for c in case["checks"] if c["code"] == "no_double_benefit")
    assert "东政办发〔2022〕7号" in check["clause"]


def test_double_benefit_found_in_imported_register(tmp_path: Path) -> None:
    application = S.application("RENT-01")
    application["lease"]["lease_id"] = "L-88"
    register = tmp_path / "register7.csv"
    register.write_text(
        "subject,family,object_id,period_from,period_to\n"
        "92110101MA01KQ8P2G,state_property_rent,L-88,2022-03-01,2022-05-31\n",
        encoding="utf-8",
    )
    path = tmp_path / "a.json"
    path.write_text(json.dumps(application), encoding="utf-8")
    result = runner.invoke(app, ["estimate", str(path), "--json", "--register-7", str(register)])
    case = json.loads(result.stdout)["cases"][0]
    assert case["decision"] == "refused"
    assert failed_codes(case) == {"no_double_benefit"}


def test_incubator_excludes_large_tenants(tmp_path: Path) -> None:
    case = only(estimate(S.application("RENT-07"), tmp_path)[1])
    expected = S.by_id("RENT-07")["expected"]
    assert money(case["effect"]["eligible_reduced"]) == money(expected["eligible_reduced"])
    assert money(case["amount"]) == money(expected["subsidy"])
    assert "东城园管委会企业处" in units(case, "confirm")
    assert "区财政局" in units(case, "payout")


@pytest.mark.parametrize("sid", ["RENT-08", "RENT-09"])
def test_park_and_building_caps(sid: str, tmp_path: Path) -> None:
    case = only(estimate(S.application(sid), tmp_path)[1])
    expected = S.by_id(sid)["expected"]
    assert money(case["components"][0]["gross"]) == money(expected["gross"])
    assert money(case["amount"]) == money(expected["subsidy"])
    assert units(case, "decide") == ["区政府"]
    if sid == "RENT-09":
        assert money(case["effect"]["cap_remaining_after"]) == money(
            expected["cap_remaining_after"]
        )
        assert set(units(case, "review")) == {"东城园管委会企业处", "区投促中心战略发展部"}
    else:
        assert units(case, "review") == ["区文促中心事业部"]


def test_loan_threshold_inclusive_and_both_ceilings(tmp_path: Path) -> None:
    case = only(estimate(S.application("LOAN-01"), tmp_path)[1])
    expected = S.by_id("LOAN-01")["expected"]
    parts = {c["code"]: money(c["ceiling"]) for c in case["components"]}
    assert money(case["effect"]["cumulative_principal"]) == money(expected["cumulative_principal"])
    assert parts["interest_subsidy"] == money(expected["interest_subsidy_max"])
    assert parts["guarantee_subsidy"] == money(expected["guarantee_subsidy_max"])


@pytest.mark.parametrize(
    ("sid", "new_expiry", "unit"),
    [
        ("LIC-01", "2023-02-28", "区市场监管局食品生产与保健食品安全监督管理科"),
        ("LIC-02", "2022-12-20", "区市场监管局餐饮科"),
    ],
)
def test_licence_new_expiry(sid: str, new_expiry: str, unit: str, tmp_path: Path) -> None:
    case = only(estimate(S.application(sid), tmp_path)[1])
    assert case["effect"]["new_expiry"] == new_expiry == str(S.by_id(sid)["expected"]["new_expiry"])
    assert unit in units(case)
    if sid == "LIC-02":
        assert case["effect"]["green_channel"] == "opened"


def test_licence_in_lockdown_not_lifted_is_pending(tmp_path: Path) -> None:
    application = S.application("LIC-02")
    del application["lockdown_lift_date"]
    case = only(estimate(application, tmp_path)[1])
    assert case["decision"] == "extended_pending_lift"


def test_credit_units(tmp_path: Path) -> None:
    case = only(estimate(S.application("CRED-01"), tmp_path)[1])
    assert units(case, "review") == ["区市场监管局信用科"]


def test_late_filing_shows_what_it_would_have_been(tmp_path: Path) -> None:
    case = only(estimate(S.application("VAL-01"), tmp_path)[1])
    assert case["decision"] == "not_accepted"
    assert money(case["components"][0]["gross"]) == Decimal("100000.00")


@pytest.mark.parametrize("variant", range(3))
def test_invalid_uscc_exit_2_naming_field_and_rule(variant: int, tmp_path: Path) -> None:
    application = S.invalid_variants()[variant]
    code, out = estimate(application, tmp_path)
    assert code == 2
    assert out["ok"] is False
    [error] = out["errors"]
    assert error["field"] == "applicant.uscc"
    assert error["rule"] in {"uscc.check_char", "uscc.forbidden_char", "uscc.length"}
    assert "统一社会信用代码" in error["message_zh"]


def test_human_output_lists_checks(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps(S.application("RENT-04")), encoding="utf-8")
    result = runner.invoke(app, ["estimate", str(path)], env={"COLUMNS": "240"})
    assert result.exit_code == 0
    assert "不予" in result.stdout and "tenant.small_micro_or_individual" in result.stdout


@pytest.mark.parametrize(
    "example", sorted((Path(__file__).parents[2] / "docs" / "examples").glob("*.json"))
)
def test_readme_examples_estimate(example: Path) -> None:
    result = runner.invoke(app, ["estimate", str(example), "--json"])
    assert result.exit_code == 0, result.stdout
    assert json.loads(result.stdout)["ok"] is True
