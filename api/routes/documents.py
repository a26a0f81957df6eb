"""材料 — upload a document, put it on a case, list and open a case's documents.

An upload is stored by its content and answered with its sha256; a filing, a 补正 / 补充 answer
or `POST /cases/{no}/documents` then puts it on a case through the engine (which checks the
slot and who may). A case's documents are served only to those who may see the case: its
applicant, the bureaus with a task on it, operators; to anyone else a document does not exist.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Path, Request, UploadFile
from fastapi.responses import Response
from sqlmodel import Session, col, select

from api.deps import CaseNo, CurrentAccount, CurrentActor, EngineDep, case_id_of, load_visible_case
from api.routes.common import documents_on, fired
from api.schemas import AddDocuments, CaseDocumentPublic, FireResultPublic, StoredDocument
from models.document_store import DocumentStore, keep
from models.tables import Account, CaseDocument
from states.engine import CaseEngine
from states.errors import NotPermitted, no_such_case

router = APIRouter(tags=["documents"])
UPLOADERS = ("applicant", "intake_officer", "operator")


async def store_of(request: Request) -> DocumentStore:
    return request.app.state.documents  # type: ignore[no-any-return]


StoreDep = Annotated[DocumentStore, Depends(store_of)]


async def read_upload(upload: UploadFile, engine: CaseEngine) -> bytes:
    """The file's bytes, reading no more than the limit (and a byte to tell it is over)."""
    limit = engine.settings.document_max_mb * 1024 * 1024
    return await upload.read(limit + 1)


@router.post("/documents", response_model=StoredDocument, status_code=201)
async def upload(
    account: CurrentAccount,
    engine: EngineDep,
    store: StoreDep,
    file: Annotated[UploadFile, File(description="PDF, JPEG or PNG")],
) -> StoredDocument:
    """Store a file (by its content: PDF, JPEG or PNG, at most RELIEF_DOCUMENT_MAX_MB); the
    answer's sha256 is what a filing or an answer refers to."""
    if account.role not in UPLOADERS:
        raise NotPermitted("只有申请人、受理人员或运营人员可以上传材料", "may not upload")
    content = await read_upload(file, engine)
    blob = keep(
        engine.db,
        store,
        content,
        max_bytes=engine.settings.document_max_mb * 1024 * 1024,
        now=engine.clock.now(),
    )
    return StoredDocument(sha256=blob.sha256, size=blob.size, media_type=blob.media_type)


@router.post("/cases/{case_no}/documents", response_model=FireResultPublic)
def add_documents(
    case_no: CaseNo, body: AddDocuments, actor: CurrentActor, engine: EngineDep
) -> FireResultPublic:
    """Put stored files on the case (容缺 materials, or more of one's own accord)."""
    return fired(
        engine.add_documents(
            case_id_of(engine, case_no),
            [d.model_dump() for d in body.documents],
            actor=actor,
            expected_version=body.expected_version,
        )
    )


@router.get("/cases/{case_no}/documents", response_model=list[CaseDocumentPublic])
def list_documents(
    case_no: CaseNo, account: CurrentAccount, engine: EngineDep
) -> list[CaseDocumentPublic]:
    """The documents on a case, oldest first."""
    return documents_on(engine, load_visible_case(engine, account, case_no))


def document_response(
    engine: CaseEngine, store: DocumentStore, account: Account, case_no: str, document_id: int
) -> Response:
    """A document's bytes, to one who may see its case; 404 for everyone else."""
    case = load_visible_case(engine, account, case_no)
    with Session(engine.read_db) as s:
        doc = s.exec(
            select(CaseDocument).where(
                col(CaseDocument.id) == document_id, col(CaseDocument.case_id) == case.id
            )
        ).first()
    if doc is None:
        raise no_such_case()
    return Response(
        store.get(doc.sha256),
        media_type=doc.media_type,
        headers={
            # never run as a page of ours, whatever the bytes claim to be
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "Content-Disposition": f"inline; filename=document-{doc.id}; "
            f"filename*=UTF-8''{quote(doc.filename)}",
            "Cache-Control": "private, no-store",
        },
    )


@router.get("/cases/{case_no}/documents/{document_id}")
def open_document(
    case_no: CaseNo,
    document_id: Annotated[int, Path(ge=1, le=2**62)],
    account: CurrentAccount,
    engine: EngineDep,
    store: StoreDep,
) -> Response:
    """A document's content."""
    return document_response(engine, store, account, case_no, document_id)
