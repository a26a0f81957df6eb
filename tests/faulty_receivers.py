"""Receivers that misbehave, for the channel-fault tests: a real aiosmtpd SMTP server and a
real threaded HTTP webhook, each following a list of faults, one per message or request.

The SMTP server keeps what it receives as tests/smtp_sink.py's Sink does (it is one); the
webhook plays an SMS gateway that drops a repeated request by its Idempotency-Key.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, AnyStr

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from smtp_sink import Sink


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------- SMTP
@dataclass(frozen=True)
class Fault:
    """What the SMTP server does with one message (one MAIL FROM … DATA transaction).

    `at`: where it departs from a plain 250 — "RCPT", "DATA" (the DATA command itself, before
    354) or "END" (the end of the message). `reply` answers there instead of 250. At "END",
    `delay` keeps the message, then waits before answering; `drop` keeps it and closes the
    connection without an answer."""

    at: str = ""
    reply: str = ""
    delay: float = 0.0
    drop: bool = False


OK = Fault()
DROP_AFTER_DATA = Fault(at="END", drop=True)


def slow(seconds: float) -> Fault:
    return Fault(at="END", delay=seconds)


def refuse(at: str, reply: str) -> Fault:
    return Fault(at=at, reply=reply)


class FaultySink(Sink):
    """aiosmtpd handler: the next fault for each message, then `then` for every later one.

    `messages` (Sink's) holds every message the server kept, also those it never answered;
    `transactions` counts the messages a client began (MAIL FROM)."""

    def __init__(self, *faults: Fault, then: Fault = OK, trickle: float = 0.0) -> None:
        super().__init__()
        self.faults, self.then = list(faults), then
        self.trickle = trickle  # seconds between the bytes of every reply (0: all at once)
        self.transactions = 0

    def fault_of(self, session: Any) -> Fault:
        return getattr(session, "relief_fault", OK)

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.transactions += 1
        session.relief_fault = self.faults.pop(0) if self.faults else self.then
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        fault = self.fault_of(session)
        if fault.at == "RCPT" and fault.reply:
            return fault.reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        fault = self.fault_of(session)
        if fault.at == "END" and fault.reply:
            return fault.reply  # refused: not kept
        self.messages.append(envelope)
        if fault.drop:
            server.transport.close()  # kept, never answered
        elif fault.delay:
            await asyncio.sleep(fault.delay)  # cancelled if the client hangs up meanwhile
        return "250 2.0.0 Ok: queued as RELIEF"


class _FaultySMTP(SMTP):
    """aiosmtpd's SMTP with the two faults its handler hooks cannot play: a reply to the DATA
    command itself, and replies sent a byte at a time."""

    async def smtp_DATA(self, arg: str) -> None:
        fault = self.event_handler.fault_of(self.session)
        if fault.at == "DATA" and fault.reply and self.envelope.rcpt_tos:
            await self.push(fault.reply)
            return
        await super().smtp_DATA(arg)

    async def push(self, status: AnyStr) -> None:
        pause = self.event_handler.trickle
        if not pause:
            await super().push(status)
            return
        data = status.encode() if isinstance(status, str) else status
        for byte in data + b"\r\n":
            self._writer.write(bytes([byte]))
            await self._writer.drain()
            await asyncio.sleep(pause)


class FaultyController(Controller):
    def factory(self) -> SMTP:
        return _FaultySMTP(self.handler, **self.SMTP_kwargs)


@contextmanager
def smtp_server(sink: FaultySink, port: int, *, smtputf8: bool = True) -> Iterator[FaultySink]:
    """A real SMTP server on 127.0.0.1:`port` for the block."""
    controller = FaultyController(sink, hostname="127.0.0.1", port=port, enable_SMTPUTF8=smtputf8)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


# ---------------------------------------------------------------- webhook
@dataclass(frozen=True)
class HookFault:
    """What the gateway does with one request: answer `status` (a 2xx after processing it;
    anything else without), `delay` that long after processing, `drop` the connection
    after processing without an answer, or `trickle` its answer a byte at a time."""

    status: int = 200
    delay: float = 0.0
    drop: bool = False
    trickle: float = 0.0


class FaultyWebhook:
    """A threaded HTTP server playing an SMS gateway that sends each key's message once.

    `requests` lists every request as (Idempotency-Key header, JSON body); `sent` counts the
    messages sent per key: a request whose key was sent already is answered 200 again, not
    sent twice."""

    def __init__(self, *faults: HookFault, then: HookFault | None = None) -> None:
        self.faults, self.then = list(faults), then or HookFault()
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.sent: Counter[str] = Counter()
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers.get("Idempotency-Key", "")
                with hook.lock:
                    hook.requests.append((key, body))
                    fault = hook.faults.pop(0) if hook.faults else hook.then
                    repeat = fault.status < 300 and hook.sent[key] > 0
                    if fault.status < 300 and not repeat:
                        hook.sent[key] += 1
                if fault.drop:
                    self.close_connection = True
                    return  # processed, never answered
                time.sleep(fault.delay)
                answer = json.dumps({"message_id": f"SMS-{key[-8:]}", "repeat": repeat})
                self.answer(fault, answer.encode())

            def answer(self, fault: HookFault, body: bytes) -> None:
                head = (
                    f"HTTP/1.1 {fault.status} {self.responses[fault.status][0]}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n"
                ).encode()
                self.close_connection = True
                try:
                    if not fault.trickle:
                        self.wfile.write(head + body)
                        return
                    for byte in head + body:
                        self.wfile.write(bytes([byte]))
                        time.sleep(fault.trickle)
                except OSError:
                    pass  # the client gave up waiting

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/sms"

    def keys(self) -> Counter[str]:
        """How many requests arrived per Idempotency-Key."""
        return Counter(key for key, _ in self.requests)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
