"""配置型类型的审查 — judge an application by its type's declaration in the edition.

Every check is a CEL expression compiled once per process; its reasons are sandboxed Jinja.
Both see the same values: `applicant` (the party as filed), `facts` (the declared facts; money
and integers as numbers), `params` (the type's parameters) and `filed_on` (YYYY-MM-DD, so dates
compare as text). A CEL error (a wrong name, a wrong type) is a fault of the edition, found by
`relief edition check` and the test suite before any case meets it.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from base.money import format_cny, money_share, percent, to_money
from models.applications import Application, applicant_of
from models.field_labels import label_of
from states.configured_types import CheckSpec, ComponentSpec, ConfiguredType, FactSpec
from states.edition import Edition
from states.rules import (
    GRANTING,
    Assessment,
    Check,
    Component,
    Decision,
    Prior7Entry,
    TaskKind,
    route,
    window_check,
)


class DeclarationError(ValueError):
    """A configured type's declaration cannot be evaluated (names the type and the check)."""


@functools.cache
def _cel() -> Any:
    import celpy  # 0.15 s: only once a configured type is judged

    return celpy


@functools.cache
def _program(expression: str) -> Any:
    celpy = _cel()
    env = celpy.Environment()
    return env.program(env.compile(expression))


@functools.cache
def _reasons() -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    env.filters["yuan"] = lambda v: format_cny(to_money(v))
    env.filters["pct"] = lambda v: percent(Decimal(str(v)))
    return env


