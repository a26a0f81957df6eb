"""The FastAPI app: REST API (OpenAPI at /docs) and the pages, on one engine.

Engine refusals become HTTP answers with a Chinese and an English message: a stale version or
a step the case has moved past is 409, a rule that says no is 422, invalid input is 422 with
every bad field named. A database out of reach is 503 with a Retry-After (JSON for the API, a
page for a browser). No stack trace reaches a client.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import docs_pages
from api.input_guard import InputGuard
from api.pages import accounts, dashboard, filing, my_cases, tasklist
from api.pages import reports as report_pages
from api.pages.views import CsrfRefused, csrf_refused_page, pages
from api.pages.views import router as pages_router
from api.routes import applicant, bureau, documents, operator, public, reports
from api.throttle import Throttled
from base.clock import Clock
from models.db import engine_for, head_revision, migrate, schema_state
from models.document_store import DocumentRefused, store_for
from models.input_errors import InvalidApplication
from models.settings import Settings, get_settings
from notifications.issuer import engine_with_notices
from states.errors import (
    CaseNotFound,
    ConflictError,
    DatabaseUnavailable,
    EngineError,
    NotPermitted,
    StorageFull,
    WrongState,
    connection_lost,
    database_unavailable,
)

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
# no inline script, nothing from elsewhere, never framed; /docs and /redoc also need inline
# styles (ReDoc writes its own) and a blob: worker
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
CSP_DOCS = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'") + (
    "; worker-src 'self' blob:"
)
# a chart is an SVG image drawn by pygal, which styles it with its own <style> element; it may
# run nothing and load nothing
CSP_CHART = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
PRIVATE = ("/api/", "/login", "/status", "/bureau", "/operator", "/my", "/apply", "/register")
UPLOAD_FILES = 10  # files one form may carry (a filing with all its documents)
# seconds a client is asked to wait while the database is out of reach: a PostgreSQL restart
# takes a second or two, a failover longer; the client's retry with the same key is safe
DATABASE_RETRY_AFTER = 5


def headers_for(path: str) -> dict[str, str]:
    """The security headers of every answer (the docs pages' policy allows their styles)."""
    policy = CSP_DOCS if path in ("/docs", "/redoc") else CSP
    if path.startswith("/operator/charts/"):
        policy = CSP_CHART
    out = {"Content-Security-Policy": policy}
    out.update(SECURITY_HEADERS)
    if path.startswith(PRIVATE):
        out["Cache-Control"] = "no-store"
    return out


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    if settings.database_url.startswith("sqlite"):
        migrate(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # the routes are sync: each request holds a worker thread (anyio's default: 40)
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
        yield

    app = FastAPI(
        lifespan=lifespan,
        title="relief",
        version="0.1.0",
        description="东政发〔2022〕8号 助企纾困政策办理系统: applicants, bureaus, operators.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.engine = engine_with_notices(
        engine_for(settings.database_url), settings=settings, clock=Clock(settings.now)
    )
    app.state.documents = store_for(settings)
    for module in (applicant, bureau, documents, operator, public, reports):
        app.include_router(module.router, prefix="/api")
    app.include_router(pages_router)
    app.include_router(filing.router)
    app.include_router(report_pages.router)
    app.include_router(tasklist.router)
    app.include_router(dashboard.router)
    app.include_router(my_cases.router)
    app.include_router(accounts.router)
    app.include_router(docs_pages.router)
    app.mount("/static/docs", StaticFiles(directory=docs_pages.ASSETS), name="docs-assets")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    code_schema = head_revision()

    # and the security headers; an upload carries up to UPLOAD_FILES files of the largest size
    app.add_middleware(
        InputGuard,
        headers=headers_for,
        upload_limit=(settings.document_max_mb * UPLOAD_FILES + 1) * 1024 * 1024,
    )
    app.add_exception_handler(CsrfRefused, csrf_refused_page)

    @app.exception_handler(Throttled)
    def throttled(request: Request, exc: Throttled) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        return JSONResponse(
            status_code=429,
            content={"error": "throttled", "message_zh": exc.message_zh,
                     "message_en": exc.message_en},
            headers=headers,
        )  # fmt: skip

    @app.get("/healthz", tags=["health"])
    def healthz() -> JSONResponse:
        """Readiness: this process answers, its database answers and has this code's schema.

        503 when the database is down or behind this code (`relief db upgrade` first); 200 with
        `schema_state: ahead` when the database was upgraded for newer code (an upgrade in
        progress: this process still works, replace it).
        """
        body: dict[str, object] = {"pid": os.getpid(), "schema_expected": code_schema}
        try:
            with app.state.engine.db.connect() as conn:
                body["schema"] = conn.execute(
                    text("SELECT version_num FROM alembic_version")
                ).scalar()
        except SQLAlchemyError as exc:
            log.warning("healthz: database unreachable: %s", exc)
            return JSONResponse(status_code=503, content={**body, "status": "database down"})
        body["schema_state"] = state = schema_state(str(body["schema"] or "") or None)
        body["status"] = "ok" if state != "behind" else "run relief db upgrade"
        return JSONResponse(status_code=200 if state != "behind" else 503, content=body)

    @app.exception_handler(DocumentRefused)
    def document_refused(request: Request, exc: DocumentRefused) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={"error": "document_refused", "message_zh": exc.message_zh,
                     "message_en": exc.message_en},
        )  # fmt: skip

    @app.exception_handler(InvalidApplication)
    def invalid(request: Request, exc: InvalidApplication) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={
                "error": "invalid_input",
                "message_zh": "申请书有误，未作任何记录",
                "errors": [e.as_dict() for e in exc.errors],
            },
        )

    @app.exception_handler(DBAPIError)
    def database_error(request: Request, exc: DBAPIError) -> Response:
        """A read or write outside the engine's unit of work (who is asking, a page's session,
        the throttle, a case read) that found the database out of reach: 503, not 500."""
        if not connection_lost(exc):
            raise exc  # answered 500 by `unexpected` below, and logged
        answer = database_unavailable(exc.orig)
        # the driver's words only: the statement and its parameters (personal data) stay out
        log.warning("%s %s: %s", request.method, request.url.path, answer.message_en)
        return unavailable(request, answer)

    def unavailable(request: Request, exc: DatabaseUnavailable) -> Response:
        headers = {"Retry-After": str(DATABASE_RETRY_AFTER)}
        accept = request.headers.get("accept", "")
        if not request.url.path.startswith("/api/") and "text/html" in accept:
            # a browser: a page that needs nothing from the database (no session, no flash)
            return pages.TemplateResponse(
                request, "unavailable.html.j2", {"account": None, "flash": [], "error": exc},
                status_code=503, headers=headers,
            )  # fmt: skip
        return JSONResponse(status_code=503, content=exc.as_dict(), headers=headers)

    @app.exception_handler(EngineError)
    def refused(request: Request, exc: EngineError) -> Response:
        if isinstance(exc, DatabaseUnavailable):  # nothing saved (or in doubt): retry later
            return unavailable(request, exc)
        status = 422
        if isinstance(exc, ConflictError | WrongState):
            status = 409
        elif isinstance(exc, CaseNotFound):
            status = 404
        elif isinstance(exc, NotPermitted):
            status = 403
        elif isinstance(exc, StorageFull):  # nothing saved; the same request works once freed
            status = 507
        return JSONResponse(status_code=status, content=exc.as_dict())

    @app.exception_handler(RequestValidationError)
    def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]),
                "rule": e["type"],
                "message_en": e["msg"],
            }
            for e in exc.errors()
        ]
        return JSONResponse(
            status_code=422,
            content={"error": "invalid_request", "message_zh": "请求参数有误", "errors": errors},
        )

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if 300 <= exc.status_code < 400:  # the pages' "please sign in" redirect
            return RedirectResponse(exc.headers["Location"] if exc.headers else "/login", 303)
        detail = exc.detail if isinstance(exc.detail, dict) else {"message_en": str(exc.detail)}
        body = {
            "error": f"http_{exc.status_code}",
            "message_zh": detail.get("message_zh", ""),
            **detail,
        }
        return JSONResponse(status_code=exc.status_code, content=body, headers=exc.headers)

    @app.exception_handler(Exception)
    def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # answered outside the middleware above: the headers are set here too
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            status_code=500,
            content={"error": "internal", "message_zh": "系统内部错误，已记录，请稍后重试"},
            headers=headers_for(request.url.path),
        )

    return app
