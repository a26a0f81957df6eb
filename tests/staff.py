"""The people a test needs, as real accounts in the test's database (made on first use).

Every engine call carries an Actor made from an account, as in production: applicants bound
to their USCC, two reviewers per section (so that the second can decide: separation of
duties), an intake officer, an operator, and the `system` account of the scheduled flows.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from api.security import create_account
from models.tables import Account, Applicant, Case, ReviewTask
from states.actors import SYSTEM_ACCOUNT, Actor, actor_of
from states.engine import CaseEngine


def account(engine: CaseEngine, username: str, **spec: Any) -> Actor:
    """The account `username`, created with `spec` if it does not exist yet."""
    with Session(engine.db) as s:
        found = s.exec(select(Account).where(col(Account.username) == username)).first()
    if found is None:
        found, _ = create_account(
            engine.db, username=username, now=engine.clock.now(), password=f"pw-{username}", **spec
        )
    return actor_of(found)


def system(engine: CaseEngine) -> Actor:
    return engine.actor(SYSTEM_ACCOUNT)


def operator(engine: CaseEngine) -> Actor:
    return account(engine, "t-operator", role="operator")


def intake_officer(engine: CaseEngine, unit: str = "samr.credit") -> Actor:
    bureau, _, section = unit.partition(".")
    return account(
        engine, f"t-intake.{unit}", role="intake_officer", bureau=bureau, section=section
    )


def reviewer(engine: CaseEngine, unit: str, n: int = 1) -> Actor:
    """Reviewer `n` of a section ("samr.credit"), or of a bureau deciding as a whole."""
    bureau, _, section = unit.partition(".")
    return account(engine, f"t-{unit}.{n}", role="reviewer", bureau=bureau, section=section)


def applicant(engine: CaseEngine, identity: str) -> Actor:
    return account(engine, f"t-applicant.{identity}", role="applicant", uscc=identity)


def applicant_for(engine: CaseEngine, data: dict[str, Any]) -> Actor:
    """The applicant account an application's party signs in with."""
    party = data.get("applicant") or data.get("licensee") or {}
    identity = party.get("uscc") or f"REG:{party.get('registration_no')}"
    return applicant(engine, identity)


def applicant_of_case(engine: CaseEngine, case_id: int) -> Actor:
    with Session(engine.db) as s:
        case = s.get(Case, case_id)
        assert case is not None
        row = s.get(Applicant, case.applicant_id)
        assert row is not None
    return applicant(engine, row.identity)


def intake_holder(engine: CaseEngine, case_id: int) -> Actor:
    """The intake officer of the section the case's open intake task went to."""
    with Session(engine.db) as s:
        task = s.exec(
            select(ReviewTask).where(
                col(ReviewTask.case_id) == case_id,
                col(ReviewTask.kind) == "intake",
                col(ReviewTask.status) == "open",
            )
        ).first()
    assert task is not None, f"case {case_id} has no open intake task"
    return intake_officer(engine, f"{task.bureau_code}.{task.section_code}")


def holder(engine: CaseEngine, case_id: int, kind: str, n: int = 2) -> Actor:
    """Reviewer `n` of the section holding the case's open task of `kind` (n=2: not the one
    who reviewed, so separation of duties lets them confirm or decide)."""
    with Session(engine.db) as s:
        task = s.exec(
            select(ReviewTask)
            .where(
                col(ReviewTask.case_id) == case_id,
                col(ReviewTask.kind) == kind,
                col(ReviewTask.status) == "open",
            )
            .order_by(col(ReviewTask.id))
        ).first()
    assert task is not None, f"case {case_id} has no open {kind} task"
    unit = f"{task.bureau_code}.{task.section_code}" if task.section_code else task.bureau_code
    return reviewer(engine, unit, n)


def of_task(engine: CaseEngine, task: ReviewTask, n: int = 1) -> Actor:
    unit = f"{task.bureau_code}.{task.section_code}" if task.section_code else task.bureau_code
    return reviewer(engine, unit, n)


def uscc_for(n: int) -> str:
    """A valid USCC (GB 32100-2015) for test enterprise number n."""
    from base.identifiers import uscc_check_char

    first17 = f"91110101{n:09d}"
    return first17 + uscc_check_char(first17)
