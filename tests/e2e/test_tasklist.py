"""The tasklist: a section's queue filtered, sorted and paged with its total (the query, the API
and its X-Total-Count header), and who may claim, release and reassign (the engine, through
the API), on SQLite and PostgreSQL. Every filter and sort is checked against the section's
rows read plainly and filtered in Python; every refusal writes nothing, every change writes one
audit event.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import pytest
import scenarios as S
import staff
from conftest import FIXED_NOW, make_case_engine
from fastapi.testclient import TestClient
from sqlalchemy import event, func, update
from sqlmodel import Session, col, select

from api.main import create_app
from api.security import create_account
from base.civil_dates import SHANGHAI
from models.settings import Settings
from models.tables import Account, Applicant, Case, CaseEvent, ReviewTask
from models.work_queue import QueueQuery, SortKey, section_page
from states.engine import CaseEngine
from states.errors import CaseNotFound, ConflictError, EngineError, NotPermitted

BUREAU, SECTION = "zgc_dongcheng", "enterprise"  # 中关村东城园 企业服务: incubators and parks
EARLY = datetime(2022, 11, 1, 9, 0, tzinfo=SHANGHAI)  # filed then, overdue by FIXED_NOW
TODAY = FIXED_NOW.date()
ZGC = {"role": "reviewer", "bureau": BUREAU, "section": SECTION}
PEOPLE: dict[str, dict[str, Any]] = {
    "head": {**ZGC, "section_head": True},
    "rev1": ZGC,
    "rev2": ZGC,
    "rev-off": ZGC,  # disabled below
    "intake-zgc": {**ZGC, "role": "intake_officer"},
    "other-head": {
        "role": "reviewer",
        "bureau": "invest_center",
        "section": "strategy",
        "section_head": True,
    },
    "other": {"role": "reviewer", "bureau": "invest_center", "section": "strategy"},
    "operator": {"role": "operator"},
    "owner": {"role": "applicant", "uscc": staff.uscc_for(4)},
}
HOSTILE = [
    "' OR '1'='1",
    "'; DROP TABLE review_task; --",
    '" OR 1=1 --',
    "%",
    "_",
    "\\",
    "<script>alert(1)</script>",
    "北京') UNION SELECT username FROM account --",
]


def incubator(n: int, name: str) -> dict[str, Any]:
    data = copy.deepcopy(S.application("RENT-07"))
    data["applicant"].update(uscc=staff.uscc_for(n), name=name)
    return data


def park(n: int, name: str) -> dict[str, Any]:
    return {
        "type": "rent_park_subsidy",
        "application_date": "2022-07-01",
        "applicant": {
            "uscc": staff.uscc_for(n),
            "name": name,
            "role": "owner",
            "property": {
                "property_id": f"BLDG-{n:07d}",
                "type": "commercial_building",
                "state_owned": False,
                "in_zgc_dongcheng_park": True,
            },
        },
        "confirmed_total_reduced": "1000000",
        "prior_subsidy_for_this_property": 0,
    }


@dataclass
class World:
    engine: CaseEngine
    client: TestClient
    tokens: dict[str, str]
    case_ids: dict[int, int]  # seed number → case id
    case_nos: dict[int, str]

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return self.client.request(method, path, headers=headers, **kwargs)

    def task(self, n: int, kind: str = "review") -> ReviewTask:
        with Session(self.engine.db) as s:
            found = s.exec(
                select(ReviewTask).where(
                    col(ReviewTask.case_id) == self.case_ids[n],
                    col(ReviewTask.kind) == kind,
                    col(ReviewTask.bureau_code) == BUREAU,
                    col(ReviewTask.section_code) == SECTION,
                )
            ).first()
        assert found is not None
        return found

    def events(self, trigger: str | None = None) -> list[CaseEvent]:
        with Session(self.engine.db) as s:
            stmt = select(CaseEvent).order_by(col(CaseEvent.id))
            if trigger:
                stmt = stmt.where(col(CaseEvent.trigger) == trigger)
            return list(s.exec(stmt).all())

    def snapshot(self) -> tuple[Any, ...]:
        with Session(self.engine.db) as s:
            return (
                s.exec(select(func.count()).select_from(CaseEvent)).one(),
                tuple(s.exec(select(Case.id, Case.version).order_by(col(Case.id))).all()),
                tuple(
                    s.exec(
                        select(ReviewTask.id, ReviewTask.assignee).order_by(col(ReviewTask.id))
                    ).all()
                ),
            )


NAMES = {
    0: "北京ABC孵化器有限公司",
    1: "北京东城创新孵化器有限公司",
    2: "北京早到孵化器有限公司",
    3: "北京100%_孵化器有限公司",
    4: "北京星火孵化器有限公司",
    5: "北京楼宇五号有限公司",
    6: "北京楼宇六号有限公司",
    7: "北京楼宇七号有限公司",
}


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    """Eight cases of 中关村东城园: three incubators filed on 11-01 (overdue on 12-30, one of
    them waiting for the applicant: its clock stopped), two more incubators and three parks
    filed on 12-30; case 3 reviewed by rev1 (its confirmation open), case 4 the owner's."""
    engine = make_case_engine(db_url)
    tokens = {
        name: create_account(
            engine.db, username=name, now=FIXED_NOW, password=f"pw-{name}", **spec
        )[1]
        for name, spec in PEOPLE.items()
    }
    early = make_case_engine(db_url, EARLY)
    ids: dict[int, int] = {}
    nos: dict[int, str] = {}
    for n in range(8):
        data = incubator(n, NAMES[n]) if n < 5 else park(n, NAMES[n])
        who = early if n < 3 else engine
        actor = who.actor("owner") if n == 4 else staff.applicant_for(who, data)
        [r] = who.submit(data, actor=actor)
        ids[n], nos[n] = r.case_id, r.case_no
    early.db.dispose()
    rev1 = engine.actor("rev1")
    engine.fire(ids[2], "request_info", actor=rev1, payload={"items": ["减免确认书"]})
    w = World(
        engine,
        TestClient(create_app(Settings(database_url=db_url, now=FIXED_NOW))),
        tokens,
        ids,
        nos,
    )
    engine.decide_task(w.task(3).id or 0, decision="pass", actor=rev1)
    with Session(engine.db) as s, s.begin():
        s.exec(update(Account).where(col(Account.username) == "rev-off").values(active=False))
    yield w
    engine.db.dispose()


