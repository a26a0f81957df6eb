"""入口检查 — refuse, before any route sees it, what no field may hold: NUL characters (they
cannot be stored in PostgreSQL text and would end as a 500) and oversized form or JSON bodies;
and put the security headers on every answer. File uploads (multipart) are not read here, only
counted: a body over `upload_limit` is refused before the route parses it (its declared
length) or cut off while it streams in.

Plain ASGI, not Starlette's BaseHTTPMiddleware: that one streams every answer through a task
and a memory channel, about a millisecond a request (docs/benchmarks.md, "A review through the
API")."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY = 2 * 1024 * 1024  # a form or a JSON application; a batch of 10,000 rows is ~20 MB
MAX_BATCH_BODY = 64 * 1024 * 1024  # POST /api/operator/batches
CHECKED = (b"application/json", b"application/x-www-form-urlencoded")
NUL = (b"\x00", b"%00", b"\\u0000")
NUL_ZH = "请求中含有不允许的空字符（NUL）"


def too_big_zh(limit: int) -> str:
    return f"上传内容过大：一次最多{limit // (1024 * 1024)} MB"


class InputGuard:
    """ASGI middleware: 400 for a NUL in the path, query or a form/JSON body; 413 when too big;
    the headers of `headers(path)` on every answer that does not set them itself."""

    def __init__(
        self,
        app: ASGIApp,
        headers: Callable[[str], dict[str, str]],
        upload_limit: int = 64 * 1024 * 1024,
    ) -> None:
        self.app = app
        self.headers = headers
        self.upload_limit = upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = self._with_headers(scope, send)
        path = scope.get("raw_path") or scope.get("path", "").encode()
        if any(n in path.lower() or n in scope.get("query_string", b"") for n in NUL):
            await self._refuse(
                scope, send, 400, "请求中含有不允许的空字符（NUL）", "NUL in the URL"
            )
            return
        request_headers = dict(scope.get("headers") or [])
        ctype = request_headers.get(b"content-type", b"").lower()
        if ctype.startswith(b"multipart/"):
            await self._upload(scope, receive, send, request_headers)
            return
        if not any(ctype.startswith(c) for c in CHECKED):
            await self.app(scope, receive, send)
            return
        limit = MAX_BATCH_BODY if scope.get("path", "").endswith("/batches") else MAX_BODY
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                await self._refuse(scope, send, 413, "请求内容过大", f"body over {limit} bytes")
                return
        if any(n in body for n in NUL):
            await self._refuse(
                scope, send, 400, "请求中含有不允许的空字符（NUL）", "NUL in the body"
            )
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()  # later messages (a disconnect) come from the client
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _upload(
        self, scope: Scope, receive: Receive, send: Send, request_headers: dict[bytes, bytes]
    ) -> None:
        limit = self.upload_limit
        declared = request_headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, send, 413, too_big_zh(limit), f"upload over {limit} bytes")
            return
        seen, over, started = 0, False, False

        async def counted() -> Message:
            nonlocal seen, over
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:  # the route stops reading: the client is cut off
                over = True
                return {"type": "http.disconnect"}
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, sending)
        except Exception:
            if not over:
                raise
        if over and not started:
            await self._refuse(scope, send, 413, too_big_zh(limit), f"upload over {limit} bytes")

    def _with_headers(self, scope: Scope, send: Send) -> Send:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {name.lower() for name, _ in headers}
                for name, value in self.headers(scope["path"]).items():
                    key = name.lower().encode()
                    if key not in present:
                        headers.append((key, value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        return sending

    async def _refuse(self, scope: Scope, send: Send, status: int, zh: str, en: str) -> None:
        body = json.dumps(
            {"error": "invalid_request", "message_zh": zh, "message_en": en}, ensure_ascii=False
        ).encode()
        headers = [(b"content-type", b"application/json; charset=utf-8")]
        headers += [
            (k.lower().encode(), v.encode()) for k, v in self.headers(scope["path"]).items()
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
