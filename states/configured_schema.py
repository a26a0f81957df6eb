"""配置型类型的申请书 — the pydantic schema of a configured type, made from its declared facts.

The same validation as a core type (extra fields refused, Chinese errors per field, money
exact to the fen), so the API, the form and the CLI read a configured application exactly
as they read a core one.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, create_model

from models.applications import ConfiguredApplication
from states.configured_types import ConfiguredType, FactSpec

FACT_TYPES: dict[str, Any] = {"money": Decimal, "integer": int, "boolean": bool, "date": date,
                              "text": str}  # fmt: skip


def _annotation(fact: FactSpec) -> Any:
    extra: dict[str, Any] | None = None
    if fact.help or fact.choices:
        extra = {"help": fact.help, "options": dict(fact.choices)}
    limits: dict[str, Any] = {}
    if fact.kind == "money":
        limits = {"ge": fact.minimum if fact.minimum is not None else 0, "max_digits": 14,
                  "decimal_places": 2}  # fmt: skip
        if fact.maximum is not None:
            limits["le"] = fact.maximum
    elif fact.kind == "integer":
        limits = {"ge": int(fact.minimum) if fact.minimum is not None else 0}
        if fact.maximum is not None:
            limits["le"] = int(fact.maximum)
    elif fact.kind == "text":
        limits = {"max_length": fact.max_length}
    base = Literal[tuple(fact.choices)] if fact.kind == "choice" else FACT_TYPES[fact.kind]
    info = Field(description=fact.label, json_schema_extra=extra, **limits)
    return Annotated[base, info]


def _camel(code: str) -> str:
    return "".join(part.capitalize() for part in code.split("_")) + "Application"


def schema_of(type_code: str, declared: ConfiguredType) -> type[ConfiguredApplication]:
    """The application model of one declared type (the catalog builds it once)."""
    fields: dict[str, Any] = {"type": (Literal[type_code], ...)}
    for name, fact in declared.facts.items():
        fields[name] = (_annotation(fact), ... if fact.required else fact.default)
    model = create_model(  # type: ignore[call-overload]
        _camel(type_code),
        __base__=ConfiguredApplication,
        __doc__=f"{declared.label} (measure {declared.measure}, declared in the edition).",
        **fields,
    )
    return model  # type: ignore[no-any-return]
