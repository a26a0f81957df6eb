"""申请类型目录 — each application type's schema, rules and machine, in one table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from models.applications import SCHEMAS, Application, CaseType
from states import (
    credit_exemption,
    licence_extension,
    loan_subsidy,
    rent_incubator_subsidy,
    rent_park_subsidy,
    rent_state_property,
)
from states.edition import Edition, edition_for
from states.lifecycle import TypeMachine
from states.rules import Assessment, Prior7Entry


@dataclass(frozen=True)
class CaseTypeSpec:
    case_type: CaseType
    label_zh: str
    schema: type[Application]
    assess: Callable[..., list[Assessment]]
    machine: TypeMachine


CATALOG: dict[CaseType, CaseTypeSpec] = {
    spec.case_type: spec
    for spec in (
        CaseTypeSpec(
            CaseType.RENT_STATE_PROPERTY,
            "国有房屋租金减免",
            SCHEMAS[CaseType.RENT_STATE_PROPERTY],
            rent_state_property.assess,
            rent_state_property.MACHINE,
        ),
        CaseTypeSpec(
            CaseType.RENT_INCUBATOR_SUBSIDY,
            "科技型孵化器减免房租补贴",
            SCHEMAS[CaseType.RENT_INCUBATOR_SUBSIDY],
            rent_incubator_subsidy.assess,
            rent_incubator_subsidy.MACHINE,
        ),
        CaseTypeSpec(
            CaseType.RENT_PARK_SUBSIDY,
            "文化产业园区、商务楼宇减免租金补贴",
            SCHEMAS[CaseType.RENT_PARK_SUBSIDY],
            rent_park_subsidy.assess,
            rent_park_subsidy.MACHINE,
        ),
        CaseTypeSpec(
            CaseType.CREDIT_EXEMPTION,
            "信用豁免",
            SCHEMAS[CaseType.CREDIT_EXEMPTION],
            credit_exemption.assess,
            credit_exemption.MACHINE,
        ),
        CaseTypeSpec(
            CaseType.LICENCE_EXTENSION,
            "食品许可证有效期顺延",
            SCHEMAS[CaseType.LICENCE_EXTENSION],
            licence_extension.assess,
            licence_extension.MACHINE,
        ),
        CaseTypeSpec(
            CaseType.LOAN_SUBSIDY,
            "贷款贴息和担保费补贴",
            SCHEMAS[CaseType.LOAN_SUBSIDY],
            loan_subsidy.assess,
            loan_subsidy.MACHINE,
        ),
    )
}


def spec_for(case_type: str) -> CaseTypeSpec:
    return CATALOG[CaseType(case_type)]


def assess(
    app: Application,
    *,
    filed_on: date,
    register: list[Prior7Entry] | None = None,
    edition: Edition | None = None,
) -> list[Assessment]:
    """Judge an application by the edition in force on its filing date."""
    edition = edition or edition_for(filed_on)
    spec = CATALOG[app.type]
    machine = spec.machine  # whether a type needs confirmation or pays out is declared there
    return [
        replace(a, needs_confirmation=machine.needs_confirmation, pays_out=machine.pays_out)
        for a in spec.assess(app, edition, filed_on=filed_on, register=register or [])
    ]


def json_schema(case_type: str) -> dict[str, Any]:
    """The JSON schema of one type's application."""
    return spec_for(case_type).schema.model_json_schema()
