"""配置型申请类型 — an application type declared wholly in the policy edition.

A policy officer writes a measure as data: the facts the applicant states (each with its label,
help and clause), the checks (each a CEL expression over those facts, with its reasons and the
verbatim clause), the benefit (money by a fixed formula, or an effect such as a deferral or a
referral), who reviews, confirms, decides and pays, and the documents (the edition's
`documents` table). states/configured_rules.py judges an application by it; the catalog builds
its schema, machine and form from it. No Python is added for a new measure.

CEL (cel-python) is the expression language: it has no I/O, no attribute access outside the
values given, and always terminates. Amounts are never computed in CEL: a benefit is
base x share, capped, in Decimal (rounded half up to the fen), so money stays exact.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import Field, model_validator

from states.policy_terms import Basis, Frozen, Sourced

CODE = r"^[a-z][a-z0-9_]{1,59}$"
FactKind = Literal["money", "integer", "boolean", "date", "text", "choice"]
FactValue = bool | int | Decimal | date | str


class FactSpec(Frozen):
    """申请事项 — one fact the applicant states, as the filing form asks for it."""

    kind: FactKind
    label: str
    help: str = ""
    clause: str | None = Field(default=None, description="verbatim clause shown by the field")
    required: bool = True
    default: FactValue | None = None
    choices: dict[str, str] = Field(default_factory=dict, description="value -> Chinese name")
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    max_length: int = Field(default=200, ge=1, le=4000)

    @model_validator(mode="after")
    def _consistent(self) -> FactSpec:
        if (self.kind == "choice") != bool(self.choices):
            raise ValueError("choices go with kind: choice (and a choice needs them)")
        if not self.required and self.default is None:
            raise ValueError("an optional fact needs a default (checks always see a value)")
        return self


class CheckSpec(Frozen):
    """审查要点 — one condition, its reasons and the clause it rests on.

    `test` is a CEL expression, true when the condition holds, over `applicant` (the party),
    `facts`, `params` and `filed_on` (YYYY-MM-DD). Reasons are sandboxed Jinja over the same
    names. `confirmed_by_reviewer`: the document cannot settle the condition (it is defined in
    another regulation); the applicant's declaration is taken and the reviewing officer
    confirms it — the check quotes what the document says and invents no rule. `scope`: a
    failure means the application is outside the measure (not accepted), not refused.
    """

    code: str = Field(pattern=r"^[a-z][a-z0-9_.]{1,59}$")
    test: str = Field(min_length=1, max_length=2000)
    passed_zh: str
    failed_zh: str
    passed_en: str
    failed_en: str
    clause: str
    basis: Basis = Basis.DOC
    confirmed_by_reviewer: bool = False
    scope: bool = False


class ComponentSpec(Frozen):
    """补贴项目 — an amount: the fact `base` (money, or a count) times the parameter `share`
    (a rate, or an amount per head), capped."""

    code: str = Field(pattern=CODE)
    label: str
    base: str = Field(description="a money fact, or an integer fact (a count)")
    share: str = Field(description="a parameter: the share of the base that is granted")
    cap: str | None = Field(default=None, description="a parameter: the most granted")
    cap_scope: Literal["per_case", "per_enterprise"] = Field(
        default="per_case",
        description="per_enterprise: the cap is shared by all of an enterprise's cases of the "
        "type (the engine keeps the account); per_case: each case on its own",
    )
    clause: str


class EffectSpec(Frozen):
    """非资金效果 — what an approval does instead of paying: a deferral, a referral, a service."""

    kind: Literal["effect", "referral"]
    code: str = Field(pattern=CODE)
    statement_zh: str = Field(description="what the decision states, sandboxed Jinja")
    referred_to: str | None = Field(
        default=None, description="referral: the body that decides (the district takes in)"
    )
    clause: str

    @model_validator(mode="after")
    def _referral(self) -> EffectSpec:
        if (self.kind == "referral") != bool(self.referred_to):
            raise ValueError("referred_to goes with kind: referral (and a referral needs it)")
        return self


class Stages(Frozen):
    """Who handles each stage, as `bureau.section` references of the edition."""

    review: list[str] = Field(min_length=1)
    confirm: str | None = None
    decide: str
    payout: str | None = None


class ConfiguredType(Frozen):
    """One measure an enterprise files, declared in the edition."""

    measure: str = Field(description="the measure number in the document")
    label: str
    summary: str = ""
    facts: dict[str, FactSpec]
    params: dict[str, Sourced[Decimal]] = Field(default_factory=dict)
    checks: list[CheckSpec] = Field(min_length=1)
    components: list[ComponentSpec] = Field(default_factory=list)
    effect: EffectSpec | None = None
    stages: Stages

    @model_validator(mode="after")
    def _coherent(self) -> ConfiguredType:
        reserved = {"type", "applicant", "application_date", "documents"}
        for name in self.facts:
            if not re.match(CODE, name) or name in reserved:
                raise ValueError(
                    f"facts.{name}: a fact is named in lower_snake_case, not {reserved}"
                )
        if bool(self.components) == (self.effect is not None):
            raise ValueError("a type grants money (components) or an effect, exactly one")
        if bool(self.components) != (self.stages.payout is not None):
            raise ValueError("stages.payout goes with money components (and they need it)")
        for c in self.components:
            if self.facts.get(c.base) is None or self.facts[c.base].kind not in (
                "money",
                "integer",
            ):
                raise ValueError(
                    f"components.{c.code}.base: {c.base!r} is not a money or integer fact"
                )
            for ref in (c.share, c.cap):
                if ref is not None and ref not in self.params:
                    raise ValueError(f"components.{c.code}: no parameter {ref!r}")
        codes = [c.code for c in self.checks]
        if len(set(codes)) != len(codes):
            raise ValueError("checks: a code is used twice")
        return self

    @property
    def pays_out(self) -> bool:
        return bool(self.components)

    @property
    def needs_confirmation(self) -> bool:
        return self.stages.confirm is not None

    def section_refs(self) -> list[str]:
        s = self.stages
        return [*s.review, *(r for r in (s.confirm, s.decide, s.payout) if r)]

    def field_clauses(self) -> dict[str, str]:
        return {name: f.clause for name, f in self.facts.items() if f.clause}