def _number(value: Any) -> Any:
    """Numbers reach CEL as doubles (CEL compares a double with an int, not the other way)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | Decimal):
        return float(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _number(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_number(v) for v in value]
    return value


def names(app: Application, declared: ConfiguredType, filed_on: date) -> dict[str, Any]:
    """The values checks and reasons see, as plain JSON values."""
    data = app.model_dump(mode="json")
    return {
        "applicant": data["applicant"],
        "facts": {name: getattr(app, name) for name in declared.facts},
        "params": {name: p.value for name, p in declared.params.items()},
        "filed_on": filed_on.isoformat(),
        "labels": choice_labels(declared, lambda name: getattr(app, name), data["applicant"]),
    }


def choice_labels(declared: ConfiguredType, value_of: Any, party: dict[str, Any]) -> dict[str, str]:
    """The Chinese name of each choice made, for reasons: labels.<fact>, and the applicant's
    labels.size and labels.kind (企业规模, 主体类型), never a stored code."""
    out = {
        name: f.choices.get(str(value_of(name)), str(value_of(name)))
        for name, f in declared.facts.items()
        if f.kind == "choice"
    }
    for attr in ("size", "kind"):
        entry = label_of("Party", attr)
        value = party.get(attr)
        out[attr] = (
            (entry.options.get(str(value), str(value)) if entry else str(value))
            if value
            else "未填写"
        )
    return out


def evaluate(check: CheckSpec, values: dict[str, Any], type_code: str) -> bool:
    celpy = _cel()
    activation = {k: celpy.json_to_cel(_number(v)) for k, v in values.items()}
    try:
        result = _program(check.test).evaluate(activation)
    except Exception as exc:  # celpy raises its own error classes, and evaluation errors
        raise DeclarationError(f"{type_code}: check {check.code}: {exc}") from None
    if not isinstance(result, celpy.celtypes.BoolType):
        raise DeclarationError(f"{type_code}: check {check.code} gives {result!r}, not true/false")
    return bool(result)


def reason(template: str, values: dict[str, Any]) -> str:
    return _reasons().from_string(template).render(values)


def judge(check: CheckSpec, values: dict[str, Any], type_code: str) -> Check:
    """One check: evaluated, its reason in both languages, a reviewer flag where it is owed."""
    ok = evaluate(check, values, type_code)
    return Check(
        code=check.code,
        passed=ok,
        reason_zh=reason(check.passed_zh if ok else check.failed_zh, values),
        reason_en=reason(check.passed_en if ok else check.failed_en, values),
        clause=check.clause,
        basis=check.basis,
        manual_review=check.confirmed_by_reviewer and ok,  # the officer confirms the claim
    )


def cap_key(type_code: str, component: str, identity: str) -> str:
    return f"{type_code}:{component}:{identity}"


def assess(
    app: Application,
    edition: Edition,
    *,
    filed_on: date,
    register: list[Prior7Entry],
) -> list[Assessment]:
    type_code = str(app.type)
    declared = edition.configured_types.get(type_code)
    if declared is None:
        return [not_in_edition(type_code, edition)]
    values = names(app, declared, filed_on)
    window = window_check(edition, filed_on)
    checks = [window, *(judge(c, values, type_code) for c in declared.checks)]
    eligible = all(c.passed for c in checks)
    if not eligible:  # nothing for an officer to confirm on a case the rules refuse anyway
        checks = [replace(c, manual_review=False) for c in checks]
    components = tuple(
        _component(app, declared, spec, eligible, type_code) for spec in declared.components
    )
    cut = any(c.ceiling < c.gross for c in components) and eligible
    judged = zip(checks[1:], declared.checks, strict=True)
    out_of_scope = any(not c.passed for c, spec in judged if spec.scope)
    if not window.passed:
        decision = Decision.NOT_ACCEPTED
    elif out_of_scope:
        decision = Decision.NOT_APPLICABLE
    elif not eligible:
        decision = Decision.REFUSED
    else:
        decision = Decision.PARTIALLY_GRANTED if cut else Decision.GRANTED
    effect: dict[str, str] = {}
    if declared.effect is not None and decision in GRANTING:  # what a refusal does not do
        effect = {
            "kind": declared.effect.kind,
            "code": declared.effect.code,
            "statement": reason(declared.effect.statement_zh, values),
            "clause": declared.effect.clause,
        }
        if declared.effect.referred_to:
            effect["referred_to"] = declared.effect.referred_to
    return [
        Assessment(
            case_type=type_code,
            edition_id=edition.id,
            decision=decision,
            checks=tuple(checks),
            components=components,
            routes=tuple(_routes(declared, edition)),
            effect=effect,
            claimed=to_money(sum((c.gross for c in components), Decimal(0))),
        )
    ]


def _component(
    app: Application,
    declared: ConfiguredType,
    spec: ComponentSpec,
    eligible: bool,
    type_code: str,
) -> Component:
    fact = declared.facts[spec.base]
    share = declared.params[spec.share].value
    label = fact.label.removesuffix("（元）")
    if fact.kind == "integer":  # a count times an amount per head
        count = int(getattr(app, spec.base))
        gross = money_share(Decimal(count), share)
        formula = f"{label}{count} × {format_cny(to_money(share))}元"
    else:  # an amount times a rate
        base = to_money(getattr(app, spec.base))
        gross = money_share(base, share)
        formula = f"{label}{format_cny(base)}元 × {percent(share)}"
    cap = declared.params[spec.cap].value if spec.cap else None
    allowed = min(gross, to_money(cap)) if cap is not None else gross
    if cap is not None:
        formula += f"，最高{format_cny(to_money(cap))}元"
    per_enterprise = spec.cap_scope == "per_enterprise" and cap is not None
    return Component(
        code=spec.code,
        label_zh=spec.label,
        gross=gross,
        ceiling=allowed if eligible else Decimal("0.00"),
        formula_zh=formula,
        clause=spec.clause,
        cap_key=cap_key(type_code, spec.code, applicant_of(app).identity)
        if per_enterprise
        else None,
        cap_limit=to_money(cap) if per_enterprise and cap is not None else None,
        partial_when_capped=per_enterprise,
    )


def _routes(declared: ConfiguredType, edition: Edition) -> list[Any]:
    s = declared.stages
    out = [route(edition, TaskKind.REVIEW, ref) for ref in s.review]
    if s.confirm:
        out.append(route(edition, TaskKind.CONFIRM, s.confirm))
    out.append(route(edition, TaskKind.DECIDE, s.decide))
    if s.payout:
        out.append(route(edition, TaskKind.PAYOUT, s.payout))
    return out


def not_in_edition(type_code: str, edition: Edition) -> Assessment:
    """A type the judging edition does not carry: outside this policy, not accepted."""
    return Assessment(
        case_type=type_code,
        edition_id=edition.id,
        decision=Decision.NOT_APPLICABLE,
        checks=(
            Check(
                code="measure.in_edition",
                passed=False,
                reason_zh=f"{edition.doc_number}未规定此项措施",
                reason_en=f"{edition.doc_number} carries no such measure",
                clause=edition.window.clause,
            ),
        ),
    )


def sample_value(fact: FactSpec, on: date) -> Any:
    """A value of the fact's kind, for checking a declaration before any case meets it."""
    if fact.default is not None:
        return fact.default
    return {
        "money": Decimal(1),
        "integer": 1,
        "boolean": True,
        "date": on,
        "text": "示例",
        "choice": next(iter(fact.choices), ""),
    }[fact.kind]


def problems(declared: ConfiguredType, type_code: str, on: date) -> list[str]:
    """Every check and reason of a declaration evaluated once on sample facts filed `on`: the
    faults (a name that is not there, a comparison of the wrong types, a reason that fails)."""
    values: dict[str, Any] = {
        "applicant": {"uscc": "", "name": "示例", "kind": "enterprise", "size": "small",
                      "registration_no": None},
        "facts": {name: sample_value(f, on) for name, f in declared.facts.items()},
        "params": {name: p.value for name, p in declared.params.items()},
        "filed_on": on.isoformat(),
    }  # fmt: skip
    values["labels"] = choice_labels(declared, lambda n: values["facts"][n], values["applicant"])
    found: list[str] = []
    for check in declared.checks:
        try:
            evaluate(check, values, type_code)
            for text in (check.passed_zh, check.failed_zh, check.passed_en, check.failed_en):
                reason(text, values)
        except Exception as exc:  # every fault of the declaration, reported together
            found.append(f"{type_code}: check {check.code}: {exc}")
    if declared.effect is not None:
        try:
            reason(declared.effect.statement_zh, values)
        except Exception as exc:
            found.append(f"{type_code}: effect: {exc}")
    return found
