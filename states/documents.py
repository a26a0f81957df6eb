"""申请材料 — the documents a case holds, checked against the slots its edition declares.

An upload is stored first (models/document_store.py) and referred to here by its sha256; the
engine puts it on the case in the step that carries it (filing, 补正, 补充, 补齐), so that a
document is on a case exactly when the event that attached it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.input_errors import FieldError, InvalidApplication
from states.edition import DocumentSlot, Edition

MAX_DOCUMENTS = 50  # per step: more is a mistake or an attack, not an application
FILENAME_MAX = 200


@dataclass(frozen=True)
class DocumentRef:
    """A stored file to put on a case in `slot`."""

    slot: str
    sha256: str
    filename: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"slot": self.slot, "sha256": self.sha256, "filename": self.filename}


def _error(field: str, code: str, zh: str, en: str) -> InvalidApplication:
    return InvalidApplication([FieldError(field, code, zh, en)])


def clean_filename(name: str) -> str:
    """The name as shown to people: no path, no control characters, bounded."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if c.isprintable())
    return base.strip()[:FILENAME_MAX] or "文件"


def parse_refs(raw: Any, edition: Edition, case_type: str) -> list[DocumentRef]:
    """The `documents` of a request as refs, each slot one the type declares."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _error("documents", "model_type", "documents须为列表", "documents must be a list")
    if len(raw) > MAX_DOCUMENTS:
        raise _error(
            "documents",
            "too_long",
            f"一次最多提交{MAX_DOCUMENTS}个文件",
            f"at most {MAX_DOCUMENTS} documents per step",
        )
    names = {s.slot: s for s in edition.slots_for(case_type)}
    out: list[DocumentRef] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise _error(f"documents.{i}", "model_type", "须为对象", "must be an object")
        slot, sha = str(item.get("slot") or ""), str(item.get("sha256") or "").lower()
        if slot not in names:
            allowed = "、".join(f"{s.slot}（{s.label}）" for s in names.values()) or "无"
            raise _error(
                f"documents.{i}.slot",
                "document.slot",
                f"该申请类型没有材料项“{slot[:60]}”；可提交：{allowed}",
                f"no document slot {slot[:60]!r} for {case_type}",
            )
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise _error(
                f"documents.{i}.sha256",
                "document.sha256",
                "文件标识无效，请重新上传",
                "sha256 must be 64 hex digits",
            )
        out.append(DocumentRef(slot, sha, clean_filename(str(item.get("filename") or ""))))
    return out


def missing_slots(
    edition: Edition, case_type: str, facts: dict[str, Any], have: set[str]
) -> list[DocumentSlot]:
    """The required documents (always, or required by these facts) not among `have`."""
    return [s for s in edition.slots_for(case_type) if s.required_for(facts) and s.slot not in have]


def check_slots(edition: Edition, case_type: str, slots: Any) -> list[DocumentSlot]:
    """The slots a 补正 / 容缺 / 补充 request names, each one the type declares."""
    if slots is None:
        return []
    if not isinstance(slots, list) or not all(isinstance(s, str) for s in slots):
        raise _error("slots", "model_type", "slots须为材料项名称的列表", "slots must be names")
    out = []
    for i, name in enumerate(slots):
        slot = edition.slot(case_type, name)
        if slot is None:
            raise _error(
                f"slots.{i}",
                "document.slot",
                f"该申请类型没有材料项“{name[:60]}”",
                f"no document slot {name[:60]!r} for {case_type}",
            )
        out.append(slot)
    return out
