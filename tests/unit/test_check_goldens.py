"""What the rules say of every scenario, kept word for word: each check in order with its result,
its reasons in both languages and its clause; the decision, the amounts, the routes, whether the
case needs confirmation and pays out. The reasons are printed in decisions, so a change to any of
them must be deliberate: RELIEF_UPDATE_GOLDEN=1 rewrites tests/golden/checks/ and the diff is
reviewed like code. (Mutation testing showed that no other test held the reasons: a rule could
say the opposite of what it decided.)"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import scenarios as S
import yaml

from models.input_errors import parse_application
from states.catalog import assess

GOLDEN = Path(__file__).parents[1] / "golden" / "checks"
UPDATE = os.environ.get("RELIEF_UPDATE_GOLDEN") == "1"
CONFIGURED = {  # the configured measures' scenarios (tests/data/configured_scenarios.yaml)
    s["id"]: s
    for s in yaml.safe_load(
        (Path(__file__).parents[1] / "data" / "configured_scenarios.yaml").read_text("utf-8")
    )["scenarios"]
}
IDS = [s["id"] for s in S.load() if s["id"] != "INV-01"] + sorted(CONFIGURED)


def record(sid: str) -> list[dict[str, Any]]:
    if sid in CONFIGURED:
        data = CONFIGURED[sid]["application"]
        filed = CONFIGURED[sid].get("filed_on") or date(2022, 8, 1)
    else:
        data = S.application(sid)
    app = parse_application(data, today=date(2100, 1, 1))  # a scenario may be filed late
    if sid not in CONFIGURED:
        filed = app.application_date or date(2022, 12, 30)
    return [
        {
            "decision": a.decision.value,
            "amount": str(a.amount),
            "claimed": str(a.claimed),
            "needs_confirmation": a.needs_confirmation,
            "pays_out": a.pays_out,
            "manual_review": list(a.manual_review_reasons),
            "checks": [
                {
                    "code": c.code,
                    "passed": c.passed,
                    "zh": c.reason_zh,
                    "en": c.reason_en,
                    "clause": c.clause,
                    "basis": c.basis.value,
                }
                for c in a.checks
            ],
            "components": [
                {
                    "code": c.code,
                    "gross": str(c.gross),
                    "ceiling": str(c.ceiling),
                    "formula": c.formula_zh,
                    "cap_key": c.cap_key,
                }
                for c in a.components
            ],
            "routes": [f"{r.kind}:{r.bureau_code}.{r.section_code}" for r in a.routes],
            "effect": a.effect,
            "subject_key": a.subject_key,
        }
        for a in assess(app, filed_on=filed)
    ]


@pytest.mark.parametrize("sid", IDS)
def test_what_the_rules_say(sid: str) -> None:
    got = record(sid)
    path = GOLDEN / f"{sid}.json"
    if UPDATE:
        path.write_text(json.dumps(got, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    assert got == json.loads(path.read_text(encoding="utf-8"))
