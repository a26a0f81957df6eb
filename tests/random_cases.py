"""What tests/e2e/test_random_sequences.py needs beside its state machine: the applications it
files (every example of every type), the accounts it acts as (made once in a template database
that each example copies), and the invariants, read straight from the tables.

The invariants take a Picture — every row of the case tables, read in one transaction by
SQLModel, never through the engine — so a check sees what a report or a restore would see.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import scenarios as S
import staff
import yaml
from conftest import make_case_engine
from sqlalchemy import Engine, func, text
from sqlalchemy import select as core
from sqlmodel import Session, select

from models.db import make_engine, migrate
from models.input_errors import InvalidApplication, parse_application
from models.tables import (
    Account,
    ApplicantRequest,
    CapAccount,
    CapGrant,
    Case,
    CaseEvent,
    DocSerial,
    Notice,
    Payout,
    ReviewTask,
)
from states.catalog import assess, catalog, spec_for
from states.lifecycle import FINAL_STATES, PERMITS, NoticeKind, TypeMachine

ROOT = Path(__file__).parents[1]
CENT = Decimal("0.01")

# ---------------------------------------------------------------- the applications


def _pool() -> list[tuple[str, dict[str, Any]]]:
    """Every example application: docs/examples (one per type), the 20 core scenarios and the
    configured scenarios — granted, partial, refused, not accepted and invalid ones alike."""
    out = [
        (f"example:{p.stem}", json.loads(p.read_text(encoding="utf-8")))
        for p in sorted((ROOT / "docs" / "examples").glob("*.json"))
    ]
    out += [
        (f"scenario:{s['id']}", S.application(s["id"]))
        for s in S.load()
        if not s["id"].startswith("INV")
    ]
    configured = yaml.safe_load(
        (ROOT / "tests" / "data" / "configured_scenarios.yaml").read_text(encoding="utf-8")
    )["scenarios"]
    out += [(f"configured:{s['id']}", S._jsonable(s["application"])) for s in configured]
    pending = S.application("LIC-02")  # a lockdown not yet lifted: extended_pending_lift
    del pending["lockdown_lift_date"]
    out.append(("scenario:LIC-02-pending-lift", pending))
    return out


POOL = _pool()
HOSTILE = (
    "<script>alert('x')</script>",
    "{{ 7*7 }}{% if 1 %}x{% endif %}",
    "'; DROP TABLE relief_case; --",
    "\u202egnp.exe",
    "😀" * 40,
    "甲" * 1999,
    "a\r\nBcc: x@example.com",
    "　",
    "%s%n%x",
    "\x00",  # refused by the schema (and by the API's input guard before that)
)


def party_of(data: dict[str, Any]) -> dict[str, Any]:
    found = data.get("applicant") or data.get("licensee")
    return found if isinstance(found, dict) else {}


def money_paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths to the numbers of an application (amounts, counts), outside the party."""
    if isinstance(node, dict):
        for k, v in node.items():
            if not path and k in ("applicant", "licensee"):
                continue
            yield from money_paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from money_paths(v, (*path, i))
    elif (isinstance(node, int | float) and not isinstance(node, bool)) or (
        isinstance(node, str) and re.fullmatch(r"\d+(\.\d+)?", node)
    ):
        yield path


def with_value(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    node: Any = out
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return out


@functools.cache
def review_units(on: date) -> list[str]:
    """Every section a case of the pool is routed to (as `bureau.section`), judged on `on`."""
    units: set[str] = set()
    for _, data in POOL:
        try:
            assessments = assess(parse_application(data, today=date(2023, 12, 31)), filed_on=on)
        except InvalidApplication:
            continue
        for a in assessments:
            units.update(unit_of(r.bureau_code, r.section_code) for r in a.routes)
    return sorted(units)


def unit_of(bureau: str, section: str | None) -> str:
    return f"{bureau}.{section}" if section else bureau


# ---------------------------------------------------------------- the template database
REVIEWERS_PER_UNIT = 3  # 1 reviews; 2 and 3 confirm, decide and race each other
STRANGER = staff.uscc_for(4242)  # an applicant with no case of their own


def build_template(url: str) -> list[str]:
    """Migrate `url` and make every account the machine acts as; returns the units."""
    migrate(url)
    engine = make_case_engine(url)
    try:
        units = review_units(date(2022, 11, 1))
        for unit in units:
            for n in range(1, REVIEWERS_PER_UNIT + 1):
                staff.reviewer(engine, unit, n)
            staff.intake_officer(engine, unit)
        for _, data in POOL:
            if party_of(data).get("uscc") or party_of(data).get("registration_no"):
                staff.applicant_for(engine, data)
        staff.applicant(engine, STRANGER)
        staff.operator(engine)
    finally:
        engine.db.dispose()
    return units


def copy_accounts(source: str, target: str) -> None:
    """The template's accounts into another migrated database, ids kept (a PostgreSQL template
    built without hashing every password again)."""
    src, dst = make_engine(source), make_engine(target)
    try:
        with src.connect() as c:
            rows = [dict(r._mapping) for r in c.execute(core(Account.__table__))]
        with dst.begin() as c:
            have = set(c.execute(core(Account.username)).scalars())
            c.execute(
                Account.__table__.insert(),
                [r for r in rows if r["username"] not in have],
            )
            c.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('account', 'id'), "
                    "(SELECT max(id) FROM account))"
                )
            )
    finally:
        src.dispose()
        dst.dispose()