def section_rows(w: World) -> list[tuple[ReviewTask, Case, Applicant]]:
    """The section's tasks read plainly: the oracle the queries are checked against."""
    with Session(w.engine.db) as s:
        rows = s.exec(
            select(ReviewTask, Case, Applicant)
            .join(Case, col(Case.id) == col(ReviewTask.case_id))
            .join(Applicant, col(Applicant.id) == col(Case.applicant_id))
            .where(col(ReviewTask.bureau_code) == BUREAU, col(ReviewTask.section_code) == SECTION)
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def page_of(w: World, **query: Any) -> tuple[list[int], int]:
    with Session(w.engine.read_db) as s:
        found = section_page(s, BUREAU, SECTION, QueueQuery(**query), today=TODAY)
    return [r.task.id or 0 for r in found.rows], found.total


def late(t: ReviewTask) -> bool:
    return bool(t.status == "open" and t.due_on and t.due_on < TODAY and t.paused_on is None)


Row = tuple[ReviewTask, Case, Applicant]


def open_and(keep: Callable[[Row], bool]) -> Callable[[Row], bool]:
    return lambda r: r[0].status == "open" and keep(r)


FILTERS: list[tuple[dict[str, Any], Callable[[Row], bool]]] = [
    ({}, open_and(lambda r: True)),
    ({"status": None}, lambda r: True),
    ({"status": "done"}, lambda r: r[0].status == "done"),
    ({"case_type": "rent_park_subsidy"}, open_and(lambda r: r[1].case_type == "rent_park_subsidy")),
    ({"kind": "confirm"}, open_and(lambda r: r[0].kind == "confirm")),
    ({"state": "awaiting_confirmation"}, open_and(lambda r: r[1].state == "awaiting_confirmation")),
    ({"overdue": True}, lambda r: late(r[0])),
    ({"overdue": False}, open_and(lambda r: not late(r[0]))),
    ({"overdue": True, "case_type": "rent_park_subsidy"}, lambda r: False),
    ({"applicant": "abc"}, open_and(lambda r: "ABC" in r[2].name)),
    ({"applicant": "孵化器"}, open_and(lambda r: "孵化器" in r[2].name)),
    (
        {"applicant": staff.uscc_for(6).lower()},
        open_and(lambda r: r[2].identity == staff.uscc_for(6)),
    ),
    ({"applicant": "000000005"}, open_and(lambda r: r[2].identity == staff.uscc_for(5))),
    ({"applicant": "%_"}, open_and(lambda r: "%_" in r[2].name)),
    ({"assignee": "unassigned"}, open_and(lambda r: r[0].assignee is None)),
    ({"assignee": "mine", "me": "rev2"}, open_and(lambda r: r[0].assignee == "rev2")),
]


def test_each_filter_finds_what_the_rows_say(world: World) -> None:
    w = world
    w.engine.claim_task(w.task(5).id or 0, actor=w.engine.actor("rev2"))
    w.engine.claim_task(w.task(0).id or 0, actor=w.engine.actor("rev1"))
    rows = section_rows(w)
    assert len({r[0].id for r in rows}) == 9  # 8 cases: one of them reviewed, then confirmed
    assert sum(late(r[0]) for r in rows) == 2  # 0 and 1; 2's clock stopped
    for query, keep in FILTERS:
        expected = sorted((r[0].due_on, r[0].id) for r in rows if keep(r))
        got, total = page_of(w, limit=1000, **query)
        assert got == [i for _, i in expected], query
        assert total == len(expected), query
    for n, no in w.case_nos.items():  # a case number, or a part of it
        got, total = page_of(w, case_no=no[-4:].lower(), status=None)
        assert total == len(got) and all(t.case_id == w.case_ids[n] for t in _tasks(w, got))
    # an applicant or number that nobody has, and searches that look like SQL or markup: each
    # found literally (a LIKE wildcard in it matches only itself)
    for term in ["没有这家公司", *HOSTILE]:
        low = term.lower()
        expected = sorted(
            (r[0].due_on, r[0].id)
            for r in rows
            if r[0].status == "open" and (low in r[2].name.lower() or low in r[2].identity.lower())
        )
        assert page_of(w, applicant=term) == ([i for _, i in expected], len(expected)), term
        assert page_of(w, case_no=term) == ([], 0), term
    assert page_of(w, applicant="%")[1] == page_of(w, applicant="_")[1] == 1  # case 3's name
    assert len(section_rows(w)) == len(rows)  # nothing dropped


def _tasks(w: World, ids: list[int]) -> list[ReviewTask]:
    with Session(w.engine.db) as s:
        return [s.get(ReviewTask, i) for i in ids]  # type: ignore[misc]


SORT_VALUE: dict[str, Callable[[Row], Any]] = {
    SortKey.DUE: lambda r: r[0].due_on,
    SortKey.CREATED: lambda r: r[0].created_at,
    SortKey.CASE_NO: lambda r: r[1].case_no,
    SortKey.TYPE: lambda r: r[1].case_type,
    SortKey.APPLICANT: lambda r: r[2].name,
}


def test_every_sort_is_whole_stable_and_reversible(world: World) -> None:
    """Each sort key, both ways: the rows' order (ties by id), the same across pages."""
    rows = [r for r in section_rows(world) if r[0].status == "open"]
    assert set(SORT_VALUE) == set(SortKey)
    for key, value in SORT_VALUE.items():
        for descending in (False, True):
            expected = [
                r[0].id for r in sorted(rows, key=lambda r: (value(r), r[0].id), reverse=descending)
            ]
            got, total = page_of(world, sort=key, descending=descending, limit=1000)
            assert got == expected, (key, descending)
            paged = [
                i
                for o in range(0, total + 3, 3)
                for i in page_of(world, sort=key, descending=descending, limit=3, offset=o)[0]
            ]
            assert paged == expected and total == len(rows), (key, descending)
    with pytest.raises(ValueError):
        page_of(world, sort="status; DROP TABLE account")


def test_a_page_reads_the_queue_index(sqlite_url: str) -> None:
    """SQLite's plan for a section's page: ix_task_queue, in its order (no sort step)."""
    engine = make_case_engine(sqlite_url)
    for n in range(3):
        staff_data = park(n, f"北京楼宇{n}号有限公司")
        engine.submit(staff_data, actor=staff.applicant_for(engine, staff_data))
    seen: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        seen.append((statement, params))

    event.listen(engine.db, "before_cursor_execute", grab)
    with Session(engine.db) as s:
        section_page(s, BUREAU, SECTION, QueueQuery(limit=20), today=TODAY)
    event.remove(engine.db, "before_cursor_execute", grab)
    page_sql, count_sql = [x for x in seen if "review_task" in x[0]][-2:]
    with engine.db.connect() as conn:
        for sql, params in (page_sql, count_sql):
            plan = " | ".join(
                str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)
            )
            assert "ix_task_queue" in plan, plan
        plan = " | ".join(
            str(row[-1])
            for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {page_sql[0]}", page_sql[1])
        )
        assert "TEMP B-TREE" not in plan, plan  # read in the index's order: no sort
    engine.db.dispose()


