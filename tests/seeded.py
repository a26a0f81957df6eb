"""A seeded district: a few hundred cases over six months, every outcome, built through the engine.

`seed_district(url)` files 320 applications of twelve kinds (eight measures) in five monthly
cohorts, July to November 2022, and moves them the way the people would: reviews pass or
fail, confirmations, grants in full or in part, refusals, withdrawals, expiries, cases left
open; payouts paid in the month of the decision, a month later or not yet; six licences are
extended ex officio; notices are delivered by e-mail to an SMTP sink (and fail on an SMS
gateway that is down), so deliveries carry receipts. Every step is an engine set operation
(`submit_many`, `decide_tasks`, `fire_many`, `grant_ex_officio_many`) with the clock of its
month, so events fall in the month they are meant to: the August cohort is filed and the July
cohort decided at 00:30 on 1 August, Beijing time, which is still July in UTC.

A few applicants carry hostile names (formula injection, markup, SQL) so that every export
and page built on the seed meets them. Every clock is fixed: two seeds are alike in every count
and sum (query codes and API tokens are random, as in production). Tests that only read share
one seeded file per session (`seeded_file`); a test that writes takes its own copy
(`seeded_copy`).
"""

from __future__ import annotations

import copy
import json
import shutil
import socket
import sqlite3
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from smtp_sink import Sink
from sqlmodel import Session, col, select

from api.security import create_account
from base.civil_dates import SHANGHAI
from base.clock import Clock
from base.identifiers import uscc_check_char
from base.money import to_money
from models.db import make_engine, migrate
from models.settings import Settings
from models.tables import Account, Applicant, Case, Notice, Payout, ReviewTask
from notifications.delivery import deliver
from notifications.issuer import engine_with_notices
from states.actors import SYSTEM_ACCOUNT, Actor, actor_of
from states.engine import CaseEngine
from states.work import FireItem, ReviewItem, SubmitItem

EXAMPLES = Path(__file__).parents[1] / "docs" / "examples"
# the clocks of the seed: filings at the first five, decisions and payments up to the sixth
CLOCKS = (
    datetime(2022, 7, 5, 10, 0, tzinfo=SHANGHAI),
    datetime(2022, 8, 1, 0, 30, tzinfo=SHANGHAI),  # 2022-07-31 16:30 UTC: August in Beijing
    datetime(2022, 9, 14, 10, 0, tzinfo=SHANGHAI),
    datetime(2022, 10, 12, 10, 0, tzinfo=SHANGHAI),
    datetime(2022, 11, 16, 10, 0, tzinfo=SHANGHAI),
    datetime(2022, 12, 14, 10, 0, tzinfo=SHANGHAI),
)
COHORT = 64  # applications filed at each of the first five clocks
EX_OFFICIO_AT = {1: 3, 3: 3}  # clock index: licences extended ex officio then
HOSTILE_NAMES = (
    '=HYPERLINK("http://evil.example/","点我")',
    "+SUM(1,2)",
    "-2+3",
    "@cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "<script>alert('x')</script>有限公司",
    "'; DROP TABLE case_event; --",
)
PLANS = ("grant", "grant", "partial", "refuse", "grant", "withdraw", "grant", "expire",
         "partial", "open")  # fmt: skip
PAYMENTS = ("now", "later", "never", "now")  # for a granted subsidy: when the treasury pays


@dataclass
class SeededCounts:
    """What the seed made (the tests check the report against SQL, not against these)."""

    url: str
    cases: int = 0
    ex_officio: int = 0
    by_plan: dict[str, int] = field(default_factory=dict)
    by_type: dict[str, int] = field(default_factory=dict)
    refused_by_engine: int = 0  # items the engine refused (expected: 0)
    deliveries: int = 0
    seconds: float = 0.0
    hostile_names: tuple[str, ...] = HOSTILE_NAMES


# ---------------------------------------------------------------- the applications
def uscc(n: int, prefix: str = "91") -> str:
    """A valid USCC for enterprise n (92…: an individual business)."""
    first17 = f"{prefix}110101{n:09d}"
    return first17 + uscc_check_char(first17)


