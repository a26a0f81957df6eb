"""The small status machines: every status reachable from where it starts, the final ones
final, and a move the table does not allow refused (a bug, never silently written)."""

from __future__ import annotations

import pytest

from models.statuses import (
    NOTICE_MOVES,
    PAYOUT_MOVES,
    REQUEST_MOVES,
    TASK_MOVES,
    IllegalMove,
    NoticeStatus,
    PayoutStatus,
    RequestStatus,
    TaskStatus,
    check,
)


@pytest.mark.parametrize(
    ("moves", "start", "every", "final"),
    [
        (TASK_MOVES, TaskStatus.OPEN, set(TaskStatus), {TaskStatus.DONE, TaskStatus.CANCELLED}),
        (PAYOUT_MOVES, PayoutStatus.ORDERED, set(PayoutStatus), {PayoutStatus.PAID}),
        (REQUEST_MOVES, RequestStatus.OPEN, set(RequestStatus),
         set(RequestStatus) - {RequestStatus.OPEN}),
        (NOTICE_MOVES, NoticeStatus.PENDING, set(NoticeStatus),
         {NoticeStatus.DELIVERED, NoticeStatus.NO_CHANNEL}),
    ],
)  # fmt: skip
def test_each_machine_reaches_every_status_and_ends(
    moves: dict[str, frozenset[str]], start: str, every: set[str], final: set[str]
) -> None:
    seen, todo = {start}, [start]
    while todo:
        for nxt in moves.get(todo.pop(), frozenset()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == every
    for status in final:
        assert not moves.get(status), status


def test_a_failed_payout_or_notice_only_goes_back_to_its_queue() -> None:
    """An operator's retry (CaseEngine.act_on_incident) is the one way out of `failed`: back to
    the queue with the same idempotency key, never straight to paid or delivered."""
    assert PAYOUT_MOVES[PayoutStatus.FAILED] == {PayoutStatus.ORDERED}
    assert NOTICE_MOVES[NoticeStatus.FAILED] == {NoticeStatus.PENDING}
    with pytest.raises(IllegalMove):
        check(PAYOUT_MOVES, PayoutStatus.FAILED, PayoutStatus.PAID)


def test_a_move_the_table_does_not_allow_is_refused() -> None:
    check(PAYOUT_MOVES, PayoutStatus.ORDERED, PayoutStatus.SENT)
    with pytest.raises(IllegalMove):
        check(PAYOUT_MOVES, PayoutStatus.PAID, PayoutStatus.ORDERED)  # never paid twice
    with pytest.raises(IllegalMove):
        check(TASK_MOVES, TaskStatus.DONE, TaskStatus.OPEN)