# ---------------------------------------------------------------- the API
def test_the_api_filters_sorts_pages_and_counts(world: World) -> None:
    w = world
    w.engine.claim_task(w.task(5).id or 0, actor=w.engine.actor("rev1"))
    rows = [r for r in section_rows(w) if r[0].status == "open"]

    def get(**params: Any) -> tuple[list[dict[str, Any]], int]:
        r = w.call("rev1", "GET", "/api/tasks", params=params)
        assert r.status_code == 200, r.text
        return r.json(), int(r.headers["X-Total-Count"])

    body, total = get()
    assert total == len(body) == len(rows) == 8
    assert [t["id"] for t in body] == [
        r[0].id for r in sorted(rows, key=lambda r: (r[0].due_on, r[0].id))
    ]
    # the pager: pages of 3 cover the queue once, past the end is empty, the total stays
    pages = [get(limit=3, offset=o) for o in (0, 3, 6, 9, 10_000_000)]
    assert [len(b) for b, _ in pages] == [3, 3, 2, 0, 0] and {t for _, t in pages} == {8}
    assert [t["id"] for b, _ in pages for t in b] == [t["id"] for t in body]
    # each filter, and the header counts the filtered set
    assert get(overdue="true")[1] == 2 and get(overdue="false")[1] == 6
    assert {t["case_type"] for t in get(case_type="rent_park_subsidy")[0]} == {"rent_park_subsidy"}
    assert [t["kind"] for t in get(kind="confirm")[0]] == ["confirm"]
    assert get(state="more_info_requested")[1] == 1
    assert get(applicant="abc")[0][0]["case_no"] == w.case_nos[0]
    assert get(applicant=staff.uscc_for(7))[0][0]["case_no"] == w.case_nos[7]
    assert get(case_no=w.case_nos[6])[0][0]["case_no"] == w.case_nos[6]
    assert [t["case_no"] for t in get(mine="true")[0]] == [w.case_nos[5]]
    assert get(assignee="mine")[1] == 1 and get(assignee="unassigned")[1] == 7
    assert get(assignee="anyone")[1] == 8 and get(status="all")[1] == 9
    assert get(status="done")[0][0]["decision"] == "pass"
    by_applicant = get(sort="applicant", order="desc")[0]
    names = {r[1].case_no: r[2].name for r in rows}
    assert [names[t["case_no"]] for t in by_applicant] == sorted(names.values(), reverse=True)
    assert [t["case_no"] for t in get(sort="case_no")[0]] == sorted(names)
    # another section sees none of it; the header says so
    other = w.call("other", "GET", "/api/tasks")
    assert other.headers["X-Total-Count"] == str(len(other.json()))
    assert not {t["case_no"] for t in other.json()} & {w.case_nos[n] for n in (0, 1, 2, 3, 4)}
    # an intake officer reads its section's queue too (its own kind of task: none here)
    intake = w.call("intake-zgc", "GET", "/api/tasks", params={"kind": "intake"})
    assert intake.status_code == 200 and intake.json() == []


