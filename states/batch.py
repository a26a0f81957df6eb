"""批量办理 — the engine's batch path: many cases per transaction, the same law, the same records.

For bulk work (an intake batch, a section's spreadsheet of decisions, a payout reconciliation,
a load test) one transaction per engine call costs more than the work itself: a session per
call, ORM objects, a machine per case, a document-number row locked per notice. BatchEngine is
that engine (a CaseEngine subclass: the same machines, guards, effects, notices and numbering
decide and write) with the per-case round trips replaced by set-wise ones per chunk:

- a chunk's cases, tasks, last event numbers, replayed request keys, cap accounts, applicants
  and 7号 register rows are read with one query each;
- one transitions Machine per case type drives all the chunk's subjects (STYLE.md: build
  machines per batch);
- each issuer's document-number row is locked once per chunk and its numbers handed out in
  order: no gaps and no repeats, because the chunk commits or nothing does;
- the writes are executemany statements (SQLAlchemy Core): the version-checked case updates,
  task decisions and closures, payout settlements and cap balances, then the events, tasks,
  notices, payouts and registers.

One chunk is one transaction. An item the engine would refuse (wrong state, failing guard,
unknown case or task, stale expected version, invalid application) is reported in the outcome
and writes nothing; the rest of the chunk goes on. A conflict found while writing (a case or
task changed by someone else since the chunk read it, a duplicate key) rolls back the whole
chunk and raises ConflictError: nothing is half-written, and the caller retries the chunk or
runs its items one by one. A case appears at most once per chunk (a second item for it starts
the next chunk), so every item sees the state the previous one left, as one-by-one calls do.

A BatchEngine holds the state of the chunk it is writing: use one per thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import partial
from types import SimpleNamespace
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import Integer, String, bindparam, func, select, update
from sqlmodel import Session
from transitions import Machine

from models.applications import Application, applicant_of
from models.input_errors import FieldError, InvalidApplication, parse_application
from models.receipts import PaperReceipt
from models.tables import (
    Applicant,
    CapAccount,
    Case,
    CaseEvent,
    DocSerial,
    Payout,
    Prior7Benefit,
    ReviewTask,
)
from notifications.doc_numbers import doc_number, lock_serial
from states.actors import Actor
from states.authority import authorize_filing
from states.catalog import assess as assess_application
from states.catalog import spec_for
from states.engine import (
    TASK_VIEW_COLUMNS,
    CapBalance,
    CaseEngine,
    FireResult,
    _facts_per_case,
    _Run,
    insert_rows,
    rows_owed,
    task_view,
)
from states.errors import ConflictError, EngineError, no_such_case, no_such_task
from states.permits import TaskView
from states.rules import Component, Prior7Entry

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 500  # cases per transaction: big enough to amortise, small enough to retry
R = TypeVar("R")
T = TypeVar("T")

CASES = Case.__table__  # type: ignore[attr-defined]
TASKS = ReviewTask.__table__  # type: ignore[attr-defined]
EVENTS = CaseEvent.__table__  # type: ignore[attr-defined]
PAYOUTS = Payout.__table__  # type: ignore[attr-defined]
CAPS = CapAccount.__table__  # type: ignore[attr-defined]
SERIALS = DocSerial.__table__  # type: ignore[attr-defined]
APPLICANTS = Applicant.__table__  # type: ignore[attr-defined]
REGISTER = Prior7Benefit.__table__  # type: ignore[attr-defined]


# a new case's columns as its insert leaves them (defaults), for the engine to read
_NEW_CASE = {
    c.name: c.default.arg if c.default is not None and c.default.is_scalar else None
    for c in CASES.columns
}


# ---------------------------------------------------------------- what a batch takes and gives
@dataclass(frozen=True)
class FireItem:
    """One `CaseEngine.fire` call, as an item of a batch."""

    case_id: int
    trigger: str
    actor: Actor
    payload: dict[str, Any] | None = None
    expected_version: int | None = None
    request_key: str | None = None


@dataclass(frozen=True)
class ReviewItem:
    """One `CaseEngine.decide_task` call ('pass' or 'fail'), as an item of a batch."""

    task_id: int
    decision: str
    actor: Actor
    reason: str | None = None
    request_key: str | None = None


@dataclass(frozen=True)
class SubmitItem:
    """One `CaseEngine.submit` call (an application, raw JSON-like data), as an item."""

    data: Any
    actor: Actor
    request_key: str | None = None
    receipt: PaperReceipt | None = None  # 补录: a paper application's earlier receipt


@dataclass
class BatchOutcome(Generic[R]):
    """Per item index (input order): its result, or why the engine refused it."""

    done: dict[int, R] = field(default_factory=dict)
    refused: dict[int, EngineError | InvalidApplication] = field(default_factory=dict)
    chunks: int = 0
    failed_chunks: int = 0  # rolled back on a conflict; their items are in `refused`

    def results(self) -> list[R]:
        return [self.done[i] for i in sorted(self.done)]


# ---------------------------------------------------------------- one chunk's state
@dataclass
class _Chunk:
    tasks: dict[int, list[TaskView]] = field(default_factory=dict)
    last_seq: dict[int, int] = field(default_factory=dict)
    register: dict[str, list[Prior7Entry]] = field(default_factory=dict)
    caps: dict[str, CapBalance] = field(default_factory=dict)
    new_caps: set[str] = field(default_factory=set)
    absent_caps: set[str] = field(default_factory=set)  # looked for, under lock: none yet
    booked_caps: set[str] = field(default_factory=set)
    serials: dict[tuple[str, int], int] = field(default_factory=dict)
    machines: dict[str, Machine] = field(default_factory=dict)
    writes: list[tuple[_Run, int]] = field(default_factory=list)  # run, version loaded
    new_case_nos: dict[int, str] = field(default_factory=dict)
    task_decisions: list[dict[str, Any]] = field(default_factory=list)
    task_closures: list[dict[str, Any]] = field(default_factory=list)
    settlements: list[dict[str, Any]] = field(default_factory=list)


class BatchEngine(CaseEngine):
    """CaseEngine with a batch path: submit_many, decide_tasks and fire_many."""

    _chunk: _Chunk | None = None

    # ------------------------------------------------------------ public
    def submit_many(
        self, items: Sequence[SubmitItem], *, chunk_size: int = DEFAULT_CHUNK
    ) -> BatchOutcome[list[FireResult]]:
        """File many applications, `chunk_size` per transaction (a chain's stores stay together)."""
        out: BatchOutcome[list[FireResult]] = BatchOutcome()
        for chunk in _chunks(list(enumerate(items)), chunk_size, key=lambda it: it[1].request_key):
            self._in_chunk(
                out, [i for i, _ in chunk], partial(self._submit_chunk, chunk=chunk, out=out)
            )
        return out

    def fire_many(
        self, items: Sequence[FireItem], *, chunk_size: int = DEFAULT_CHUNK
    ) -> BatchOutcome[FireResult]:
        """Fire a trigger on many cases, `chunk_size` cases per transaction."""
        out: BatchOutcome[FireResult] = BatchOutcome()
        indexed = list(enumerate(items))
        for chunk in _chunks(indexed, chunk_size, key=lambda it: it[1].case_id):
            self._in_chunk(
                out, [i for i, _ in chunk], partial(self._fire_chunk, chunk=chunk, out=out)
            )
        return out

    def decide_tasks(
        self, items: Sequence[ReviewItem], *, chunk_size: int = DEFAULT_CHUNK
    ) -> BatchOutcome[FireResult]:
        """Many bureau review decisions; two decisions on one case go to successive chunks."""
        out: BatchOutcome[FireResult] = BatchOutcome()
        case_of = self._case_of_tasks([it.task_id for it in items])
        indexed = list(enumerate(items))
        for chunk in _chunks(indexed, chunk_size, key=lambda it: case_of.get(it[1].task_id)):
            self._in_chunk(
                out, [i for i, _ in chunk], partial(self._review_chunk, chunk=chunk, out=out)
            )
        return out

    # ------------------------------------------------------------ chunk frame
    def _in_chunk(
        self, out: BatchOutcome[Any], indexes: list[int], body: Callable[[Session], None]
    ) -> None:
        """One chunk, one transaction. On a conflict nothing of it stays: each of its items is
        reported refused with the ConflictError, and the next chunk goes on."""
        self._chunk = _Chunk()
        try:
            with self._tx() as s:
                body(s)
                self._flush(s)
        except ConflictError as exc:
            log.warning("batch chunk of %d items rolled back: %s", len(indexes), exc.message_en)
            for i in indexes:
                out.done.pop(i, None)
                out.refused[i] = exc
            out.failed_chunks += 1
        except BaseException:
            for i in indexes:
                out.done.pop(i, None)
                out.refused.pop(i, None)
            raise
        finally:
            self._chunk = None
        out.chunks += 1

    @property
    def chunk(self) -> _Chunk:
        assert self._chunk is not None, "outside a batch chunk"
        return self._chunk

    # ------------------------------------------------------------ submit
    def _submit_chunk(
        self,
        s: Session,
        chunk: list[tuple[int, SubmitItem]],
        out: BatchOutcome[list[FireResult]],
    ) -> None:
        today = self.clock.today()
        keys = [it.request_key for _, it in chunk if it.request_key]
        replayed: dict[str, list[Any]] = {}
        if keys:
            for row in s.execute(
                select(CASES).where(CASES.c.submission_key.in_(keys)).order_by(CASES.c.id)
            ):
                replayed.setdefault(row.submission_key, []).append(row)
        parsed: list[tuple[int, SubmitItem, Application]] = []
        now = self.clock.now()
        for index, item in chunk:
            try:
                if item.request_key and item.request_key in replayed:
                    self._may_see(s, item.actor, replayed[item.request_key])
                    out.done[index] = [
                        self._result(cast(Case, c), (), replayed=True)
                        for c in replayed[item.request_key]
                    ]
                    continue
                app = parse_application(item.data, today=today)
                if item.receipt and item.receipt.received_at > now:
                    raise InvalidApplication(
                        [FieldError("receipt.received_at", "receipt.future",
                                    "补录的收件时间不能晚于当前时间",
                                    "a recorded receipt cannot be later than now")]
                    )  # fmt: skip
                # who may file comes first: nothing of a refused item is written
                self._check_account(s, item.actor)
                authorize_filing(
                    item.actor, spec_for(app.type.value).machine.permit_for("submit"),
                    applicant_of(app).identity, trigger="submit",
                    backdated=item.receipt is not None,
                )  # fmt: skip
            except (EngineError, InvalidApplication) as exc:
                out.refused[index] = exc
                continue
            parsed.append((index, item, app))
        if not parsed:
            return
        identities: dict[str, Application] = {}  # the first application brings the applicant
        for _, _, app in parsed:
            identities.setdefault(applicant_of(app).identity, app)
        self._prefetch_register(s, list(identities))
        applicant_ids = self._applicant_ids(s, identities)
        # judge every application first, then insert every case row in one statement
        planned: list[tuple[int, SubmitItem, Application, list[dict[str, Any]]]] = []
        for index, item, app in parsed:
            received_at = item.receipt.received_at if item.receipt else now
            filed_on = received_at.astimezone(now.tzinfo).date()
            party = applicant_of(app)
            assessments = assess_application(
                app, filed_on=filed_on, register=self._register(s, party.identity)
            )
            rows = [
                self._case_values(
                    app, facts, assessment, applicant_ids[party.identity], filed_on,
                    item.request_key, received_at,
                )
                for facts, assessment in zip(_facts_per_case(app), assessments, strict=True)
            ]  # fmt: skip
            planned.append((index, item, app, rows))
        if not planned:
            return
        flat = [row for _, _, _, rows in planned for row in rows]
        ids = [
            r[0]
            for r in s.execute(
                CASES.insert().returning(CASES.c.id, sort_by_parameter_order=True), flat
            )
        ]
        at = 0
        for index, item, app, rows in planned:
            results = []
            for values in rows:
                case_id = ids[at]
                at += 1
                case_no = f"DC-{values['filed_on'].year}-{case_id:06d}"
                case = cast(Case, SimpleNamespace(**{**_NEW_CASE, **values, "id": case_id}))
                case.case_no = case_no
                self.chunk.tasks[case_id] = []
                self.chunk.last_seq[case_id] = 0
                self.chunk.new_case_nos[case_id] = case_no
                run = self._start_run(s, case, item.actor)
                self._record_receipt(run, app, values["received_at"], item.receipt)
                self._step(s, run, "submit", {}, request_key=None)
                self._auto(s, run)
                version = self._write(s, run, loaded_version=case.version)
                results.append(self._result(case, run.steps, version=version, run=run))
            out.done[index] = results

    def _applicant_ids(self, s: Session, apps: dict[str, Application]) -> dict[str, int]:
        """Each identity's applicant row, the missing ones inserted in one statement."""
        found = {
            identity: id_
            for id_, identity in s.execute(
                select(APPLICANTS.c.id, APPLICANTS.c.identity).where(
                    APPLICANTS.c.identity.in_(list(apps))
                )
            )
        }
        missing = [self._applicant_values(app) for ident, app in apps.items() if ident not in found]
        if missing:
            inserted = s.execute(
                APPLICANTS.insert().returning(
                    APPLICANTS.c.id, APPLICANTS.c.identity, sort_by_parameter_order=True
                ),
                missing,
            )
            found.update({identity: id_ for id_, identity in inserted})
        return found

    def _prefetch_register(self, s: Session, identities: list[str]) -> None:
        reg = self.chunk.register
        for identity in identities:
            reg.setdefault(identity, [])
        for r in s.execute(select(REGISTER).where(REGISTER.c.subject.in_(identities))):
            reg[r.subject].append(
                Prior7Entry(r.subject, r.family, r.object_id or None, r.period_from, r.period_to)
            )

    # ------------------------------------------------------------ fire
    def _fire_chunk(
        self, s: Session, chunk: list[tuple[int, FireItem]], out: BatchOutcome[FireResult]
    ) -> None:
        replays = self._replays(s, [it.request_key for _, it in chunk])
        cases = self._prefetch_cases(
            s, [it.case_id for _, it in chunk] + [c for c, _ in replays.values()]
        )
        self._prefetch_caps(s, [(cases.get(it.case_id), it.trigger) for _, it in chunk])
        for index, item in chunk:
            if item.request_key in replays:
                try:
                    out.done[index] = self._checked_replay(
                        s, item.request_key, item.actor, case_id=item.case_id, trigger=item.trigger
                    )
                except EngineError as exc:
                    out.refused[index] = exc
                continue
            case = cases.get(item.case_id)
            try:
                if case is None:
                    raise no_such_case()
                run = self._fire_on(
                    s, case, item.trigger, actor=item.actor, payload=dict(item.payload or {}),
                    request_key=item.request_key, expected_version=item.expected_version,
                )  # fmt: skip
            except (EngineError, InvalidApplication) as exc:
                out.refused[index] = exc
                continue
            version = self._write(s, run, loaded_version=case.version)
            out.done[index] = self._result(case, run.steps, version=version, run=run)

    # ------------------------------------------------------------ review decisions
    def _case_of_tasks(self, task_ids: list[int]) -> dict[int, int]:
        out: dict[int, int] = {}
        with Session(self.db) as s:
            for part in _slices(task_ids, 5000):
                rows = s.execute(select(TASKS.c.id, TASKS.c.case_id).where(TASKS.c.id.in_(part)))
                out.update({task_id: case_id for task_id, case_id in rows})
        return out

    def _review_chunk(
        self, s: Session, chunk: list[tuple[int, ReviewItem]], out: BatchOutcome[FireResult]
    ) -> None:
        replays = self._replays(s, [it.request_key for _, it in chunk])
        case_of = {
            r.id: r.case_id
            for r in s.execute(
                select(TASKS.c.id, TASKS.c.case_id).where(
                    TASKS.c.id.in_([it.task_id for _, it in chunk])
                )
            )
        }
        cases = self._prefetch_cases(s, list(case_of.values()) + [c for c, _ in replays.values()])
        now = self.clock.now()
        for index, item in chunk:
            try:
                self._check_review(item.decision, item.reason)
                if item.request_key in replays:
                    out.done[index] = self._checked_replay(
                        s, item.request_key, item.actor, task_id=item.task_id
                    )
                    continue
                case_id = case_of.get(item.task_id)
                if case_id is None:
                    raise no_such_task()
                case = cases[case_id]
                run = self._start_run(s, case, item.actor)
                view = self._authorize_review(s, run, item.task_id)
            except (EngineError, InvalidApplication) as exc:
                out.refused[index] = exc
                continue
            self.chunk.task_decisions.append(
                {
                    "b_id": item.task_id,
                    "status": "done",
                    "decision": item.decision,
                    "reason": item.reason,
                    "decided_at": now,
                    "decided_by": item.actor.username,
                }
            )
            self._review_decided(
                s, run, task=view, decision=item.decision, reason=item.reason,
                request_key=item.request_key,
            )  # fmt: skip
            version = self._write(s, run, loaded_version=case.version)
            out.done[index] = self._result(case, run.steps, version=version, run=run)

    def _checked_replay(self, s: Session, key: str | None, actor: Actor, **same: Any) -> FireResult:
        """A replayed item's result, with the checks a single call makes (states/engine)."""
        result = CaseEngine._replay(self, s, key, actor=actor, **same)
        assert result is not None
        return result

    # ------------------------------------------------------------ set-wise reads
    def _replays(self, s: Session, keys: list[str | None]) -> dict[str | None, tuple[int, int]]:
        """Request keys already carried out: key → (case id, event seq)."""
        wanted = [k for k in keys if k]
        if not wanted:
            return {}
        rows = s.execute(
            select(EVENTS.c.request_key, EVENTS.c.case_id, EVENTS.c.seq).where(
                EVENTS.c.request_key.in_(wanted)
            )
        )
        return {key: (case_id, seq) for key, case_id, seq in rows}

    def _prefetch_cases(self, s: Session, case_ids: list[int]) -> dict[int, Case]:
        """The cases (Core rows: the engine only reads them), their tasks and last event."""
        ids = sorted(set(case_ids))
        cases = {r.id: cast(Case, r) for r in s.execute(select(CASES).where(CASES.c.id.in_(ids)))}
        chunk = self.chunk
        for case_id in cases:
            chunk.tasks[case_id] = []
            chunk.last_seq[case_id] = 0
        for t in s.execute(
            select(TASKS.c.case_id, *TASK_VIEW_COLUMNS)
            .where(TASKS.c.case_id.in_(ids))
            .order_by(TASKS.c.id)
        ):  # fmt: skip
            chunk.tasks[t[0]].append(task_view(t[1:]))
        for case_id, last in s.execute(
            select(EVENTS.c.case_id, func.max(EVENTS.c.seq))
            .where(EVENTS.c.case_id.in_(ids))
            .group_by(EVENTS.c.case_id)
        ):  # fmt: skip
            chunk.last_seq[case_id] = int(last or 0)
        return cases

    def _prefetch_caps(self, s: Session, wanted: list[tuple[Case | None, str]]) -> None:
        """Lock, in key order, the cap accounts the chunk's grants may draw on."""
        keys: set[str] = set()
        for case, trigger in wanted:
            if case is None:
                continue
            machine = spec_for(case.case_type).machine
            if not any(r.effects.grant for r in machine.rows() if r.trigger == trigger):
                continue
            for comp in case.assessment.get("components", []):
                if comp.get("cap_key"):
                    keys.add(comp["cap_key"])
        if not keys:
            return
        for row in s.execute(
            select(CAPS).where(CAPS.c.key.in_(sorted(keys))).order_by(CAPS.c.key).with_for_update()
        ):
            self.chunk.caps[row.key] = CapBalance(row.cap_limit, row.opening, row.granted)
        self.chunk.absent_caps = keys - set(self.chunk.caps)

    # ------------------------------------------------------------ engine hooks, batched
    def _bind(self, run: _Run) -> None:
        """The chunk's machine for the case type drives the subject.

        Not through `add_model`: it hangs ~40 convenience methods on each model (`is_<state>`,
        `may_<trigger>`, one per trigger), ~0.7 ms a case, and the engine calls only
        `subject.trigger(name, ...)`. That goes straight to the machine's event, which runs
        the same transitions and guards; the machine keeps no list of models, so it cannot grow.
        """
        machines = self.chunk.machines
        machine = machines.get(run.case.case_type)
        if machine is None:
            machine = machines[run.case.case_type] = run.spec.machine.build()
        setattr(run.subject, "trigger", partial(_trigger_event, machine, run.subject))  # noqa: B010

    def _run_context(self, s: Session, case_id: int) -> tuple[list[TaskView], int]:
        return self.chunk.tasks[case_id], self.chunk.last_seq[case_id]

    def _register(self, s: Session, identity: str) -> list[Prior7Entry]:
        found = self.chunk.register.get(identity)
        return found if found is not None else super()._register(s, identity)

    def _doc_number(self, s: Session, prefix: str, year: int) -> str:
        serials = self.chunk.serials
        if (prefix, year) not in serials:
            serials[(prefix, year)] = lock_serial(s, prefix, year)
        serials[(prefix, year)] += 1
        return doc_number(prefix, year, serials[(prefix, year)])

    def _lock_cap(self, s: Session, comp: Component) -> CapBalance:
        assert comp.cap_key and comp.cap_limit is not None
        caps = self.chunk.caps
        if comp.cap_key not in caps:
            row = None
            if comp.cap_key not in self.chunk.absent_caps:
                row = s.execute(
                    select(CAPS).where(CAPS.c.key == comp.cap_key).with_for_update()
                ).first()
            if row is not None:
                caps[comp.cap_key] = CapBalance(row.cap_limit, row.opening, row.granted)
            else:  # created with the first grant, as the engine's first use does
                caps[comp.cap_key] = CapBalance(comp.cap_limit, comp.cap_opening, Decimal("0.00"))
                self.chunk.new_caps.add(comp.cap_key)
        return caps[comp.cap_key]

    def _book_cap(self, s: Session, key: str, granted: Decimal, now: datetime) -> None:
        self.chunk.caps[key].granted = granted
        self.chunk.booked_caps.add(key)

    def _close_tasks(self, s: Session, case_id: int, values: dict[str, Any]) -> None:
        self.chunk.task_closures.append({"b_case": case_id, **values})

    def _settle_payout(self, s: Session, case_id: int, values: dict[str, Any]) -> None:
        self.chunk.settlements.append({"b_case": case_id, **values})

    def _write(self, s: Session, run: _Run, *, loaded_version: int) -> int:
        self.chunk.writes.append((run, loaded_version))
        return loaded_version + 1

    # ------------------------------------------------------------ the chunk's writes
    def _flush(self, s: Session) -> None:
        """Every write the chunk owes, set-wise, each update checked against what was read."""
        c = self.chunk
        if c.task_decisions:
            done = s.connection().execute(
                update(TASKS).where(
                    TASKS.c.id == bindparam("b_id", type_=Integer), TASKS.c.status == "open"
                ),
                c.task_decisions,
            )
            if done.rowcount != len(c.task_decisions):
                raise self._conflict("review tasks decided concurrently")
        if c.task_closures:
            s.execute(
                update(TASKS).where(
                    TASKS.c.case_id == bindparam("b_case", type_=Integer),
                    TASKS.c.status == "open",
                ),
                c.task_closures,
            )
        if c.settlements:
            settled = s.connection().execute(
                update(PAYOUTS).where(
                    PAYOUTS.c.case_id == bindparam("b_case", type_=Integer),
                    PAYOUTS.c.status != "paid",
                ),
                c.settlements,
            )
            if settled.rowcount != len(c.settlements):
                raise self._conflict("a payout was settled already")
        self._update_cases(s)
        now = self.clock.now()
        booked = [
            {"key": k, "cap_limit": c.caps[k].cap_limit, "opening": c.caps[k].opening,
             "granted": c.caps[k].granted, "updated_at": now}
            for k in sorted(c.booked_caps)
        ]  # fmt: skip
        new = [b for b in booked if b["key"] in c.new_caps]
        old = [
            {"b_key": b["key"], "granted": b["granted"], "updated_at": now}
            for b in booked
            if b["key"] not in c.new_caps
        ]
        if new:
            s.execute(CAPS.insert(), new)
        if old:
            s.execute(update(CAPS).where(CAPS.c.key == bindparam("b_key", type_=String)), old)
        for (prefix, year), last in c.serials.items():
            s.execute(
                update(SERIALS)
                .where(SERIALS.c.prefix == prefix, SERIALS.c.year == year)
                .values(last=last)
            )
        runs = [run for run, _ in c.writes]
        insert_rows(s, rows_owed(runs))
        steps = sum(len(r.steps) for r in runs)
        log.info("batch chunk: %d cases, %d steps", len(runs), steps)

    def _update_cases(self, s: Session) -> None:
        """Version-checked updates, one executemany per set of changed columns."""
        c = self.chunk
        now = self.clock.now()
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for run, loaded in c.writes:
            assert run.case.id is not None
            values = dict(run.changes)
            values.update(state=run.subject.state, version=loaded + 1, updated_at=now)
            if run.case.id in c.new_case_nos:
                values["case_no"] = c.new_case_nos[run.case.id]
            values.update(b_id=run.case.id, b_version=loaded)
            groups.setdefault(tuple(sorted(values)), []).append(values)
            for step in run.steps:
                log.debug(
                    "case %s %s: %s -> %s by %s",
                    run.case.case_no, step.trigger, step.from_state, step.to_state,
                    run.actor.username,
                )  # fmt: skip
        for rows in groups.values():
            done = s.connection().execute(
                update(CASES).where(
                    CASES.c.id == bindparam("b_id", type_=Integer),
                    CASES.c.version == bindparam("b_version", type_=Integer),
                ),
                rows,
            )
            if done.rowcount != len(rows):
                raise self._conflict("cases changed concurrently")

    def _conflict(self, what: str) -> ConflictError:
        ids = sorted({run.case.id for run, _ in self.chunk.writes if run.case.id is not None})
        span = f"{ids[0]}..{ids[-1]}" if ids else "-"
        return ConflictError(
            "本批案件中有案件已被他人同时修改，本批未生效，请重试",
            f"batch chunk rolled back: {what} (cases {span}, {len(ids)} in the chunk)",
        )


# ---------------------------------------------------------------- helpers
def _trigger_event(machine: Machine, subject: Any, name: str, **kwargs: Any) -> bool:
    """What `subject.trigger(name, ...)` does for a model added to `machine`."""
    event = machine.events.get(name)
    if event is None:
        raise AttributeError(f"no trigger {name!r}")
    return bool(event.trigger(subject, **kwargs))


def _chunks(items: list[T], size: int, *, key: Callable[[T], Hashable | None]) -> Iterator[list[T]]:
    """Cut items into chunks of at most `size`, never two items with the same key in one."""
    chunk: list[T] = []
    seen: set[Hashable] = set()
    for item in items:
        k = key(item)
        if len(chunk) >= size or (k is not None and k in seen):
            yield chunk
            chunk, seen = [], set()
        chunk.append(item)
        if k is not None:
            seen.add(k)
    if chunk:
        yield chunk


def _slices(items: list[T], size: int) -> Iterator[list[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


__all__ = ["BatchEngine", "BatchOutcome", "FireItem", "ReviewItem", "SubmitItem"]
