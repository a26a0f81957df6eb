"""运行设置 — the one settings class: database, clock, task deadlines (env prefix RELIEF_).

Policy parameters are not settings: they live in the policy edition (states/editions/).
"""

from __future__ import annotations

import functools
from datetime import datetime

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RELIEF_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///relief.db",
        description="Application database: a SQLite file by default, or postgresql+psycopg://…",
    )
    now: datetime | None = Field(
        default=None,
        description="Fix the system clock (ISO 8601 with offset) for demos and tests; "
        "unset means the real time in Asia/Shanghai.",
    )
    review_due_working_days: int = Field(
        default=20,
        ge=1,
        description="Working days a bureau has for a review task. Default: the 20 days of "
        "行政许可法第四十二条 (the policy document sets none).",
    )
    confirm_due_working_days: int = Field(
        default=20, ge=1, description="Working days for a confirmation (经确认) task; as above."
    )
    decide_due_working_days: int = Field(
        default=20, ge=1, description="Working days for the decision task; as above."
    )


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