BAD_PARAMS: list[tuple[dict[str, Any], str]] = [
    ({"sort": "due; DROP TABLE account"}, "sort"),
    ({"sort": "status"}, "sort"),
    ({"order": "sideways"}, "order"),
    ({"kind": "nap"}, "kind"),
    ({"state": "limbo"}, "state"),
    ({"status": "lost"}, "status"),
    ({"case_type": "no_such_type"}, "case_type"),
    ({"case_type": "A' OR 1=1"}, "case_type"),
    ({"overdue": "maybe"}, "overdue"),
    ({"assignee": "everyone"}, "assignee"),
    ({"mine": "true", "assignee": "unassigned"}, "mine"),
    ({"offset": "-1"}, "offset"),
    ({"offset": "10000001"}, "offset"),
    ({"offset": "9" * 40}, "offset"),
    ({"limit": "0"}, "limit"),
    ({"limit": "501"}, "limit"),
    ({"applicant": "北" * 1_200}, "applicant"),  # 10 kB of query string
    ({"applicant": "a" * 10_000}, "applicant"),
    ({"case_no": "D" * 10_000}, "case_no"),
]


def test_the_api_names_every_bad_parameter_and_takes_hostile_searches_as_text(
    world: World,
) -> None:
    w = world
    for params, name in BAD_PARAMS:
        r = w.call("rev1", "GET", "/api/tasks", params=params)
        assert r.status_code == 422, (params, r.status_code)
        assert name in [e["field"] for e in r.json()["errors"]], (params, r.json())
        assert r.json()["message_zh"] == "请求参数有误"
    for term in HOSTILE:
        for field in ("applicant", "case_no"):
            r = w.call("rev1", "GET", "/api/tasks", params={field: term})
            if field == "case_no" and len(term) > 30:  # longer than any case number
                assert r.status_code == 422
                continue
            found = [t["case_no"] for t in r.json()]
            literal = [w.case_nos[3]] if field == "applicant" and term in "%_" else []
            assert r.status_code == 200 and found == literal, (field, term)
            assert r.headers["X-Total-Count"] == str(len(literal))
    r = w.call("rev1", "GET", "/api/tasks", params={"applicant": "%_"})  # literally
    assert [t["case_no"] for t in r.json()] == [w.case_nos[3]]
    assert w.call("rev1", "GET", "/api/tasks").headers["X-Total-Count"] == "8"  # all still there
    assert w.call("operator", "GET", "/api/tasks").status_code == 403
    assert w.call("owner", "GET", "/api/tasks").status_code == 403


