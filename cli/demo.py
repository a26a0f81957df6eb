"""`relief demo` — a realistic batch on a fresh SQLite file, every stage run through Prefect.

The batch (cli/data/demo_batch.json) holds every core type and four configured ones (a union-fee
refund paid out, a social-insurance deferral, a 中关村 referral, an out-of-scope arrears
complaint): grants, refusals, a chain with three stores, a building whose second application
finds its 1,000,000 cap used up, a loan case whose reviewer asks for more information, and
late or out-of-scope filings. The demo plays the people: bureaus decide as a careful reviewer
would (pass what the rules allow, fail what they refuse, with the rules' reasons), the
applicant answers the request for information, and the treasury pays every instruction. Each
stage is a real Prefect flow run.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import socket
from collections import Counter
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import func
from sqlmodel import Session, col, select

from base.civil_dates import SHANGHAI
from base.working_days import add_working_days
from models.settings import get_settings
from models.tables import Case, Incident, Notice, Payout, ReviewTask
from states.labels import state_zh
from states.rules import GRANTING, Decision

BATCH = Path(__file__).parent / "data" / "demo_batch.json"
LICENCES = Path(__file__).parent / "data" / "demo_licences.json"
DEMO_NOW = datetime(2023, 1, 6, 9, 30, tzinfo=SHANGHAI)  # after every filing in the batch

console = Console()


def _use_database(database: Path, smtp_port: int) -> None:
    """Point settings (and so every flow) at the demo database, clock and mail sink."""
    from states.edition import all_editions

    edition = all_editions()[-1]
    sections = {
        f"{b.code}.{s.code}": f"{s.code}@{b.code}.dongcheng.example"
        for b in edition.bureaus
        for s in b.sections
    }
    os.environ["RELIEF_DATABASE_URL"] = f"sqlite:///{database}"
    os.environ["RELIEF_NOW"] = DEMO_NOW.isoformat()
    os.environ["RELIEF_PAYMENT_DIR"] = str(database.parent / f"{database.stem}-payments")
    os.environ["RELIEF_SMTP_HOST"] = "127.0.0.1"
    os.environ["RELIEF_SMTP_PORT"] = str(smtp_port)
    os.environ["RELIEF_BUREAU_EMAILS"] = json.dumps(sections)
    get_settings.cache_clear()


class MailSink:
    """The demo's SMTP server on loopback (aiosmtpd): it keeps what it is sent."""

    def __init__(self) -> None:
        self.received = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received += 1
        return "250 2.0.0 Ok: queued"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_demo(database: Path) -> dict[str, Any]:
    """Build the demo database afresh, run every stage, print and return the summary."""
    from aiosmtpd.controller import Controller

    given, database = database, database.resolve()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    work = database.parent / f"{database.stem}-files"
    sink = MailSink()
    port = _free_port()
    mail = Controller(sink, hostname="127.0.0.1", port=port)
    mail.start()
    step_runs: list[str] = []
    try:
        summary = _run(database, work, port, step_runs)
    finally:
        mail.stop()
    summary["flow_runs"] = step_runs
    summary["mail_received"] = sink.received
    _print(summary)
    console.print(f"database: {database} · files: {work}")
    _print_next_commands(given, _showcase(database))
    return summary


def _showcase(database: Path) -> str:
    """A case worth opening: the first one paid (its notices run from 受理 to 拨付)."""
    from sqlalchemy import create_engine

    db = create_engine(f"sqlite:///{database}")
    try:
        with Session(db) as s:
            paid = s.exec(
                select(Case.case_no)
                .join(Payout, col(Payout.case_id) == col(Case.id))
                .where(col(Payout.status) == "paid")
                .order_by(col(Case.id))
            ).first()
            first = s.exec(select(Case.case_no).order_by(col(Case.id))).first()
    finally:
        db.dispose()
    return str(paid or first)


def _print_next_commands(database: Path, case_no: str) -> None:
    """The other commands read RELIEF_DATABASE_URL (default relief.db), not the demo's file."""
    target = shlex.quote(str(database))
    console.print("\nexplore the demo's cases (every command takes --database):")
    for command in ("status", "history", "notices"):
        console.print(f"  relief --database {target} {command} {case_no}", soft_wrap=True)


