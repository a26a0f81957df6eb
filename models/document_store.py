"""材料存储 — uploaded documents, stored once by their content (sha256), never overwritten.

A blob is written to a temporary file beside its place and moved there atomically, so a crash
leaves either the whole file or none, and two uploads of the same bytes end as one file. The
store only holds bytes: which case a document belongs to, and who may read it, is in the
database (CaseDocument), written by the engine. `DocumentStore` is the interface; the directory
store is the default, and an object store (S3, MinIO, OSS) would implement the same three
methods (RELIEF_DOCUMENT_STORE names the directory today).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import filetype
from sqlalchemy import Engine
from sqlmodel import Session

from models.db import insert_if_absent
from models.settings import Settings
from models.tables import DocumentBlob

# what an applicant may send: checked by the bytes, never by the file name
ACCEPTED = {"application/pdf": "PDF", "image/jpeg": "JPEG", "image/png": "PNG"}


class DocumentRefused(Exception):
    """An upload that is not kept: `message_zh` says why, to the applicant."""

    def __init__(self, message_zh: str, message_en: str) -> None:
        super().__init__(message_en)
        self.message_zh = message_zh
        self.message_en = message_en


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int
    media_type: str


def sniff(content: bytes, *, max_bytes: int) -> str:
    """The media type of an upload by its content, or DocumentRefused."""
    if not content:
        raise DocumentRefused("文件为空", "the file is empty")
    if len(content) > max_bytes:
        raise DocumentRefused(
            f"文件过大：每个文件不超过{max_bytes // (1024 * 1024)} MB",
            f"file over {max_bytes} bytes",
        )
    kind = filetype.guess(content[:8192])
    media_type = kind.mime if kind else ""
    if media_type not in ACCEPTED:
        raise DocumentRefused(
            "只接受PDF、JPEG或PNG文件（按文件内容判断，与文件名无关）",
            f"content is {media_type or 'unknown'}, not PDF, JPEG or PNG",
        )
    return media_type


class DocumentStore(Protocol):
    def put(self, content: bytes, *, max_bytes: int) -> StoredBlob: ...
    def get(self, sha256: str) -> bytes: ...
    def exists(self, sha256: str) -> bool: ...


class DirectoryStore:
    """Blobs as files named by their sha256 under `root` (two-level fan-out)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise KeyError(sha256)  # never a path of the caller's making
        return self.root / sha256[:2] / sha256

    def put(self, content: bytes, *, max_bytes: int) -> StoredBlob:
        media_type = sniff(content, max_bytes=max_bytes)
        digest = hashlib.sha256(content).hexdigest()
        path = self._path(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(content)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)  # same bytes, same name: a racing twin is harmless
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        return StoredBlob(digest, len(content), media_type)

    def get(self, sha256: str) -> bytes:
        return self._path(sha256).read_bytes()

    def exists(self, sha256: str) -> bool:
        try:
            return self._path(sha256).exists()
        except KeyError:
            return False


def keep(
    db: Engine, store: DocumentStore, content: bytes, *, max_bytes: int, now: datetime
) -> StoredBlob:
    """Store an upload's bytes and index it (document_blob); the same bytes are kept once.

    The file is written before its row: a crash between the two leaves an unindexed file
    (harmless, stored again by the next upload of it), never a row without its file.
    """
    blob = store.put(content, max_bytes=max_bytes)
    with Session(db) as s, s.begin():
        insert_if_absent(
            s,
            DocumentBlob,
            [{"sha256": blob.sha256, "size": blob.size, "media_type": blob.media_type,
              "stored_at": now}],
        )  # fmt: skip
    return blob


def store_for(settings: Settings) -> DocumentStore:
    """The installation's document store (a directory; RELIEF_DOCUMENT_STORE)."""
    return DirectoryStore(Path(settings.document_store))
