"""待办任务 — the tasklist page of a section's staff: filters, sort, pager, claim and release,
and for the section head, reassignment.

The page reads the same query as GET /api/tasks (models/work_queue.section_page). Its query
string is read leniently: a value it does not know is left out and named in a message on the
page, never a 422. Claim, release and reassign are POST forms with the session's CSRF token;
each goes to the engine (which decides who may) and comes back to the list with its filters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session, col, select

from api import web_session
from api.deps import EngineDep, TaskId
from api.pages.views import Csrf, MaybeSession, Staff, back, page, require_csrf
from api.schemas import task_public
from api.web_session import PageSession
from models.tables import Account
from models.work_queue import SEARCH_MAX, QueueQuery, SortKey, section_page
from states.actors import SECTION_ROLES, actor_of
from states.catalog import catalog
from states.engine import CaseEngine
from states.errors import EngineError
from states.labels import STATE_ZH, TASK_ZH
from states.lifecycle import FINAL_STATES, CaseState
from states.rules import TaskKind

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20  # rows a page shows unless the reader picks another size
PAGE_SIZES = (20, 50, 100)
PAGE_LIMIT = 1_000_000  # a page number beyond this is a typo, not a page
TABS = {"all": "全部", "mine": "我的任务", "unassigned": "未认领"}
SORT_ZH = {
    SortKey.DUE: "办理期限",
    SortKey.CREATED: "创建时间",
    SortKey.CASE_NO: "案件编号",
    SortKey.TYPE: "申请类型",
    SortKey.APPLICANT: "申请人",
}
FIELD_ZH = {
    "tab": "任务范围",
    "type": "申请类型",
    "kind": "环节",
    "state": "案件状态",
    "overdue": "逾期",
    "q": "申请人",
    "case_no": "案件编号",
    "sort": "排序",
    "order": "排序方向",
    "size": "每页条数",
    "page": "页码",
}
CASE_NO_MAX = 30
OPEN_STATES = [s.value for s in CaseState if s not in FINAL_STATES and s != CaseState.DRAFT]


@dataclass
class Filters:
    """The tasklist's query string, every value checked; what was refused, in words."""

    tab: str = "all"
    case_type: str = ""
    kind: str = ""
    state: str = ""
    overdue: bool = False
    q: str = ""
    case_no: str = ""
    sort: str = SortKey.DUE
    order: str = "asc"
    size: int = PAGE_SIZE
    page: int = 1
    problems: list[str] = field(default_factory=list)

    def params(self, **changes: Any) -> dict[str, str]:
        """The query string of this view (with `changes`), defaults left out."""
        values = {
            "tab": self.tab, "type": self.case_type, "kind": self.kind, "state": self.state,
            "overdue": "1" if self.overdue else "", "q": self.q, "case_no": self.case_no,
            "sort": self.sort, "order": self.order, "size": str(self.size), "page": str(self.page),
        }  # fmt: skip
        values.update({k: str(v) for k, v in changes.items()})
        defaults = {"tab": "all", "sort": SortKey.DUE, "order": "asc", "size": str(PAGE_SIZE),
                    "page": "1"}  # fmt: skip
        return {k: v for k, v in values.items() if v and v != defaults.get(k)}

    @property
    def narrowed(self) -> bool:
        """Some filter (or a tab) leaves tasks out."""
        return bool(
            self.tab != "all" or self.case_type or self.kind or self.state or self.overdue
            or self.q or self.case_no
        )  # fmt: skip

    def url(self, **changes: Any) -> str:
        query = urlencode(self.params(**changes))
        return f"/bureau/tasks?{query}" if query else "/bureau/tasks"


def read_filters(raw: Mapping[str, str]) -> Filters:
    """The filters of a query string; an unknown or malformed value is dropped and named."""
    f = Filters()

    def pick(name: str, allowed: Callable[[str], bool]) -> str:
        value = raw.get(name, "").strip()
        if value and not allowed(value):
            f.problems.append(f"“{FIELD_ZH[name]}”的取值无效，已忽略该条件")
            return ""
        return value

    f.tab = pick("tab", lambda v: v in TABS) or "all"
    f.case_type = pick("type", lambda v: len(v) <= 40 and v in catalog())
    f.kind = pick("kind", lambda v: v in set(TaskKind))
    f.state = pick("state", lambda v: v in set(CaseState))
    f.overdue = pick("overdue", lambda v: v in ("1", "0", "true", "false")) in ("1", "true")
    f.q = pick("q", lambda v: len(v) <= SEARCH_MAX)
    f.case_no = pick("case_no", lambda v: len(v) <= CASE_NO_MAX)
    f.sort = pick("sort", lambda v: v in set(SortKey)) or SortKey.DUE
    f.order = pick("order", lambda v: v in ("asc", "desc")) or "asc"
    size = pick("size", lambda v: v.isdigit() and int(v) in PAGE_SIZES)
    f.size = int(size) if size else PAGE_SIZE
    number = pick("page", lambda v: v.isdigit() and 1 <= int(v) <= PAGE_LIMIT)
    f.page = int(number) if number else 1
    return f


