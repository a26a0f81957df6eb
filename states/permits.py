"""权限声明 — who may fire a trigger: declared once per trigger beside the transition table.

A Permit is data: the roles that may fire the trigger, the open task the actor's own section
must hold for it, and whether the person who reviewed the case is barred (separation of
duties). states/authority.py checks it inside the engine's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from states.actors import Role
from states.rules import TaskKind


@dataclass(frozen=True)
class Permit:
    roles: frozenset[Role]
    task: tuple[TaskKind, ...] = ()  # the actor's section must hold an open task of these kinds
    not_the_reviewer: bool = False  # 职责分离: whoever reviewed the case may not do this


@dataclass
class TaskView:
    """A case's task as the engine and the permission checks read it."""

    id: int
    kind: str
    status: str
    decision: str | None
    bureau: str
    section: str
    assignee: str | None = None
    decided_by: str | None = None
    due_on: date | None = None
    assignee_active: bool = True  # a claim by a disabled account holds nobody off


def permit(*roles: Role, task: tuple[TaskKind, ...] = (), not_the_reviewer: bool = False) -> Permit:
    return Permit(frozenset(roles), task, not_the_reviewer)
