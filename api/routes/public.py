"""公开查询 — a case's public status with its case number and query code, no account needed."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Query
from sqlmodel import Session, col, select

from api.deps import CaseNo, EngineDep, not_found
from api.routes.common import case_notices
from api.schemas import PUBLIC_STATUS, NoticePublic, StatusPublic
from models.tables import Case
from states.catalog import spec_for

router = APIRouter(tags=["public"])


def find_by_code(engine: EngineDep, case_no: CaseNo, code: str) -> Case:
    with Session(engine.db) as s:
        case = s.exec(select(Case).where(col(Case.case_no) == case_no)).first()
    if case is None or not hmac.compare_digest(case.query_code, code):
        raise not_found()  # a wrong code looks exactly like a missing case
    return case


@router.get("/status/{case_no}", response_model=StatusPublic)
def public_status(
    case_no: CaseNo,
    engine: EngineDep,
    code: Annotated[str, Query(min_length=6, max_length=6, pattern=r"^\d{6}$")],
) -> StatusPublic:
    """Where a case stands, in plain language, with its notices."""
    case = find_by_code(engine, case_no, code)
    return StatusPublic(
        case_no=case.case_no or "",
        type_label=spec_for(case.case_type).label_zh,
        status=PUBLIC_STATUS.get(case.state, case.state),
        filed_on=case.filed_on,
        notices=[NoticePublic.of(n) for n in case_notices(engine, case)],
    )
