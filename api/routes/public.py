"""公开查询 — a case's public status with its case number and query code, no account needed.

Lookups are limited per case and per client address (api/throttle.py): a wrong code and a
missing case count alike and answer alike, so guessing learns nothing and soon stops.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlmodel import Session, col, select

from api import throttle
from api.deps import CaseNo, EngineDep, client_address, not_found
from api.routes.common import case_notices
from api.schemas import PUBLIC_STATUS, NoticePublic, StatusPublic
from base.query_codes import matches
from models.tables import Case
from states.catalog import spec_for
from states.engine import CaseEngine

router = APIRouter(tags=["public"])


def lookup(engine: CaseEngine, case_no: str, code: str, address: str) -> Case:
    """The case if the code is its query code; Throttled while guessing is being held off."""
    limits = throttle.limits(engine.settings)
    now = engine.clock.now()
    key = case_no.strip().upper()[:30]
    # counted before the code is compared, so lookups made at the same moment cannot all pass
    throttle.reserve(engine.db, limits["status_address"], address, now)
    throttle.reserve(engine.db, limits["status_case"], key, now)
    with Session(engine.read_db) as s:
        case = s.exec(select(Case).where(col(Case.case_no) == key)).first()
    if case is None or not matches(case.query_code, code):
        throttle.confirm_failure(engine.db, limits["status_address"], address, now)
        throttle.confirm_failure(engine.db, limits["status_case"], key, now)
        raise not_found()  # a wrong code looks exactly like a missing case
    throttle.refund(engine.db, limits["status_address"], address)
    throttle.refund(engine.db, limits["status_case"], key)
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