def _run(database: Path, work: Path, port: int, runs: list[str]) -> dict[str, Any]:
    """Every stage, each a Prefect flow run; `runs` collects their names."""
    import flows  # noqa: F401  (relief's Prefect defaults before Prefect loads)
    from flows.bureau_decisions import DecisionsParams, bureau_decisions_flow
    from flows.common import case_engine, heartbeats_off
    from flows.intake import IntakeParams, intake_flow
    from flows.licence_grant import LicenceGrantParams, licence_grant_flow
    from flows.outbox import OutboxParams, outbox_flow
    from flows.payout import PayoutParams, payout_flow
    from flows.reconcile import ReconcileParams, reconcile_flow
    from flows.sla import SlaParams, sla_flow

    _use_database(database, port)
    for folder in (work, Path(get_settings().payment_dir)):  # nothing from an earlier demo
        shutil.rmtree(folder, ignore_errors=True)
    work.mkdir()
    engine = case_engine()
    _make_accounts(engine)
    batch = json.loads(BATCH.read_text(encoding="utf-8"))
    applications = work / "applications.json"
    applications.write_text(
        json.dumps([_paper(n, item["application"]) for n, item in enumerate(batch, 1)],
                   ensure_ascii=False),
        encoding="utf-8",
    )  # fmt: skip

    def step(label: str, call: Any) -> Any:
        with console.status(f"flow {label} …"):
            result = call()
        runs.append(label)
        console.print(f"[green]✓[/green] {label}: {_brief(result)}")
        return result

    with heartbeats_off():
        step(
            "intake",
            lambda: intake_flow(IntakeParams(file=applications, batch_id="demo", account=OPS)),
        )
        step("licence-grant", lambda: licence_grant_flow(LicenceGrantParams(file=LICENCES)))
        soon = datetime.combine(
            add_working_days(DEMO_NOW.date(), engine.settings.review_due_working_days - 1),
            DEMO_NOW.timetz(),
        )
        step("sla-sweep", lambda: sla_flow(SlaParams(now=soon)))
        _more_information(engine)
        refused: list[tuple[str, dict[str, Any]]] = []
        for n, kind in enumerate(("review", "confirm", "decide"), start=1):
            # what each reviewer writes in their spreadsheet once the last round is in
            for account, rows in sorted(_rows(engine, kind).items()):
                path = work / f"decisions-{n}-{account}.json"
                path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
                result = step(
                    f"bureau-decisions #{n} {account}",
                    lambda p=path, n=n, a=account: bureau_decisions_flow(
                        DecisionsParams(file=p, batch_id=f"demo-decisions-{n}-{a}", account=a)
                    ),
                )
                refused += [(account, r) for r in result.refused]
        # an approval the engine refused (a cap used up): the same decider rejects, giving the
        # applicant the reason in the policy's terms (never the engine's message)
        by_decider: dict[str, list[dict[str, Any]]] = {}
        for account, r in refused:
            by_decider.setdefault(account, []).append(
                {"case_no": r["case_no"], "action": "reject", "reason": CAP_USED_UP}
            )
        for account, rows in sorted(by_decider.items()):
            path = work / f"decisions-4-{account}.json"
            path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
            step(
                f"bureau-decisions #4 {account}",
                lambda p=path, a=account: bureau_decisions_flow(
                    DecisionsParams(file=p, batch_id=f"demo-decisions-4-{a}", account=a)
                ),
            )
        step("payout", lambda: payout_flow(PayoutParams(adapter="file")))
        reconciliation = _play_treasury(engine, work)
        step("reconcile", lambda: reconcile_flow(ReconcileParams(file=reconciliation)))
        step("outbox", lambda: outbox_flow(OutboxParams()))
    return summarise(engine.db)


OPS = "demo-ops"  # the operator who enters the paper applications
CAP_USED_UP = "该园区或楼宇的补贴封顶额度已全部用完，无可准予的金额"


def _reviewer(unit: str, n: int) -> str:
    """The demo's reviewers: two per section (the second decides: separation of duties)."""
    return f"{unit}.{n}"


def _make_accounts(engine: Any) -> None:
    """An operator and two reviewers per bureau section."""
    from api.security import create_account
    from states.edition import all_editions

    now = engine.clock.now()
    create_account(engine.db, username=OPS, role="operator", now=now, display_name="收件窗口")
    for bureau in all_editions()[-1].bureaus:
        units = [(f"{bureau.code}.{s.code}", s.code, s.name) for s in bureau.sections] or [
            (bureau.code, "", bureau.name)  # a bureau deciding as a whole (区政府)
        ]
        for unit, section, name in units:
            for n in (1, 2):
                create_account(
                    engine.db, username=_reviewer(unit, n), role="reviewer", now=now,
                    bureau=bureau.code, section=section, display_name=f"{name}审核人{n}",
                )  # fmt: skip


def _paper(n: int, application: dict[str, Any]) -> dict[str, Any]:
    """A paper application received on its date at the counter, entered now (补录)."""
    received = application.get("application_date")
    if not received:
        return application
    return {
        **application,
        "receipt": {
            "received_at": received,
            "reason": "窗口收取的纸质申请，集中录入",
            "evidence": f"东城区政务服务中心收件登记第{n:04d}号",
        },
    }


