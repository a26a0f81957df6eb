"""核定拨付 — what an approval grants: the decided amount spread over the components, each cut
by the cross-case caps it draws on (1,000,000 per park or building; 100,000 guarantee fees per
enterprise), read under the unit of work's lock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from base.money import to_money
from states.lifecycle import decided_amount
from states.rules import Assessment, Component


@dataclass
class GrantPlan:
    parts: dict[str, Decimal] = field(default_factory=dict)
    caps: list[tuple[str, Decimal, Decimal]] = field(default_factory=list)  # key, got, before
    total: Decimal = Decimal("0.00")
    capped: bool = False


class Balance(Protocol):
    """A cap account as the plan reads it: limit, opening, granted so far."""

    cap_limit: Decimal
    opening: Decimal
    granted: Decimal


def plan_grant(a: Assessment, amount: Any, balance_of: Callable[[Component], Balance]) -> GrantPlan:
    """The grant of an approval (an amount at or below the ceiling; none given: the ceiling)."""
    wanted = allocate(a.components, amount)
    plan = GrantPlan()
    for comp in a.components:
        want = wanted[comp.code]
        if comp.cap_key and comp.cap_limit is not None and want > 0:
            account = balance_of(comp)
            remaining = max(Decimal("0.00"), account.cap_limit - account.opening - account.granted)
            got = min(want, remaining)
            plan.caps.append((comp.cap_key, got, account.granted))
        else:
            got = want
        plan.parts[comp.code] = got
        if got < want:
            plan.capped = True
    plan.total = to_money(sum(plan.parts.values(), Decimal(0)))
    return plan


def allocate(components: tuple[Component, ...], amount: Any) -> dict[str, Decimal]:
    """Spread a decided total over the components in order, each up to its ceiling."""
    if amount is None:
        return {c.code: c.ceiling for c in components}
    value = decided_amount(amount)
    try:
        left = to_money(value) if value is not None else None
    except (InvalidOperation, ValueError):  # more digits than money holds (1e400): none
        left = None
    if left is None:
        return {c.code: Decimal("0.00") for c in components}
    out = {}
    for c in components:
        take = min(left, c.ceiling)
        out[c.code] = take
        left -= take
    return out
