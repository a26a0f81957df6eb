"""政策版本 — the policy edition: every parameter the rules use, each with its source clause.

An edition is a YAML file in states/editions/, validated by pydantic on load. A clause marked
DOC or INTERP must be a verbatim substring of the edition's source text, so every number in the
rules traces to the document; a file that drifts from the text fails to load.
"""

from __future__ import annotations

import functools
import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import yaml
from pydantic import BaseModel, Field, model_validator

from models.applications import CaseType
from states.configured_types import CheckSpec, ComponentSpec, ConfiguredType, EffectSpec, FactSpec
from states.policy_terms import Basis, Frozen, Sourced

EDITIONS_DIR = Path(__file__).parent / "editions"
T = TypeVar("T")


class Window(Frozen):
    start: date
    end: date
    basis: Basis = Basis.DOC
    clause: str
    note: str = ""

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end


class Contact(Frozen):
    person: str
    phone: str
    scope_note: str | None = None
    clause: str


class Section(Frozen):
    code: str
    name: str
    contacts: list[Contact] = Field(default_factory=list)


AuthorityLevel = Literal["department", "government", "vertical", "organisation"]


class Bureau(Frozen):
    code: str
    name: str = Field(description="the short name the document uses (区市场监管局)")
    full_name: str = Field(
        default="",
        description="the organ's full name, as a notice is issued and sealed in it "
        "(北京市东城区市场监督管理局; PROPOSAL: for the bureau to confirm)",
    )
    superior: str = Field(
        default="",
        description="the next higher competent department (上一级主管部门), where the law lets "
        "an applicant seek reconsideration there (PROPOSAL: for the bureau to confirm)",
    )
    doc_prefix: str = Field(description="issuer code of document numbers (PROPOSAL)")
    fund_source: str = Field(
        default="", description="what a payment by this bureau is paid from (PROPOSAL)"
    )
    level: AuthorityLevel = Field(
        default="department",
        description="a district government department, the district government itself, a "
        "vertically led organ (税务), or a body that is not an administrative organ: which body "
        "hears a reconsideration of its acts follows from it",
    )
    sections: list[Section]

    @property
    def formal_name(self) -> str:
        """The name a notice is issued in: the full name, else the document's."""
        return self.full_name or self.name


class NoDoubleBenefit(Frozen):
    basis: Basis = Basis.DOC
    clause: str
    register_name: str = Field(alias="register")


class MoneyRule(Frozen):
    currency: Literal["CNY"]
    quantum: Decimal
    rounding: Literal["ROUND_HALF_UP"]
    note: str = ""


OwnerCategory = Literal[
    "district_SOE",
    "district_admin_institution",
    "central_SOE",
    "municipal_state",
    "collective",
    "non_state",
]


class Remedy(Frozen):
    """Where an act of an authority of one level is challenged, and the law that says so.

    A body that is not an administrative organ (区总工会, a mass organisation) makes no
    administrative act: its notices name no reconsideration body, only where an objection goes.
    """

    in_force_from: date | None = Field(default=None, description="the law's first day")
    in_force_to: date | None = Field(default=None, description="the law's last day")
    administrative: bool = True
    reconsideration_body: str = Field(
        default="", description="may name {superior}: the deciding bureau's 上一级主管部门"
    )
    court: str = ""
    objection_zh: str = ""
    basis: Basis = Basis.LAW
    clause: str

    def in_force(self, day: date) -> bool:
        return (self.in_force_from is None or self.in_force_from <= day) and (
            self.in_force_to is None or day <= self.in_force_to
        )

    @model_validator(mode="after")
    def _complete(self) -> Remedy:
        if self.administrative and not (self.reconsideration_body and self.court):
            raise ValueError("an administrative remedy names the reconsideration body and court")
        if not self.administrative and not self.objection_zh:
            raise ValueError("a non-administrative body says where an objection goes")
        return self


class NoticeParams(Frozen):
    """What a decision notice must tell: the remedy periods (statutory) and, per level of the
    deciding authority, the bodies."""

    reconsideration_days: Sourced[int]
    lawsuit_months: Sourced[int]
    remedies: dict[AuthorityLevel, list[Remedy]] = Field(
        description="per level of the deciding authority, the law in force on each issue date"
    )
    correction_consequence: str
    deferred_consequence: str
    more_info_consequence: str
    system_name: str = Field(
        default="惠企政策兑现系统",
        description="how the system signs the reminders it sends bureaus (PROPOSAL)",
    )

    def remedy(self, level: AuthorityLevel, issued_on: date) -> Remedy:
        """The remedy the law in force on the issue date gives against this level's acts."""
        for r in self.remedies.get(level, []):
            if r.in_force(issued_on):
                return r
        raise KeyError(f"notices.remedies.{level}: no law in force on {issued_on}")