def _more_information(engine: Any) -> None:
    """The loan reviewer asks for the interest certificate; the applicant supplies it."""
    with Session(engine.db) as s:
        loan = s.exec(
            select(Case)
            .where(col(Case.case_type) == "loan_subsidy", col(Case.state) == "under_review")
            .order_by(col(Case.id))
        ).first()
        task = (
            s.exec(
                select(ReviewTask).where(
                    col(ReviewTask.case_id) == loan.id, col(ReviewTask.kind) == "review"
                )
            ).first()
            if loan is not None
            else None
        )
    if loan is None or loan.id is None or task is None:
        return
    reviewer = engine.actor(_reviewer(f"{task.bureau_code}.{task.section_code}", 1))
    engine.fire(
        loan.id,
        "request_info",
        actor=reviewer,
        payload={"items": ["2022年贷款利息支付凭证（银行盖章）"]},
        request_key=f"demo:info:{loan.id}",
    )
    from api.security import create_account

    uscc = loan.facts["applicant"]["uscc"]
    create_account(  # the applicant signs up to answer online
        engine.db, username=f"applicant-{uscc}", role="applicant", now=engine.clock.now(),
        uscc=uscc,
    )  # fmt: skip
    applicant = engine.actor(f"applicant-{uscc}")
    engine.fire(
        loan.id,
        "supply_info",
        actor=applicant,
        payload={"facts": {"eligible_interest": loan.facts.get("eligible_interest", "0")}},
        request_key=f"demo:supplied:{loan.id}",
    )


def _rows(engine: Any, kind: str) -> dict[str, list[dict[str, Any]]]:
    """What each reviewer would write for their section's open tasks of one kind, from the
    rules' reasons: the first reviewer of a section reviews, the second confirms and decides."""
    rows: dict[str, list[dict[str, Any]]] = {}
    with Session(engine.db) as s:
        tasks = s.exec(
            select(ReviewTask)
            .where(col(ReviewTask.kind) == kind, col(ReviewTask.status) == "open")
            .order_by(col(ReviewTask.id))
        ).all()
        for t in tasks:
            case = s.get(Case, t.case_id)
            assert case is not None
            allowed = Decision(case.decision) in GRANTING
            reasons = "；".join(
                c["reason_zh"] for c in case.assessment["checks"] if not c["passed"]
            )
            unit = f"{t.bureau_code}.{t.section_code}" if t.section_code else t.bureau_code
            account = _reviewer(unit, 1 if kind == "review" else 2)
            row: dict[str, Any] = {"case_no": case.case_no, "unit": unit}
            if kind == "review":
                row.update(
                    action="review_pass" if allowed else "review_fail", reason=reasons or None
                )
            elif kind == "confirm":
                row.update(action="confirm")
            else:
                row.update(
                    action="approve" if allowed else "reject", reason=None if allowed else reasons
                )
            rows.setdefault(account, []).append(row)
    return rows


def _play_treasury(engine: Any, work: Path) -> Path:
    """The treasury pays every instruction it was sent and returns a reconciliation file."""
    folder = Path(engine.settings.payment_dir)
    out = work / "reconciliation.csv"
    with out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["idempotency_key", "status", "reference"])
        for path in sorted(folder.glob("*.csv")):
            with path.open(encoding="utf-8") as src:
                for row in csv.DictReader(src):
                    key = row["idempotency_key"]
                    writer.writerow([key, "paid", f"GK-{key.split(':')[-1]}"])
    return out


def summarise(db: Any) -> dict[str, Any]:
    """Cases by state, money and notices, straight from the database."""
    with Session(db) as s:
        states = Counter(s.exec(select(Case.state)).all())
        granted = [g for g in s.exec(select(Case.amount_granted)).all() if g is not None]
        payouts = s.exec(select(Payout)).all()
        notices = s.exec(select(func.count()).select_from(Notice)).one()
        delivered = s.exec(
            select(func.count()).select_from(Notice).where(col(Notice.status) == "delivered")
        ).one()
        incidents = s.exec(select(func.count()).select_from(Incident)).one()
    zero = Decimal("0.00")
    return {
        "cases": sum(states.values()),
        "by_state": dict(states),
        "granted": sum(granted, zero),
        "payout_ordered": sum((p.amount for p in payouts), zero),
        "paid": sum((p.amount for p in payouts if p.status == "paid"), zero),
        "payouts_paid": sum(1 for p in payouts if p.status == "paid"),
        "notices": int(notices),
        "delivered": int(delivered),
        "incidents": int(incidents),
    }


def _brief(result: Any) -> str:
    data = result.model_dump(mode="json") if hasattr(result, "model_dump") else result
    return ", ".join(f"{k}={v}" for k, v in data.items() if v not in (0, [], {}, None, ""))


def _print(summary: dict[str, Any]) -> None:
    table = Table(title="relief demo — cases by state")
    table.add_column("state")
    table.add_column("状态")
    table.add_column("cases", justify="right")
    for state, n in sorted(summary["by_state"].items()):
        table.add_row(state, state_zh(state), str(n))
    console.print(table)
    console.print(
        f"cases {summary['cases']} · granted {summary['granted']} 元 · "
        f"payouts ordered {summary['payout_ordered']} 元, paid {summary['paid']} 元 "
        f"({summary['payouts_paid']} payments) · notices {summary['notices']}, "
        f"delivered {summary['delivered']} (mail sink received {summary['mail_received']}) · "
        f"incidents {summary['incidents']} · flow runs {len(summary['flow_runs'])}"
    )
