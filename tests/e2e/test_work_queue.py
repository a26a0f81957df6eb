"""A section's work queue is read a page at a time, in due-date order, with nothing skipped."""

from __future__ import annotations

from typing import Any

from drive import submit
from sqlmodel import Session

from base.identifiers import uscc_check_char
from models.work_queue import section_queue
from states.engine import CaseEngine


def building(i: int) -> dict[str, Any]:
    first17 = f"91110101{i:09d}"
    return {
        "type": "rent_park_subsidy",
        "application_date": "2022-07-01",
        "applicant": {
            "uscc": first17 + uscc_check_char(first17),
            "role": "owner",
            "property": {
                "property_id": f"BLDG-{i:07d}",
                "type": "commercial_building",
                "state_owned": False,
                "in_zgc_dongcheng_park": True,
            },
        },
        "confirmed_total_reduced": "1000000",
        "prior_subsidy_for_this_property": 0,
    }


def test_pages_cover_the_queue_once_in_order(engine: CaseEngine) -> None:
    for i in range(7):
        submit(engine, building(i))
    with Session(engine.db) as s:
        whole = section_queue(s, "*", "*", status=None, limit=1000)  # nobody's section
        assert whole == []
        first = section_queue(s, *_a_section(s), limit=1000)
        bureau, section = first[0][0].bureau_code, first[0][0].section_code
        pages = [section_queue(s, bureau, section, limit=3, offset=o) for o in (0, 3, 6, 9)]
    assert [len(p) for p in pages] == [3, 3, 1, 0]
    seen = [task.id for page in pages for task, _ in page]
    assert seen == [task.id for task, _ in first] and len(set(seen)) == 7
    keys = [(task.due_on, task.id) for page in pages for task, _ in page]
    assert keys == sorted(keys)
    assert all(case.id == task.case_id for page in pages for task, case in page)


def _a_section(s: Session) -> tuple[str, str]:
    from sqlmodel import select

    from models.tables import ReviewTask

    task = s.exec(select(ReviewTask).where(ReviewTask.status == "open")).first()
    assert task is not None
    return task.bureau_code, task.section_code
