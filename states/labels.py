"""中文标签 — the one table of Chinese labels for stored English codes."""

from __future__ import annotations

from states.lifecycle import CaseState, NoticeKind
from states.rules import Decision, TaskKind

STATE_ZH: dict[str, str] = {
    CaseState.DRAFT: "草稿",
    CaseState.SUBMITTED: "已提交",
    CaseState.ACCEPTED: "已受理",
    CaseState.CORRECTION_REQUESTED: "待补正",
    CaseState.RESUBMITTED: "已补正",
    CaseState.NOT_ACCEPTED: "不予受理",
    CaseState.UNDER_REVIEW: "审核中",
    CaseState.MORE_INFO_REQUESTED: "待补充材料",
    CaseState.AWAITING_CONFIRMATION: "待确认",
    CaseState.CONFIRMED: "已确认",
    CaseState.APPROVED: "准予",
    CaseState.PARTIALLY_APPROVED: "部分准予",
    CaseState.REJECTED: "不予",
    CaseState.PAYOUT_ORDERED: "待拨付",
    CaseState.PAID: "已拨付",
    CaseState.EFFECT_APPLIED: "已生效",
    CaseState.EXTENDED_PENDING_LIFT: "顺延待解封",
    CaseState.CLOSED: "办结",
    CaseState.WITHDRAWN: "已撤回",
    CaseState.EXPIRED: "已终止",
}

DECISION_ZH: dict[str, str] = {
    Decision.GRANTED: "准予",
    Decision.PARTIALLY_GRANTED: "部分准予",
    Decision.REFUSED: "不予",
    Decision.NOT_APPLICABLE: "不适用本文件",
    Decision.NOT_ACCEPTED: "不予受理",
    Decision.EXTENDED_EX_OFFICIO: "依职权顺延",
    Decision.EXTENDED: "顺延",
    Decision.EXTENDED_PENDING_LIFT: "顺延至解封后30日（待解封）",
}

TASK_ZH: dict[str, str] = {
    TaskKind.INTAKE: "受理",
    TaskKind.REVIEW: "审核",
    TaskKind.CONFIRM: "确认",
    TaskKind.DECIDE: "决定",
    TaskKind.SUPERVISE: "监督",
    TaskKind.PAYOUT: "拨付",
}

NOTICE_ZH: dict[str, str] = {
    NoticeKind.ACCEPTANCE: "受理通知书",
    NoticeKind.DEFERRED_ACCEPTANCE: "容缺受理通知书",
    NoticeKind.CORRECTION: "补正材料通知书",
    NoticeKind.NOT_ACCEPTED: "不予受理通知书",
    NoticeKind.MORE_INFO: "补充材料通知书",
    NoticeKind.DECISION_GRANTED: "准予决定书",
    NoticeKind.DECISION_PARTIAL: "部分准予决定书",
    NoticeKind.DECISION_REFUSED: "不予决定书",
    NoticeKind.PAYOUT: "资金拨付通知书",
    NoticeKind.EXTENSION: "有效期顺延告知书",
    NoticeKind.WITHDRAWN: "撤回确认通知",
    NoticeKind.EXPIRED: "终止办理告知书",
    NoticeKind.TASK_REMINDER: "办理期限提醒",
    NoticeKind.TASK_ESCALATION: "逾期督办通知",
}


def state_zh(code: str) -> str:
    return STATE_ZH.get(code, code)


TRIGGER_ZH: dict[str, str] = {
    "submit": "提交申请",
    "record_paper_receipt": "补录纸质申请收件",
    "auto_accept": "即时受理",
    "auto_refuse": "即时不予受理",
    "await_intake": "交受理人员",
    "accept": "受理",
    "accept_deferred": "容缺受理",
    "refuse_acceptance": "不予受理",
    "request_correction": "要求补正",
    "resubmit": "补正",
    "recheck": "补正后重新审查",
    "start_review": "开始审核",
    "review": "审核",
    "review_decided": "审核意见",
    "request_info": "要求补充材料",
    "supply_info": "补充材料",
    "complete_reviews": "审核完成",
    "confirm": "确认",
    "approve": "准予",
    "reject": "不予",
    "order_payout": "下达拨付",
    "record_payment": "登记拨付",
    "apply_effect": "生效",
    "close": "办结",
    "withdraw": "撤回",
    "expire": "终止办理",
    "grant_ex_officio": "依职权顺延",
    "await_lift": "顺延待解封",
    "lockdown_lifted": "登记解封日期",
    "note_task": "办理期限提醒",
    "sla_reminder": "办理期限提醒",
    "sla_escalation": "逾期督办",
    "claim_task": "认领任务",
}


def trigger_zh(code: str) -> str:
    return TRIGGER_ZH.get(code, code)
