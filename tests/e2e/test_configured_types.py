"""Every configured measure (declared in the edition, no Python of its own) through the rules
and the whole engine lifecycle, on SQLite and PostgreSQL, from scenarios written in the
document's words (tests/data/configured_scenarios.yaml)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import drive
import httpx
import pytest
import yaml
from conftest import FIXED_NOW, make_case_engine
from sqlalchemy import select
from sqlmodel import Session

from base.civil_dates import SHANGHAI
from models.input_errors import parse_application
from models.tables import MeasureEffectRecord, Notice
from states.catalog import assess, catalog
from states.edition import all_editions

ROOT = Path(__file__).parents[2]
SCENARIOS: list[dict[str, Any]] = yaml.safe_load(
    (ROOT / "tests" / "data" / "configured_scenarios.yaml").read_text(encoding="utf-8")
)["scenarios"]
CONFIGURED = sorted(c for c, spec in catalog().items() if not spec.core)


def filed_on(s: dict[str, Any]) -> date:
    return s.get("filed_on") or date(2022, 8, 1)


def test_every_configured_type_has_a_granted_and_a_refused_scenario() -> None:
    for code in CONFIGURED:
        outcomes = {s["expect"]["decision"] for s in SCENARIOS if s["application"]["type"] == code}
        assert "granted" in outcomes, code
        assert outcomes & {"refused", "not_applicable", "not_accepted"}, code


def test_every_shipped_declaration_evaluates() -> None:
    from states.configured_rules import problems

    for edition in all_editions():
        for code, declared in edition.configured_types.items():
            assert problems(declared, code, edition.window.start) == []


@pytest.mark.parametrize("s", SCENARIOS, ids=lambda s: s["id"])
def test_rules_say_what_the_document_says(s: dict[str, Any]) -> None:
    on = filed_on(s)
    app = parse_application(s["application"], today=on)
    [a] = assess(app, filed_on=on)
    want = s["expect"]
    assert a.decision == want["decision"], [c.reason_zh for c in a.failed]
    assert [c.code for c in a.failed] == ([want["failed"]] if "failed" in want else [])
    if "amount" in want:
        assert a.amount == Decimal(want["amount"])
    assert bool(a.manual_review_reasons) == want.get("manual_review", False)
    for check in a.checks:
        assert check.reason_zh and check.reason_en and "{{" not in check.reason_zh
    if want["decision"] == "granted":
        assert a.effect.get("code") == want.get("effect")


@pytest.mark.parametrize("s", SCENARIOS, ids=lambda s: s["id"])
def test_relief_estimate_says_it_too(s: dict[str, Any], tmp_path: Path) -> None:
    """Every scenario through `relief estimate --json`, as an applicant or a clerk runs it."""
    from typer.testing import CliRunner

    from cli.main import app

    path = tmp_path / "application.json"
    path.write_text(
        json.dumps({**s["application"], "application_date": str(filed_on(s))}, ensure_ascii=False),
        encoding="utf-8",
    )
    run = CliRunner().invoke(app, ["estimate", str(path), "--json"])
    assert run.exit_code == 0, run.output
    out = json.loads(run.output)
    assert out["decision"] == s["expect"]["decision"]
    assert out["total"] == s["expect"].get("amount", "0.00")
    assert [c["code"] for c in out["cases"][0]["checks"] if not c["passed"]] == (
        [s["expect"]["failed"]] if "failed" in s["expect"] else []
    )


@pytest.mark.parametrize(
    "s", [s for s in SCENARIOS if s["id"] in ("UNION-01", "ZGC-02")], ids=lambda s: s["id"]
)
def test_relief_estimate_reads_the_scenario(s: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "application.json"
    path.write_text(
        json.dumps({**s["application"], "application_date": str(filed_on(s))}, ensure_ascii=False),
        encoding="utf-8",
    )
    run = subprocess.run(
        [sys.executable, "-m", "cli.main", "estimate", str(path), "--json"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["decision"] == s["expect"]["decision"]
    assert out["total"] == s["expect"].get("amount", "0.00")
    assert [c["code"] for c in out["cases"][0]["checks"] if not c["passed"]] == (
        [s["expect"]["failed"]] if "failed" in s["expect"] else []
    )


@pytest.mark.parametrize("s", SCENARIOS, ids=lambda s: s["id"])
def test_lifecycle_through_the_engine(db_url: str, s: dict[str, Any]) -> None:
    on = filed_on(s)
    engine = make_case_engine(db_url, now=datetime(on.year, on.month, on.day, 10, tzinfo=SHANGHAI))
    try:
        want = s["expect"]
        case_id = drive.run_to_the_end(
            engine, s["application"], approve=want["decision"] == "granted"
        )
        case = drive.case(engine, case_id)
        assert case.state == want["end"]
        with Session(engine.db) as ss:
            notices = ss.execute(
                select(Notice).where(Notice.case_id == case_id, Notice.audience == "applicant")
                .order_by(Notice.id)
            ).scalars().all()  # fmt: skip
            effects = ss.execute(
                select(MeasureEffectRecord).where(MeasureEffectRecord.case_id == case_id)
            ).scalars().all()  # fmt: skip
        assert [n.kind for n in notices] == want["notices"]  # one notice per applicant step
        declared = all_editions()[0].configured_types[s["application"]["type"]]
        for n in notices:
            if n.kind in ("decision_granted", "decision_refused", "referral", "not_accepted"):
                assert f"第{declared.measure}条" in n.body_text, n.body_text
            assert "{{" not in n.body_text and "None" not in n.body_text
        if want.get("effect"):
            [record] = effects
            assert record.effect == want["effect"] and record.statement
        else:
            assert effects == []
    finally:
        engine.db.dispose()


def test_a_union_refund_names_no_administrative_remedy(sqlite_url: str) -> None:
    """区总工会 is a mass organisation: its refusal is no administrative act."""
    engine = make_case_engine(sqlite_url)
    [s] = [s for s in SCENARIOS if s["id"] == "UNION-02"]
    case_id = drive.run_to_the_end(engine, s["application"], approve=False)
    with Session(engine.db) as ss:
        refusal = ss.execute(
            select(Notice).where(Notice.case_id == case_id, Notice.kind == "decision_refused")
        ).scalar_one()
    assert "申请行政复议" not in refusal.body_text
    assert "不属于行政机关作出的行政行为" in refusal.body_text
    assert "仅小微企业可以申请" in refusal.body_text
    assert refusal.issuer == "北京市东城区总工会基层工作部"
    print(refusal.body_text)


def test_a_referral_is_not_a_decision(sqlite_url: str) -> None:
    engine = make_case_engine(sqlite_url)
    [s] = [s for s in SCENARIOS if s["id"] == "ZGC-01"]
    case_id = drive.run_to_the_end(engine, s["application"], approve=True)
    with Session(engine.db) as ss:
        [referral] = ss.execute(
            select(Notice).where(Notice.case_id == case_id, Notice.kind == "referral")
        ).scalars().all()  # fmt: skip
    text = referral.body_text
    print(text)
    assert "移送中关村国家自主创新示范区相关政策的主管部门" in text
    assert "准予" not in text and "申请行政复议" not in text


def test_fixed_now_is_in_the_window() -> None:
    assert FIXED_NOW.date() <= date(2022, 12, 31)


def test_the_api_lists_describes_estimates_and_files_a_configured_type(api_db: Any) -> None:
    """Through a real HTTP server: the types of the edition in force, a configured type's
    schema, a public estimate, a filing; and what a careless or hostile client sends."""
    from conftest import LiveServer

    from api.main import create_app
    from models.settings import Settings

    application = dict(next(s for s in SCENARIOS if s["id"] == "UNION-01")["application"])
    settings = Settings(database_url=api_db.url, now=FIXED_NOW)
    with LiveServer(create_app(settings)) as server, httpx.Client(base_url=server.url) as c:
        types = {t["code"]: t for t in c.get("/api/types").json()}
        assert set(types) == set(catalog())
        assert types["union_fee_refund"]["configured"] and not types["loan_subsidy"]["configured"]
        assert types["union_fee_refund"]["measure"] == "17"
        schema = c.get("/api/types/union_fee_refund/schema").json()
        assert (
            schema["properties"]["union_fees_paid"]["description"] == "2022年已缴交的工会经费（元）"
        )
        assert c.get("/api/types/no_such_type/schema").status_code == 404
        assert c.get("/api/types/..%2Fetc/schema").status_code in (404, 422)
        estimate = c.post("/api/estimate", json=application)
        assert estimate.status_code == 200, estimate.text
        [a] = estimate.json()["assessments"]
        assert a["decision"] == "granted" and a["amount"] == "12345.67"
        for bad, field in [
            ({**application, "union_fees_paid": "-1"}, "union_fees_paid"),
            ({**application, "union_fees_paid": "NaN"}, "union_fees_paid"),
            ({**application, "union_fees_paid": "1.001"}, "union_fees_paid"),
            ({**application, "paid_in_full": "maybe"}, "paid_in_full"),
            ({**application, "extra": "<script>alert(1)</script>"}, "extra"),
            ({**application, "type": "union_fee_refund "}, "type"),
            ({k: v for k, v in application.items() if k != "applicant"}, "applicant"),
        ]:
            r = c.post("/api/estimate", json=bad)
            assert r.status_code == 422, (bad, r.text)
            assert field in [e["field"] for e in r.json()["errors"]], r.text
            assert "Traceback" not in r.text
        assert c.post("/api/estimate", json=[1, 2]).status_code == 422
        nul = c.post("/api/estimate", json={**application, "type": "union_fee_refund\x00"})
        assert nul.status_code == 400 and "空字符" in nul.json()["message_zh"]
        before = c.post("/api/applications", json=application)
        assert before.status_code == 401  # filing needs an account
        token = {"Authorization": f"Bearer {api_db.tokens['applicant_b']}"}
        filed = c.post("/api/applications", json=application, headers=token)
        assert filed.status_code == 201, filed.text
        [case] = filed.json()
        assert case["case_type"] == "union_fee_refund" and case["amount_ceiling"] == "12345.67"
        foreign = {**application, "applicant": {**application["applicant"],
                                                "uscc": "91110101MA00XY6089"}}  # fmt: skip
        assert c.post("/api/applications", json=foreign, headers=token).status_code == 403
