"""Every notice kind a case of each type can receive (granted, refused, not accepted), for
every type and every deciding authority, read as a practitioner would: the issuer in its full
name, the addressee by name, the remedy the deciding authority's level and the issue date give,
and no English word, internal code or number that the case or the edition does not hold."""

from __future__ import annotations

import json
import os
import re
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import drive
import pytest
import staff
from conftest import make_case_engine
from sqlalchemy import select
from sqlmodel import Session

from base.civil_dates import SHANGHAI
from models.tables import Case, Notice
from states.catalog import catalog
from states.edition import EDITIONS_DIR, all_editions

ROOT = Path(__file__).parents[2]
GOLDEN = ROOT / "tests" / "golden" / "notices" / "by_type"
UPDATE = os.environ.get("RELIEF_UPDATE_GOLDEN") == "1"
EDITION = all_editions()[0]
SOURCE = (EDITIONS_DIR / EDITION.source_file).read_text(encoding="utf-8")
YAML = (EDITIONS_DIR / "dongcheng-2022-8.yaml").read_text(encoding="utf-8")
FULL_NAMES = {b.formal_name for b in EDITION.bureaus}
ADMINISTRATIVE = {"not_accepted", "decision_granted", "decision_partial", "decision_refused",
                  "expired"}  # fmt: skip


def example(case_type: str) -> dict[str, Any]:
    path = ROOT / "docs" / "examples" / f"{case_type}.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


def notices_for(db_url: str, case_type: str) -> list[tuple[Notice, Case]]:
    """A granted case, a refused one and a late one of the type, and what they were sent."""
    data = example(case_type)
    filed = date.fromisoformat(data["application_date"])
    engine = make_case_engine(db_url, now=datetime(filed.year, filed.month, filed.day, 10,
                                                   tzinfo=SHANGHAI))  # fmt: skip
    late = make_case_engine(db_url, now=datetime(2023, 1, 5, 10, tzinfo=SHANGHAI))
    try:
        ids = [drive.run_to_the_end(engine, data, approve=True)]
        ids.append(drive.run_to_the_end(engine, data, approve=False))
        [filing] = drive.submit(late, {**data, "application_date": "2023-01-05"})
        ids.append(filing.case_id)
        # a fourth asked for more material, then withdrawn by its applicant
        [asked] = drive.submit(engine, data)
        if drive.case(engine, asked.case_id).state == "under_review":
            engine.fire(asked.case_id, "request_info", payload={"items": ["补充说明材料"]},
                        actor=staff.holder(engine, asked.case_id, "review", n=1))  # fmt: skip
            engine.fire(asked.case_id, "withdraw",
                        actor=staff.applicant_of_case(engine, asked.case_id))  # fmt: skip
            ids.append(asked.case_id)
        with Session(engine.db) as s:
            rows = s.execute(
                select(Notice, Case).join(Case, Case.id == Notice.case_id)
                .where(Notice.case_id.in_(ids), Notice.audience == "applicant")
                .order_by(Notice.id)
            ).all()  # fmt: skip
        return [(n, c) for n, c in rows]
    finally:
        engine.db.dispose()
        late.db.dispose()


def traced(notice: Notice, case: Case) -> str:
    """Everything a number in a notice may come from."""
    days = {case.filed_on, notice.created_at.date()}
    claimed = Decimal(case.assessment["claimed"])
    excluded = claimed - (case.amount_granted or claimed)  # a partial grant states it
    reductions = sum(Decimal(str(r.get("amount") or 0)) for r in case.facts.get("reductions", []))
    return " ".join([
        json.dumps(case.facts, ensure_ascii=False), json.dumps(case.assessment, ensure_ascii=False),
        SOURCE, YAML, case.case_no or "", notice.doc_number or "", case.query_code,
        *(f"{d.year} {d.month} {d.day}" for d in days),
        json.dumps(notice.payload, ensure_ascii=False, default=str), f"{excluded:.2f}",
        f"{reductions:.2f}",
    ])  # fmt: skip


@pytest.mark.parametrize("case_type", sorted(catalog()))
def test_every_notice_stands_up(sqlite_url: str, case_type: str) -> None:
    seen: set[str] = set()
    sent = notices_for(sqlite_url, case_type)
    # every notice of the three cases, word for word: each deciding authority, civil and
    # administrative, every type (RELIEF_UPDATE_GOLDEN=1 rewrites; review the diff)
    texts = "\n".join(
        f"==== {n.kind} ({c.case_no})\n"
        + re.sub(r"查询码：[0-9A-Z]{5}-[0-9A-Z]{5}", "查询码：<查询码>", n.body_text)
        for n, c in sent
    )
    path = GOLDEN / f"{case_type}.txt"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(texts, encoding="utf-8")
    assert texts == path.read_text(encoding="utf-8")
    for notice, case in sent:
        text = notice.body_text
        lines = text.splitlines()
        seen.add(notice.kind)
        assert lines[0] in FULL_NAMES, (notice.kind, lines[0])  # issued in its full name
        assert lines[-3] in FULL_NAMES, lines[-3:]  # signed in the same full name, dated,
        assert re.fullmatch(r"\d{4}年\d{1,2}月\d{1,2}日", lines[-2]), lines[-2]
        assert lines[-1].startswith("（"), lines[-1]  # and the seal line (or its placeholder)
        addressee = next(line for line in lines[3:] if line.endswith("："))
        assert not re.fullmatch(r"[0-9A-Z]+：", addressee), addressee  # a name, not a code
        identifiers = {case.case_no or "", notice.doc_number or "",
                       str((case.facts.get("applicant") or case.facts.get("licensee") or {})
                           .get("uscc") or ""), "TR-" + str(case.id)}  # fmt: skip
        words = [t for t in re.findall(r"[A-Za-z0-9\-]+", text) if re.search(r"[A-Za-z]", t)]
        assert [
            w
            for w in words
            if w not in identifiers and not re.fullmatch(r"[0-9A-Z]{5}-[0-9A-Z]{5}", w)
        ] == [], (notice.kind, words)  # no English, no codes
        assert "_" not in text and "None" not in text and "{{" not in text, notice.kind
        iso = re.findall(r"\d{4}-\d{2}-\d{2}", text)
        assert iso == [], (notice.kind, "an ISO date", iso)
        corpus = traced(notice, case).replace(",", "")
        body = re.sub(r"　　\d+\. ", "", text).replace(",", "")
        untraced = [n for n in re.findall(r"\d+(?:\.\d+)?", body) if n not in corpus]
        assert untraced == [], (notice.kind, untraced)
        if notice.kind in ADMINISTRATIVE and case.case_type not in ("rent_state_property",):
            decider = next(r for r in case.assessment["routes"] if r["kind"] in ("decide",)) \
                if notice.kind != "not_accepted" else None  # fmt: skip
            if decider is not None:
                bureau = EDITION.bureau(decider["bureau"])
                remedy = EDITION.notices.remedy(bureau.level, notice.created_at.date())
                if remedy.administrative:
                    body_name = remedy.reconsideration_body.format(superior=bureau.superior)
                    assert f"向{body_name}申请行政复议" in text, (notice.kind, body_name)
                    assert f"向{remedy.court}提起行政诉讼" in text
                else:
                    assert remedy.objection_zh in text and "申请行政复议" not in text
    # a granted, a refused, a late and a withdrawn case: each kind they owe was read above
    decided = {"decision_granted", "decision_partial", "referral", "extension"} & seen
    assert decided and "decision_refused" in seen, seen
    assert {"acceptance", "not_accepted", "more_info", "withdrawn"} <= seen, seen
