"""申请表单 — a type's filing form generated from its schema, and the posted form read back.

Every application type gets its form from its pydantic schema (models/applications.py): groups
for nested parts, repeatable rows for lists of parts (a chain's stores, loans, tenant
reductions), yes/no choices for facts, selects for fixed values; labels and help from
models/field_labels.yaml and the clause beside a field from the policy edition. A posted form is
turned back into the same JSON the API takes, and validated by the same code (so the errors are
the API's, per field, in Chinese). It needs no JavaScript: rows are added by a submit button.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from models.applications import schema_for
from models.field_labels import label_of

MAX_ROWS = 50  # rows a form shows for one list (the schema's own limit may be higher)
Kind = Literal["text", "number", "money", "date", "bool", "choice", "choices", "group", "rows"]


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    help: str
    kind: Kind
    required: bool
    options: tuple[tuple[str, str], ...] = ()
    children: tuple[FormField, ...] = ()
    min_rows: int = 0
    max_rows: int = MAX_ROWS
    max_length: int | None = None
    clause: str | None = None


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the type without None, whether None was allowed)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        optional = len(rest) < len(args)
        if len(rest) == 1:
            return rest[0], optional
        if bool in rest:  # bool | Declaration: the form asks the yes/no question
            return bool, optional
        return rest[0], optional
    if typing.get_origin(annotation) is typing.Annotated:
        return _unwrap(args[0])
    return annotation, False


def _choices(tp: Any) -> list[str] | None:
    if typing.get_origin(tp) is Literal:
        return [str(a.value if isinstance(a, Enum) else a) for a in typing.get_args(tp)]
    if isinstance(tp, type) and issubclass(tp, Enum):
        return [str(m.value) for m in tp]
    return None


def _limits(info: FieldInfo) -> tuple[int | None, int | None, int | None]:
    lo = hi = length = None
    for m in info.metadata:
        lo = getattr(m, "min_length", lo)
        hi = getattr(m, "max_length", hi)
    length = hi
    return lo, hi, length


def fields_of(
    model: type[BaseModel], clauses: Mapping[str, str], prefix: str = ""
) -> tuple[FormField, ...]:
    out: list[FormField] = []
    for name, info in model.model_fields.items():
        if name == "type" and prefix == "":
            continue  # the application type is the form's own
        tp, _ = _unwrap(info.annotation)
        entry = label_of(model.__name__, name)
        declared = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        label = entry.label if entry else (info.description or name)
        help_text = entry.help if entry else str(declared.get("help") or "")
        options = declared.get("options")
        names = entry.options if entry else (dict(options) if isinstance(options, dict) else {})
        path = f"{prefix}{name}"
        clause = clauses.get(path)
        required = info.is_required()
        lo, hi, length = _limits(info)
        origin = typing.get_origin(tp)
        if origin is list:
            (item,) = typing.get_args(tp)
            item, _ = _unwrap(item)
            values = _choices(item)
            if values is not None:
                out.append(
                    FormField(
                        name,
                        label,
                        help_text,
                        "choices",
                        required,
                        tuple((v, names.get(v, v)) for v in values),
                        clause=clause,
                    )
                )
                continue
            assert isinstance(item, type) and issubclass(item, BaseModel), (model, name)
            out.append(
                FormField(
                    name,
                    label,
                    help_text,
                    "rows",
                    required,
                    children=fields_of(item, clauses, f"{path}.*."),
                    min_rows=lo or 0,
                    max_rows=min(hi or MAX_ROWS, MAX_ROWS),
                    clause=clause,
                )
            )
            continue
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            out.append(
                FormField(
                    name,
                    label,
                    help_text,
                    "group",
                    required,
                    children=fields_of(tp, clauses, f"{path}."),
                    clause=clause,
                )
            )
            continue
        values = _choices(tp)
        if values is not None:
            kind: Kind = "choice"
            options = tuple((v, names.get(v, v)) for v in values)
        elif tp is bool:
            kind, options = "bool", (("true", "是"), ("false", "否"))
        elif tp is date:
            kind, options = "date", ()
        elif tp is Decimal:
            kind, options = "money", ()
        elif tp is int:
            kind, options = "number", ()
        else:
            kind, options = "text", ()
        out.append(FormField(name, label, help_text, kind, required, options,
                             max_length=length, clause=clause))  # fmt: skip
    return tuple(out)


def form_fields(case_type: str, clauses: Mapping[str, str]) -> tuple[FormField, ...]:
    """The form of one application type (clauses by field path, `*` for a row index)."""
    schema = schema_for(case_type)
    assert schema is not None, case_type
    return fields_of(schema, clauses)


# ---------------------------------------------------------------- posted form → application
Form = Mapping[str, Sequence[str]]  # every posted value of each name


def _one(form: Form, name: str) -> str:
    values = form.get(name) or []
    return values[-1].strip() if values else ""


def row_count(form: Form, path: str, spec: FormField) -> int:
    """Rows the form shows for a list: as posted (`_rows.PATH`), at least the schema's minimum."""
    raw = _one(form, f"_rows.{path}")
    n = int(raw) if raw.isdigit() else max(spec.min_rows, 1 if spec.required else 0)
    return max(spec.min_rows, min(n, spec.max_rows))


