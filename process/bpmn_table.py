"""The transition table as one type's BPMN sees it: the rows that can fire for that type.

Its own module because it is a judgement about the table, not about BPMN (which rows a type's
flags and the row order leave alive): the builder draws only these, and tests/e2e/test_bpmn.py
checks that every one of them is drawn.
"""

from __future__ import annotations

from typing import Any

from states.lifecycle import CaseState, Row, TypeMachine, needs_confirmation, no_payout, pays_out

S = CaseState


def _flag_guards(m: TypeMachine) -> dict[Any, bool]:
    """Guards a type's own flags settle once for all (a subsidy pays out, never applies)."""
    return {
        pays_out: m.pays_out,
        no_payout: not m.pays_out,
        needs_confirmation: m.needs_confirmation,
    }


def _open_conditions(r: Row, flags: dict[Any, bool]) -> frozenset[Any]:
    return frozenset(c for c in r.conditions if c not in flags)


def live_rows(m: TypeMachine) -> list[Row]:
    """The rows that can fire for this type, in table order.

    A row is dropped when a flag guard is false for the type, when an earlier row of the same
    trigger from the same sources wins whenever it could (its guards a subset of this row's:
    `transitions` takes the first row whose guards hold), or when no live row reaches a source.
    """
    flags = _flag_guards(m)
    rows = [r for r in m.rows() if all(flags.get(c, True) for c in r.conditions)]
    kept: list[Row] = []
    for i, r in enumerate(rows):
        mine = _open_conditions(r, flags)
        open_sources = [
            s
            for s in r.sources()
            if not any(
                q.trigger == r.trigger and s in q.sources() and _open_conditions(q, flags) <= mine
                for q in rows[:i]
            )
        ]
        if open_sources:
            kept.append(r)
    reached = {S.DRAFT}
    grew = True
    while grew:
        grew = False
        for r in kept:
            if r.dest not in reached and reached.intersection(r.sources()):
                reached.add(r.dest)
                grew = True
    return [r for r in kept if reached.intersection(r.sources())]
