"""relief edition — check an edition file, see what changed between two, what a new one would
do to the open cases (a dry run), and move cases to it on an operator's decision."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer

edition_app = typer.Typer(
    help="Policy editions: check a file, compare two, rejudge open cases (dry run), migrate cases."
)


def _edition(ref: str) -> Any:
    """An edition by file path, or by the id of a shipped one."""
    from states.edition import edition_by_id, load_edition

    path = Path(ref)
    try:
        return load_edition(path) if path.suffix in (".yaml", ".yml") else edition_by_id(ref)
    except (OSError, KeyError, ValueError) as exc:
        typer.echo(f"无法读取政策版本 {ref}：{exc}", err=True)
        raise typer.Exit(2) from None


@edition_app.command("diff")
def edition_diff(
    a: Annotated[str, typer.Argument(help="the old edition: a YAML file or a shipped id")],
    b: Annotated[str, typer.Argument(help="the new edition: a YAML file or a shipped id")],
) -> None:
    """Every change from A to B; a parameter's change shows both clauses."""
    from cli import render
    from states.edition_changes import diff

    changes = diff(_edition(a), _edition(b))
    if not changes:
        render.line("两个版本相同（no change）")
        return
    rows = [
        (c.path, str(c.before), str(c.after), c.clause_before,
         "" if c.clause_before == c.clause_after else c.clause_after)
        for c in changes
    ]  # fmt: skip
    render.table(f"{len(changes)} changes", ["where", "before", "after", "clause", "new clause"],
                 rows)  # fmt: skip


@edition_app.command("rejudge")
def edition_rejudge(
    b: Annotated[str, typer.Argument(help="the new edition: a YAML file or a shipped id")],
    report: Annotated[Path | None, typer.Option("--report", help="write every case as CSV")] = None,
) -> None:
    """Dry run: every open case judged under another edition, judged again under B — who would
    gain or lose, and the money difference in total and per case. Nothing is written."""
    from sqlmodel import Session, col, select

    from cli import render
    from cli.main import _database
    from models.tables import Applicant, Case, Prior7Benefit
    from states.edition_changes import rejudge
    from states.lifecycle import FINAL_STATES
    from states.rules import Prior7Entry

    edition = _edition(b)
    db = _database(read_only=True)
    with Session(db) as s:
        rows = s.exec(
            select(Case, Applicant.identity)
            .join(Applicant, col(Applicant.id) == col(Case.applicant_id))
            .where(col(Case.state).not_in([st.value for st in FINAL_STATES]),
                   col(Case.edition_id) != edition.id)
            .order_by(col(Case.id))
        ).all()  # fmt: skip
        identities = sorted({identity for _, identity in rows})
        register: dict[str, list[Prior7Entry]] = {i: [] for i in identities}
        for r in s.exec(select(Prior7Benefit).where(col(Prior7Benefit.subject).in_(identities))):
            register[r.subject].append(
                Prior7Entry(r.subject, r.family, r.object_id or None, r.period_from, r.period_to)
            )
    results = [
        rejudge(case.case_no or "", case.case_type, case.facts, case.assessment,
                filed_on=case.filed_on, register=register[identity], edition=edition)
        for case, identity in rows
    ]  # fmt: skip
    changed = [r for r in results if r.delta or r.decision_before != r.decision_after]
    gain = sum((r.delta for r in changed if r.delta > 0), start=Decimal("0.00"))
    loss = sum((r.delta for r in changed if r.delta < 0), start=Decimal("0.00"))
    render.table(
        f"{len(results)} open cases judged again under {edition.id}: {len(changed)} change",
        ["case", "type", "decision", "amount", "difference"],
        [(r.case_no, r.case_type, f"{r.decision_before} → {r.decision_after}",
          f"{r.amount_before} → {r.amount_after}", f"{r.delta:+}") for r in changed],
    )  # fmt: skip
    total = sum((r.delta for r in results), start=Decimal("0.00"))
    render.line(f"合计 total: {total:+} 元（gain {gain:+}, loss {loss:+}）; nothing was written")
    if report is not None:
        with report.open("w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(["case_no", "case_type", "decision_before", "decision_after",
                          "amount_before", "amount_after", "difference", "note"])  # fmt: skip
            for r in results:
                out.writerow([r.case_no, r.case_type, r.decision_before, r.decision_after,
                              r.amount_before, r.amount_after, r.delta, r.note])  # fmt: skip
        render.line(f"report: {report}")


@edition_app.command("check")
def edition_check(
    file: Annotated[Path, typer.Argument(help="the edition YAML file (its source text beside it)")],
) -> None:
    """Load an edition as the service would (verbatim clauses, references, remedies) and
    evaluate every check and reason of its configured types once: each fault, or a summary."""
    from cli import render
    from states.configured_rules import problems

    edition = _edition(str(file))
    on = edition.window.start
    found = [p for code, d in edition.configured_types.items() for p in problems(d, code, on)]
    if found:
        for p in found:
            render.line(p, style="red", out=render.err_console)
        raise typer.Exit(1)
    configured = ", ".join(f"{c}（第{d.measure}条）" for c, d in edition.configured_types.items())
    window = f"{edition.window.start} – {edition.window.end}"
    clauses = len(edition.quoted_clauses())
    render.line(f"{edition.id}: {edition.doc_number}, window {window}; {clauses} clauses verbatim")
    render.line(f"core types: {', '.join(edition.core_types()) or '—'}")
    render.line(f"configured types: {configured or '—'}")


@edition_app.command("migrate")
def edition_migrate(
    b: Annotated[str, typer.Argument(help="the shipped (or RELIEF_EDITIONS_DIR) edition's id")],
    cases: Annotated[list[str], typer.Argument(help="case numbers or ids")],
    account: Annotated[str, typer.Option("--as", envvar="RELIEF_AS", help="an operator account")],
) -> None:
    """Move undecided cases to edition B: each judged again under B, one audit event each (run
    `relief edition rejudge B` first to see what changes). A decided case keeps its edition."""
    from cli import render
    from cli.main import _actor, _engine, _engine_step, _find_case

    engine = _engine()
    actor = _actor(engine, account)
    ids = [_find_case(engine.db, ref).id for ref in cases]  # every reference first
    for case_id in ids:
        r = _engine_step(lambda c=case_id: engine.migrate_edition(c, b, actor=actor))
        render.line(f"{r.case_no}: → {b} v{r.version}")