class SlotCondition(Frozen):
    """When a `required: when` document is required: a fact of the application compared."""

    field: str = Field(description="dotted path in the application, e.g. applicant.kind")
    op: Literal["eq", "gt"]
    value: bool | int | Decimal | str

    def holds(self, facts: dict[str, Any]) -> bool:
        node: Any = facts
        for part in self.field.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if self.op == "eq":
            return bool(node == self.value)
        try:
            return node is not None and Decimal(str(node)) > Decimal(str(self.value))
        except ArithmeticError:
            return False


class DocumentSlot(Frozen):
    """申请材料 — a document an application type asks for, with the clause that asks for it."""

    slot: str = Field(pattern=r"^[a-z][a-z0-9_]{1,59}$")
    label: str
    help: str = ""
    required: Literal["always", "optional", "when"]
    when: SlotCondition | None = None
    basis: Basis = Basis.INTERP
    clause: str

    @model_validator(mode="after")
    def _condition(self) -> DocumentSlot:
        if (self.required == "when") != (self.when is not None):
            raise ValueError(f"document slot {self.slot}: `when` goes with required: when")
        return self

    def required_for(self, facts: dict[str, Any]) -> bool:
        if self.required == "when":
            assert self.when is not None
            return self.when.holds(facts)
        return self.required == "always"


class RentStatePropertyParams(Frozen):
    measure: str
    benefit_year: Sourced[int]
    months_standard: Sourced[int]
    months_risk_area: Sourced[int]
    tenant_clause: str
    property_clause: str
    chain_clause: str
    collective_clause: str
    final_operator_clause: str
    supervisors: dict[str, str]
    task_force: str = Field(
        description="the 专班 that coordinates the waivers: where a tenant turns when a landlord "
        "does not give what the policy says"
    )


class IncubatorSubsidyParams(Frozen):
    measure: str
    rate: Sourced[Decimal]
    applicant_clause: str
    tenant_clause: str
    confirming_units: dict[str, str]


class ParkSubsidyParams(Frozen):
    measure: str
    rate: Sourced[Decimal]
    cap_per_property: Sourced[Decimal]
    property_clause: str
    tenant_clause: str
    period_clause: str
    park_unit: str
    building_unit: str
    building_cooperating_unit: str
    grant_authority: str


class CreditExemptionParams(Frozen):
    measure: str
    rule_clause: str
    service_clause: str
    unit: str


class LicenceExtensionParams(Frozen):
    measure: str
    months: Sourced[int]
    days_after_lift: Sourced[int]
    green_channel_clause: str
    units: dict[str, str]


class LoanSubsidyParams(Frozen):
    measure: str
    loan_year: Sourced[int]
    principal_threshold: Sourced[Decimal]
    interest_ceiling_rate: Sourced[Decimal]
    guarantee_cap: Sourced[Decimal]
    applicant_clause: str
    review_unit: str
    guarantee_review_unit: str
    confirming_unit: str


class Setting(Frozen, Generic[T]):
    """An OPEN point of the document, settled by the documented default until the owner decides."""

    value: T
    description: str


class OpenPointSettings(Frozen):
    """Every OPEN point of shared/domain/README.md, by name."""

    double_benefit_outcome: Setting[Literal["refuse_and_manual_review"]]
    loan_interest_rate: Setting[Decimal]
    guarantee_fee_share: Setting[Decimal]
    guarantee_cap_scope: Setting[Literal["per_enterprise_year", "per_loan"]]
    licence_auto_extension_expiry_from: Setting[date]
    licence_auto_extension_expiry_to: Setting[date]
    date_arithmetic: Setting[Literal["civil_code"]]
    credit_causation: Setting[Literal["confirmed_by_reviewer"]]
    credit_individual_business: Setting[Literal["accept_with_manual_review", "refuse"]]
    municipal_state_property_unit: Setting[str]
    chain_store_size_test: Setting[Literal["per_store", "per_enterprise"]]
    subsidy_payer: Setting[str]
    application_window_from: Setting[date]
    application_window_to: Setting[date]
    short_lease_rule: Setting[Literal["cap_at_months_in_year"]]
    collective_landlord: Setting[Literal["manual_review", "refuse"]]
    park_cap_shared_by_owner_and_operator: Setting[bool]


