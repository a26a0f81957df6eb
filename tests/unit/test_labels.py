"""Every stored code has its Chinese label (states/labels.py is keyed by the codes)."""

from __future__ import annotations

from enum import StrEnum

import pytest

from states.labels import DECISION_ZH, NOTICE_ZH, STATE_ZH, TASK_ZH
from states.lifecycle import CaseState, NoticeKind
from states.rules import Decision, TaskKind


@pytest.mark.parametrize(
    ("enum", "table"),
    [(CaseState, STATE_ZH), (NoticeKind, NOTICE_ZH), (Decision, DECISION_ZH), (TaskKind, TASK_ZH)],
)
def test_every_member_has_a_label(enum: type[StrEnum], table: dict[str, str]) -> None:
    assert {m.value for m in enum} <= set(table), set(m.value for m in enum) - set(table)
