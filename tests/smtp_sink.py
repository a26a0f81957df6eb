"""A real SMTP server's handler for the tests: aiosmtpd keeps every message it accepts."""

from __future__ import annotations

from collections import Counter
from email import message_from_bytes
from typing import Any


class Sink:
    """aiosmtpd handler: keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 2.0.0 Ok: queued as RELIEF"

    def message_ids(self) -> Counter[str]:
        """How many times each Message-ID arrived (exactly once is the point)."""
        return Counter(
            str(message_from_bytes(m.original_content)["Message-ID"]) for m in self.messages
        )
