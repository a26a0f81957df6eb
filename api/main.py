"""The FastAPI app: REST API (OpenAPI at /docs) and the pages, on one engine.

Engine refusals become HTTP answers with a Chinese and an English message: a stale version or
a step the case has moved past is 409, a rule that says no is 422, invalid input is 422 with
every bad field named. No stack trace reaches a client.
"""

from __future__ import annotations

import logging
import os

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.pages.views import router as pages_router
from api.routes import applicant, bureau, operator, public
from models.db import engine_for, head_revision, migrate, schema_state
from models.input_errors import InvalidApplication
from models.settings import Settings, get_settings
from states.clock import Clock
from states.engine import CaseEngine, CaseNotFound, ConflictError, EngineError, WrongState

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    if settings.database_url.startswith("sqlite"):
        migrate(settings.database_url)
    app = FastAPI(
        title="relief",
        version="0.1.0",
        description="东政发〔2022〕8号 助企纾困政策办理系统: applicants, bureaus, operators.",
    )
    app.state.engine = CaseEngine(
        engine_for(settings.database_url), settings=settings, clock=Clock(settings.now)
    )
    for module in (applicant, bureau, operator, public):
        app.include_router(module.router, prefix="/api")
    app.include_router(pages_router)
    code_schema = head_revision()

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

    @app.exception_handler(EngineError)
    def refused(request: Request, exc: EngineError) -> JSONResponse:
        status = 422
        if isinstance(exc, ConflictError | WrongState):
            status = 409
        elif isinstance(exc, CaseNotFound):
            status = 404
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
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            status_code=500,
            content={"error": "internal", "message_zh": "系统内部错误，已记录，请稍后重试"},
        )

    return app