# ---------------------------------------------------------------- what the tables hold
@dataclass
class Picture:
    """Every case-table row, read in one transaction."""

    cases: list[Case]
    events: dict[int, list[CaseEvent]] = field(default_factory=lambda: defaultdict(list))
    notices: dict[int, list[Notice]] = field(default_factory=lambda: defaultdict(list))
    tasks: dict[int, list[ReviewTask]] = field(default_factory=lambda: defaultdict(list))
    payouts: dict[int, Payout] = field(default_factory=dict)
    grants: dict[int, list[CapGrant]] = field(default_factory=lambda: defaultdict(list))
    requests: dict[int, list[ApplicantRequest]] = field(default_factory=lambda: defaultdict(list))
    caps: list[CapAccount] = field(default_factory=list)
    serials: list[DocSerial] = field(default_factory=list)
    accounts: dict[int, Account] = field(default_factory=dict)


def read(db: Engine) -> Picture:
    with Session(db, expire_on_commit=False) as s, s.begin():
        p = Picture(list(s.exec(select(Case).order_by(Case.id)).all()))
        for e in s.exec(select(CaseEvent).order_by(CaseEvent.case_id, CaseEvent.seq)).all():
            p.events[e.case_id].append(e)
        for n in s.exec(select(Notice).order_by(Notice.id)).all():
            p.notices[n.case_id].append(n)
        for t in s.exec(select(ReviewTask).order_by(ReviewTask.id)).all():
            p.tasks[t.case_id].append(t)
        p.payouts = {x.case_id: x for x in s.exec(select(Payout)).all()}
        for g in s.exec(select(CapGrant)).all():
            p.grants[g.case_id].append(g)
        for r in s.exec(select(ApplicantRequest)).all():
            p.requests[r.case_id].append(r)
        p.caps = list(s.exec(select(CapAccount)).all())
        p.serials = list(s.exec(select(DocSerial)).all())
        p.accounts = {a.id: a for a in s.exec(select(Account)).all() if a.id is not None}
    return p


def snapshot(db: Engine) -> tuple[Any, ...]:
    """What a refused step must leave as it found: every row a step could write."""
    tables = (
        Case.__table__,
        CaseEvent.__table__,
        Notice.__table__,
        ReviewTask.__table__,
        Payout.__table__,
        CapAccount.__table__,
        CapGrant.__table__,
        ApplicantRequest.__table__,
    )
    with db.connect() as c:
        counts = tuple(c.execute(core(func.count()).select_from(t)).scalar() for t in tables)
        cases = c.execute(
            core(
                Case.id,
                Case.state,
                Case.version,
                Case.amount_granted,
                Case.amount_ceiling,
            ).order_by(Case.id)
        ).all()
        tasks = c.execute(
            core(
                ReviewTask.id,
                ReviewTask.status,
                ReviewTask.assignee,
                ReviewTask.decision,
                ReviewTask.reminded_on,
                ReviewTask.escalated_on,
                ReviewTask.paused_on,
                ReviewTask.due_on,
            ).order_by(ReviewTask.id)
        ).all()
        payouts = c.execute(core(Payout.id, Payout.status).order_by(Payout.id)).all()
        caps = c.execute(core(CapAccount.key, CapAccount.granted).order_by(CapAccount.key)).all()
        asks = c.execute(
            core(
                ApplicantRequest.id,
                ApplicantRequest.status,
                ApplicantRequest.reminded_on,
            ).order_by(ApplicantRequest.id)
        ).all()
    return counts, cases, tasks, payouts, caps, asks


