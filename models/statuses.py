"""状态 — the small status machines of tasks, payouts, notices and attempts.

Each status is a stable English code (what the database holds) with its Chinese label, and
each has the moves it may make; the modules that write a status (states/ for tasks, flows/payout
and flows/reconcile for payouts, notifications/delivery for notices, models/ledger for
attempts) ask `check(MOVES, old, new)` before they do. A case's own states are the law of
states/lifecycle.py.
"""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    """办理任务状态."""

    OPEN = "open"  # 待办
    DONE = "done"  # 已办
    CANCELLED = "cancelled"  # 已取消（撤回、终止）


class PayoutStatus(StrEnum):
    """拨付状态."""

    ORDERED = "ordered"  # 已下达
    SENT = "sent"  # 已发送国库（指令文件）
    PAID = "paid"  # 已拨付
    FAILED = "failed"  # 拨付失败（转异常）


class NoticeStatus(StrEnum):
    """送达状态."""

    PENDING = "pending"  # 待送达
    AWAITING_CHANNEL = "awaiting_channel"  # 渠道未配置，等待
    DELIVERED = "delivered"  # 已送达
    NO_CHANNEL = "no_channel"  # 无送达渠道（状态页可查）
    FAILED = "failed"  # 送达失败（转异常）


class RequestStatus(StrEnum):
    """补正 / 容缺 / 补充 请求的状态."""

    OPEN = "open"  # 等待申请人答复
    ANSWERED = "answered"  # 申请人已答复
    EXPIRED = "expired"  # 逾期未答复，终止办理
    OVERDUE = "overdue"  # 逾期未补齐，案件已决定：交运营人员处理
    CANCELLED = "cancelled"  # 案件已撤回或终止


class AttemptStatus(StrEnum):
    """一次尝试的状态 (a delivery or a payment)."""

    SENDING = "sending"  # 已记录，正在发送：结果未知
    SENT = "sent"  # 已发出（指令文件）
    DELIVERED = "delivered"  # 对方已收到（送达回执）
    PAID = "paid"  # 国库已支付
    FOUND = "found"  # 事后查询得知已支付
    FAILED = "failed"


class BatchStatus(StrEnum):
    """支付指令批次状态."""

    WRITING = "writing"  # 已登记，文件未写完
    WRITTEN = "written"


T = TaskStatus
P = PayoutStatus
N = NoticeStatus
A = AttemptStatus
TASK_MOVES: dict[str, frozenset[str]] = {
    T.OPEN: frozenset({T.DONE, T.CANCELLED}),
}
PAYOUT_MOVES: dict[str, frozenset[str]] = {
    P.ORDERED: frozenset({P.SENT, P.PAID, P.FAILED}),
    P.SENT: frozenset({P.PAID, P.FAILED, P.ORDERED}),  # a returned instruction is ordered again
    P.FAILED: frozenset({P.ORDERED}),  # an operator retries it, with the same key
    P.PAID: frozenset(),
}
NOTICE_MOVES: dict[str, frozenset[str]] = {
    N.PENDING: frozenset({N.PENDING, N.DELIVERED, N.NO_CHANNEL, N.AWAITING_CHANNEL, N.FAILED}),
    N.AWAITING_CHANNEL: frozenset({N.PENDING, N.DELIVERED, N.AWAITING_CHANNEL, N.FAILED}),
    N.FAILED: frozenset({N.PENDING}),  # an operator retries it (CaseEngine.act_on_incident)
}
R = RequestStatus
REQUEST_MOVES: dict[str, frozenset[str]] = {
    R.OPEN: frozenset({R.ANSWERED, R.EXPIRED, R.OVERDUE, R.CANCELLED}),
}
ATTEMPT_MOVES: dict[str, frozenset[str]] = {
    A.SENDING: frozenset({A.SENT, A.DELIVERED, A.PAID, A.FOUND, A.FAILED}),
    A.SENT: frozenset({A.PAID, A.FAILED}),
}
OPEN_NOTICES = (N.PENDING, N.AWAITING_CHANNEL)  # the outbox still works on these
WAITING_PAYOUTS = (P.ORDERED, P.SENT)  # ordered, not yet paid


class IllegalMove(RuntimeError):
    """A status move its table does not allow: a bug, never an input error."""


def check(moves: dict[str, frozenset[str]], old: str, new: str) -> None:
    if new != old and new not in moves.get(old, frozenset()):
        raise IllegalMove(f"status {old!r} cannot become {new!r}")
