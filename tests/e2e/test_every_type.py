"""One table-driven suite over every application type, core and configured: its schema, its
estimate, and its example application taken through the whole lifecycle to closed by the
engine on SQLite and PostgreSQL, with exactly one notice per step the applicant sees."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

import drive
import pytest
from conftest import make_case_engine
from sqlalchemy import select
from sqlmodel import Session

from base.civil_dates import SHANGHAI
from models.tables import Notice
from states.catalog import catalog, json_schema
from states.edition import all_editions

ROOT = Path(__file__).parents[2]
TYPES = sorted(catalog())
REFERRALS = {c for c, d in all_editions()[0].configured_types.items()
             if d.effect is not None and d.effect.kind == "referral"}  # fmt: skip
# what each core type's example says to its applicant, step by step (configured types follow
# from their declaration: a decision, then a payout notice for money or none for an effect)
CORE_NOTICES = {
    "rent_state_property": ["acceptance", "decision_granted"],
    "rent_incubator_subsidy": ["acceptance", "decision_partial", "payout"],
    "rent_park_subsidy": ["acceptance", "decision_partial", "payout"],
    "credit_exemption": ["acceptance", "decision_granted"],
    "licence_extension": ["acceptance", "extension"],
    "loan_subsidy": ["acceptance", "decision_granted", "payout"],
}


def example(case_type: str) -> dict[str, Any]:
    path = ROOT / "docs" / "examples" / f"{case_type}.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


def expected_notices(case_type: str) -> list[str]:
    if case_type in CORE_NOTICES:
        return CORE_NOTICES[case_type]
    if case_type in REFERRALS:
        return ["acceptance", "referral"]
    pays = catalog()[case_type].machine.pays_out
    return ["acceptance", "decision_granted", *(["payout"] if pays else [])]


@pytest.mark.parametrize("case_type", TYPES)
def test_schema_and_form_name_every_field_in_chinese(case_type: str) -> None:
    """The JSON schema takes the example; the form generated from it labels every field."""
    from api.pages.application_form import FormField, form_fields

    schema = json_schema(case_type)
    assert set(example(case_type)) <= set(schema["properties"])
    assert "type" in schema["required"] or schema["properties"]["type"].get("const") == case_type

    def labels(fields: tuple[FormField, ...]) -> list[str]:
        return [x for f in fields for x in (f.label, *labels(f.children))]

    edition = all_editions()[0]
    found = labels(form_fields(case_type, edition.clauses_for_fields(case_type)))
    assert found and all(re.search(r"[\u4e00-\u9fff]", label) for label in found), found


def engine_on_filing_day(url: str, data: dict[str, Any]) -> Any:
    """An engine whose clock is the example's own filing date, 10:00 in Beijing."""
    filed = date.fromisoformat(data["application_date"])
    return make_case_engine(url, now=datetime(filed.year, filed.month, filed.day, 10,
                                              tzinfo=SHANGHAI))  # fmt: skip


@pytest.mark.parametrize("case_type", TYPES)
def test_estimate_of_the_example(sqlite_url: str, case_type: str) -> None:
    data = example(case_type)
    engine = engine_on_filing_day(sqlite_url, data)
    try:
        app, assessments = engine.estimate(data)
    finally:
        engine.db.dispose()
    assert str(app.type) == case_type
    assert assessments and all(a.case_type == case_type for a in assessments)
    assert all(c.reason_zh and c.clause for a in assessments for c in a.checks)


@pytest.mark.parametrize("case_type", TYPES)
def test_lifecycle_to_closed(db_url: str, case_type: str) -> None:
    data = example(case_type)
    engine = engine_on_filing_day(db_url, data)
    try:
        case_id = drive.run_to_the_end(engine, data, approve=True)
        assert drive.case(engine, case_id).state == "closed"
        with Session(engine.db) as s:
            kinds = s.execute(
                select(Notice.kind).where(Notice.case_id == case_id,
                                          Notice.audience == "applicant").order_by(Notice.id)
            ).scalars().all()  # fmt: skip
        assert list(kinds) == expected_notices(case_type)
    finally:
        engine.db.dispose()
