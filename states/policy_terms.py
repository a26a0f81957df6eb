"""政策用语 — the terms an edition is written in: a basis, a sourced value, frozen models."""

from __future__ import annotations

from enum import StrEnum
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class Basis(StrEnum):
    """依据 — how a parameter is grounded."""

    DOC = "DOC"  # 文件明确规定
    INTERP = "INTERP"  # 对文件措辞的解读
    PROPOSAL = "PROPOSAL"  # 文件未规定，采用默认做法
    LAW = "LAW"  # 法律法规（文件之外）


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Sourced(Frozen, Generic[T]):
    """A parameter value with the clause it comes from."""

    value: T
    basis: Basis = Basis.DOC
    clause: str
