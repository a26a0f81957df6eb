"""The `relief` command: estimate, submit, status, history, review, fire, registers, demo."""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import typer
from typer.core import TyperGroup

from cli import help_format, render
from cli.backup_commands import backup_command, restore_command
from cli.bpmn_command import bpmn_command
from cli.cluster_commands import deploy, worker
from cli.diagram_command import diagram_command
from cli.edition_commands import edition_app
from cli.flow_commands import flow_app
from cli.incident_commands import incident_app
from cli.report_commands import audit_export, report
from models.settings import get_settings
from states.labels import DECISION_ZH, state_zh

if TYPE_CHECKING:
    from sqlalchemy import Engine, Row

    from base.clock import Clock
    from models.input_errors import FieldError
    from states.actors import Actor
    from states.engine import CaseEngine
    from states.errors import EngineError
    from states.rules import Prior7Entry

# Each command imports what it needs in its own body: `relief status` must start in well under
# a second, and the engine, the ORM, pydantic's application models, Alembic and Jinja each cost
# a tenth of a second or more to import (docs/benchmarks.md, "Starting the command line").

T = TypeVar("T")
EXIT_INVALID = 2
EXIT_REFUSED = 3
EXIT_UNAVAILABLE = 4  # the database out of reach: nothing saved; run the same command again


def _unavailable(exc: BaseException) -> Any:
    """Print why the database could not be used, and end with EXIT_UNAVAILABLE."""
    from states.errors import DatabaseUnavailable, database_unavailable

    if not isinstance(exc, DatabaseUnavailable):
        exc = database_unavailable(getattr(exc, "orig", exc))
    render.line(f"{exc.message_zh}  ({exc.message_en})", style="red", out=render.err_console)
    raise typer.Exit(EXIT_UNAVAILABLE)


class _ReliefGroup(TyperGroup):
    """The root command: whichever command meets a database out of reach (the engine's
    DatabaseUnavailable, or a read outside it) ends with the message and exit 4, no trace."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            from states.errors import DatabaseUnavailable, connection_lost

            if isinstance(exc, DatabaseUnavailable) or connection_lost(exc):
                return _unavailable(exc)
            raise


app = typer.Typer(
    cls=_ReliefGroup,
    help="relief — 东政发〔2022〕8号 助企纾困政策办理系统",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},  # inherited by every command
)
assert help_format  # imported for its effect: help without typer's type noise
register_app = typer.Typer(help="Registers the rules read (东政办发〔2022〕7号).")
db_app = typer.Typer(help="The application database.")
app.add_typer(register_app, name="register")
app.add_typer(db_app, name="db")
app.add_typer(flow_app, name="flow")
account_app = typer.Typer(help="Accounts: operators, reviewers, applicants.", no_args_is_help=True)
app.add_typer(account_app, name="account")
app.add_typer(edition_app, name="edition")
app.add_typer(incident_app, name="incident")
app.command("diagram")(diagram_command)
app.command()(deploy)
app.command()(worker)
app.command("bpmn")(bpmn_command)
app.command()(report)
app.command("audit-export")(audit_export)
app.command("backup")(backup_command)
app.command("restore")(restore_command)

AsAccount = Annotated[
    str,
    typer.Option(
        "--as",
        envvar="RELIEF_AS",
        help="the account you act as (must exist: relief account create); or RELIEF_AS",
    ),
]


DEMO_CASE = "DC-2022-000001"  # the first case `relief demo` files


def database_url(database: str) -> str:
    """`--database`: a URL is used as is; anything else is the path of a SQLite file."""
    if "://" in database:
        return database
    return f"sqlite:///{Path(database).expanduser().resolve()}"


def _version(show: bool) -> None:
    if show:
        from importlib.metadata import version

        typer.echo(f"relief {version('relief')}")
        raise typer.Exit()


@app.callback()
def main(
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            metavar="PATH|URL",
            help="the application database for this command: a SQLite file's path, or a URL "
            "(postgresql+psycopg://…); the same as RELIEF_DATABASE_URL",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """relief — 东政发〔2022〕8号 助企纾困政策办理系统"""
    if database:
        # the environment, not only this process's settings: flow runs and servers started
        # from here read it too
        os.environ["RELIEF_DATABASE_URL"] = database_url(database)
        get_settings.cache_clear()


def _clock() -> Clock:
    from base.clock import Clock

    return Clock(get_settings().now)


def _database(*, read_only: bool = False) -> Engine:
    """The configured database. A SQLite file sets itself up, except for a command that only
    reads: a missing file is then an error, not a new empty database."""
    from models.db import engine_for, migrate

    url = get_settings().database_url
    if url.startswith("sqlite"):
        if read_only:
            _require_sqlite_file(url)
        migrate(url)  # the embedded default sets itself up (one read when it is current)
    return engine_for(url)


def _engine(*, read_only: bool = False) -> CaseEngine:
    """The engine, with notices, on the configured database."""
    from notifications.issuer import engine_with_notices

    db = _database(read_only=read_only)
    return engine_with_notices(db, settings=get_settings(), clock=_clock())


def _actor(engine: CaseEngine, username: str) -> Actor:
    """The named account as the engine's actor; an unknown one is refused (exit 3)."""
    from states.errors import EngineError

    try:
        return engine.actor(username)
    except EngineError as exc:
        _fail_engine(exc)
        raise