# ---------------------------------------------------------------- claim, release, reassign
def test_claims_releases_and_reassignments_follow_the_rules(world: World) -> None:
    w = world
    task = w.task(5).id  # a park's review task
    confirm = w.task(3, "confirm").id  # rev1 reviewed case 3: rev1 may not confirm it
    assert task is not None and confirm is not None

    def post(who: str, what: str, task_id: int = task, **body: Any) -> Any:
        return w.call(who, "POST", f"/api/tasks/{task_id}/{what}", json=body or None)

    assert post("rev1", "claim").json()["assignee"] == "rev1"
    refusals = [
        (post("rev2", "release"), 409, "已由rev1认领"),  # not theirs, and no head
        (post("rev2", "reassign", to="rev2"), 403, "只有本科室负责人"),
        (post("other-head", "reassign", to="other"), 404, "任务不存在"),  # another section's
        (post("head", "reassign", to="other"), 403, "只能改派给本科室的人员"),
        (post("head", "reassign", to="rev-off"), 403, "不存在或已停用"),
        (post("head", "reassign", to="nobody-at-all"), 403, "不存在或已停用"),
        (post("head", "reassign", to="   "), 403, "请选择"),
        (post("head", "reassign", to="intake-zgc"), 403, "受理人员无权"),
        (post("head", "reassign", to="operator"), 403, "只能改派给本科室的人员"),
        (post("head", "reassign", confirm, to="rev1"), 403, "职责分离"),
        (post("owner", "reassign", w.task(4).id or 0, to="rev2"), 403, "申请人无权"),
        (post("operator", "reassign", to="rev2"), 403, "运营人员无权"),
        (post("owner", "reassign", to="rev2"), 404, "任务不存在"),  # not the owner's case
    ]
    before = w.snapshot()
    for answer, status, words in refusals:
        assert answer.status_code == status, (answer.status_code, answer.text)
        assert words in answer.json()["message_zh"], answer.json()
        assert answer.json()["message_en"]
    for body in ({"to": ""}, {}, {"to": "x" * 81}, {"to": ["rev2"]}):
        r = w.call("head", "POST", f"/api/tasks/{task}/reassign", json=body)
        assert r.status_code == 422, body
    assert post("head", "reassign", 2**31 - 1, to="rev2").status_code == 404
    assert post("head", "reassign", 2**62, to="rev2").status_code == 422  # not a task id
    assert w.snapshot() == before  # nothing of any refusal was written

    # the head gives rev1's task to rev2: one event, with who held it before and after
    moved = post("head", "reassign", to="rev2")
    assert moved.status_code == 200 and moved.json()["assignee"] == "rev2"
    [ev] = w.events("reassign_task")
    assert ev.payload == {
        "task_id": task,
        "unit": f"{BUREAU}.{SECTION}",
        "before": "rev1",
        "after": "rev2",
        "by": "head",
    }
    assert ev.actor == "head" and ev.case_id == w.case_ids[5]
    assert post("head", "reassign", to="rev2").status_code == 200  # already theirs: no event
    assert len(w.events("reassign_task")) == 1
    assert post("rev1", "claim").status_code == 409  # rev2 holds it now
    # the head frees rev2's claim; then rev1 takes and gives back its own
    freed = post("head", "release")
    assert freed.status_code == 200 and freed.json()["assignee"] is None
    head_release = w.events("release_task")[-1]
    assert head_release.payload["before"] == "rev2" and head_release.payload["by"] == "head"
    assert post("rev1", "claim").status_code == 200
    assert post("rev1", "release").json()["assignee"] is None
    assert w.events("release_task")[-1].payload["before"] == "rev1"
    # the confirmation goes to someone who did not review the case; the head may take one too
    assert post("head", "reassign", confirm, to="rev2").json()["assignee"] == "rev2"
    assert post("head", "reassign", to="head").json()["assignee"] == "head"
    claims = [e.trigger for e in w.events() if e.trigger.endswith("_task")]
    assert claims == [
        "claim_task",
        "reassign_task",
        "release_task",
        "claim_task",
        "release_task",
        "reassign_task",
        "reassign_task",
    ]
    # a task done is no longer anyone's to move
    with Session(w.engine.db) as s, s.begin():
        s.exec(update(ReviewTask).where(col(ReviewTask.id) == task).values(status="done"))
    assert post("head", "reassign", to="rev1").status_code == 409


