"""申请书字段的中文名称 — the label, help text and choice names of each application field.

Kept beside the schemas (models/field_labels.yaml) so that the filing form of a new type needs no
page code: a field without an entry falls back to its schema description.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

LABELS_FILE = Path(__file__).with_name("field_labels.yaml")


@dataclass(frozen=True)
class FieldLabel:
    label: str
    help: str = ""
    options: dict[str, str] = field(default_factory=dict)


@functools.cache
def _table() -> dict[str, FieldLabel]:
    data: dict[str, Any] = yaml.safe_load(LABELS_FILE.read_text(encoding="utf-8"))
    return {
        key: FieldLabel(
            str(v.get("label", key)), str(v.get("help", "")), dict(v.get("options") or {})
        )
        for key, v in data["fields"].items()
    }


def label_of(model: str, name: str) -> FieldLabel | None:
    """The entry for `Model.name`, else for `name`, else None."""
    table = _table()
    return table.get(f"{model}.{name}") or table.get(name)