# ---------------------------------------------------------------- the invariants
# Case events the engine writes beside the machine's rows (states/engine.py, case_run.py): the
# case stays where it is, and of these only the reminders owe a notice (ENGINE_NOTICES); what a
# row owes is its own Effects.notices (states/lifecycle.py and the types' extra rows).
ENGINE_STEPS = frozenset(
    {
        "record_paper_receipt",
        "review_decided",
        "claim_task",
        "release_task",
        "reassign_task",
        "sla_reminder",
        "sla_escalation",
        "reply_reminder",
        "request_overdue",
        "add_documents",
        "migrate_edition",
        "retry_incident",
        "resolve_incident",
    }
)
ENGINE_NOTICES = {
    "reply_reminder": (NoticeKind.REPLY_REMINDER.value,),
    "sla_reminder": (NoticeKind.TASK_REMINDER.value,),
    "sla_escalation": (NoticeKind.TASK_ESCALATION.value,),
}
GRANTED_STATES = frozenset(
    {
        "approved",
        "partially_approved",
        "payout_ordered",
        "paid",
        "effect_applied",
        "extended_pending_lift",
        "closed",
    }
)
DOC_NUMBER = re.compile(r"^(?P<prefix>.+)〔(?P<year>\d{4})〕(?P<serial>\d+)号$")


def machine_of(case: Case) -> TypeMachine:
    return spec_for(case.case_type).machine


def row_for(machine: TypeMachine, ev: CaseEvent) -> Any:
    """The machine's row an event took (None for an engine step)."""
    rows = [r for r in machine.rows_from(ev.trigger, ev.from_state or "") if r.dest == ev.to_state]
    return rows[0] if rows else None


def check_paid_only_when_approved(p: Picture) -> None:
    """A payout exists only for a case every review route passed, confirmed where its type
    says, decided by someone who did not review it, and for the amount granted."""
    for case in p.cases:
        payout = p.payouts.get(case.id)
        if payout is None:
            continue
        where = f"case {case.id} ({case.case_type}) with payout {payout.status}"
        machine = machine_of(case)
        assert machine.pays_out, f"{where}: its type pays nothing"
        tasks = p.tasks[case.id]
        reviews = [t for t in tasks if t.kind == "review"]
        assert reviews and all(t.status == "done" and t.decision == "pass" for t in reviews), (
            f"{where}: reviews {[(t.unit, t.status, t.decision) for t in reviews]}"
        )
        routed = {
            unit_of(r["bureau"], r["section"])
            for r in case.assessment["routes"]
            if r["kind"] == "review"
        }
        passed = {unit_of(t.bureau_code, t.section_code) for t in reviews}
        assert routed <= passed, f"{where}: routed to {routed}, passed by {passed}"
        reviewers = {t.decided_by for t in reviews}
        if machine.needs_confirmation:
            confirms = [t for t in tasks if t.kind == "confirm" and t.decision == "confirmed"]
            assert confirms, f"{where}: its type needs confirmation; tasks {tasks}"
            assert not reviewers & {t.decided_by for t in confirms}, f"{where}: SoD (confirm)"
        decides = [t for t in tasks if t.kind == "decide" and t.decision == "approve"]
        assert decides, f"{where}: no decision task decided 'approve'"
        assert not reviewers & {t.decided_by for t in decides}, f"{where}: SoD (decide)"
        triggers = [e.trigger for e in p.events[case.id]]
        assert "approve" in triggers and "order_payout" in triggers, f"{where}: log {triggers}"
        if machine.needs_confirmation:
            assert triggers.index("confirm") < triggers.index("approve"), f"{where}: {triggers}"
        assert payout.amount == case.amount_granted, f"{where}: pays {payout.amount}"
        paid = triggers.count("record_payment")
        assert paid == (1 if payout.status == "paid" else 0), f"{where}: {paid} payments"
        assert (payout.status == "paid") == (case.state in ("paid", "closed")), where


