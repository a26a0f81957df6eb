"""中文标签 — the one table of Chinese labels for stored English codes.

Keyed by the stored codes themselves (the StrEnum values of states/), so that the command line
can label a case without importing the machines; tests/unit/test_labels.py checks that every
member of every enum has its label.
"""

from __future__ import annotations

STATE_ZH: dict[str, str] = {
    "draft": "草稿",
    "submitted": "已提交",
    "accepted": "已受理",
    "correction_requested": "待补正",
    "resubmitted": "已补正",
    "not_accepted": "不予受理",
    "under_review": "审核中",
    "more_info_requested": "待补充材料",
    "awaiting_confirmation": "待确认",
    "confirmed": "已确认",
    "approved": "准予",
    "partially_approved": "部分准予",
    "rejected": "不予",
    "payout_ordered": "待拨付",
    "paid": "已拨付",
    "effect_applied": "已生效",
    "extended_pending_lift": "顺延待解封",
    "closed": "办结",
    "withdrawn": "已撤回",
    "expired": "已终止",
}

DECISION_ZH: dict[str, str] = {
    "granted": "准予",
    "partially_granted": "部分准予",
    "refused": "不予",
    "not_applicable": "不适用本文件",
    "not_accepted": "不予受理",
    "extended_ex_officio": "依职权顺延",
    "extended": "顺延",
    "extended_pending_lift": "顺延至解封后30日（待解封）",
}

TASK_ZH: dict[str, str] = {
    "intake": "受理",
    "review": "审核",
    "confirm": "确认",
    "decide": "决定",
    "supervise": "监督",
    "payout": "拨付",
}

NOTICE_ZH: dict[str, str] = {
    "acceptance": "受理通知书",
    "deferred_acceptance": "容缺受理通知书",
    "correction": "补正材料通知书",
    "not_accepted": "不予受理通知书",
    "more_info": "补充材料通知书",
    "decision_granted": "准予决定书",
    "decision_partial": "部分准予决定书",
    "decision_refused": "不予决定书",
    "payout": "资金拨付通知书",
    "extension": "有效期顺延告知书",
    "referral": "移送告知书",
    "withdrawn": "撤回确认通知",
    "expired": "终止办理告知书",
    "reply_reminder": "材料补交期限提醒",
    "task_reminder": "办理期限提醒",
    "task_escalation": "逾期督办通知",
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
    "release_task": "释放任务",
    "reassign_task": "改派任务",
    "retry_incident": "重试异常",
    "resolve_incident": "办结异常",
    "add_documents": "提交材料",
    "migrate_edition": "改用政策版本",
    "note_request": "材料补交期限提醒",
    "reply_reminder": "材料补交期限提醒",
    "request_overdue": "容缺材料逾期未补齐",
}


INCIDENT_ZH: dict[str, str] = {
    "payout_failed": "拨付失败",
    "notice_undeliverable": "通知书送达失败",
    "request_overdue": "容缺材料逾期未补齐",
}

INCIDENT_STATUS_ZH: dict[str, str] = {"open": "待处理", "retrying": "重试中", "resolved": "已办结"}


def trigger_zh(code: str) -> str:
    return TRIGGER_ZH.get(code, code)


# the columns of the report (reports/measures.py) and of the audit export (reports/audit.py)
COLUMN_ZH: dict[str, str] = {
    "month": "月份",
    "measure": "措施",
    "measure_zh": "措施内容",
    "bureau": "决定单位代码",
    "bureau_zh": "决定单位",
    "applications": "申请",
    "accepted": "受理",
    "not_accepted": "不予受理",
    "granted": "准予",
    "partially_granted": "部分准予",
    "refused": "不予",
    "withdrawn": "撤回",
    "expired": "终止办理",
    "ex_officio": "依职权准予",
    "decided": "作出决定",
    "granted_amount": "准予金额（元）",
    "ordered_amount": "下达拨付金额（元）",
    "paid_amount": "已拨付金额（元）",
    "median_working_days": "决定用时中位数（工作日）",
    "within_deadline_share": "按期决定率",
    "record": "记录类型",
    "case_no": "受理编号",
    "case_type": "申请类型",
    "at": "时间",
    "seq": "序号",
    "trigger": "操作",
    "trigger_zh": "操作名称",
    "from_state": "原状态",
    "to_state": "新状态",
    "to_state_zh": "新状态名称",
    "actor": "操作人",
    "request_key": "请求键",
    "payload": "内容",
    "notice_id": "通知书编号",
    "event_seq": "所属事件序号",
    "kind": "通知书种类",
    "kind_zh": "通知书名称",
    "audience": "送达对象",
    "doc_number": "文号",
    "issuer": "发文机关",
    "recipient": "收件人",
    "title": "标题",
    "status": "状态",
    "attempts": "送达次数",
    "created_at": "制发时间",
    "delivered_at": "送达时间",
    "content_hash": "内容哈希（SHA-256）",
    "hash_verified": "哈希核验",
    "channel": "送达渠道",
    "attempt_no": "第几次送达",
    "receipt": "回执",
}