def test_a_head_is_a_head_only_while_the_account_says_so(world: World) -> None:
    """The engine re-reads the head's account in the transaction: a head demoted a moment ago
    (their Actor still says head) reassigns nothing; nor does a head made inactive."""
    w = world
    task = w.task(6).id or 0
    head = w.engine.actor("head")
    assert head.section_head and not w.engine.actor("rev1").section_head
    with Session(w.engine.db) as s, s.begin():
        s.exec(update(Account).where(col(Account.username) == "head").values(section_head=False))
    before = w.snapshot()
    with pytest.raises(NotPermitted) as demoted:
        w.engine.reassign_task(task, to="rev2", actor=head)
    assert "只有本科室负责人" in demoted.value.message_zh
    forged = replace(w.engine.actor("rev1"), section_head=True)  # a door cannot make a head
    with pytest.raises(NotPermitted):
        w.engine.reassign_task(task, to="rev2", actor=forged)
    w.engine.claim_task(task, actor=w.engine.actor("rev2"))
    before = w.snapshot()
    with pytest.raises(NotPermitted):  # nor release someone else's claim
        w.engine.release_task(task, actor=forged)
    with pytest.raises(ConflictError):  # as a plain colleague could not either
        w.engine.release_task(task, actor=w.engine.actor("rev1"))
    with Session(w.engine.db) as s, s.begin():
        head_row = update(Account).where(col(Account.username) == "head")
        s.exec(head_row.values(section_head=True, active=False))
    with pytest.raises(EngineError):
        w.engine.reassign_task(task, to="rev1", actor=head)
    with pytest.raises(CaseNotFound):
        w.engine.reassign_task(2**40, to="rev1", actor=w.engine.actor("rev1"))
    assert w.snapshot() == before


