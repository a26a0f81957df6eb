"""The applicant's pages over real HTTP (uvicorn): the filing form of every type, generated from
its schema, renders and files its docs/examples application with the documents it asks for;
field errors come back inline in Chinese; hostile posts change nothing. Table-driven over the
types: a new type with an example is covered without a new test."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import FIXED_NOW, LiveServer, make_case_engine
from sqlmodel import Session, col, select

from api.main import create_app
from api.pages.application_form import form_values
from api.security import create_account
from models.applications import applicant_of
from models.input_errors import parse_application
from models.settings import Settings
from models.tables import Case, CaseDocument
from states.catalog import catalog
from states.edition import edition_for

ROOT = Path(__file__).parents[2]
UPLOADS = ROOT / "tests" / "data" / "uploads"


class Inputs(HTMLParser):
    """Every named input of a page's forms (hidden ones included), and the options selected."""

    def __init__(self) -> None:
        super().__init__()
        self.values: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input" and a.get("name") and a.get("type") == "hidden":
            self.values.append((str(a["name"]), a.get("value") or ""))


def hidden(html: str) -> list[tuple[str, str]]:
    parser = Inputs()
    parser.feed(html)
    return parser.values


def csrf_of(html: str) -> str:
    return dict(hidden(html))["csrf_token"]


def example(case_type: str) -> dict[str, Any]:
    return json.loads((ROOT / "docs" / "examples" / f"{case_type}.json").read_text("utf-8"))


