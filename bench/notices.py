"""Rendering throughput of decision notices (准予 / 部分准予 / 不予决定书).

    python bench/notices.py [--n 3000] [--runs 5]

The inputs are what the engine hands the renderer when a decision is made: the rules'
assessment of real applications (buildings with their own reduced rent, a building whose cap
cuts the grant, a refused building, the loan subsidy, a state-owned landlord's rent waiver, the
credit exemption), a document number and the amount granted. Timed: building the template
context (notifications/context.py: formatting, 人民币大写) and rendering text, HTML and hash
(notifications/render.py), one notice after another on one core. No database.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from datetime import date
from decimal import Decimal
from typing import Any

from benchlib import ROOT, building_application, dump_json, header, median

from models.input_errors import parse_application
from notifications.context import NoticeInput, money_upper
from notifications.context import build as build_context
from notifications.render import render_notice
from states.catalog import assess
from states.edition import edition_by_id
from states.lifecycle import NoticeKind

ISSUED = date(2022, 12, 30)


def applications(n: int) -> list[tuple[dict[str, Any], NoticeKind, Decimal | None]]:
    """n decisions: (application, notice kind, amount granted or None for the ceiling)."""
    examples = {
        p.stem: json.loads(p.read_text(encoding="utf-8"))
        for p in (ROOT / "docs" / "examples").glob("*.json")
    }
    out: list[tuple[dict[str, Any], NoticeKind, Decimal | None]] = []
    for i in range(n):
        k = i % 10
        if k < 5:
            out.append((building_application(i), NoticeKind.DECISION_GRANTED, None))
        elif k == 5:  # the cap leaves 250,000 of a 300,000 claim
            app = building_application(i)
            app["prior_subsidy_for_this_property"] = 750_000
            out.append((app, NoticeKind.DECISION_PARTIAL, None))
        elif k == 6:  # outside 中关村东城园: refused
            app = building_application(i)
            app["applicant"]["property"]["in_zgc_dongcheng_park"] = False
            out.append((app, NoticeKind.DECISION_REFUSED, None))
        elif k == 7:
            out.append((copy.deepcopy(examples["loan_subsidy"]), NoticeKind.DECISION_GRANTED, None))
        elif k == 8:
            app = copy.deepcopy(examples["rent_state_property"])
            app["lease"]["monthly_rent"] = 8000 + i
            out.append((app, NoticeKind.DECISION_GRANTED, None))
        else:
            out.append(
                (copy.deepcopy(examples["credit_exemption"]), NoticeKind.DECISION_GRANTED, None)
            )
    return out


def inputs(n: int) -> list[NoticeInput]:
    made = []
    for i, (data, kind, granted) in enumerate(applications(n)):
        app = parse_application(data, today=ISSUED)
        filed = app.application_date or ISSUED
        [a] = assess(app, filed_on=filed)[:1]
        made.append(
            NoticeInput(
                kind=kind,
                case_no=f"DC-2022-{i + 1:06d}",
                case_type=app.type.value,
                query_code=f"{i % 10**6:06d}",
                filed_on=filed,
                issued_on=ISSUED,
                facts=app.model_dump(mode="json", exclude_none=True),
                assessment=a,
                edition=edition_by_id(a.edition_id),
                doc_number=f"东政〔2022〕{i + 1}号",
                granted=granted if granted is not None else a.amount,
                reason="不符合条件" if kind == NoticeKind.DECISION_REFUSED else None,
                working_days=20,
            )
        )
    return made


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=3000, help="notices per run")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    header("decision notice rendering")
    made = inputs(args.n)
    kinds = sorted({m.kind.value for m in made})
    print(f"{args.n} decision notices per run ({', '.join(kinds)}), {args.runs} runs\n")
    render_notice(made[0].kind.value, build_context(made[0]))  # compile the templates once
    rows = []
    for run in range(1, args.runs + 1):
        money_upper.cache_clear()  # each run pays for its own 人民币大写
        t_ctx = t_render = 0.0
        size = 0
        for inp in made:
            t0 = time.perf_counter()
            context = build_context(inp)
            t1 = time.perf_counter()
            rendered = render_notice(inp.kind.value, context)
            t2 = time.perf_counter()
            t_ctx += t1 - t0
            t_render += t2 - t1
            size += len(rendered.text)
        total = t_ctx + t_render
        rows.append({"per_s": args.n / total, "render_only_per_s": args.n / t_render,
                     "context_us": 1e6 * t_ctx / args.n, "render_us": 1e6 * t_render / args.n,
                     "avg_chars": size / args.n})  # fmt: skip
        r = rows[-1]
        print(
            f"run {run}: {r['per_s']:6.0f} notices/s (context {r['context_us']:.0f} µs + render "
            f"{r['render_us']:.0f} µs per notice, {r['avg_chars']:.0f} characters of text)"
        )
    med = {k: median([r[k] for r in rows]) for k in rows[0]}
    print(
        f"\nmedian: {med['per_s']:.0f} decision notices/s on one core "
        f"({med['context_us']:.0f} µs context + {med['render_us']:.0f} µs render per notice)"
    )
    dump_json(args.json, {"runs": rows, "median": med, "args": vars(args)})


if __name__ == "__main__":
    main()
