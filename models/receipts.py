"""补录收件 — a paper application received earlier, entered later by an intake officer.

The filing date of an online application is the server's receipt time. Only for a paper
application received at a counter may an intake officer or an operator record the earlier
receipt: with a reason and an evidence reference (收件登记号, 邮件回执号), never later than now.
The engine checks who may do it and writes the record as its own audit event.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from base.civil_dates import SHANGHAI
from models.input_errors import FieldError, InvalidApplication, describe


class PaperReceipt(BaseModel):
    """纸质申请收件记录."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    received_at: datetime = Field(
        description="收件时间 (a date means that day, 00:00 Asia/Shanghai)"
    )
    reason: str = Field(min_length=1, max_length=500, description="补录原因")
    evidence: str = Field(
        min_length=1, max_length=200, description="收件凭证: 收件登记号、邮件回执号等"
    )

    @field_validator("received_at", mode="before")
    @classmethod
    def _date_or_time(cls, value: Any) -> Any:
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime.combine(value, time(), SHANGHAI)
        if isinstance(value, str) and len(value.strip()) == 10:
            return datetime.combine(date.fromisoformat(value.strip()), time(), SHANGHAI)
        return value

    @field_validator("reason", "evidence")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("blank", "不得为空", {"en": "must not be blank"})
        return value.strip()


def parse_receipt(data: Any, *, now: datetime) -> PaperReceipt:
    """Validate a receipt record, or raise InvalidApplication naming each field (in Chinese)."""
    if not isinstance(data, dict):
        raise InvalidApplication(
            [FieldError("receipt", "model_type", "收件记录须为JSON对象", "must be an object")]
        )
    try:
        receipt = PaperReceipt.model_validate(data)
    except ValidationError as exc:
        raise InvalidApplication(
            [
                FieldError(
                    f"receipt.{e.field}",
                    e.rule,
                    "补录须写明收件时间、原因和凭证：" + e.message_zh
                    if e.rule in ("missing", "blank", "string_too_short")
                    else e.message_zh,
                    e.message_en,
                )
                for e in describe(exc)
            ]
        ) from None
    at = receipt.received_at
    if at.tzinfo is None:
        at = at.replace(tzinfo=SHANGHAI)
        receipt = receipt.model_copy(update={"received_at": at})
    if at > now:
        raise InvalidApplication(
            [
                FieldError(
                    "receipt.received_at",
                    "receipt.future",
                    f"补录的收件时间不能晚于当前时间（{now:%Y-%m-%d %H:%M}）",
                    f"a recorded receipt cannot be later than now ({now.isoformat()})",
                )
            ]
        )
    return receipt