class Edition(Frozen):
    """One edition of one policy document, in force over its window."""

    id: str
    doc_number: str
    title: str
    issuer: str
    source_file: str
    window: Window
    no_double_benefit: NoDoubleBenefit
    money: MoneyRule
    bureaus: list[Bureau]
    notices: NoticeParams
    rent_state_property: RentStatePropertyParams | None = None
    rent_incubator_subsidy: IncubatorSubsidyParams | None = None
    rent_park_subsidy: ParkSubsidyParams | None = None
    credit_exemption: CreditExemptionParams | None = None
    licence_extension: LicenceExtensionParams | None = None
    loan_subsidy: LoanSubsidyParams | None = None
    documents: dict[str, list[DocumentSlot]] = Field(
        default_factory=dict, description="per application type: the documents it asks for"
    )
    field_clauses: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="per type: the clause the filing form shows by a field"
    )
    configured_types: dict[str, ConfiguredType] = Field(
        default_factory=dict,
        description="measures declared wholly here (states/configured_types.py), by type code",
    )
    settings: OpenPointSettings

    @model_validator(mode="after")
    def _checks(self) -> Edition:
        rate = self.settings.loan_interest_rate.value
        if self.loan_subsidy and not (
            Decimal(0) < rate <= self.loan_subsidy.interest_ceiling_rate.value
        ):
            raise ValueError("settings.loan_interest_rate must be in (0, interest_ceiling_rate]")
        core = {t.value for t in CaseType}
        for code in self.configured_types:
            if code in core or not re.match(r"^[a-z][a-z0-9_]{1,39}$", code):
                raise ValueError(
                    f"configured_types.{code}: a new lower_snake_case code, not a core type's"
                )
        for ref in self.section_refs():
            self.section(ref)  # raises on a dangling reference
        missing = {b.level for b in self.bureaus} - set(self.notices.remedies)
        if missing:
            raise ValueError(f"notices.remedies: no remedy for authorities of level {missing}")
        for case_type, slots in self.documents.items():
            if case_type not in self.type_codes():
                raise ValueError(f"documents: no application type {case_type!r}")
            names = [s.slot for s in slots]
            if len(set(names)) != len(names):
                raise ValueError(f"documents.{case_type}: a slot is named twice")
        return self

    def core_types(self) -> list[str]:
        """The types whose rules are Python (states/<type>.py): those with a section here."""
        return [t.value for t in CaseType if getattr(self, t.value) is not None]

    def type_codes(self) -> list[str]:
        """Every application type this edition carries: core, then configured."""
        return [*self.core_types(), *self.configured_types]

    def measure_of(self, case_type: str) -> str:
        """The measure number a type carries out (core sections and configured types alike)."""
        declared = self.configured_types.get(case_type)
        if declared is not None:
            return declared.measure
        section = getattr(self, case_type, None)
        return str(section.measure) if section is not None else ""

    def clauses_for_fields(self, case_type: str) -> dict[str, str]:
        """The clause the filing form shows by each field of a type."""
        declared = self.configured_types.get(case_type)
        own = declared.field_clauses() if declared else {}
        return {**own, **self.field_clauses.get(case_type, {})}

    def slots_for(self, case_type: str) -> list[DocumentSlot]:
        """The documents an application type asks for (none declared: none)."""
        return self.documents.get(case_type, [])

    def slot(self, case_type: str, name: str) -> DocumentSlot | None:
        return next((s for s in self.slots_for(case_type) if s.slot == name), None)

    def section_refs(self) -> list[str]:
        """Every `bureau.section` reference the parameters use."""
        p = self
        refs = [p.settings.municipal_state_property_unit.value, p.settings.subsidy_payer.value]
        if p.rent_state_property:
            refs += p.rent_state_property.supervisors.values()
            refs.append(p.rent_state_property.task_force)
        if p.rent_incubator_subsidy:
            refs += p.rent_incubator_subsidy.confirming_units.values()
        if p.rent_park_subsidy:
            r = p.rent_park_subsidy
            refs += [r.park_unit, r.building_unit, r.building_cooperating_unit, r.grant_authority]
        if p.credit_exemption:
            refs.append(p.credit_exemption.unit)
        if p.licence_extension:
            refs += p.licence_extension.units.values()
        if p.loan_subsidy:
            ln = p.loan_subsidy
            refs += [ln.review_unit, ln.guarantee_review_unit, ln.confirming_unit]
        for declared in p.configured_types.values():
            refs += declared.section_refs()
        return refs

    def bureau(self, code: str) -> Bureau:
        for b in self.bureaus:
            if b.code == code:
                return b
        raise KeyError(f"edition {self.id}: no bureau {code!r}")

    def section(self, ref: str) -> tuple[Bureau, Section | None]:
        """Resolve `bureau.section` (or a bare `bureau`) to its bureau and section."""
        bureau_code, _, section_code = ref.partition(".")
        bureau = self.bureau(bureau_code)
        if not section_code:
            return bureau, None
        for s in bureau.sections:
            if s.code == section_code:
                return bureau, s
        raise KeyError(f"edition {self.id}: no section {ref!r}")

    def quoted_clauses(self) -> list[str]:
        """Every clause marked DOC or INTERP, plus contact and rule clauses."""
        found: list[str] = []

        def walk(node: Any, key: str = "") -> None:
            if isinstance(node, DocumentSlot | CheckSpec):
                if node.basis in (Basis.DOC, Basis.INTERP):
                    found.append(node.clause)
                return
            if isinstance(node, ComponentSpec | EffectSpec | FactSpec):
                if node.clause:  # a configured type quotes the document, always verbatim
                    found.append(node.clause)
                return
            if isinstance(node, Sourced | Window | NoDoubleBenefit):
                if node.basis in (Basis.DOC, Basis.INTERP):
                    found.append(node.clause)
                return
            if isinstance(node, Contact):
                found.append(node.clause)
                return
            if isinstance(node, BaseModel):
                for name in type(node).model_fields:
                    walk(getattr(node, name), name)
            elif isinstance(node, list):
                for item in node:
                    walk(item, key)
            elif isinstance(node, dict):
                for k, item in node.items():
                    walk(item, str(k))
            if key == "field_clauses":
                found.extend(c for per_type in node.values() for c in per_type.values())
            elif isinstance(node, str) and key.endswith("_clause"):
                found.append(node)

        walk(self)
        return found


