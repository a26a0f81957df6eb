"""申请类型目录 — each application type's schema, rules and machine, in one table.

Core types (rules in Python, states/<type>.py) and configured types (declared in an edition,
states/configured_types.py) sit side by side, keyed by their code: nothing downstream asks
which kind a type is. A configured type's schema, label and machine come from the newest
edition that declares it; its rules from the edition that judges the case.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from models.applications import (
    SCHEMAS,
    Application,
    CaseType,
    provide_configured_schemas,
)
from states import (
    configured_rules,
    credit_exemption,
    licence_extension,
    loan_subsidy,
    rent_incubator_subsidy,
    rent_park_subsidy,
    rent_state_property,
)
from states.configured_schema import schema_of
from states.configured_types import ConfiguredType
from states.edition import Edition, all_editions, edition_for
from states.lifecycle import (
    EffectFacts,
    EffectOnlyMachine,
    ReferralMachine,
    SubsidyMachine,
    TypeMachine,
)
from states.rules import Assessment, Prior7Entry


@dataclass(frozen=True)
class CaseTypeSpec:
    case_type: str
    label_zh: str
    schema: type[Application]
    assess: Callable[..., list[Assessment]]
    machine: TypeMachine
    core: bool = True
    measure: str = ""


_CORE_RULES: dict[CaseType, tuple[str, Any]] = {
    CaseType.RENT_STATE_PROPERTY: ("国有房屋租金减免", rent_state_property),
    CaseType.RENT_INCUBATOR_SUBSIDY: ("科技型孵化器减免房租补贴", rent_incubator_subsidy),
    CaseType.RENT_PARK_SUBSIDY: ("文化产业园区、商务楼宇减免租金补贴", rent_park_subsidy),
    CaseType.CREDIT_EXEMPTION: ("信用豁免", credit_exemption),
    CaseType.LICENCE_EXTENSION: ("食品许可证有效期顺延", licence_extension),
    CaseType.LOAN_SUBSIDY: ("贷款贴息和担保费补贴", loan_subsidy),
}
CORE: dict[str, CaseTypeSpec] = {
    t.value: CaseTypeSpec(t.value, label, SCHEMAS[t], module.assess, module.MACHINE)
    for t, (label, module) in _CORE_RULES.items()
}


def effect_record(e: EffectFacts) -> tuple[Any, dict[str, Any]]:
    """措施效果登记: a configured type's approved effect, for the unit that carries it out."""
    from models.tables import MeasureEffectRecord  # the ORM only when a case takes effect

    a = e.assessment.effect
    return MeasureEffectRecord, dict(
        case_id=e.case_id, case_type=e.assessment.case_type, subject=e.party,
        effect=a.get("code", ""), referred_to=a.get("referred_to", ""),
        statement=a.get("statement", "")[:2000], at=e.at,
    )  # fmt: skip


def machine_of(code: str, declared: ConfiguredType) -> TypeMachine:
    """The machine a declaration implies: a subsidy pays out, an effect is registered, a
    referral is told by a referral notice."""
    confirm = declared.needs_confirmation
    if declared.pays_out:
        return SubsidyMachine(code, needs_confirmation=confirm)
    assert declared.effect is not None
    if declared.effect.kind == "referral":
        return ReferralMachine(code, needs_confirmation=confirm, register=effect_record)
    return EffectOnlyMachine(code, needs_confirmation=confirm, register=effect_record)


@functools.cache
def _declarations() -> dict[str, tuple[Edition, ConfiguredType]]:
    """Each configured type's newest declaration (editions oldest window first)."""
    latest: dict[str, tuple[Edition, ConfiguredType]] = {}
    for edition in all_editions():
        for code, declared in edition.configured_types.items():
            latest[code] = (edition, declared)
    return latest


@functools.cache
def _configured_spec(code: str) -> CaseTypeSpec | None:
    """One configured type's spec, built when first asked (a schema takes ~20 ms to make)."""
    found = _declarations().get(code)
    if found is None:
        return None
    _, declared = found
    return CaseTypeSpec(
        code, declared.label, schema_of(code, declared), configured_rules.assess,
        machine_of(code, declared), core=False, measure=declared.measure,
    )  # fmt: skip


def _configured() -> dict[str, CaseTypeSpec]:
    return {code: spec for code in _declarations() if (spec := _configured_spec(code))}


def catalog() -> dict[str, CaseTypeSpec]:
    """Every application type of every edition shipped (and of RELIEF_EDITIONS_DIR)."""
    return {**CORE, **_configured()}


def _configured_schema(code: str) -> type[Application] | None:
    spec = _configured_spec(code)
    return spec.schema if spec else None


provide_configured_schemas(_configured_schema, lambda: list(_declarations()))


def reload() -> None:
    """Read the editions again (a new edition file dropped in while the process runs)."""
    all_editions.cache_clear()
    _declarations.cache_clear()
    _configured_spec.cache_clear()


def spec_for(case_type: str) -> CaseTypeSpec:
    """The spec of a type; KeyError for a code no edition carries."""
    spec = CORE.get(case_type) or _configured_spec(case_type)
    if spec is None:
        raise KeyError(f"no application type {case_type!r}")
    return spec


def assess(
    app: Application,
    *,
    filed_on: date,
    register: list[Prior7Entry] | None = None,
    edition: Edition | None = None,
) -> list[Assessment]:
    """Judge an application by the edition in force on its filing date."""
    edition = edition or edition_for(filed_on)
    code = str(app.type)
    spec = spec_for(code)
    if spec.core and getattr(edition, code) is None:  # an edition without the core section
        found = [configured_rules.not_in_edition(code, edition)]
    else:
        found = spec.assess(app, edition, filed_on=filed_on, register=register or [])
    machine = spec.machine  # whether a type needs confirmation or pays out is declared there
    return [
        replace(a, needs_confirmation=machine.needs_confirmation, pays_out=machine.pays_out)
        for a in found
    ]


def json_schema(case_type: str) -> dict[str, Any]:
    """The JSON schema of one type's application."""
    return spec_for(case_type).schema.model_json_schema()