def _require_sqlite_file(url: str) -> None:
    from sqlalchemy.engine import make_url

    path = make_url(url).database
    if not path or path == ":memory:" or Path(path).exists():
        return
    err = render.err_console
    err.print(
        f"[red]数据库文件不存在：{Path(path).resolve()}[/red]\n"
        "(no such database file; nothing was created). Name the database with "
        "--database PATH|URL or RELIEF_DATABASE_URL; `relief demo` writes relief-demo.db:",
        highlight=False,
    )
    err.print(f"relief --database relief-demo.db status {DEMO_CASE}", soft_wrap=True)
    raise typer.Exit(EXIT_INVALID)


def _read_json(source: str) -> Any:
    """Read JSON from a file or '-' (stdin); a syntax error is an input error, exit 2."""
    from models.input_errors import FieldError

    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        _fail_input(
            [FieldError("FILE", "file.unreadable", f"无法读取文件：{exc.strerror}", str(exc))]
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        _fail_input(
            [
                FieldError(
                    "FILE",
                    "json.syntax",
                    f"不是有效的JSON（第{exc.lineno}行第{exc.colno}列）：{exc.msg}",
                    f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
                )
            ]
        )


def _fail_input(errors: list[FieldError], *, as_json: bool = False) -> Any:
    if as_json:
        typer.echo(
            json.dumps(
                {"ok": False, "errors": [e.as_dict() for e in errors]}, ensure_ascii=False, indent=2
            )
        )
    else:
        render.field_errors(errors)
    raise typer.Exit(EXIT_INVALID)


def _fail_engine(exc: EngineError, *, as_json: bool = False) -> Any:
    if as_json:
        typer.echo(json.dumps({"ok": False, **exc.as_dict()}, ensure_ascii=False, indent=2))
    else:
        render.line(f"{exc.message_zh}  ({exc.message_en})", style="red", out=render.err_console)
    unavailable = exc.code == "database_unavailable"  # not a refusal: the same command later
    raise typer.Exit(EXIT_UNAVAILABLE if unavailable else EXIT_REFUSED)


@app.command()
def estimate(
    file: Annotated[str, typer.Argument(help="application JSON file, or - for stdin")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    register_7: Annotated[
        Path | None, typer.Option("--register-7", help="7号 register CSV to check against")
    ] = None,
) -> None:
    """退税减税概算器式估算: facts in; eligibility, amount, every check and routing out."""
    from models.input_errors import InvalidApplication, parse_application
    from states.catalog import assess

    data = _read_json(file)
    today = _clock().today()
    try:
        application = parse_application(data, today=today)
    except InvalidApplication as exc:
        _fail_input(exc.errors, as_json=as_json)
        return
    register = _read_register(register_7) if register_7 else []
    filed_on = application.application_date or today
    results = assess(application, filed_on=filed_on, register=register)
    total = sum((r.amount for r in results), start=results[0].amount * 0)
    decisions = {r.decision for r in results}
    overall = results[0].decision.value if len(decisions) == 1 else "mixed"
    if as_json:
        out = {
            "ok": True,
            "type": str(application.type),
            "filed_on": filed_on.isoformat(),
            "decision": overall,
            "total": str(total),
            "cases": [r.as_dict() for r in results],
        }
        typer.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    for i, r in enumerate(results, 1):
        render.assessment(r, index=i if len(results) > 1 else None)
    if len(results) > 1:
        render.console.print(
            f"合计 total: [bold]{total}[/bold] 元（{len(results)}个案件，以门店为单位）"
        )


@app.command()
def schema(case_type: Annotated[str, typer.Argument(help="application type")]) -> None:
    """Print the JSON schema of one application type."""
    from models.input_errors import FieldError
    from states.catalog import catalog, json_schema

    if case_type not in catalog():
        choices = ", ".join(catalog())
        _fail_input(
            [
                FieldError(
                    "TYPE",
                    "type.unknown",
                    f"未知的申请类型，可选：{choices}",
                    f"choose one of {choices}",
                )
            ]
        )
        return
    typer.echo(json.dumps(json_schema(case_type), ensure_ascii=False, indent=2))


@app.command()
def submit(
    file: Annotated[str, typer.Argument(help="application JSON file, or - for stdin")],
    account: AsAccount,
    request_key: Annotated[
        str | None, typer.Option(help="idempotency key: a repeat does nothing")
    ] = None,
    received_at: Annotated[
        str | None,
        typer.Option(help="补录: when the paper application was received (YYYY-MM-DD or ISO)"),
    ] = None,
    reason: Annotated[str | None, typer.Option(help="补录: why it is entered late")] = None,
    evidence: Annotated[
        str | None, typer.Option(help="补录: the receipt's reference (收件登记号, 邮件回执号)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """File an application (filed now); prints the case number(s) and where each case stands.

    An intake officer or operator entering a paper application received earlier gives
    --received-at, --reason and --evidence (补录).
    """
    from base.identifiers import bounded_key
    from models.input_errors import InvalidApplication
    from models.receipts import parse_receipt
    from states.errors import EngineError

    data = _read_json(file)
    engine = _engine()
    actor = _actor(engine, account)
    try:
        receipt = None
        if received_at or reason or evidence:
            receipt = parse_receipt(
                {"received_at": received_at, "reason": reason, "evidence": evidence},
                now=engine.clock.now(),
            )
        key = bounded_key(actor.username, request_key) if request_key else None  # yours alone
        results = engine.submit(data, actor=actor, request_key=key, receipt=receipt)
    except InvalidApplication as exc:
        _fail_input(exc.errors, as_json=as_json)
        return
    except EngineError as exc:
        _fail_engine(exc, as_json=as_json)
        return
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in results], ensure_ascii=False, indent=2))
        return
    for r in results:
        note = "（重复提交，返回原案件）" if r.replayed else ""
        render.console.print(f"{r.case_no}: {state_zh(r.state)} ({r.state}){note}")


def _find_case(db: Engine, ref: str) -> Row[Any]:
    from models.case_reads import find_case

    row = find_case(db, ref)
    if row is None:
        render.err_console.print(f"[red]案件“{ref}”不存在[/red] (no such case)")
        raise typer.Exit(EXIT_INVALID)
    return row


@app.command()
def status(
    case: Annotated[str, typer.Argument(help="case number (DC-2022-000001) or id")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Where a case stands: state, decision, amounts, open tasks."""
    from models.case_reads import case_tasks

    db = _database(read_only=True)
    c = _find_case(db, case)
    tasks = case_tasks(db, c.id)
    info = {
        "case_no": c.case_no,
        "type": c.case_type,
        "state": c.state,
        "state_zh": state_zh(c.state),
        "version": c.version,
        "decision": c.decision,
        "amount_ceiling": str(c.amount_ceiling),
        "amount_granted": None if c.amount_granted is None else str(c.amount_granted),
        "filed_on": c.filed_on.isoformat(),
        "edition": c.edition_id,
        "manual_review": c.manual_review,
        "tasks": [
            {
                "id": t.id,
                "kind": t.kind,
                "unit": t.unit,
                "status": t.status,
                "due_on": t.due_on.isoformat() if t.due_on else None,
                "decision": t.decision,
            }
            for t in tasks
        ],
    }
    if as_json:
        typer.echo(json.dumps(info, ensure_ascii=False, indent=2))
        return
    render.console.print(
        f"{c.case_no} · {c.case_type} · [bold]{state_zh(c.state)}[/bold] ({c.state})"
        f" · 版本 v{c.version}\n"
        f"规则结论: {DECISION_ZH.get(c.decision, c.decision)}"
        f" · 上限 {c.amount_ceiling} 元"
        + (f" · 决定金额 {c.amount_granted} 元" if c.amount_granted is not None else "")
    )
    for t in info["tasks"]:
        render.console.print(
            f"  任务 {t['id']}: {t['kind']} · {t['unit']} · {t['status']} · 期限 {t['due_on']}"
        )


@app.command()
def history(case: Annotated[str, typer.Argument(help="case number or id")]) -> None:
    """The append-only event log of a case."""
    from models.case_reads import case_events

    db = _database(read_only=True)
    render.events(list(case_events(db, _find_case(db, case).id)))


@app.command()
def notices(
    case: Annotated[str, typer.Argument(help="case number or id")],
    show: Annotated[int | None, typer.Option(help="print the full text of this notice id")] = None,
) -> None:
    """A case's notices (document number, delivery status) and every delivery attempt."""
    from sqlalchemy import select
    from sqlmodel import Session

    from models.tables import Notice, NoticeDelivery

    db = _database(read_only=True)
    c = _find_case(db, case)
    with Session(db) as s:
        rows = (
            s.execute(select(Notice).where(Notice.case_id == c.id).order_by(Notice.id))
            .scalars()
            .all()
        )
        deliveries = {
            n.id: s.execute(
                select(NoticeDelivery)
                .where(NoticeDelivery.notice_id == n.id)
                .order_by(NoticeDelivery.id)
            )
            .scalars()
            .all()
            for n in rows
        }
    rows_out = []
    for n in rows:
        history = "; ".join(
            f"#{d.attempt_no} {d.channel} {d.status} {d.at:%m-%d %H:%M} {d.receipt}"
            for d in deliveries[n.id]
        )
        rows_out.append(
            [
                str(n.id),
                n.title,
                n.doc_number or "",
                n.recipient,
                n.status,
                str(n.attempts),
                history,
            ]
        )
    render.table(
        f"{c.case_no} 通知书 notices",
        ("id", "文书 title", "文号 number", "to", "status", "attempts", "送达记录 deliveries"),
        rows_out,
    )
    if show is not None:
        chosen = next((n for n in rows if n.id == show), None)
        if chosen is None:
            render.err_console.print(f"[red]通知书{show}不属于该案件[/red]")
            raise typer.Exit(EXIT_INVALID)
        render.console.print(chosen.body_text, markup=False)


@app.command()
def review(
    task_id: Annotated[int, typer.Argument(help="review task id")],
    decision: Annotated[str, typer.Argument(help="pass or fail")],
    account: AsAccount,
    reason: Annotated[str | None, typer.Option(help="reason (required for fail)")] = None,
) -> None:
    """Record your section's review decision on its task."""
    from states.errors import EngineError

    engine = _engine()
    actor = _actor(engine, account)
    try:
        r = engine.decide_task(task_id, decision=decision, actor=actor, reason=reason)
    except EngineError as exc:
        _fail_engine(exc)
        return
    render.console.print(f"{r.case_no}: {state_zh(r.state)} ({r.state})")


@app.command()
def fire(
    case: Annotated[str, typer.Argument(help="case number or id")],
    trigger: Annotated[str, typer.Argument(help="approve, reject, confirm, request_info, …")],
    account: AsAccount,
    payload: Annotated[
        str | None, typer.Option(help='JSON payload, e.g. \'{"reason": "…"}\'')
    ] = None,
    version: Annotated[
        int | None, typer.Option(help="the version you saw (conflict check)")
    ] = None,
) -> None:
    """Fire a trigger on a case through the engine, as your account."""
    from models.input_errors import FieldError

    engine = _engine()
    actor = _actor(engine, account)
    case_id = _find_case(engine.db, case).id
    body = {}
    if payload:
        try:
            body = json.loads(payload)
        except json.JSONDecodeError as exc:
            _fail_input(
                [FieldError("--payload", "json.syntax", f"不是有效的JSON：{exc.msg}", exc.msg)]
            )
    r = _engine_step(
        lambda: engine.fire(case_id, trigger, actor=actor, payload=body, expected_version=version)
    )
    render.console.print(f"{r.case_no}: {state_zh(r.state)} ({r.state}) v{r.version}")


def _engine_step(step: Callable[[], T]) -> T:
    """Run one engine operation; bad input and refused steps end the command with their
    message (exit 2 and 3), never a stack trace."""
    from models.input_errors import InvalidApplication
    from states.errors import EngineError

    try:
        return step()
    except InvalidApplication as exc:
        return cast(T, _fail_input(exc.errors))
    except EngineError as exc:
        return cast(T, _fail_engine(exc))


def _read_register(path: Path) -> list[Prior7Entry]:
    """7号 register CSV: subject,family,object_id,period_from,period_to (header row)."""
    from models.input_errors import FieldError
    from states.rules import Prior7Entry

    out: list[Prior7Entry] = []
    errors: list[FieldError] = []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for n, row in enumerate(csv.DictReader(fh), start=2):
            try:
                out.append(
                    Prior7Entry(
                        subject=row["subject"].strip(),
                        family=row["family"].strip(),
                        object_id=(row.get("object_id") or "").strip() or None,
                        period_from=date.fromisoformat(row["period_from"].strip()),
                        period_to=date.fromisoformat(row["period_to"].strip()),
                    )
                )
            except (KeyError, ValueError, AttributeError) as exc:
                errors.append(
                    FieldError(f"第{n}行", "register.row", f"登记行无效：{exc}", str(exc))
                )
    if errors:
        _fail_input(errors)
    return out


@register_app.command("import-7")
def import_7(
    path: Annotated[
        Path, typer.Argument(help="CSV: subject,family,object_id,period_from,period_to")
    ],
) -> None:
    """Import the register of benefits granted under 东政办发〔2022〕7号."""
    entries = _read_register(path)
    added = _engine().import_prior7(entries, note=path.name)
    render.console.print(f"导入{added}条（共{len(entries)}条，重复的已跳过）")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Run the Alembic migrations on RELIEF_DATABASE_URL."""
    from models.db import migrate

    migrate(get_settings().database_url)
    render.console.print("数据库已是最新结构 (schema at head)")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to bind (loopback by default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="API and pages port")] = 8000,
    flows: Annotated[bool, typer.Option(help="also run the scheduled flows")] = True,
    workers: Annotated[
        int, typer.Option(help="API processes (with --no-flows; several machines)", min=1)
    ] = 1,
) -> None:
    """Serve the API and pages, and run the scheduled flows (outbox, SLA, payouts)."""
    import uvicorn

    import flows as flows_pkg  # noqa: F401  (Prefect, if a request needs it, keeps our logs)
    from flows.serve import serve as serve_all
    from flows.serve import server_options

    if workers > 1 and flows:
        render.console.print("[red]--workers needs --no-flows (see docs/deploy.md)[/red]")
        raise typer.Exit(2)
    if not flows:  # the API alone (one process or several)
        uvicorn.run("api.main:create_app", **server_options(host, port, workers))
        return
    serve_all(host, port)


@account_app.command("create")
def account_create(
    username: Annotated[str, typer.Argument(help="login name")],
    role: Annotated[str, typer.Option(help="operator, reviewer, intake_officer or applicant")],
    bureau: Annotated[str | None, typer.Option(help="reviewer: bureau code, e.g. samr")] = None,
    section: Annotated[str | None, typer.Option(help="reviewer: section code, e.g. credit")] = None,
    uscc: Annotated[str | None, typer.Option(help="applicant: the USCC it acts for")] = None,
    password: Annotated[str | None, typer.Option(help="password for the web pages")] = None,
    name: Annotated[str, typer.Option(help="display name")] = "",
    section_head: Annotated[
        bool, typer.Option(help="reviewer or intake officer: the section's head (may reassign)")
    ] = False,
) -> None:
    """Create an account; prints its API token once (stored only as a hash)."""
    from api.security import create_account
    from models.input_errors import FieldError
    from states.edition import all_editions

    if role in ("reviewer", "intake_officer") and bureau:
        edition = all_editions()[-1]
        try:
            edition.section(f"{bureau}.{section}" if section else bureau)
        except KeyError as exc:
            _fail_input(
                [
                    FieldError(
                        "--bureau/--section", "unit.unknown", f"没有该单位或科室：{exc}", str(exc)
                    )
                ]
            )
    engine = _engine()
    try:
        created, token = create_account(
            engine.db,
            username=username,
            role=role,
            now=engine.clock.now(),
            display_name=name,
            bureau=bureau,
            section=section,
            uscc=uscc,
            password=password,
            section_head=section_head,
        )
    except ValueError as exc:
        _fail_input([FieldError("account", "account.invalid", f"无法创建账户：{exc}", str(exc))])
        return
    render.console.print(
        f"账户 {created.username}（{created.role}）已创建。API 令牌（只显示这一次）："
    )
    typer.echo(token)


lock_app = typer.Typer(
    help="Sign-in, token and lookup locks after repeated failures.", no_args_is_help=True
)
app.add_typer(lock_app, name="lock")


@lock_app.command("list")
def lock_list() -> None:
    """What is locked now: accounts, client addresses, cases' public lookups."""
    from api import throttle

    engine = _engine()
    table = render.Table(title="锁定 locks")
    for name in ("类别 scope", "对象 key", "失败 failures", "锁定 locked at", "至 until"):
        table.add_column(name, overflow="fold")
    for r in throttle.current_locks(engine.db, engine.clock.now()):
        table.add_row(
            throttle.SCOPE_ZH.get(r.scope, r.scope) + f" ({r.scope})",
            r.key,
            str(r.failures),
            f"{r.locked_at:%Y-%m-%d %H:%M}" if r.locked_at else "",
            f"{r.locked_until:%Y-%m-%d %H:%M}" if r.locked_until else "须人工解锁 until lifted",
        )
    render.console.print(table)


@lock_app.command("lift")
def lock_lift(
    scope: Annotated[str, typer.Argument(help="login_account, login_address, status_case, …")],
    key: Annotated[str, typer.Argument(help="the account name, address or case number")],
    account: AsAccount,
) -> None:
    """Lift a lock (an operator's act); the failure count starts afresh."""
    from api import throttle
    from states.errors import EngineError

    engine = _engine()
    actor = _actor(engine, account)
    if actor.role.value != "operator":
        _fail_engine(EngineError("只有运营人员可以解除锁定", "only an operator may lift a lock"))
    if not throttle.lift(engine.db, scope, key, by=actor.username, now=engine.clock.now()):
        render.err_console.print(f"[red]没有该锁定：{scope} {key}[/red] (no such lock)")
        raise typer.Exit(EXIT_INVALID)
    render.console.print(f"已解除锁定 lifted: {scope} {key}")


@app.command()
def demo(
    database: Annotated[Path, typer.Option(help="SQLite file to create afresh")] = Path(
        "relief-demo.db"
    ),
) -> None:
    """Walkthrough on a fresh SQLite file: a realistic batch taken to its decisions."""
    from cli.demo import run_demo

    run_demo(database)


if __name__ == "__main__":
    app()