def carried(part: T | None, name: str) -> T:
    """A core type's section; the catalog never judges a type its edition does not carry."""
    if part is None:
        raise KeyError(f"the edition has no {name} section")
    return part


def _normalise(text: str) -> str:
    return re.sub(r"\s+", "", text)


def load_edition(path: Path) -> Edition:
    """Load and validate one edition; every quoted clause must stand in its source text."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: a third of the time
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    edition = Edition.model_validate(data)
    source = _normalise((path.parent / edition.source_file).read_text(encoding="utf-8"))
    missing = [c for c in edition.quoted_clauses() if _normalise(c) not in source]
    if missing:
        raise ValueError(f"{path.name}: clauses not found verbatim in the source: {missing}")
    return edition


def edition_files() -> list[Path]:
    """The shipped edition files, then those of RELIEF_EDITIONS_DIR (a district's own)."""
    from models.settings import get_settings

    files = sorted(EDITIONS_DIR.glob("*.yaml"))
    extra = get_settings().editions_dir
    if extra is not None:
        if not extra.is_dir():
            raise ValueError(f"RELIEF_EDITIONS_DIR: {extra} is not a directory")
        files += sorted(extra.glob("*.yaml"))
    return files


@functools.cache
def all_editions() -> tuple[Edition, ...]:
    """Every edition, oldest window first; two editions with one id are refused."""
    editions = [load_edition(p) for p in edition_files()]
    ids = [e.id for e in editions]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ValueError(f"editions: the id {', '.join(twice)} is used by two files")
    return tuple(sorted(editions, key=lambda e: e.window.start))


def edition_by_id(edition_id: str) -> Edition:
    for e in all_editions():
        if e.id == edition_id:
            return e
    raise KeyError(f"no policy edition {edition_id!r}")


def edition_for(filed_on: date) -> Edition:
    """The edition that judges a case filed on `filed_on`.

    The edition in force on that day; a filing after every window is judged by the latest
    edition (whose window rule then refuses it), one before every window by the earliest.
    """
    editions = all_editions()
    for e in editions:
        if e.window.contains(filed_on):
            return e
    earlier = [e for e in editions if e.window.start <= filed_on]
    return earlier[-1] if earlier else editions[0]
