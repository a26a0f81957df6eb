"""权限 — who may do what, checked inside the engine's transaction for every door alike.

Three questions, in this order, for every step the engine is asked to take:
1. May the actor see the case at all? If not, the answer is exactly that of a missing case.
2. Does the trigger's Permit (states/lifecycle.PERMITS) name the actor's role? A trigger with
   no permit is internal: only the engine fires it.
3. Does the actor's own section hold the open task the step needs, unclaimed or claimed by
   the actor, and (separation of duties) did the actor not review this case?
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from models.statuses import TaskStatus
from states.actors import ROLE_ZH, SECTION_ROLES, Actor, Role
from states.errors import ConflictError, NotPermitted, no_such_case, no_such_task
from states.labels import TASK_ZH, trigger_zh
from states.permits import Permit, TaskView


def can_see(actor: Actor, owner: str | None, bureaus: Iterable[str]) -> bool:
    """An applicant sees their own cases; a section's staff the cases their bureau has a task
    on (`bureaus`); operators and the system every case."""
    if actor.role in (Role.OPERATOR, Role.SYSTEM):
        return True
    if actor.role == Role.APPLICANT:
        return owner is not None and owner == actor.identity
    return actor.bureau in set(bureaus)


def authorize(
    actor: Actor,
    trigger: str,
    rule: Permit | None,
    *,
    owner: str | None,
    tasks: Sequence[TaskView],
    task_id: int | None = None,
) -> TaskView | None:
    """Raise unless `actor` may take `trigger` on this case now; the task acted on, if any."""
    if not can_see(actor, owner, (t.bureau for t in tasks)):
        raise no_such_task() if task_id is not None else no_such_case()
    if rule is None:
        raise NotPermitted(
            f"“{trigger_zh(trigger)}”是系统自动执行的内部步骤，不能直接执行",
            f"{trigger!r} is an internal step: only the engine fires it",
        )
    if actor.role not in rule.roles:
        raise NotPermitted(
            f"{ROLE_ZH[actor.role]}无权执行“{trigger_zh(trigger)}”",
            f"role {actor.role.value} may not fire {trigger!r}",
        )
    held = _held_task(actor, trigger, rule, tasks, task_id) if rule.task else None
    if rule.not_the_reviewer and reviewed_by(actor, tasks):
        raise NotPermitted(
            "职责分离：审核过本案件的人员不能再确认或决定",
            f"separation of duties: {actor.username} reviewed this case",
        )
    return held


def authorize_filing(
    actor: Actor, rule: Permit | None, identity: str, *, trigger: str, backdated: bool
) -> None:
    """Who may file (or grant ex officio) for `identity`, and who may record a paper receipt."""
    if rule is None or actor.role not in rule.roles:
        raise NotPermitted(
            f"{ROLE_ZH[actor.role]}无权执行“{trigger_zh(trigger)}”",
            f"role {actor.role.value} may not fire {trigger!r}",
        )
    if actor.role == Role.APPLICANT and identity != actor.identity:
        raise NotPermitted(
            "只能以本账户绑定的统一社会信用代码提交申请",
            "the applicant must be your own USCC",
        )
    if backdated and actor.role not in (Role.INTAKE_OFFICER, Role.OPERATOR):
        raise NotPermitted(
            "补录纸质申请的收件时间须由受理人员或运营人员办理；申请人在线提交以系统收件时间为准",
            "only an intake officer or an operator may record an earlier receipt (补录)",
        )


def reviewed_by(actor: Actor, tasks: Sequence[TaskView]) -> bool:
    return any(t.kind == "review" and t.decided_by == actor.username for t in tasks)


def _held_task(
    actor: Actor,
    trigger: str,
    rule: Permit,
    tasks: Sequence[TaskView],
    task_id: int | None,
) -> TaskView:
    """The open task of the actor's own section this step acts on."""
    section = actor.section or ""
    mine = [
        t
        for t in tasks
        if t.bureau == actor.bureau and t.section == section and t.kind in rule.task
    ]
    if task_id is not None:
        mine = [t for t in mine if t.id == task_id]
        if not mine:
            raise no_such_task()
    kinds = "、".join(TASK_ZH.get(k, k) for k in rule.task)
    assert actor.role in SECTION_ROLES
    waiting = [t for t in mine if t.status == TaskStatus.OPEN]
    if not waiting:
        if mine:  # it was ours, and someone has just done it
            raise ConflictError(
                "该任务已办理，案件已更新，请刷新后查看",
                f"the {'/'.join(rule.task)} task was already completed",
            )
        raise NotPermitted(
            f"本科室没有该案件待办的{kinds}任务，不能执行“{trigger_zh(trigger)}”",
            f"no open {'/'.join(rule.task)} task of {actor.unit} on this case",
        )
    free = [t for t in waiting if t.assignee in (None, actor.username) or not t.assignee_active]
    if not free:
        raise ConflictError(
            f"该任务已由{waiting[0].assignee}认领，请由认领人办理，或由认领人释放后再认领",
            f"task claimed by {waiting[0].assignee}",
        )
    return free[0]


def may_replay(
    actor: Actor, rule: Permit | None, owner: str | None, bureaus: Iterable[str]
) -> bool:
    """A repeated request key returns the earlier result only to someone who may see the case
    and take that kind of step (never another person's result by guessing their key)."""
    return can_see(actor, owner, bureaus) and rule is not None and actor.role in rule.roles
