"""A real HTTP treasury for tests: records payments by idempotency key, and can misbehave.

It does NOT deduplicate: every POST it accepts is a payment, so a test sees any double
payment relief would make. It can answer 5xx or 4xx, and can SIGKILL a client process at
the k-th POST, before or after recording the payment (a crash at that instant).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Treasury:
    def __init__(self) -> None:
        self.payments: list[dict[str, Any]] = []  # every payment made
        self.posts = 0
        self.lock = threading.Lock()
        self.fail_with: list[int] = []  # status codes to answer, one per POST, before succeeding
        self.reject_keys: set[str] = set()  # keys answered 422 (a permanent refusal)
        self.kill_at: dict[int, str] = {}  # POST number → "before" | "after"
        self.victim_pid: int | None = None
        # instead of victim_pid: called with the client's (host, port) to kill whoever called
        self.killer: Callable[[tuple[str, int]], None] | None = None
        self.delay = 0.0  # seconds each POST takes (a slow treasury: runs last long enough)
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Treasury:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def paid_count(self) -> Counter[str]:
        return Counter(p["idempotency_key"] for p in self.payments)

    def reference(self, key: str) -> str | None:
        for p in self.payments:
            if p["idempotency_key"] == key:
                return str(p["reference"])
        return None

    def _kill(self, client: tuple[str, int]) -> None:
        if self.killer is not None:
            self.killer(client)
        elif self.victim_pid:
            os.kill(self.victim_pid, signal.SIGKILL)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        treasury = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                key = self.path.rsplit("/", 1)[-1]
                ref = treasury.reference(key)
                if ref is None:
                    self._send(404, {"error": "no such payment"})
                else:
                    self._send(200, {"reference": ref})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if treasury.delay:
                    time.sleep(treasury.delay)
                with treasury.lock:
                    treasury.posts += 1
                    n = treasury.posts
                    if treasury.fail_with:
                        code = treasury.fail_with.pop(0)
                        self._send(code, {"error": "unavailable" if code >= 500 else "rejected"})
                        return
                    if body["idempotency_key"] in treasury.reject_keys:
                        self._send(422, {"error": "payee account closed"})
                        return
                    when = treasury.kill_at.get(n)
                    if when == "before":
                        treasury._kill(self.client_address[:2])
                        return
                    ref = f"GK{n:06d}"
                    treasury.payments.append({**body, "reference": ref})
                    if when == "after":
                        treasury._kill(self.client_address[:2])
                        return
                self._send(201, {"reference": ref})

        return Handler