def _query(f: Filters, account: Account) -> QueueQuery:
    return QueueQuery(
        case_type=f.case_type or None,
        kind=f.kind or None,
        state=f.state or None,
        overdue=True if f.overdue else None,
        applicant=f.q or None,
        case_no=f.case_no or None,
        assignee="mine" if f.tab == "mine" else "unassigned" if f.tab == "unassigned" else None,
        me=account.username,
        sort=f.sort,
        descending=f.order == "desc",
        limit=f.size,
        offset=(f.page - 1) * f.size,
    )


def colleagues(engine: CaseEngine, account: Account) -> list[Account]:
    """The active staff of the account's own section: whom a head may give a task to."""
    with Session(engine.read_db) as s:
        return list(
            s.exec(
                select(Account)
                .where(
                    col(Account.bureau_code) == account.bureau_code,
                    col(Account.section_code) == account.section_code,
                    col(Account.active).is_(True),
                    col(Account.role).in_([r.value for r in SECTION_ROLES]),
                )
                .order_by(col(Account.username))
            ).all()
        )


@router.get("/bureau/tasks", response_class=HTMLResponse)
def tasklist(request: Request, session: Staff, engine: EngineDep) -> HTMLResponse:
    """My section's open tasks, filtered, sorted and a page at a time."""
    account = session.account
    assert account is not None
    f = read_filters(request.query_params)
    today = engine.clock.today()
    tz = engine.clock.now().tzinfo
    bureau, section = account.bureau_code or "", account.section_code or ""
    with Session(engine.read_db) as s:
        found = section_page(s, bureau, section, _query(f, account), today=today)
        pages = max(1, math.ceil(found.total / f.size))
        if f.page > pages:  # past the end (the list got shorter, or a typed number)
            f.page = pages
            found = section_page(s, bureau, section, _query(f, account), today=today)
    types = catalog()
    rows = [
        {
            "task": task_public(r.task, r.case.case_no or "", r.case.case_type, today),
            "type_label": types[r.case.case_type].label_zh if r.case.case_type in types else "",
            "applicant": r.applicant_name,
            "identity": r.applicant_identity,
            "state": r.case.state,
            "created": r.task.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
        }
        for r in found.rows
    ]
    return page(
        request, engine, session, "tasks.html.j2",
        rows=rows, total=found.total, pages=pages, f=f, today=today.isoformat(),
        tabs=TABS, sorts=SORT_ZH, sizes=PAGE_SIZES, here=urlencode(f.params()),
        types=sorted(((code, spec.label_zh) for code, spec in types.items()), key=lambda t: t[1]),
        kinds=[(k.value, TASK_ZH[k.value]) for k in TaskKind],
        states=[(code, STATE_ZH[code]) for code in OPEN_STATES],
        head=bool(account.section_head), unit=unit_name(bureau, section),
        colleagues=colleagues(engine, account) if account.section_head else [],
    )  # fmt: skip


def unit_name(bureau: str, section: str) -> str:
    """The section as people call it (区市场监管局信用科), from the newest edition."""
    from states.edition import all_editions

    try:
        b, sec = all_editions()[-1].section(f"{bureau}.{section}" if section else bureau)
    except KeyError:
        return f"{bureau}.{section}"
    return b.name + (sec.name if sec else "")


def _return_to(query: str) -> str:
    """The list the form came from, rebuilt from known filters only (never a URL of the
    form's choosing)."""
    return read_filters(dict(parse_qsl(query[:2000]))).url()


def _act(
    engine: CaseEngine,
    session: MaybeSession,
    csrf: str,
    query: str,
    call: Callable[[PageSession], str],
) -> Response:
    form = require_csrf(engine, session, csrf)
    try:
        if form.account is None:
            raise EngineError("请先登录", "not signed in")
        done = call(form)
    except EngineError as exc:
        web_session.push_flash(engine.db, form, f"未办理：{exc.message_zh}", "error")
    else:
        web_session.push_flash(engine.db, form, done)
    return back(_return_to(query))


BackField = Annotated[str, Form(alias="back", max_length=2000)]


@router.post("/bureau/tasks/{task_id}/claim")
def claim(
    task_id: TaskId,
    session: MaybeSession,
    engine: EngineDep,
    csrf: Csrf = "",
    query: BackField = "",
) -> Response:
    def call(form: PageSession) -> str:
        r = engine.claim_task(task_id, actor=actor_of(form.account))
        return f"已认领：{r.case_no}"

    return _act(engine, session, csrf, query, call)


@router.post("/bureau/tasks/{task_id}/release")
def release(
    task_id: TaskId,
    session: MaybeSession,
    engine: EngineDep,
    csrf: Csrf = "",
    query: BackField = "",
) -> Response:
    def call(form: PageSession) -> str:
        r = engine.release_task(task_id, actor=actor_of(form.account))
        return f"已释放：{r.case_no}，本科室人员均可认领"

    return _act(engine, session, csrf, query, call)


@router.post("/bureau/tasks/{task_id}/reassign")
def reassign(
    task_id: TaskId,
    session: MaybeSession,
    engine: EngineDep,
    csrf: Csrf = "",
    query: BackField = "",
    to: Annotated[str, Form(max_length=80)] = "",
) -> Response:
    def call(form: PageSession) -> str:
        r = engine.reassign_task(task_id, to=to, actor=actor_of(form.account))
        return f"已改派：{r.case_no} 交由 {to.strip()} 办理"

    return _act(engine, session, csrf, query, call)
