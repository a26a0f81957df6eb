"""`relief report` and `relief audit-export` — what the casework adds up to, and its trail.

Both only read. A bad parameter is refused before anything is read, naming the option and the
rule it broke (exit 2, nothing written); a file named by --out is written whole or not at
all (a temporary file beside it, renamed when complete).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from models.input_errors import FieldError
    from reports.measures import Report

T = TypeVar("T")

SUFFIX_FORMATS = {".csv": "csv", ".xlsx": "xlsx", ".json": "json", ".jsonl": "jsonl"}
First = Annotated[str | None, typer.Option("--from", metavar="YYYY-MM", help="first month")]
Last = Annotated[str | None, typer.Option("--to", metavar="YYYY-MM", help="last month")]
Measure = Annotated[
    str | None, typer.Option("--measure", metavar="M", help="one measure: its number (3)")
]
Out = Annotated[
    Path | None, typer.Option("--out", metavar="FILE", help="write to FILE (default: stdout)")
]


def report(
    first: First = None,
    last: Last = None,
    measure: Measure = None,
    bureau: Annotated[
        str | None, typer.Option("--bureau", metavar="CODE", help="one deciding bureau (samr)")
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            metavar="table|csv|xlsx|json",
            help="default: from --out's suffix, else table",
        ),
    ] = None,
    out: Out = None,
) -> None:
    """Per measure, deciding bureau and month: applications, decisions, money granted, ordered
    and paid, days to decision (docs/reports.md defines every column). Default: this month."""
    from cli.main import _clock
    from reports.query import REPORT_FORMATS, QueryRefused, gather, parse_format, report_query

    try:
        chosen, query = gather(
            lambda: parse_format(fmt or _from_suffix(out) or "table", REPORT_FORMATS),
            lambda: report_query(first=first, last=last, measure=measure, bureau=bureau,
                                 today=_clock().today()),
        )  # fmt: skip
        _check_out(out, chosen, binary=chosen == "xlsx")
    except QueryRefused as exc:
        _refuse(exc.errors)
    from reports import exports
    from reports.measures import measure_report

    result = _run(lambda db: measure_report(db, query))

    if chosen == "table":
        _table(result)
    elif chosen == "xlsx":
        _emit(out, [exports.report_xlsx(result)])
    elif chosen == "csv":
        _emit(out, exports.report_csv(result))
    else:
        _emit(out, [exports.report_json(result) + "\n"])


def audit_export(
    case: Annotated[
        str | None, typer.Option("--case", metavar="NO", help="one case (DC-2022-000001)")
    ] = None,
    first: Annotated[
        str | None, typer.Option("--from", metavar="YYYY-MM-DD", help="first day (with --to)")
    ] = None,
    last: Annotated[
        str | None, typer.Option("--to", metavar="YYYY-MM-DD", help="last day (with --from)")
    ] = None,
    measure: Measure = None,
    fmt: Annotated[
        str | None, typer.Option("--format", metavar="jsonl|csv", help="default: jsonl")
    ] = None,
    out: Out = None,
) -> None:
    """Every event, notice (document number, content hash) and delivery attempt (receipt) of
    one case, of a date range, or of a measure (optionally within a range), streamed."""
    from reports.query import AUDIT_FORMATS, QueryRefused, audit_query, gather, parse_format

    try:
        chosen, query = gather(
            lambda: parse_format(fmt or _from_suffix(out) or "jsonl", AUDIT_FORMATS),
            lambda: audit_query(case=case, first=first, last=last, measure=measure),
        )
        _check_out(out, chosen, binary=False)
    except QueryRefused as exc:
        _refuse(exc.errors)
    from reports import audit

    def export(db: Engine) -> None:
        audit.check_case(db, query)  # an unknown case is refused before any output
        records = audit.audit_records(db, query)
        _emit(out, audit.jsonl_lines(records) if chosen == "jsonl" else audit.csv_export(records))

    _run(export)


# ---------------------------------------------------------------- helpers
def _from_suffix(out: Path | None) -> str | None:
    return SUFFIX_FORMATS.get(out.suffix.lower()) if out else None


def _check_out(out: Path | None, chosen: str, *, binary: bool) -> None:
    from reports.query import refuse

    if chosen == "table" and out is not None:
        raise refuse("out", "out.table", "表格只显示在屏幕上；写入文件请选csv、xlsx或json格式",
                     "a table is for the screen: choose csv, xlsx or json for --out")  # fmt: skip
    if out is None:
        if binary and sys.stdout.isatty():
            raise refuse("out", "out.required", "xlsx 是二进制文件，须用 --out 指定文件名",
                         "xlsx is binary: name a file with --out")  # fmt: skip
        return
    if out.is_dir():
        raise refuse("out", "out.directory", f"“{out}”是目录，须指定文件名",
                     f"{out} is a directory, not a file")  # fmt: skip
    if not out.parent.is_dir():
        raise refuse("out", "out.parent", f"目录“{out.parent}”不存在",
                     f"no directory {out.parent}")  # fmt: skip


def _refuse(errors: list[FieldError]) -> NoReturn:
    from cli import render
    from cli.main import EXIT_INVALID

    render.table(
        "参数有误，未作任何输出（input rejected, nothing written）",
        ("参数 option", "规则 rule", "说明"),
        [(f"--{e.field}", e.rule, e.message_zh) for e in errors],
        out=render.err_console,
    )
    raise typer.Exit(EXIT_INVALID)


def _run(step: Callable[[Engine], T]) -> T:
    """Run `step(db)` on the configured database (read only); a parameter the database
    refuses (an unknown case) exits 2, a database that does not answer exits 1."""
    from sqlalchemy.exc import SQLAlchemyError

    from cli import render
    from cli.main import _database
    from reports.query import QueryRefused

    try:
        return step(_database(read_only=True))
    except QueryRefused as exc:
        _refuse(exc.errors)
    except SQLAlchemyError as exc:
        render.line(f"数据库不可用：{exc.__class__.__name__}（database error, nothing written）",
                    style="red", out=render.err_console)  # fmt: skip
        raise typer.Exit(1) from None


def _table(result: Report) -> None:
    from cli import render
    from reports import exports

    q = result.query.as_dict()
    title = f"按措施统计 {q['from']}至{q['to']}" + "".join(
        f" · {k} {q[k]}" for k in ("measure", "bureau") if q[k]
    )
    rows = [exports.shown(r) for r in result.lines()]
    render.table(title, exports.headers(exports.TABLE_KEYS), rows, lead=3)


def _emit(out: Path | None, pieces: Iterable[str | bytes]) -> None:
    """Write the pieces to stdout as they come, or to `out` whole (a partial file is removed)."""
    if out is None:
        for piece in pieces:
            if isinstance(piece, bytes):
                sys.stdout.buffer.write(piece)
            else:
                sys.stdout.write(piece)
        sys.stdout.flush()
        return
    part = out.with_name(f".{out.name}.part")
    try:
        with open(part, "wb") as f:
            for piece in pieces:
                f.write(piece if isinstance(piece, bytes) else piece.encode("utf-8"))
        os.replace(part, out)
    finally:
        part.unlink(missing_ok=True)
    from cli import render

    render.line(f"已写入 {out}", out=render.err_console)