@pytest.fixture
def site(sqlite_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    engine = make_case_engine(sqlite_url)
    for t in catalog():
        party = applicant_of(parse_application(example(t), today=FIXED_NOW.date()))
        create_account(engine.db, username=f"app-{t}", role="applicant", now=FIXED_NOW,
                       uscc=party.identity, password="pw-applicant-1")  # fmt: skip
    settings = Settings(database_url=sqlite_url, now=FIXED_NOW,
                        document_store=str(tmp_path / "docs"))  # fmt: skip
    with LiveServer(create_app(settings)) as server:
        yield {"url": server.url, "engine": engine}


@contextmanager
def signed_in(site: dict[str, Any], username: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site["url"], follow_redirects=False) as c:
        form = c.get("/login").text
        r = c.post("/login", data={"csrf_token": csrf_of(form), "username": username,
                                   "password": "pw-applicant-1"})  # fmt: skip
        assert r.status_code == 303 and r.headers["location"] == "/my", r.text
        yield c


def files_for(case_type: str, data: dict[str, Any]) -> list[tuple[str, tuple[str, bytes, str]]]:
    """A file for every document the application must bring."""
    edition = edition_for(FIXED_NOW.date())
    pdf = (UPLOADS / "loan-contract.pdf").read_bytes()
    return [
        (f"file.{s.slot}", (f"{s.slot}.pdf", pdf, "application/pdf"))
        for s in edition.slots_for(case_type)
        if s.required_for(data)
    ]


def flat(values: dict[str, list[str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, vs in values.items() for v in vs]


def as_form(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Posted pairs as httpx takes them (a name may repeat; the last of a field counts)."""
    out: dict[str, list[str]] = {}
    for k, v in pairs:
        out.setdefault(k, []).append(v)
    return out


@pytest.mark.parametrize("case_type", sorted(catalog()))
def test_every_type_has_a_form_that_files_its_example(site: dict[str, Any], case_type: str) -> None:
    data = example(case_type)  # every type has one: a new type without one fails here
    with signed_in(site, f"app-{case_type}") as c:
        form = c.get(f"/apply/{case_type}")
        assert form.status_code == 200
        assert "依据：“" in form.text and 'enctype="multipart/form-data"' in form.text
        fields = {k: v for k, v in form_values(data).items() if k != "type"}
        posted = [("csrf_token", csrf_of(form.text)), ("_draft", dict(hidden(form.text))["_draft"]),
                  ("_action", "preview"), *flat(fields)]  # fmt: skip
        preview = c.post(
            f"/apply/{case_type}", data=as_form(posted), files=files_for(case_type, data)
        )
        assert preview.status_code == 200, re.findall(r'role="alert">([^<]+)', preview.text)
        assert "确认提交" in preview.text and "审核事项" in preview.text
        carried = [(k, v) for k, v in hidden(preview.text) if k != "_action"]
        done = c.post(f"/apply/{case_type}", data=as_form([*carried, ("_action", "confirm")]))
        assert done.status_code == 303 and done.headers["location"].startswith("/my/receipt/")
        again = c.post(f"/apply/{case_type}", data=as_form([*carried, ("_action", "confirm")]))
        assert again.headers["location"] == done.headers["location"]  # a double click files once
        receipt = c.get(done.headers["location"])
        assert receipt.status_code == 200
        case_nos = re.findall(r"DC-\d{4}-\d{6}", receipt.text)
        assert case_nos and re.search(r"[0-9A-Z]{5}-[0-9A-Z]{5}", receipt.text)
        mine = c.get("/my").text
        assert all(no in mine for no in case_nos)
    engine = site["engine"]
    with Session(engine.db) as s:
        cases = s.exec(select(Case).where(col(Case.case_no).in_(case_nos))).all()
        assert len(cases) == len(set(case_nos))  # one filing, its cases, once
        docs = s.exec(select(CaseDocument).where(col(CaseDocument.case_id) == cases[0].id)).all()
    assert {d.slot for d in docs} == {f[0][5:] for f in files_for(case_type, data)}


def test_errors_are_shown_by_the_field_in_chinese_and_nothing_is_filed(
    site: dict[str, Any],
) -> None:
    data = example("loan_subsidy")
    with signed_in(site, "app-loan_subsidy") as c:
        form = c.get("/apply/loan_subsidy").text
        fields = {k: v for k, v in form_values(data).items() if k != "type"}
        fields["loans.0.principal"] = ["十二万"]  # not a number
        fields["applicant.uscc"] = ["91110101MA00JR107A"]  # wrong check character
        posted = [("csrf_token", csrf_of(form)), ("_action", "preview"), *flat(fields)]
        r = c.post("/apply/loan_subsidy", data=as_form(posted))
        assert r.status_code == 422
        assert 'id="f-loans.0.principal"' in r.text and 'aria-invalid="true"' in r.text
        alerts = re.findall(r'<span class="error" role="alert">([^<]+)</span>', r.text)
        assert any("数" in a for a in alerts) and any("校验" in a or "应为" in a for a in alerts)
        assert "请上传贷款合同" in r.text  # the documents it asks for, by name
        assert 'value="十二万"' in r.text  # what was typed is kept
        # rows are added and removed without JavaScript
        add = c.post("/apply/loan_subsidy", data=as_form([*posted[:1], ("_action", "add:loans"),
                                                  *flat(fields)]))  # fmt: skip
        assert add.status_code == 200 and 'name="loans.2.principal"' in add.text
        remove = [*posted[:1], ("_action", "remove:loans.0"), *flat(fields)]
        removed = c.post("/apply/loan_subsidy", data=as_form(remove))
        assert 'name="loans.1.principal"' not in removed.text
        assert 'value="8000000"' in removed.text  # the second row moved up
        hostile = {
            **fields,
            "applicant.name": ["<script>alert(1)</script>"],
            "loans.0.principal": ["12000000"],
            "applicant.uscc": ["91110101MA00JR107G"],
        }
        pdf = (UPLOADS / "loan-contract.pdf").read_bytes()
        named = ('<img src=x onerror="alert(1)">\r\n.pdf', pdf, "text/html")
        h = c.post("/apply/loan_subsidy", data=as_form([*posted[:2], *flat(hostile)]),
                   files=[("file.loan_contracts", named)])  # fmt: skip
        assert "<script>alert(1)</script>" not in h.text and "&lt;script&gt;" in h.text
        assert "<img src=x" not in h.text and "&lt;img src=x" in h.text  # a file's name, escaped
        forged = c.post(
            "/apply/loan_subsidy",
            data=as_form([("csrf_token", "forged"), ("_action", "confirm"), *flat(hostile)]),
        )
        assert forged.status_code == 403
        someone_else = {**hostile, "applicant.uscc": ["91110101MA00XY6089"]}
        other = c.post("/apply/loan_subsidy",
                       data=as_form([*posted[:1], ("_action", "confirm"), *flat(someone_else)]),
                       files=files_for("loan_subsidy", data))  # fmt: skip
        assert other.status_code == 422 and "统一社会信用代码" in other.text
        fake_ref = c.post(
            "/apply/loan_subsidy",
            data=as_form(
                [*posted[:1], ("_action", "confirm"), ("docref", "x" * 80), *flat(hostile)]
            ),
        )
        assert fake_ref.status_code == 422 and "请上传贷款合同" in fake_ref.text
        assert c.get("/apply/no_such_type").status_code == 404
        assert c.get("/my/receipt/" + "0" * 32).status_code == 404
    with Session(site["engine"].db) as s:
        assert s.exec(select(Case)).all() == []
    anonymous = httpx.get(f"{site['url']}/apply/loan_subsidy", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login"


def test_a_signed_in_clerk_cannot_post_an_application_form(
    site: dict[str, Any], tmp_path: Path
) -> None:
    """A reviewer's own page session and CSRF token, posting a full form with its documents:
    off to the sign-in page before a file is kept or anything is filed."""
    create_account(site["engine"].db, username="clerk", role="reviewer", now=FIXED_NOW,
                   bureau="samr", section="credit", password="pw-applicant-1")  # fmt: skip
    data = example("loan_subsidy")
    with httpx.Client(base_url=site["url"], follow_redirects=False) as c:
        r = c.post("/login", data={"csrf_token": csrf_of(c.get("/login").text),
                                   "username": "clerk", "password": "pw-applicant-1"})  # fmt: skip
        assert r.status_code == 303, r.text
        token = csrf_of(c.get(r.headers["location"]).text)  # the clerk's page: its sign-out form
        fields = {k: v for k, v in form_values(data).items() if k != "type"}
        for action in ("preview", "confirm"):
            posted = [("csrf_token", token), ("_action", action), *flat(fields)]
            r = c.post("/apply/loan_subsidy", data=as_form(posted),
                       files=files_for("loan_subsidy", data))  # fmt: skip
            assert r.status_code == 303 and r.headers["location"] == "/login", r.text
    with Session(site["engine"].db) as s:
        assert s.exec(select(Case)).all() == [] and s.exec(select(CaseDocument)).all() == []
    stored = tmp_path / "docs"
    assert not stored.exists() or not any(p.is_file() for p in stored.rglob("*"))


def test_a_configured_form_refuses_what_a_careless_or_hostile_user_types(
    site: dict[str, Any],
) -> None:
    """A measure declared in the edition gets the same field errors, in Chinese, by the field,
    nothing filed; a choice outside its options and markup in a text field change nothing."""
    data = example("arrears_complaint")
    with signed_in(site, "app-arrears_complaint") as c:
        form = c.get("/apply/arrears_complaint").text
        assert "欠款单位类别" in form and "区属国有企业" in form  # label and choice names
        assert "无分歧欠款发现一起清偿一起" in form  # the measure's summary and its clauses
        fields = {k: v for k, v in form_values(data).items() if k != "type"}
        fields["amount_owed"] = ["五万元"]
        fields["debtor_kind"] = ["<script>alert(1)</script>"]
        fields["debtor_name"] = ["甲" * 201]
        posted = [("csrf_token", csrf_of(form)), ("_action", "preview"), *flat(fields)]
        r = c.post("/apply/arrears_complaint", data=as_form(posted))
        assert r.status_code == 422
        alerts = re.findall(r'<span class="error" role="alert">([^<]+)</span>', r.text)
        assert any("数字金额" in a for a in alerts) and any("取值无效" in a for a in alerts)
        assert any("过长" in a for a in alerts)
        assert "<script>alert(1)</script>" not in r.text
        assert c.get("/apply/no_such_measure").status_code == 404
    with Session(site["engine"].db) as s:
        assert s.exec(select(Case).where(col(Case.case_type) == "arrears_complaint")).all() == []