def check_amounts(p: Picture) -> None:
    """Nothing granted above its ceiling; a full approval grants the ceiling, a partial one
    less (or the rules or a cap cut it); cross-case caps never exceeded, their ledger the sum of
    the grants booked on them."""
    for case in p.cases:
        where = f"case {case.id} ({case.case_type}, {case.state})"
        granted = case.amount_granted
        if granted is None:
            assert case.state not in ("payout_ordered", "paid"), f"{where}: nothing granted"
            continue
        assert granted == granted.quantize(CENT) and granted >= 0, f"{where}: {granted}"
        assert granted <= case.amount_ceiling, f"{where}: {granted} > {case.amount_ceiling}"
        comps = {c["code"]: c for c in case.assessment["components"]}
        capped_parts = p.grants[case.id]
        assert sum((g.amount for g in capped_parts), Decimal(0)) <= granted, where
        for g in capped_parts:
            comp = next(c for c in comps.values() if c["cap_key"] == g.cap_key)
            assert g.amount <= Decimal(comp["ceiling"]), f"{where}: {g.cap_key} {g.amount}"
            if len(comps) == 1:
                assert g.amount == granted, f"{where}: booked {g.amount} of {granted}"
        grant_events = [e for e in p.events[case.id] if "granted" in e.payload]
        assert len(grant_events) == 1, f"{where}: {len(grant_events)} grant events"
        ev = grant_events[0]
        assert Decimal(ev.payload["granted"]) == granted, f"{where}: event {ev.payload}"
        rules_cut = case.assessment["decision"] == "partially_granted" or ev.payload["capped"]
        if ev.to_state == "partially_approved":
            assert granted < case.amount_ceiling or rules_cut, (
                f"{where}: 部分准予 grants the whole ceiling {granted} (asked {ev.payload})"
            )
        elif ev.trigger == "approve" and machine_of(case).pays_out:
            assert granted == case.amount_ceiling, f"{where}: 准予 grants {granted} ({ev.payload})"
    for cap in p.caps:
        booked = sum(
            (g.amount for gs in p.grants.values() for g in gs if g.cap_key == cap.key), Decimal(0)
        )
        assert cap.granted == booked, f"cap {cap.key}: ledger {cap.granted}, grants {booked}"
        assert cap.opening + cap.granted <= cap.cap_limit, (
            f"cap {cap.key}: {cap.opening} + {cap.granted} > {cap.cap_limit}"
        )


def check_notices(p: Picture) -> None:
    """Exactly the notices the transition table (and the engine's reminders) owe, one per
    event and kind, each numbered once with no gap in an issuer's year."""
    for case in p.cases:
        machine = machine_of(case)
        owed: Counter[tuple[int, str]] = Counter()
        for ev in p.events[case.id]:
            row = row_for(machine, ev)
            kinds = (
                ENGINE_NOTICES.get(ev.trigger, ())
                if row is None
                else (tuple(n.value for n in row.effects.notices))
            )
            owed.update((ev.seq, k) for k in kinds)
        written = Counter((n.event_seq, n.kind) for n in p.notices[case.id])
        assert written == owed, (
            f"case {case.id} ({case.case_type}): notices {sorted(written.elements())}, "
            f"owed {sorted(owed.elements())}, log "
            f"{[(e.seq, e.trigger, e.to_state) for e in p.events[case.id]]}"
        )
    serials: dict[tuple[str, int], list[int]] = defaultdict(list)
    for n in (n for ns in p.notices.values() for n in ns):
        if n.doc_number:
            m = DOC_NUMBER.match(n.doc_number)
            assert m, n.doc_number
            serials[(m["prefix"], int(m["year"]))].append(int(m["serial"]))
    for (prefix, year), got in serials.items():
        assert sorted(got) == list(range(1, len(got) + 1)), f"{prefix}〔{year}〕: {sorted(got)}"
    last = {(d.prefix, d.year): d.last for d in p.serials}
    assert all(last.get(k) == len(v) for k, v in serials.items()), (last, serials)