def read_form(fields: Sequence[FormField], form: Form, prefix: str = "") -> dict[str, Any]:
    """The posted values as the application's JSON: empty inputs left out (so that the schema's
    defaults apply and its "required" errors name the field), an untouched optional group or
    row left out."""
    out: dict[str, Any] = {}
    for f in fields:
        path = f"{prefix}{f.name}"
        if f.kind == "group":
            part = read_form(f.children, form, f"{path}.")
            if part or f.required:
                out[f.name] = part
        elif f.kind == "rows":
            rows = [
                read_form(f.children, form, f"{path}.{i}.") for i in range(row_count(form, path, f))
            ]
            rows = [r for r in rows if r]
            if rows or f.required:
                out[f.name] = rows
        elif f.kind == "choices":
            picked = [v for v in form.get(path) or [] if v in {o for o, _ in f.options}]
            if picked:
                out[f.name] = picked
        else:
            value = _one(form, path)
            if value == "":
                continue
            if f.kind == "bool":
                out[f.name] = {"true": True, "false": False}.get(value, value)
            else:
                out[f.name] = value
    return out


def form_values(data: Any, prefix: str = "") -> dict[str, list[str]]:
    """An application's JSON as form values (to show a posted form again, or fill an example)."""
    out: dict[str, list[str]] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(form_values(v, f"{prefix}{k}."))
    elif isinstance(data, list) and all(not isinstance(v, dict) for v in data):
        out[prefix.rstrip(".")] = [str(v) for v in data]
    elif isinstance(data, list):
        out[f"_rows.{prefix.rstrip('.')}"] = [str(len(data))]
        for i, v in enumerate(data):
            out.update(form_values(v, f"{prefix}{i}."))
    elif isinstance(data, bool):
        out[prefix.rstrip(".")] = ["true" if data else "false"]
    elif data is not None:
        out[prefix.rstrip(".")] = [str(data)]
    return out


def add_row(values: dict[str, list[str]], path: str, spec: FormField) -> None:
    """One more (empty) row of the list at `path` (the form's "添加一行" button)."""
    n = row_count(values, path, spec)
    values[f"_rows.{path}"] = [str(min(n + 1, spec.max_rows))]


def remove_row(values: dict[str, list[str]], path: str, index: int, spec: FormField) -> None:
    """Drop row `index` of the list at `path`; the rows after it move up."""
    n = row_count(values, path, spec)
    if not 0 <= index < n:
        return
    head = f"{path}."
    moved: dict[str, list[str]] = {}
    for key in list(values):
        if not key.startswith(head):
            continue
        rest = key[len(head) :]
        number, _, tail = rest.partition(".")
        if not number.isdigit():
            continue
        i = int(number)
        value = values.pop(key)
        if i < index:
            moved[key] = value
        elif i > index:
            moved[f"{head}{i - 1}.{tail}"] = value
    values.update(moved)
    values[f"_rows.{path}"] = [str(max(n - 1, spec.min_rows))]


def find(fields: Sequence[FormField], path: str) -> FormField | None:
    """The field at a dotted path (row indexes skipped)."""
    parts = [p for p in path.split(".") if not p.isdigit()]
    level: Sequence[FormField] = fields
    found: FormField | None = None
    for part in parts:
        found = next((f for f in level if f.name == part), None)
        if found is None:
            return None
        level = found.children
    return found