def _example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    return data


def _park(n: int) -> dict[str, Any]:
    return {
        "type": "rent_park_subsidy",
        "applicant": {
            "uscc": uscc(n),
            "role": "owner",
            "property": {
                "property_id": f"BLDG-{n:06d}",
                "type": "commercial_building",
                "state_owned": False,
                "in_zgc_dongcheng_park": True,
            },
        },
        "confirmed_total_reduced": str(400_000 + 37 * n),
        "prior_subsidy_for_this_property": 0,
    }


def _loan(n: int) -> dict[str, Any]:
    return {
        "type": "loan_subsidy",
        "applicant": {"uscc": uscc(n), "size": "small"},
        "loans": [
            {"lender_in_district": True, "drawdown": "2022-03-15", "principal": 6_000_000 + n}
        ],
        "eligible_interest": 100_000 + n,
        "guarantee_fee_paid": 20_000,
        "enjoyed_under_7": False,
    }


def _with_uscc(name: str, *, party: str = "applicant", prefix: str = "91") -> Callable[..., Any]:
    def build(n: int) -> dict[str, Any]:
        data = copy.deepcopy(_example(name))
        data[party]["uscc"] = uscc(n, prefix)
        return data

    return build


def _union(n: int) -> dict[str, Any]:
    data = _with_uscc("union_fee_refund")(n)
    data["union_fees_paid"] = f"{10_000 + n}.{n % 100:02d}"
    return data


def _licence_not_in_scope(n: int) -> dict[str, Any]:
    """A food business licence outside a lockdown area: not accepted (LIC-03)."""
    return {
        "type": "licence_extension",
        "licensee": {"uscc": uscc(n)},
        "licence": {"type": "食品经营许可证", "expiry": "2022-12-15"},
        "in_lockdown_area": False,
    }


def _licence_ex_officio(n: int) -> dict[str, Any]:
    """A non-special food production licence expiring in the window (LIC-01): ex officio."""
    return {
        "type": "licence_extension",
        "licensee": {"uscc": uscc(n)},
        "licence": {"type": "食品生产许可证", "special_food": False, "expiry": "2022-12-31",
                    "licence_no": f"SC{n:012d}"},
        "in_lockdown_area": False,
    }  # fmt: skip


@dataclass(frozen=True)
class Kind:
    name: str
    build: Callable[[int], dict[str, Any]]
    party: str = "applicant"
    pays: bool = False  # approval orders a payout
    partial: bool = False  # has an amount a decider may cut
    accepted: bool = True  # the rules accept it


KINDS: tuple[Kind, ...] = (
    Kind("park", _park, pays=True, partial=True),
    Kind("incubator", _with_uscc("rent_incubator_subsidy"), pays=True, partial=True),
    Kind("state_rent", _with_uscc("rent_state_property", prefix="92"), partial=True),
    Kind("loan", _loan, pays=True, partial=True),
    Kind("credit", _with_uscc("credit_exemption")),
    Kind("licence", _with_uscc("licence_extension", party="licensee", prefix="92"),
         party="licensee"),
    Kind("union", _union, pays=True, partial=True),
    Kind("deferral", _with_uscc("social_insurance_deferral")),
    Kind("tech", _with_uscc("tech_project")),
    Kind("graduate", _with_uscc("graduate_insurance_subsidy")),
    Kind("not_accepted", _licence_not_in_scope, party="licensee", accepted=False),
    Kind("zgc", _with_uscc("zgc_policy")),
)  # fmt: skip


@dataclass
class Planned:
    """One application and what happens to it: at which clock it is decided and paid."""

    n: int
    kind: Kind
    data: dict[str, Any]
    plan: str
    filed_at: int
    decide_at: int
    pay_at: int | None
    case_id: int = 0


