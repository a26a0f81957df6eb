"""Reading operator batch files: JSON (a list, or {"applications": [...]}) or CSV.

A CSV row is one record with dotted column names for nesting (`applicant.uscc`,
`stores.0.monthly_rent`); empty cells are left out, so pydantic's defaults apply.
"""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path
from typing import Any


class BatchFileError(ValueError):
    """The file as a whole cannot be read (not a row's problem)."""


def read_records(path: Path, key: str = "applications") -> list[dict[str, Any]]:
    """The records of a JSON or CSV batch file, in file order."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise BatchFileError(f"无法读取文件 {path}：{exc.strerror}") from None
    if path.suffix.lower() == ".csv":
        return [unflatten(row) for row in csv.DictReader(text.splitlines())]
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BatchFileError(f"{path} 不是有效的JSON（第{exc.lineno}行）：{exc.msg}") from None
    if isinstance(data, dict) and isinstance(data.get(key), list):
        data = data[key]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise BatchFileError(f"{path}：应为JSON对象的列表，或含“{key}”列表的对象")
    return data


def unflatten(row: dict[str, str | None]) -> dict[str, Any]:
    """`{"a.b": "1", "c.0.d": "x"}` → `{"a": {"b": "1"}, "c": [{"d": "x"}]}`."""
    out: dict[str, Any] = {}
    for column, value in row.items():
        if column is None or value is None or value.strip() == "":
            continue
        parts = column.strip().split(".")
        node: Any = out
        for part, nxt in itertools.pairwise(parts):
            key: Any = int(part) if part.isdigit() else part
            default: Any = [] if nxt.isdigit() else {}
            if isinstance(node, list):
                while len(node) <= key:
                    node.append(None)
                if node[key] is None:
                    node[key] = default
                node = node[key]
            else:
                node = node.setdefault(key, default)
        last: Any = int(parts[-1]) if parts[-1].isdigit() else parts[-1]
        if isinstance(node, list):
            while len(node) <= last:
                node.append(None)
        node[last] = value.strip()
    return out
