"""办理人 — who acts on a case: a typed actor that every engine call carries.

The doors (API, pages, CLI, flows) only establish who is asking and hand the engine an Actor
made from that person's account; what the actor may do is decided in the engine, in the same
transaction as the change (states/authority.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Role(StrEnum):
    """账户角色."""

    APPLICANT = "applicant"  # 申请人（绑定统一社会信用代码或注册号）
    INTAKE_OFFICER = "intake_officer"  # 受理人员（绑定单位科室）
    REVIEWER = "reviewer"  # 审核人员（绑定单位科室）
    OPERATOR = "operator"  # 运营人员
    SYSTEM = "system"  # 系统账户（定时流程；不能登录）


ROLE_ZH: dict[str, str] = {
    Role.APPLICANT: "申请人",
    Role.INTAKE_OFFICER: "受理人员",
    Role.REVIEWER: "审核人员",
    Role.OPERATOR: "运营人员",
    Role.SYSTEM: "系统",
}

SECTION_ROLES = frozenset({Role.INTAKE_OFFICER, Role.REVIEWER})
SYSTEM_ACCOUNT = "system"  # made by migration 0006; scheduled flows act as it


@dataclass(frozen=True)
class Actor:
    """An account as the engine sees it: who, in which role, bound to what."""

    account_id: int
    username: str
    role: Role
    bureau: str | None = None
    section: str | None = None
    identity: str | None = None  # an applicant's USCC, or REG:<注册号>
    section_head: bool = False  # 科室负责人: reassigns the section's tasks (re-read by the engine)

    @property
    def unit(self) -> str:
        """bureau.section, the form the edition and the task rows use."""
        return f"{self.bureau}.{self.section}" if self.section else str(self.bureau)

    def describe(self) -> str:
        where = f" {self.unit}" if self.role in SECTION_ROLES else ""
        return f"{self.username}（{ROLE_ZH[self.role]}{where}）"


def actor_of(account: Any) -> Actor:
    """The Actor for an Account row (models.tables.Account)."""
    assert account.id is not None
    return Actor(
        account_id=account.id,
        username=account.username,
        role=Role(account.role),
        bureau=account.bureau_code,
        section=account.section_code if account.section_code is not None else None,
        identity=account.uscc,
        section_head=bool(account.section_head),
    )