def check_versions(p: Picture, writes: dict[int, int], seen: dict[int, tuple[int, int]]) -> None:
    """A case's version is 1 + the writes that changed it (each write has its events, numbered
    1, 2, … without a gap); a version never goes back, and moves exactly when events are added.
    `writes` is the machine's own count of committed steps; `seen` is updated here."""
    assert {c.id for c in p.cases} == set(writes), (sorted(writes), [c.id for c in p.cases])
    for case in p.cases:
        assert case.id is not None
        events = p.events[case.id]
        assert [e.seq for e in events] == list(range(1, len(events) + 1)), (
            f"case {case.id}: seqs {[e.seq for e in events]}"
        )
        assert case.version == 1 + writes[case.id], (
            f"case {case.id}: version {case.version} after {writes[case.id]} writes"
        )
        assert len(events) >= writes[case.id], f"case {case.id}: a write without an event"
        assert all(a.at <= b.at for a, b in itertools.pairwise(events)), case.id
        before = seen.get(case.id)
        if before is not None:
            assert case.version >= before[0], f"case {case.id}: version went back"
            assert (case.version > before[0]) == (len(events) > before[1]), (
                f"case {case.id}: version {before[0]}→{case.version}, "
                f"events {before[1]}→{len(events)}"
            )
        seen[case.id] = (case.version, len(events))


def check_log_replays(p: Picture) -> None:
    """From draft, each event leaves the state the previous one reached, by a row of the type's
    machine (or an engine step that keeps the state), ending at the case's state; an explicit
    trigger was fired by a role its permit names, the owner for an applicant's step, the
    section holding the task for a task step, never the case's reviewer where barred."""
    for case in p.cases:
        machine, state = machine_of(case), "draft"
        tasks = p.tasks[case.id]
        reviewers = {t.decided_by for t in tasks if t.kind == "review" and t.decided_by}
        owner = case.facts and (
            party_of(case.facts).get("uscc") or f"REG:{party_of(case.facts).get('registration_no')}"
        )
        for ev in p.events[case.id]:
            where = f"case {case.id} ({case.case_type}) event {ev.seq} {ev.trigger}"
            assert ev.from_state == state, f"{where}: from {ev.from_state}, log was at {state}"
            row = row_for(machine, ev)
            if row is None:
                assert ev.trigger in ENGINE_STEPS and ev.to_state == state, (
                    f"{where}: {ev.from_state}→{ev.to_state} is no row of {machine.case_type}"
                )
            state = ev.to_state
            who = p.accounts.get(ev.account_id or -1)
            assert who is not None and who.username == ev.actor, f"{where}: actor {ev.actor}"
            rule = (
                PERMITS.get("review")
                if ev.trigger == "review_decided"
                else (None if row is None or row.auto else machine.permit_for(ev.trigger))
            )
            if rule is None:
                continue
            assert who.role in rule.roles, f"{where}: by {who.role} {who.username}"
            if who.role == "applicant":
                assert who.uscc == owner, f"{where}: by {who.uscc}, the case is {owner}'s"
            if rule.task and who.role in ("reviewer", "intake_officer"):
                units = {
                    (t.bureau_code, t.section_code or "") for t in tasks if t.kind in rule.task
                }
                assert (who.bureau_code, who.section_code or "") in units, f"{where}: {who}"
            if rule.not_the_reviewer:
                assert who.username not in reviewers, f"{where}: {who.username} reviewed it"
        assert state == case.state, f"case {case.id}: the log ends at {state}, not {case.state}"


def check_ended_cases(p: Picture) -> None:
    """A case that has ended holds no open task; withdrawn or ended for a missed deadline, it
    asks nothing more of its applicant, nor refused (granted, only a 容缺 request may stay
    open: the material is still owed, and at its deadline it becomes an operator's incident —
    see CaseEngine.lapse_request); a payout order exists exactly for a granted subsidy case."""
    for case in p.cases:
        where = f"case {case.id} ({case.case_type}, {case.state})"
        if case.state in FINAL_STATES:
            open_tasks = [t.kind for t in p.tasks[case.id] if t.status == "open"]
            assert not open_tasks, f"{where}: open tasks {open_tasks}"
            may_stay = ("deferred_acceptance",) if case.state == "closed" else ()
            asks = [
                r.kind for r in p.requests[case.id] if r.status == "open" and r.kind not in may_stay
            ]
            assert not asks, f"{where}: open requests {asks}"
        ordered = case.id in p.payouts
        should = machine_of(case).pays_out and case.state in ("payout_ordered", "paid", "closed")
        assert ordered == should, f"{where}: payout {ordered}"
        if case.state in GRANTED_STATES:
            assert case.amount_granted is not None, f"{where}: granted but no amount"


def every_type_covered() -> set[str]:
    """The types of the pool's applications (a test checks this is every type)."""
    return {str(data["type"]) for _, data in POOL}


ALL_TYPES = frozenset(catalog())