def plan_district() -> list[Planned]:
    """The 320 applications, each with its fate (deterministic)."""
    out: list[Planned] = []
    n = 0
    for k in range(5):
        for i in range(COHORT):
            n += 1
            kind = KINDS[i % len(KINDS)]
            plan = PLANS[(i * 7 + k) % len(PLANS)] if kind.accepted else "not_accepted"
            if plan == "partial" and not kind.partial:
                plan = "grant"
            decide_at = k + 1 if (i + i // len(KINDS)) % 3 == 1 else k  # a month late
            pay_at: int | None = None
            if kind.pays and plan in ("grant", "partial"):
                when = PAYMENTS[(i // len(KINDS) + k) % len(PAYMENTS)]
                pay_at = {"now": decide_at, "later": decide_at + 1, "never": None}[when]
                if pay_at is not None and pay_at >= len(CLOCKS):
                    pay_at = None
            data = kind.build(n)
            data.pop("application_date", None)
            party = data[kind.party]
            name = HOSTILE_NAMES[i // 8] if k == 0 and i % 8 == 1 else f"测试企业{n:03d}有限公司"
            party["name"] = name
            party.pop("email", None)
            if n % 21 == 0:  # both: e-mail arrives, the SMS gateway is down
                party.update(email=f"seed{n}@example.com", phone=f"1390000{n:04d}",
                             notify=["email", "sms"])  # fmt: skip
            elif n % 5 == 0:
                party["email"] = f"seed{n}@example.com"
            elif n % 33 == 0:  # (an SMS attempt costs ~30 ms: httpx's client)
                party.update(phone=f"1380000{n:04d}", notify=["sms"])
            out.append(Planned(n, kind, data, plan, k, decide_at, pay_at))
    return out


# ---------------------------------------------------------------- the people
class People:
    """Accounts without passwords (scrypt costs 50 ms an account): who files, reviews, decides."""

    def __init__(self, url: str) -> None:
        self.db = make_engine(url)
        self.cache: dict[str, Actor] = {}

    def get(self, username: str, **spec: Any) -> Actor:
        if username not in self.cache:
            with Session(self.db) as s:
                found = s.exec(select(Account).where(col(Account.username) == username)).first()
            if found is None:
                found, _ = create_account(self.db, username=username, now=CLOCKS[0], **spec)
            self.cache[username] = actor_of(found)
        return self.cache[username]

    def operator(self) -> Actor:
        return self.get("seed-operator", role="operator")

    def system(self) -> Actor:
        return self.get(SYSTEM_ACCOUNT)  # made by the migrations

    def reviewer(self, bureau: str, section: str, n: int) -> Actor:
        unit = f"{bureau}.{section}" if section else bureau
        return self.get(f"seed-{unit}.{n}", role="reviewer", bureau=bureau, section=section)

    def applicant(self, identity: str) -> Actor:
        return self.get(f"seed-applicant.{identity}", role="applicant", uscc=identity)


# ---------------------------------------------------------------- the stages
def _check(outcome: Any, counts: SeededCounts) -> None:
    counts.refused_by_engine += len(outcome.refused)
    if outcome.refused:
        index, exc = next(iter(outcome.refused.items()))
        raise AssertionError(f"seed: {len(outcome.refused)} refused, e.g. item {index}: {exc}")


def _open_tasks(engine: CaseEngine, case_ids: Sequence[int], kind: str) -> list[ReviewTask]:
    if not case_ids:
        return []
    with Session(engine.db) as s:
        return list(
            s.execute(
                select(ReviewTask)
                .where(
                    ReviewTask.case_id.in_(case_ids),  # type: ignore[attr-defined]
                    ReviewTask.kind == kind,
                    ReviewTask.status == "open",
                )
                .order_by(ReviewTask.id)  # type: ignore[arg-type]
            ).scalars()
        )


def _ceiling(engine: CaseEngine, case_id: int) -> Any:
    with Session(engine.db) as s:
        row = s.get(Case, case_id)
        assert row is not None
        return row.amount_ceiling


@dataclass
class Stage:
    """What happens at one clock: each step is what one party does to its whole queue."""

    engine: CaseEngine
    people: People
    counts: SeededCounts
    k: int

    def run(self, outcome: Any) -> Any:
        _check(outcome, self.counts)
        return outcome

    def file(self, planned: list[Planned]) -> None:
        filing = [p for p in planned if p.filed_at == self.k]
        operator = self.people.operator()
        out = self.run(self.engine.submit_many(
            [SubmitItem(p.data, operator, request_key=f"seed:{p.n}") for p in filing]
        ))  # fmt: skip
        for p, results in zip(filing, out.results(), strict=True):
            p.case_id = results[0].case_id
        grants = [
            SubmitItem(_licence_ex_officio(9000 + 10 * self.k + j), self.people.system(),
                       request_key=f"licence:seed-{self.k}-{j}")
            for j in range(EX_OFFICIO_AT.get(self.k, 0))
        ]  # fmt: skip
        self.run(self.engine.grant_ex_officio_many(grants))
        self.counts.ex_officio += len(grants)
        self.run(self.engine.fire_many(
            [FireItem(p.case_id, "withdraw", self.people.applicant(_identity(p)))
             for p in filing if p.plan == "withdraw"]
        ))  # fmt: skip

    def review_and_confirm(self, planned: list[Planned]) -> None:
        """This clock's filings: each section passes (or fails) its reviews, then confirms."""
        ours = {p.case_id: p for p in planned if p.filed_at == self.k}
        waiting = ("withdraw", "expire", "open")  # withdrawn, or left waiting in review
        reviews = _open_tasks(self.engine, [c for c, p in ours.items() if p.plan not in waiting],
                              "review")  # fmt: skip
        fail = {t.id for t in reviews if ours[t.case_id].plan == "refuse"}
        self.run(self.engine.decide_tasks(
            [ReviewItem(t.id or 0, "fail" if t.id in fail else "pass",
                        self.people.reviewer(t.bureau_code, t.section_code, 1),
                        "不符合条件" if t.id in fail else None)
             for t in reviews]
        ))  # fmt: skip
        self.run(self.engine.fire_many(
            [FireItem(t.case_id, "confirm", self.people.reviewer(t.bureau_code, t.section_code, 2))
             for t in _open_tasks(self.engine, list(ours), "confirm")]
        ))  # fmt: skip

    def decide(self, planned: list[Planned]) -> None:
        """The decisions due now: this cohort's, and the previous cohort's late ones."""
        due = [p for p in planned if p.decide_at == self.k and p.plan in ("grant", "partial",
                                                                           "refuse")]  # fmt: skip
        tasks = {t.case_id: t for t in _open_tasks(self.engine, [p.case_id for p in due], "decide")}
        items = []
        for p in due:
            task = tasks[p.case_id]
            decider = self.people.reviewer(task.bureau_code, task.section_code, 2)
            if p.plan == "refuse":
                items.append(FireItem(p.case_id, "reject", decider, {"reason": "不符合条件"}))
            elif p.plan == "partial":
                amount = to_money(_ceiling(self.engine, p.case_id) * Decimal("0.8"))
                items.append(FireItem(p.case_id, "approve", decider, {"amount": str(amount)}))
            else:
                items.append(FireItem(p.case_id, "approve", decider))
        self.run(self.engine.fire_many(items))

    def expire(self, planned: list[Planned]) -> None:
        """The operator ends the cases filed a clock ago that were to expire."""
        self.run(self.engine.fire_many(
            [FireItem(p.case_id, "expire", self.people.operator(), {"reason": "申请人逾期未补正"})
             for p in planned if p.plan == "expire" and p.filed_at == self.k - 1]
        ))  # fmt: skip

    def pay(self, planned: list[Planned]) -> None:
        """The treasury's payments due now are recorded (as the reconcile flow would)."""
        paying = [p.case_id for p in planned if p.pay_at == self.k]
        with Session(self.engine.db) as s:
            keys: dict[int, str] = {
                case_id: key
                for case_id, key in s.execute(
                    select(Payout.case_id, Payout.idempotency_key).where(
                        col(Payout.case_id).in_(paying), col(Payout.status) == "ordered"
                    )
                ).all()
            }
        self.run(self.engine.fire_many(
            [FireItem(c, "record_payment", self.people.system(), {"external_ref": f"TR-SEED-{c}"},
                      request_key=f"paid:{keys[c]}")
             for c in paying if c in keys]
        ))  # fmt: skip


def _identity(p: Planned) -> str:
    party = p.data[p.kind.party]
    return str(party.get("uscc") or f"REG:{party.get('registration_no')}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _deliver_all(url: str, now: datetime, counts: SeededCounts) -> None:
    """Deliver every pending notice: e-mail to an SMTP sink, SMS to a gateway that is down."""
    sink = Sink()
    port = _free_port()
    smtp = Controller(sink, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        settings = Settings(
            database_url=url,
            smtp_host="127.0.0.1",
            smtp_port=port,
            sms_webhook_url=f"http://127.0.0.1:{_free_port()}/sms",  # nobody listens
            notice_retry_seconds=0,
        )
        db = make_engine(url)
        # only the notices of applicants with a channel: the others would only become
        # no_channel (each try costs a few transactions), and their attempts are what we want
        with Session(db) as s:
            ids = s.exec(
                select(Notice.id)
                .join(Case, col(Case.id) == col(Notice.case_id))
                .join(Applicant, col(Applicant.id) == col(Case.applicant_id))
                .where(
                    col(Notice.status) == "pending",
                    col(Notice.audience) == "applicant",
                    col(Applicant.email).is_not(None) | col(Applicant.phone).is_not(None),
                )
                .order_by(col(Notice.id))
            ).all()
        for notice_id in ids:
            deliver(db, notice_id or 0, settings, now)
        db.dispose()
    finally:
        smtp.stop()
    counts.deliveries += len(sink.messages)


def seed_district(url: str) -> SeededCounts:
    """Fill the (migrated, empty) database at `url` with the seeded district."""
    t0 = time.perf_counter()
    counts = SeededCounts(url=url)
    planned = plan_district()
    people = People(url)
    for k, now in enumerate(CLOCKS):
        engine = engine_with_notices(
            make_engine(url), settings=Settings(database_url=url), clock=Clock(now)
        )
        stage = Stage(engine, people, counts, k)
        try:
            for step in (stage.file, stage.review_and_confirm, stage.decide, stage.expire,
                         stage.pay):  # fmt: skip
                step(planned)
        finally:
            engine.db.dispose()
        if k in (2, 5):  # the outbox runs now and then: some notices wait for the next run
            _deliver_all(url, now, counts)
    people.db.dispose()
    counts.cases = len(planned) + counts.ex_officio
    for p in planned:
        counts.by_plan[p.plan] = counts.by_plan.get(p.plan, 0) + 1
        counts.by_type[p.data["type"]] = counts.by_type.get(p.data["type"], 0) + 1
    counts.seconds = time.perf_counter() - t0
    return counts


_BUILT: dict[Path, SeededCounts] = {}


def seeded_file(folder: Path) -> SeededCounts:
    """The seeded district in `folder`/seeded.db, built once per process and folder (tests
    share one: `tmp_path_factory.getbasetemp() / "seeded"`)."""
    folder = folder.resolve()
    if folder not in _BUILT:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "seeded.db"
        path.unlink(missing_ok=True)
        url = f"sqlite:///{path}"
        migrate(url)
        _BUILT[folder] = seed_district(url)
    return _BUILT[folder]


def seeded_copy(folder: Path, target: Path) -> str:
    """A copy of the seeded file (built in `folder` if need be) at `target`; its URL."""
    source = Path(seeded_file(folder).url.removeprefix("sqlite:///"))
    with closing(sqlite3.connect(source)) as conn:  # all in the main file, none in the WAL
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(source, target)
    return f"sqlite:///{target}"