def test_the_cli_makes_a_section_head(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from cli.main import app
    from models.settings import get_settings

    monkeypatch.setenv("RELIEF_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("RELIEF_NOW", FIXED_NOW.isoformat())
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        args = [
            "account",
            "create",
            "boss",
            "--role",
            "reviewer",
            "--bureau",
            BUREAU,
            "--section",
            SECTION,
            "--section-head",
        ]
        assert runner.invoke(app, args).exit_code == 0
        bad = ["account", "create", "ops", "--role", "operator", "--section-head"]
        assert runner.invoke(app, bad).exit_code == 2  # only a section's staff has a head
        plain = [
            "account",
            "create",
            "clerk",
            "--role",
            "reviewer",
            "--bureau",
            BUREAU,
            "--section",
            SECTION,
        ]
        assert runner.invoke(app, plain).exit_code == 0
    finally:
        get_settings.cache_clear()
    engine = make_case_engine(sqlite_url)
    assert engine.actor("boss").section_head and not engine.actor("clerk").section_head
    with Session(engine.db) as s:
        ops = s.exec(select(Account).where(col(Account.username) == "ops")).first()
    assert ops is None
    engine.db.dispose()


# ---------------------------------------------------------------- the page, without a browser
def signed_in(w: World, who: str) -> TestClient:
    client = TestClient(w.client.app)
    token = csrf_of(client.get("/login").text)
    r = client.post("/login", data={"username": who, "password": f"pw-{who}", "csrf_token": token})
    assert r.status_code == 200 and "/bureau/tasks" in str(r.url), r.url
    return client


def csrf_of(html: str) -> str:
    [token] = set(re.findall(r'name="csrf_token" value="([^"]+)"', html))
    return token


def test_the_page_answers_bad_filters_with_a_message(world: World) -> None:
    client = signed_in(world, "rev1")
    for params, field in [
        ({"kind": "nap"}, "环节"),
        ({"state": "limbo"}, "案件状态"),
        ({"type": "x' OR 1"}, "申请类型"),
        ({"sort": "id; DROP TABLE account"}, "排序"),
        ({"order": "up"}, "排序方向"),
        ({"page": "-1"}, "页码"),
        ({"page": "9" * 40}, "页码"),
        ({"size": "100000"}, "每页条数"),
        ({"q": "北" * 1_200}, "申请人"),
        ({"q": "a" * 10_000}, "申请人"),
        ({"case_no": "x" * 5000}, "案件编号"),
        ({"tab": "theirs"}, "任务范围"),
        ({"overdue": "perhaps"}, "逾期"),
    ]:
        r = client.get("/bureau/tasks", params=params)
        assert r.status_code == 200, params
        assert f"“{field}”的取值无效，已忽略该条件" in r.text, params
        assert "共 8 项" in r.text, params  # the rest of the list, as if unasked
    r = client.get("/bureau/tasks", params={"page": "99"})  # past the end: the last page
    assert "第 1 / 1 页 · 共 8 项" in r.text
    r = client.get("/bureau/tasks", params={"q": "<script>alert(1)</script>"})
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text and "<script>alert" not in r.text
    assert "没有符合条件的任务" in r.text


def test_the_page_claims_and_comes_back_to_the_same_list(world: World) -> None:
    w = world
    client = signed_in(w, "rev1")
    listing = client.get("/bureau/tasks", params={"type": "rent_park_subsidy", "sort": "case_no"})
    task = w.task(6).id
    back = "type=rent_park_subsidy&sort=case_no"
    r = client.post(
        f"/bureau/tasks/{task}/claim",
        data={"csrf_token": csrf_of(listing.text), "back": back},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == f"/bureau/tasks?{back}"
    after = client.get(r.headers["location"])
    assert f"已认领：{w.case_nos[6]}" in after.text and "共 3 项" in after.text
    assert w.task(6).assignee == "rev1"
    # a forged form changes nothing; a return address of the form's choosing is not followed
    forged = client.post(f"/bureau/tasks/{task}/release", data={"csrf_token": "x", "back": ""})
    assert forged.status_code == 403 and w.task(6).assignee == "rev1"
    r = client.post(
        f"/bureau/tasks/{task}/release",
        data={"csrf_token": csrf_of(after.text), "back": "//evil.example/?q=1&x=y"},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/bureau/tasks" and w.task(6).assignee is None
    # the head sees a reassign form with the section's people; rev1 does not
    assert 'name="to"' not in client.get("/bureau/tasks").text
    head = signed_in(w, "head")
    html = head.get("/bureau/tasks").text
    assert (
        'name="to"' in html
        and "rev2" in html
        and "other" not in re.findall(r'<option value="([^"]+)"', html)
    )
    r = head.post(
        f"/bureau/tasks/{task}/reassign",
        data={"csrf_token": csrf_of(html), "to": "rev2", "back": "tab=mine"},
    )
    assert "已改派" in r.text and w.task(6).assignee == "rev2"
    r = head.post(
        f"/bureau/tasks/{w.task(3, 'confirm').id}/reassign",
        data={"csrf_token": csrf_of(html), "to": "rev1"},
    )
    assert "未办理：职责分离" in r.text
