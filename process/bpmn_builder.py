"""One type's process graph from its live rows: a stage for each part of the casework that the
table has rows for (intake with 补正, parallel reviews with 补充, confirmation, decision, the
payout or the effect, the ways out), with the SLA and reply-deadline timers from the settings.

The mapping from table to BPMN is the export's substance (docs/bpmn.md describes it); it has
a module of its own so that it reads without the layout and the XML around it.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from models.settings import Settings
from process.bpmn_calendar import calendar_days
from process.bpmn_graph import Graph, Node, Way, row_doc
from process.bpmn_table import live_rows
from states.catalog import CaseTypeSpec
from states.labels import NOTICE_ZH, STATE_ZH, TASK_ZH, TRIGGER_ZH
from states.lifecycle import (
    WITHDRAWABLE,
    CaseState,
    NoticeKind,
    Row,
    lift_pending,
    lift_resolved,
)
from states.rules import Assessment, Route, TaskKind

S = CaseState


# The BPMN's own wording (structure, not stored codes: those are labelled by states/labels.py)
WORDS = {
    "handling": "受理、审核与决定（决定前可撤回）",
    "origin": "立案方式",
    "intake_mode": "受理方式",
    "auto_intake": "即申即享：规则受理审查",
    "intake_result": "受理审查结论",
    "await_correction": "等待补正",
    "await_info": "等待补充材料",
    "opinion": "审核意见",
    "split": "分送审核单位",
    "join": "审核意见汇齐",
    "reviews_result": "审核结论",
    "confirmation": "确认意见",
    "decision": "决定",
    "effect_route": "生效方式",
    "effect": "登记生效",
    "decided": "作出准予决定",
    "reminder": "已提醒",
    "escalation": "已督办",
    "lapsed": "逾期未答复",
    "filed": "提交申请",
}
# guards an exclusive gateway after the decision reads, as Python over the process variables
GUARD_EXPR: dict[Any, str] = {lift_pending: "lift_pending", lift_resolved: "not lift_pending"}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text).strip("_") or "unit"


class Builder:
    """One type's process from its live rows: each method draws one stage, only when the
    rows for it are there, and records on each element the rows it stands for."""

    SUB = "SubProcess_handling"

    def __init__(self, spec: CaseTypeSpec, assessment: Assessment, settings: Settings) -> None:
        self.spec, self.m, self.a, self.settings = spec, spec.machine, assessment, settings
        self.rows = live_rows(spec.machine)
        self.g = Graph(f"Process_{spec.case_type}")

    # -- helpers
    def row(self, trigger: str, dest: CaseState | None = None) -> Row | None:
        return next((r for r in self.rows if r.trigger == trigger and dest in (None, r.dest)), None)

    def rows_of(self, *triggers: str) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.trigger in triggers)

    def leaving(self, state: CaseState) -> list[Row]:
        return [r for r in self.rows if state in r.sources()]

    def add(self, kind: str, id: str, name: str = "", *, outer: bool = False, doc: str = "",
            rows: tuple[Row, ...] = (), **kw: Any) -> str:  # fmt: skip
        text = "\n".join(t for t in (doc, row_doc(rows)) if t)
        node = Node(id, kind, name, None if outer else self.SUB, text, rows, **kw)
        assert id not in self.g.nodes, id
        self.g.nodes[id] = node
        return id

    def notice(self, id: str, kind: NoticeKind, *, outer: bool = False, extra: str = "") -> str:
        """A notice a row owes, thrown as a message (the engine issues it)."""
        name = NOTICE_ZH[kind] + (f"（{extra}）" if extra else "")
        event = self.g.message(f"notice_{kind.value}", NOTICE_ZH[kind])
        return self.add("intermediateThrowEvent", id, name, outer=outer, event=event)

    def chain(self, *ids: str) -> str:
        for a, b in itertools.pairwise(ids):
            self.g.flow(a, b)
        return ids[-1]

    def routes(self, kind: TaskKind) -> list[Route]:
        return [r for r in self.a.routes if r.kind == kind]

    def unit(self, kind: TaskKind) -> str:
        return next((r.unit for r in self.routes(kind)), "")

    def into(self, ways: list[Way], target: str, merge: str) -> None:
        """Flows into `target`, through an exclusive merge when more than one arrives."""
        if len(ways) == 1:
            self.g.way(ways[0], target)
            return
        outer = self.g.nodes[target].parent is None
        self.chain(self.add("exclusiveGateway", merge, outer=outer), target)
        for w in ways:
            self.g.way(w, merge)

    def sla(self, task: str, kind: TaskKind) -> None:
        """办理时限: non-interrupting timers for the SLA sweep's reminder and escalation."""
        s = self.settings
        due = {
            TaskKind.INTAKE: s.intake_due_working_days,
            TaskKind.REVIEW: s.review_due_working_days,
            TaskKind.CONFIRM: s.confirm_due_working_days,
        }.get(kind, s.decide_due_working_days)
        remind = s.sla_remind_working_days
        setting = f"RELIEF_{kind.value.upper()}_DUE_WORKING_DAYS"
        stages = []
        if 0 < remind < due:
            what = (f"期限前{remind}个工作日提醒承办科室（任务开立后第{due - remind}个工作日；"
                    f"{setting}、RELIEF_SLA_REMIND_WORKING_DAYS）")  # fmt: skip
            stages.append(("reminder", due - remind, 0, NoticeKind.TASK_REMINDER, what))
        what = f"期限{due}个工作日（{setting}）届满次日仍未办结，督办至科室负责人"
        stages.append(("escalation", due, 1, NoticeKind.TASK_ESCALATION, what))
        for key, days, after, notice, what in stages:
            span = calendar_days(days) + after
            plus = "加1日" if after else ""
            doc = (f"{days}个工作日{plus}：{what}。relief 按中国工作日计时；timeDuration "
                   f"P{span}D 是{days}个工作日{plus}在中国工作日历中最长的日历跨度，不早于 relief "
                   "触发。补充材料期间 relief 停止计时，BPMN 计时器不停。")  # fmt: skip
            name = f"{TRIGGER_ZH['sla_' + key]}（{days}个工作日）"
            timer = self.add("boundaryEvent", f"Timer_{task}_{key}", name, doc=doc,
                             event=("timer", f"P{span}D"), attached_to=task,
                             interrupting=False)  # fmt: skip
            end = self.add("endEvent", f"End_{task}_{key}", WORDS[key],
                           event=self.g.message(f"notice_{notice.value}", NOTICE_ZH[notice]),
                           doc=f"{NOTICE_ZH[notice]}（致承办科室）")  # fmt: skip
            self.g.flow(timer, end)

    def reply(self, key: str, answer: Row, back_to: str, recheck: tuple[Row, ...] = ()) -> str:
        """补正 / 补充: an event-based gateway between the applicant's answer (a message) and
        the deadline (a timer; the sweep then ends the case); returns the gateway."""
        days = self.settings.applicant_reply_working_days
        span = calendar_days(days) + 1
        wait = WORDS["await_" + ("correction" if answer.trigger == "resubmit" else "info")]
        gw = self.add("eventBasedGateway", f"Gateway_await_{key}", wait)
        said = TRIGGER_ZH[answer.trigger]
        catch = self.add("intermediateCatchEvent", f"Catch_{key}", f"申请人{said}",
                         rows=(answer,), event=self.g.message(answer.trigger, said))  # fmt: skip
        doc = (f"答复期限{days}个工作日（RELIEF_APPLICANT_REPLY_WORKING_DAYS；通知书另定期限时从其"
               f"规定），期限届满次日 SLA 扫描终止办理。timeDuration P{span}D 是{days}个工作日"
               "在中国工作日历中最长的日历跨度加1日。")  # fmt: skip
        timer = self.add("intermediateCatchEvent", f"Timer_{key}_deadline",
                         f"答复期限（{days}个工作日）", event=("timer", f"P{span}D"),
                         doc=doc)  # fmt: skip
        end = self.add("endEvent", f"End_{key}_lapsed", WORDS["lapsed"],
                       event=self.g.error("expired", WORDS["lapsed"]),
                       rows=self.rows_of("expire"))  # fmt: skip
        self.g.flow(gw, catch)
        self.g.flow(gw, timer)
        self.g.flow(timer, end, "期限届满")
        self.g.flow(catch, back_to, rows=recheck)
        return gw

    # -- the stages, in the order a case meets them
    def build(self) -> Graph:
        g = self.g
        start = self.add("startEvent", "Start_filed", WORDS["filed"], outer=True,
                         rows=self.rows_of("submit"))  # fmt: skip
        # 撤回 and 终止办理 are interrupting message events on the border of an embedded
        # subprocess that holds exactly the states the table lets them leave (WITHDRAWABLE:
        # filing to decision). Not an event subprocess: that would catch them for the whole
        # process, during the payout or the wait for a lockdown to lift too, where the engine
        # refuses them; not boundary events on each task: a case also waits at gateways and
        # for the applicant, where no boundary event can be attached.
        self.add("subProcess", self.SUB, WORDS["handling"], outer=True,
                 doc="撤回（withdraw）与终止办理（expire）只能在这些状态下发生："
                 + "、".join(STATE_ZH[s.value] for s in WITHDRAWABLE))  # fmt: skip
        self.handling()
        entry = self.SUB
        origins = [r for r in self.leaving(S.DRAFT) if r.trigger != "submit"]
        if origins:  # 依职权: the authority's own act starts a case already granted
            entry = self.chain(
                self.SUB, self.add("exclusiveGateway", "Gateway_granted", outer=True)
            )
            gw = self.add("exclusiveGateway", "Gateway_origin", WORDS["origin"], outer=True)
            g.flow(start, gw)
            g.flow(gw, self.SUB, TRIGGER_ZH["submit"], 'origin == "submit"')
            for r in origins:
                g.flow(gw, entry, TRIGGER_ZH[r.trigger], f"origin == {r.trigger!r}", (r,))
        else:
            g.flow(start, self.SUB)
        self.after_decision(entry)
        self.ways_out()
        return g

    def handling(self) -> None:
        """The subprocess: intake with 补正, review with 补充, confirmation, decision."""
        merge = self.chain(self.add("startEvent", "Start_handling", STATE_ZH["submitted"]),
                           self.add("exclusiveGateway", "Gateway_intake_merge"))  # fmt: skip
        self.decision(*self.reviews(self.intake(merge)))

    def intake(self, merge: str) -> list[Way]:
        """受理: the rules at once (即申即享) or an intake officer; returns the accepted ways."""
        g = self.g
        doc = "RELIEF_INTAKE_REVIEW：false 规则即时受理，true 受理人员受理"
        mode = self.add("exclusiveGateway", "Gateway_intake_mode", WORDS["intake_mode"], doc=doc)
        result = self.add("exclusiveGateway", "Gateway_intake_result", WORDS["intake_result"])
        g.flow(merge, mode)
        if auto := self.rows_of("auto_accept", "auto_refuse"):
            script = self.add("scriptTask", "Script_auto_intake", WORDS["auto_intake"], rows=auto,
                              script='intake = "accept" if acceptable else "refuse"')  # fmt: skip
            g.flow(mode, script, "即申即享", "not intake_review")
            g.flow(script, result)
        steps = ("await_intake", "accept", "accept_deferred", "refuse_acceptance",
                 "request_correction")  # fmt: skip
        if manual := self.rows_of(*steps):
            # the first reviewing section receives the case (CaseRun.open_tasks)
            name = f"{TASK_ZH['intake']}（{self.unit(TaskKind.REVIEW)}）"
            doc = "填写 intake：accept / accept_deferred / refuse / correction"
            task = self.add("userTask", "Task_intake", name, rows=manual, doc=doc)
            g.flow(mode, task, "受理人员受理", "intake_review")
            g.flow(task, result)
            self.sla(task, TaskKind.INTAKE)
        accepted = []
        for value, notice, rows in (
            ("accept", NoticeKind.ACCEPTANCE, self.rows_of("accept", "auto_accept")),
            ("accept_deferred", NoticeKind.DEFERRED_ACCEPTANCE, self.rows_of("accept_deferred")),
        ):
            if rows:
                throw = self.notice(f"Throw_{notice.value}", notice)
                g.flow(result, throw, TRIGGER_ZH[value], f"intake == {value!r}")
                accepted.append(Way(throw))
        if refused := self.rows_of("refuse_acceptance", "auto_refuse"):
            error = self.g.error("not_accepted", STATE_ZH["not_accepted"])
            end = self.add("endEvent", "End_intake_refused", STATE_ZH["not_accepted"],
                           rows=refused, event=error)  # fmt: skip
            g.flow(result, end, STATE_ZH["not_accepted"], 'intake == "refuse"')
        answer = self.row("resubmit")
        if self.row("request_correction") and answer:
            throw = self.notice("Throw_correction", NoticeKind.CORRECTION)
            g.flow(result, throw, TRIGGER_ZH["request_correction"], 'intake == "correction"')
            g.flow(throw, self.reply("correction", answer, merge, self.rows_of("recheck")))
        return accepted

    def reviews(self, accepted: list[Way]) -> tuple[list[Way], list[Way]]:
        """审核: a user task per reviewing route, in parallel, each with its 补充 loop.
        Returns the ways into the decision and the ways to a refusal."""
        g = self.g
        split = self.add("parallelGateway", "Gateway_review_split", WORDS["split"],
                         rows=self.rows_of("start_review"))  # fmt: skip
        self.into(accepted, split, "Gateway_review_ready")
        join = self.add("parallelGateway", "Gateway_review_join", WORDS["join"])
        asks, answer = self.row("request_info"), self.row("supply_info")
        names: list[str] = []
        for r in self.routes(TaskKind.REVIEW):
            slug = _slug(f"{r.bureau_code}_{r.section_code}")
            while f"review_{slug}" in names:
                slug += "_2"
            var = f"review_{slug}"
            names.append(var)
            head = self.add("exclusiveGateway", f"Gateway_review_{slug}_merge")
            doc = f"填写 {var}：pass / fail / request_info（relief review）"
            name = f"{TASK_ZH['review']}（{r.unit}）"
            task = self.add("userTask", f"Task_review_{slug}", name, doc=doc)
            opinion = self.add(
                "exclusiveGateway", f"Gateway_review_{slug}_opinion", WORDS["opinion"]
            )
            g.flow(split, head)
            self.chain(head, task, opinion)
            self.sla(task, TaskKind.REVIEW)
            g.flow(opinion, join, "通过 / 不通过", f"{var} in ('pass', 'fail')")
            if asks and answer:
                throw = self.notice(f"Throw_more_info_{slug}", NoticeKind.MORE_INFO)
                g.flow(opinion, throw, TRIGGER_ZH["request_info"], f"{var} == 'request_info'",
                       (asks,))  # fmt: skip
                g.flow(throw, self.reply(f"info_{slug}", answer, head))
        passed = " and ".join(f"{v} == 'pass'" for v in names) or "True"
        confirming = self.row("complete_reviews", S.AWAITING_CONFIRMATION)
        deciding = self.row("complete_reviews", S.UNDER_REVIEW)
        if not confirming:
            return [Way(join, rows=(deciding,) if deciding else ())], []
        gw = self.add("exclusiveGateway", "Gateway_reviews_result", WORDS["reviews_result"])
        task = self.add("userTask", "Task_confirm",
                        f"{TASK_ZH['confirm']}（{self.unit(TaskKind.CONFIRM)}）",
                        rows=self.rows_of("confirm"),
                        doc="确认单位填写 confirmation：confirm / reject")  # fmt: skip
        verdict = self.add("exclusiveGateway", "Gateway_confirmation", WORDS["confirmation"])
        g.flow(join, gw)
        g.flow(gw, task, "全部通过", passed, (confirming,))
        g.flow(task, verdict)
        self.sla(task, TaskKind.CONFIRM)
        decide = [Way(verdict, TRIGGER_ZH["confirm"], "confirmation == 'confirm'")]
        if deciding:
            decide.append(Way(gw, "有不通过", f"not ({passed})", (deciding,)))
        return decide, [Way(verdict, TRIGGER_ZH["reject"], "confirmation == 'reject'")]

    def decision(self, decide: list[Way], refuse: list[Way]) -> None:
        """决定: the deciding unit's task and its outcomes (the approve rows the table keeps)."""
        g = self.g
        task = self.add("userTask", "Task_decide",
                        f"{TASK_ZH['decide']}（{self.unit(TaskKind.DECIDE)}）",
                        doc="决定单位填写 outcome：approve / partially_approve / reject；部分准予："
                        "规则、封顶额度或低于上限的决定金额（is_partial）")  # fmt: skip
        self.into(decide, task, "Gateway_decide_merge")
        refused = self.add("endEvent", "End_decision_refused", STATE_ZH["rejected"],
                           event=self.g.error("rejected", STATE_ZH["rejected"]))  # fmt: skip
        for w in refuse:  # drawn after the way on, which keeps the row it is on
            g.way(w, refused)
        self.sla(task, TaskKind.DECIDE)
        gw = self.chain(task, self.add("exclusiveGateway", "Gateway_decision", WORDS["decision"]))
        done = self.add("endEvent", "End_decided", WORDS["decided"])
        for r in sorted(self.rows_of("approve"), key=lambda r: r.dest != S.APPROVED):
            value = "partially_approve" if r.dest == S.PARTIALLY_APPROVED else "approve"
            way = Way(gw, STATE_ZH[r.dest], f"outcome == {value!r}", (r,))
            for kind in r.effects.notices:
                to = self.a.effect.get("referred_to", "") if kind == NoticeKind.REFERRAL else ""
                throw = self.notice(f"Throw_{kind.value}", kind, extra=f"移送{to}" if to else "")
                g.way(way, throw)
                way = Way(throw)
            g.way(way, done)
        g.flow(gw, refused, TRIGGER_ZH["reject"], "outcome == 'reject'", self.rows_of("reject"))

    def after_decision(self, entry: str) -> None:
        """The automatic rows after an approval: a payout, an effect, or a wait (解封) first."""
        g = self.g
        autos = sorted(
            (r for r in self.leaving(S.APPROVED) if r.auto),
            key=lambda r: not (r.effects.apply_effect or r.effects.order_payout),
        )  # the payout or the effect first, a wait below it
        closed = self.add("endEvent", "End_closed", STATE_ZH["closed"], outer=True,
                          rows=self.rows_of("close"))  # fmt: skip
        source = entry
        if len(autos) > 1:
            source = self.add("exclusiveGateway", "Gateway_effect_route", WORDS["effect_route"],
                              outer=True)  # fmt: skip
            g.flow(entry, source)
        arriving = sum(1 if r.effects.apply_effect else len(self.leaving(r.dest))
                       for r in autos if not r.effects.order_payout)  # fmt: skip
        effect = self.effect(closed, merge=arriving > 1) if arriving else ""
        for r in autos:
            way = Way(source, rows=(r,))
            if len(autos) > 1:
                terms = [GUARD_EXPR[c] for c in r.conditions if c in GUARD_EXPR]
                if not terms:
                    raise ValueError(f"{r.trigger}: no gateway condition for its guards")
                way = Way(source, TRIGGER_ZH[r.trigger], " and ".join(terms), (r,))
            if r.effects.order_payout:
                self.payout(way, closed)
            elif r.effects.apply_effect:
                g.way(way, effect)
            else:
                self.wait(way, effect)

    def payout(self, way: Way, closed: str) -> None:
        """拨付: one service task for ordering and paying (the payout flow pays each order once,
        reconcile records it paid), then the payout notice."""
        paid = self.row("record_payment")
        unit = self.unit(TaskKind.PAYOUT)
        rows = tuple(r for r in (*way.rows, paid) if r)
        params = {"case_type": self.spec.case_type, "unit": unit}
        task = self.add("serviceTask", "Task_payout", f"{TASK_ZH['payout']}（{unit}）", outer=True,
                        rows=rows, service=("relief.order_payout", "payout", params),
                        doc="payout 流程按拨付单（幂等键）拨付；reconcile 登记到账")  # fmt: skip
        self.g.way(Way(way.source, way.name, way.condition), task)
        kinds = paid.effects.notices if paid else ()
        self.chain(task, *(self.notice(f"Throw_{k.value}", k, outer=True) for k in kinds), closed)

    def wait(self, way: Way, effect: str) -> None:
        """A state an approval waits in (顺延待解封): its notices, then a user task for each
        row leaving it, on to the effect."""
        (r,) = way.rows
        for kind in r.effects.notices:
            throw = self.notice(f"Throw_{r.trigger}_{kind.value}", kind, outer=True)
            self.g.way(way, throw)
            way = Way(throw)
        for out in self.leaving(r.dest):
            step = self.add("userTask", f"Task_{out.trigger}", TRIGGER_ZH[out.trigger],
                            outer=True, rows=(out,), doc="登记事实后写入生效登记")  # fmt: skip
            self.g.way(way, step)
            self.g.flow(step, effect)

    def effect(self, closed: str, *, merge: bool) -> str:
        """登记生效: a service task writing the type's effect register, then the notices the
        applying rows owe; returns where the ways in arrive (the task, or a merge)."""
        register = self.m.effect_register
        what = ((register.__doc__ or "").split(":")[0].strip() if register else "") or "生效登记"
        applying = tuple(r for r in self.rows if r.effects.apply_effect)
        params = {"case_type": self.spec.case_type, "register": what}
        name = f"{WORDS['effect']}（{what}）"
        task = self.add("serviceTask", "Task_effect", name, outer=True, rows=applying,
                        service=("relief.apply_effect", "effect", params))  # fmt: skip
        kinds = list(dict.fromkeys(k for r in applying for k in r.effects.notices))
        notices = [self.notice(f"Throw_effect_{k.value}", k, outer=True) for k in kinds]
        self.chain(task, *notices, closed)
        if not merge:
            return task
        gateway = self.add("exclusiveGateway", "Gateway_effect_merge", outer=True)
        self.g.flow(gateway, task)
        return gateway

    def ways_out(self) -> None:
        """The subprocess's ends other than a grant, on its border: a withdrawal or an ending
        (messages, interrupting), a refusal or a lapsed deadline (errors thrown inside)."""
        g = self.g
        ends: dict[str, str] = {}

        def end(state: str, notice: NoticeKind) -> str:
            if state not in ends:
                event = g.message(f"notice_{notice.value}", NOTICE_ZH[notice])
                ends[state] = self.add("endEvent", f"End_{state}", STATE_ZH[state], outer=True,
                                       event=event, doc=f"通知书：{NOTICE_ZH[notice]}")  # fmt: skip
            return ends[state]

        for trigger, who in (("withdraw", "申请人"), ("expire", "运营人员")):
            if r := self.row(trigger):
                b = self.add("boundaryEvent", f"Boundary_{trigger}", who + TRIGGER_ZH[trigger],
                             outer=True, rows=(r,), attached_to=self.SUB,
                             event=g.message(trigger, TRIGGER_ZH[trigger]))  # fmt: skip
                g.flow(b, end(r.dest.value, r.effects.notices[0]))
        for code, notice in (("not_accepted", NoticeKind.NOT_ACCEPTED),
                             ("rejected", NoticeKind.DECISION_REFUSED),
                             ("expired", NoticeKind.EXPIRED)):  # fmt: skip
            if f"Error_{code}" in g.errors:
                b = self.add("boundaryEvent", f"Boundary_{code}", g.errors[f"Error_{code}"][0],
                             outer=True, attached_to=self.SUB,
                             event=("error", f"Error_{code}"))  # fmt: skip
                g.flow(b, end(code, notice))
