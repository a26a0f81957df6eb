"""政策版本之间 — what changed from one edition to another, clause by clause, and what a case
judged under the old one would get under the new one.

`diff` walks both editions as data: a parameter with its clause (`Sourced`: value, basis,
clause) is one change, with both clauses beside it; any other value that differs is a change of
its own. `rejudge` runs the rules of the new edition over a case's stored facts, writing
nothing: the case stays on its edition unless an operator moves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from models.input_errors import InvalidApplication, parse_application
from states.catalog import assess
from states.edition import Edition
from states.rules import Decision, Prior7Entry


@dataclass(frozen=True)
class Change:
    path: str
    before: Any
    after: Any
    clause_before: str = ""
    clause_after: str = ""


def _sourced(node: Any) -> bool:
    return isinstance(node, dict) and "value" in node and "clause" in node


def diff(a: Edition, b: Edition) -> list[Change]:
    """Every difference between two editions, in the order of the first (added keys after)."""
    out: list[Change] = []

    def walk(x: Any, y: Any, path: str) -> None:
        if _sourced(x) and _sourced(y):
            if x != y:
                out.append(Change(path, x["value"], y["value"], x["clause"], y["clause"]))
            return
        if isinstance(x, dict) and isinstance(y, dict):
            for key in [*x, *(k for k in y if k not in x)]:
                walk(x.get(key), y.get(key), f"{path}.{key}" if path else str(key))
            return
        if isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for i, (xi, yi) in enumerate(zip(x, y, strict=True)):
                key = xi.get("code") or xi.get("slot") if isinstance(xi, dict) else None
                walk(xi, yi, f"{path}[{key or i}]")
            return
        if isinstance(x, dict) != isinstance(y, dict) and "measure" in (x or y or {}):
            part = x if isinstance(x, dict) else y  # a measure added or removed: its summary
            summary = f"{part.get('label', '')}（第{part['measure']}条）"
            out.append(Change(path, None if x is None else summary, None if y is None else summary))
            return
        if x != y:
            out.append(Change(path, x, y))

    walk(a.model_dump(mode="json"), b.model_dump(mode="json"), "")
    return out


@dataclass(frozen=True)
class Rejudged:
    case_no: str
    case_type: str
    decision_before: str
    decision_after: str
    amount_before: Decimal
    amount_after: Decimal
    note: str = ""

    @property
    def delta(self) -> Decimal:
        return self.amount_after - self.amount_before


def rejudge(
    case_no: str,
    case_type: str,
    facts: dict[str, Any],
    stored: dict[str, Any],
    *,
    filed_on: date,
    register: list[Prior7Entry],
    edition: Edition,
) -> Rejudged:
    """What the rules of `edition` would say of a case (its stored facts, its filing date)."""
    before = Decision(stored["decision"])
    amount_before = Decimal(str(stored.get("amount") or "0"))
    try:
        app = parse_application(facts, today=filed_on)
        after = assess(app, filed_on=filed_on, register=register, edition=edition)[0]
    except (InvalidApplication, ValueError, KeyError) as exc:
        return Rejudged(case_no, case_type, before.value, before.value, amount_before,
                        amount_before, note=f"not judged: {exc}")  # fmt: skip
    return Rejudged(case_no, case_type, before.value, after.decision.value, amount_before,
                    after.amount)  # fmt: skip
