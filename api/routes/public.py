"""公开查询 — what anyone may ask without an account: the types one may file (each with its
schema), an estimate of an application (退税减税概算器-style, nothing written), and a case's
public status with its case number and query code.

Status lookups are limited per case and per client address (api/throttle.py): a wrong code and
a missing case count alike and answer alike, so guessing learns nothing and soon stops. The
estimate does not consult the 7号 register (whether an enterprise enjoyed a benefit is not
public); the filing itself does.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from sqlmodel import Session, col, select

from api import throttle
from api.deps import CaseNo, EngineDep, client_address, not_found
from api.routes.common import case_notices
from api.schemas import PUBLIC_STATUS, NoticePublic, StatusPublic
from base.query_codes import matches
from models.tables import Case
from states.catalog import json_schema, spec_for
from states.edition import edition_for
from states.engine import CaseEngine

router = APIRouter(tags=["public"])


def lookup(engine: CaseEngine, case_no: str, code: str, address: str) -> Case:
    """The case if the code is its query code; Throttled while guessing is being held off."""
    limits = throttle.limits(engine.settings)
    key = case_no.strip().upper()[:30]
    # checked under the limits' locks, so lookups made at the same moment are checked in turn
    counted = [(limits["status_address"], address), (limits["status_case"], key)]
    with throttle.attempt(engine.db, counted, engine.clock.now()) as attempt:
        with Session(engine.read_db) as s:
            case = s.exec(select(Case).where(col(Case.case_no) == key)).first()
        if case is None or not matches(case.query_code, code):
            attempt.failed()
    if case is None or attempt.wrong:
        raise not_found()  # a wrong code looks exactly like a missing case
    return case


@router.get("/status/{case_no}", response_model=StatusPublic)
def public_status(
    request: Request,
    case_no: CaseNo,
    engine: EngineDep,
    code: Annotated[str, Query(min_length=6, max_length=16, pattern=r"^[0-9A-Za-z -]+$")],
) -> StatusPublic:
    """Where a case stands, in plain language, with its notices (code from the 受理通知书)."""
    case = lookup(engine, case_no, code, client_address(request))
    return StatusPublic(
        case_no=case.case_no or "",
        type_label=spec_for(case.case_type).label_zh,
        status=PUBLIC_STATUS.get(case.state, case.state),
        filed_on=case.filed_on,
        notices=[NoticePublic.of(n) for n in case_notices(engine, case)],
    )


TypeCode = Annotated[str, Path(min_length=2, max_length=40, pattern=r"^[a-z][a-z0-9_]+$")]


@router.get("/types")
def application_types(engine: EngineDep) -> list[dict[str, Any]]:
    """The application types one may file today (the edition in force): code, label, measure,
    core (rules in Python) or configured (declared in the edition), and the documents asked."""
    edition = edition_for(engine.clock.today())
    return [
        {
            "code": code,
            "label": spec_for(code).label_zh,
            "measure": edition.measure_of(code),
            "configured": not spec_for(code).core,
            "documents": [
                {"slot": d.slot, "label": d.label, "required": d.required}
                for d in edition.slots_for(code)
            ],
        }
        for code in edition.type_codes()
    ]


@router.get("/types/{case_type}/schema")
def application_schema(case_type: TypeCode, engine: EngineDep) -> dict[str, Any]:
    """The JSON schema of one type's application (as `relief schema TYPE` prints it)."""
    if case_type not in edition_for(engine.clock.today()).type_codes():
        raise not_found()
    return json_schema(case_type)


@router.post("/estimate")
def estimate(
    engine: EngineDep,
    data: Annotated[dict[str, Any], Body(description="an application; see /api/types")],
) -> dict[str, Any]:
    """What the rules would say of this application if it were filed today: decision, amount,
    every check with its reasons and clause, routing. Nothing is written."""
    app, assessments = engine.estimate(data, with_register=False)
    return {"type": str(app.type), "filed_on": str(engine.clock.today()),
            "assessments": [a.as_dict() for a in assessments]}  # fmt: skip
