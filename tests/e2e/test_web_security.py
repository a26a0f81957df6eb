"""The web surface: CSRF tokens on every form, messages from the session (never the URL),
security headers, API docs served offline, guessing limits on sign-in, tokens and lookups.

Every test here also sends what an attacker or a careless user would: forged forms, another
session's token, a message smuggled into the URL, wrong passwords and codes in a row.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
import scenarios as S
import staff
from conftest import FIXED_NOW, make_case_engine
from drive import submit, tasks
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlmodel import Session

from api.main import create_app
from api.security import create_account
from base.clock import Clock
from base.query_codes import display
from models.settings import Settings
from models.tables import AuthThrottle, Case, CaseEvent, Notice, ReviewTask, WebSession


@pytest.fixture
def site(sqlite_url: str) -> dict[str, Any]:
    """A credit case waiting for samr.credit's review; a reviewer, a second one, an operator."""
    engine = make_case_engine(sqlite_url)
    tokens = {}
    for name, spec in {
        "rev": {"role": "reviewer", "bureau": "samr", "section": "credit"},
        "rev2": {"role": "reviewer", "bureau": "samr", "section": "credit"},
        "ops": {"role": "operator"},
    }.items():
        _, tokens[name] = create_account(
            engine.db, username=name, now=FIXED_NOW, password=f"pw-{name}", **spec
        )
    [case] = submit(engine, S.application("CRED-01"))
    [task] = tasks(engine, case.case_id)
    with Session(engine.db) as s:
        code = s.get(Case, case.case_id).query_code  # type: ignore[union-attr]
    app = create_app(Settings(database_url=sqlite_url, now=FIXED_NOW))
    return {"app": app, "engine": engine, "case": case, "task": task, "code": code,
            "tokens": tokens}  # fmt: skip


def csrf_of(html: str) -> str:
    found = set(re.findall(r'name="csrf_token" value="([^"]+)"', html))
    assert len(found) == 1, found
    return found.pop()


def signed_in(app: Any, who: str) -> tuple[TestClient, str]:
    """A browser signed in as `who`, with the CSRF token its pages carry."""
    client = TestClient(app)
    token = csrf_of(client.get("/login").text)
    r = client.post(
        "/login",
        data={"username": who, "password": f"pw-{who}", "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    page = client.get("/")
    return client, csrf_of(page.text)


def snapshot(engine: Any) -> tuple[Any, ...]:
    with Session(engine.db) as s:
        return (
            tuple(s.execute(select(Case.id, Case.state, Case.version)).all()),
            s.execute(select(func.count()).select_from(CaseEvent)).scalar_one(),
            s.execute(select(func.count()).select_from(Notice)).scalar_one(),
            tuple(s.execute(select(ReviewTask.id, ReviewTask.status, ReviewTask.assignee)).all()),
        )


def forms(site: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every state-changing form of the pages, filled as its page would fill it."""
    no, task = site["case"].case_no, site["task"].id
    return [
        (f"/bureau/cases/{no}/review", {"decision": "pass"}),
        (f"/bureau/cases/{no}/claim", {"task_id": task}),
        (f"/bureau/cases/{no}/confirm", {"version": 2}),
        (f"/bureau/cases/{no}/decide", {"action": "approve", "version": 2}),
        ("/operator/locks/lift", {"scope": "login_account", "key": "x"}),
        ("/status", {"case_no": no, "code": site["code"]}),
        ("/logout", {}),
    ]


def test_forged_forms_are_refused_and_change_nothing(site: dict[str, Any]) -> None:
    client, token = signed_in(site["app"], "rev")
    other, other_token = signed_in(site["app"], "rev2")
    before = snapshot(site["engine"])
    for path, data in forms(site):
        forged = {
            "no token": data,
            "empty token": {**data, "csrf_token": ""},
            "another session's token": {**data, "csrf_token": other_token},
            "a made-up token": {**data, "csrf_token": token[:-4] + "AAAA"},
            "markup": {**data, "csrf_token": '"><script>alert(1)</script>'},
        }
        for label, body in forged.items():
            r = client.post(
                path, data=body, headers={"Origin": "https://evil.example"}, follow_redirects=False
            )
            assert r.status_code == 403, (path, label, r.status_code)
            assert "CSRF" in r.text and "未生效" in r.text, (path, label)
            assert "<script>alert(1)</script>" not in r.text
            assert snapshot(site["engine"]) == before, (path, label)
    # still signed in (the forged logout did nothing); with the token, the form works
    r = client.post(forms(site)[0][0], data={**forms(site)[0][1], "csrf_token": token})
    assert r.status_code == 200 and "已办理" in r.text
    assert snapshot(site["engine"]) != before
    del other


def test_login_form_needs_its_token(site: dict[str, Any]) -> None:
    client = TestClient(site["app"])
    r = client.post("/login", data={"username": "rev", "password": "pw-rev"})
    assert r.status_code == 403 and "CSRF" in r.text
    with Session(site["engine"].db) as s:
        signed = s.execute(
            select(func.count()).select_from(WebSession).where(WebSession.account_id.is_not(None))  # type: ignore[union-attr]
        ).scalar_one()
    assert signed == 0


def test_sign_in_gives_a_new_session_id(site: dict[str, Any]) -> None:
    client = TestClient(site["app"])
    token = csrf_of(client.get("/login").text)
    before = client.cookies["relief_session"]
    client.post(
        "/login", data={"username": "rev", "password": "pw-rev", "csrf_token": token},
        follow_redirects=False,
    )  # fmt: skip
    assert client.cookies["relief_session"] != before  # no session fixation


@pytest.mark.parametrize(
    "smuggled",
    [
        "系统已迁移，请到 http://evil.example 登录",
        "<script>alert(1)</script>",
        "已办理：案件现为“办结”",
    ],
)
def test_messages_never_come_from_the_url(site: dict[str, Any], smuggled: str) -> None:
    anonymous = TestClient(site["app"])
    assert smuggled not in anonymous.get("/login", params={"msg": smuggled}).text
    client, _ = signed_in(site["app"], "rev")
    for path in ("/bureau/tasks", f"/bureau/cases/{site['case'].case_no}"):
        page = client.get(path, params={"msg": smuggled, "message": smuggled, "flash": smuggled})
        assert page.status_code == 200 and smuggled not in page.text


def test_a_failed_sign_in_says_so_once(site: dict[str, Any]) -> None:
    client = TestClient(site["app"])
    token = csrf_of(client.get("/login").text)
    r = client.post("/login", data={"username": "rev", "password": "wrong", "csrf_token": token})
    assert "用户名或密码不正确" in r.text  # from the session, after the redirect
    assert "用户名或密码不正确" not in client.get("/login").text  # shown once
    assert "msg=" not in str(r.url)


def test_security_headers_on_every_kind_of_answer(site: dict[str, Any]) -> None:
    client, _ = signed_in(site["app"], "rev")
    for path in ("/login", "/status", "/bureau/tasks", "/api/tasks", "/healthz", "/nope"):
        r = client.get(path)
        csp = r.headers["content-security-policy"]
        script = re.search(r"script-src ([^;]*)", csp)
        assert script and "unsafe-inline" not in script.group(1), (path, csp)
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-frame-options"] == "DENY"
    cookie = TestClient(site["app"]).get("/login").headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


def test_pages_carry_no_inline_script_or_style(site: dict[str, Any]) -> None:
    client, _ = signed_in(site["app"], "rev")
    for path in ("/login", "/bureau/tasks", f"/bureau/cases/{site['case'].case_no}"):
        html = client.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), path
        assert "<style" not in html and " style=" not in html, path
        assert not re.search(r"\son[a-z]+=", html), path


def test_api_docs_are_served_by_the_app(site: dict[str, Any]) -> None:
    client = TestClient(site["app"])
    docs = client.get("/docs")
    assert docs.status_code == 200
    sources = re.findall(r'<script src="([^"]+)"', docs.text)
    assert sources == ["/static/docs/swagger-ui-bundle.js", "/static/swagger-init.js"]
    assert "https://" not in docs.text and "cdn" not in docs.text.lower()
    assert not re.search(r"<script>", docs.text)
    for asset in (*sources, "/static/docs/swagger-ui.css", "/static/docs/redoc.standalone.js"):
        r = client.get(asset)
        assert r.status_code == 200 and len(r.content) > 200, asset
    redoc = client.get("/redoc")
    assert redoc.status_code == 200 and "/static/docs/redoc.standalone.js" in redoc.text
    assert client.get("/openapi.json").json()["info"]["title"] == "relief"
    assert client.get("/static/../../api/main.py").status_code == 404  # no way out of static


def test_cookie_alone_does_not_change_anything_through_the_api(site: dict[str, Any]) -> None:
    """A cross-site form could send the session cookie to the API: it is not enough to act."""
    client, _ = signed_in(site["app"], "rev")
    assert client.get("/api/tasks").status_code == 200  # reading with the cookie is fine
    before = snapshot(site["engine"])
    r = client.post(f"/api/tasks/{site['task'].id}/review", json={"decision": "pass"})
    assert r.status_code == 401
    assert snapshot(site["engine"]) == before


# ---------------------------------------------------------------- guessing limits
def attempt_login(client: TestClient, who: str, password: str) -> str:
    token = csrf_of(client.get("/login").text)
    r = client.post("/login", data={"username": who, "password": password, "csrf_token": token})
    flashes = re.findall(r'role="status">([^<]*)<', r.text)
    return flashes[0] if flashes else f"signed in at {r.url.path}"


def advance(site: dict[str, Any], minutes: float) -> None:
    engine = site["app"].state.engine
    engine.clock = Clock(engine.clock.now() + timedelta(minutes=minutes))


@pytest.mark.parametrize("who", ["rev", "nobody-of-that-name"])
def test_wrong_passwords_back_off_then_lock_the_account(site: dict[str, Any], who: str) -> None:
    client = TestClient(site["app"])
    answers = []
    for _ in range(10):
        answers.append(attempt_login(client, who, "guess"))
        advance(site, 0.5)  # past each back-off: every try is checked
    assert answers == ["用户名或密码不正确"] * 10  # the tenth failure locks the account
    advance(site, 120)  # the address's count has gone quiet; the account stays locked
    locked = attempt_login(client, who, f"pw-{who}")
    assert "锁定" in locked and "联系运营人员" in locked
    ops = {"Authorization": f"Bearer {site['tokens']['ops']}"}
    api = TestClient(site["app"])
    shown = api.get("/api/operator/locks", headers=ops).json()
    assert [(x["scope"], x["key"]) for x in shown] == [("login_account", who)]
    lifted = api.post(
        "/api/operator/locks/lift", json={"scope": "login_account", "key": who}, headers=ops
    )
    assert lifted.status_code == 200
    if who == "rev":
        assert attempt_login(client, who, "pw-rev") == "signed in at /bureau/tasks"


def test_tries_during_the_back_off_are_refused_unread(site: dict[str, Any]) -> None:
    client = TestClient(site["app"])
    for _ in range(3):
        assert attempt_login(client, "rev", "guess") == "用户名或密码不正确"
    assert "秒后再试" in attempt_login(client, "rev", "pw-rev")  # even the right one waits
    advance(site, 1)
    assert attempt_login(client, "rev", "pw-rev") == "signed in at /bureau/tasks"


def test_bad_tokens_lock_the_address(site: dict[str, Any]) -> None:
    client = TestClient(site["app"])
    codes = []
    for n in range(30):
        codes.append(
            client.get("/api/tasks", headers={"Authorization": f"Bearer guess-{n}"}).status_code
        )
        advance(site, 0.6)
    assert set(codes) == {401}
    good = client.get("/api/tasks", headers={"Authorization": f"Bearer {site['tokens']['rev']}"})
    assert good.status_code == 429 and "锁定" in good.json()["message_zh"]
    advance(site, 61)
    good = client.get("/api/tasks", headers={"Authorization": f"Bearer {site['tokens']['rev']}"})
    assert good.status_code == 200


def test_status_lookups_are_limited_per_case(site: dict[str, Any]) -> None:
    client = TestClient(site["app"])
    no, code = site["case"].case_no, site["code"]
    missing = client.get("/api/status/DC-2099-999999", params={"code": "ABCDE-FGHJK"})
    wrong = client.get(f"/api/status/{no}", params={"code": "ABCDE-FGHJK"})
    assert missing.status_code == wrong.status_code == 404 and missing.json() == wrong.json()
    for _ in range(9):  # ten wrong codes for this case lock its lookup
        advance(site, 1)
        assert client.get(f"/api/status/{no}", params={"code": "ZZZZZ-ZZZZZ"}).status_code == 404
    advance(site, 1)
    locked = client.get(f"/api/status/{no}", params={"code": code})
    assert locked.status_code == 429 and "锁定" in locked.json()["message_zh"]
    advance(site, 24 * 60 + 1)
    ok = client.get(f"/api/status/{no}", params={"code": display(code).lower()})
    assert ok.status_code == 200 and ok.json()["case_no"] == no  # case and hyphen do not matter


def test_query_codes_are_long_and_random(site: dict[str, Any]) -> None:
    engine = site["engine"]
    for _ in range(20):
        engine.submit(S.application("CRED-01"), actor=staff.operator(engine))
    with Session(engine.db) as s:
        stored = set(s.execute(select(Case.query_code)).scalars())
    assert len(stored) == 21
    assert all(re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{10}", c) for c in stored)


# ---------------------------------------------------------------- found in review
def sign_in_at_once(site: dict[str, Any], tries: list[tuple[str, str]]) -> list[str]:
    """Each (user, password) posted by its own browser at the same moment, from one address;
    what each was told."""
    import threading

    import httpx
    from conftest import LiveServer

    answers: list[str] = []
    with LiveServer(site["app"]) as server:
        barrier = threading.Barrier(len(tries))

        def attempt(username: str, password: str) -> None:
            with httpx.Client(base_url=server.url, follow_redirects=True, timeout=60) as c:
                token = csrf_of(c.get("/login").text)
                barrier.wait()
                r = c.post("/login", data={"username": username, "password": password,
                                           "csrf_token": token})  # fmt: skip
                flashes = re.findall(r'role="status">([^<]*)<', r.text)
                answers.append(flashes[0] if flashes else "signed in")

        threads = [threading.Thread(target=attempt, args=t) for t in tries]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert len(answers) == len(tries), answers
    return answers


def test_a_burst_of_sign_ins_gets_no_more_checks_than_the_back_off_allows(
    site: dict[str, Any],
) -> None:
    """Attempts are checked one after another while their counts are locked, so of 20 sent at
    once (the right password among them) at most `login_backoff_after` wrong ones are checked;
    the rest wait."""
    tries = [("rev", "pw-rev" if n == 19 else f"guess{n}") for n in range(20)]
    answers = sign_in_at_once(site, tries)
    assert answers.count("用户名或密码不正确") <= 3, answers
    assert all("秒后再试" in a or a in ("用户名或密码不正确", "signed in") for a in answers)


def test_clerks_signing_in_at_once_behind_one_address_all_get_in(site: dict[str, Any]) -> None:
    """Twelve people at one service hall (one address, four times the back-off's count) sign
    in at the same moment with their right passwords: none is taken for a guess (they were,
    when every attempt counted until it succeeded); a wrong password among them still counts."""
    engine = site["engine"]
    for n in range(12):
        create_account(engine.db, username=f"clerk{n}", role="reviewer", now=FIXED_NOW,
                       bureau="samr", section="credit", password=f"pw-clerk{n}")  # fmt: skip
    answers = sign_in_at_once(site, [(f"clerk{n}", f"pw-clerk{n}") for n in range(12)])
    assert answers == ["signed in"] * 12
    assert failures(engine) == {}  # nothing counted
    typo = [("clerk0", "typo"), *((f"clerk{n}", f"pw-clerk{n}") for n in range(1, 6))]
    assert sorted(sign_in_at_once(site, typo)) == ["signed in"] * 5 + ["用户名或密码不正确"]
    counted = failures(engine)
    assert counted.pop(("login_account", "clerk0")) == 1
    assert list(counted.values()) == [1] and next(iter(counted))[0] == "login_address", counted


def failures(engine: Any) -> dict[tuple[str, str], int]:
    """The throttle's counts above zero, by (scope, key)."""
    with Session(engine.db) as s:
        rows = s.execute(select(AuthThrottle)).scalars().all()
    return {(r.scope, r.key): r.failures for r in rows if r.failures}


def test_a_cookie_cannot_act_through_the_api_under_a_path_prefix(site: dict[str, Any]) -> None:
    client = TestClient(site["app"], root_path="/relief")
    token = csrf_of(client.get("/relief/login").text)
    client.post("/relief/login", data={"username": "rev", "password": "pw-rev",
                                       "csrf_token": token})  # fmt: skip
    before = snapshot(site["engine"])
    for path in (
        f"/relief/api/tasks/{site['task'].id}/review",
        f"/relief/api/tasks/{site['task'].id}/claim",
    ):
        r = client.post(path, json={"decision": "pass"})
        assert r.status_code == 401, (path, r.status_code)
    assert snapshot(site["engine"]) == before


@pytest.mark.parametrize("amount", ["NaN", "sNaN", "Infinity", "-0.01", "1e400", "１２"])
def test_a_decided_amount_must_be_a_sum_of_money(site: dict[str, Any], amount: str) -> None:
    engine = site["engine"]
    task = site["task"]
    engine.decide_task(task.id, decision="pass", actor=engine.actor("rev"))
    before = snapshot(engine)
    api = TestClient(site["app"])
    r = api.post(
        f"/api/cases/{site['case'].case_no}/decide",
        json={"action": "approve", "amount": amount},
        headers={"Authorization": f"Bearer {site['tokens']['rev2']}"},
    )
    assert r.status_code in (409, 422), (amount, r.status_code, r.text)
    assert "message_zh" in r.json() and snapshot(engine) == before


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/status/DC-2022-00000%00?code=ABCDE-FGHJK", None),
        ("GET", "/api/cases/DC%002022", None),
        (
            "POST",
            "/api/applications",
            '{"type": "credit_exemption", "applicant": {"name": "a\\u0000b"}}',
        ),
        ("POST", "/login", "username=rev%00&password=x&csrf_token=y"),
    ],
)
def test_a_nul_character_is_refused_at_the_door(
    site: dict[str, Any], method: str, path: str, body: str | None
) -> None:
    ctype = (
        "application/json" if body and body.startswith("{") else "application/x-www-form-urlencoded"
    )
    r = TestClient(site["app"]).request(
        method, path, content=body, headers={"Content-Type": ctype,
                                             "Authorization": f"Bearer {site['tokens']['rev']}"},
    )  # fmt: skip
    assert r.status_code == 400 and "空字符" in r.json()["message_zh"]
    assert r.headers["x-content-type-options"] == "nosniff"


def test_nul_in_an_application_is_named(site: dict[str, Any]) -> None:
    from models.input_errors import InvalidApplication

    data = S.application("CRED-01")
    data["applicant"]["name"] = "东城\x00公司"
    with pytest.raises(InvalidApplication) as bad:
        site["engine"].submit(data, actor=staff.operator(site["engine"]))
    assert bad.value.errors[0].field == "applicant.name"
    assert bad.value.errors[0].rule == "string.nul"


def test_oversized_bodies_and_lists_are_refused(site: dict[str, Any]) -> None:
    api = TestClient(site["app"])
    ops = {"Authorization": f"Bearer {site['tokens']['ops']}"}
    huge = '{"type": "credit_exemption", "x": "' + "a" * (3 * 1024 * 1024) + '"}'
    r = api.post(
        "/api/applications", content=huge, headers={**ops, "Content-Type": "application/json"}
    )
    assert r.status_code == 413
    chain = S.application("RENT-03")
    chain["stores"] = chain["stores"] * 40  # 120 stores
    r = api.post("/api/applications", json=chain, headers=ops)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "stores"


def test_pages_fetched_without_cookies_store_nothing(site: dict[str, Any]) -> None:
    for _ in range(30):
        assert TestClient(site["app"]).get("/status").status_code == 200
        assert TestClient(site["app"]).get("/login").status_code == 200
    with Session(site["engine"].db) as s:
        assert s.execute(select(func.count()).select_from(WebSession)).scalar_one() == 0


def test_an_unexpected_error_still_carries_the_headers(site: dict[str, Any]) -> None:
    from sqlalchemy import text

    client = TestClient(site["app"], raise_server_exceptions=False)
    with Session(site["engine"].db) as s, s.begin():
        s.execute(text("ALTER TABLE review_task RENAME TO review_task_gone"))
    r = client.get("/api/tasks", headers={"Authorization": f"Bearer {site['tokens']['rev']}"})
    assert r.status_code == 500 and "系统内部错误" in r.json()["message_zh"]
    assert "Traceback" not in r.text
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"


def test_a_case_of_another_bureau_looks_missing_on_the_pages(site: dict[str, Any]) -> None:
    other = create_account(
        site["engine"].db, username="fin", role="reviewer", bureau="finance_office",
        section="fin_dev", now=FIXED_NOW, password="pw-fin",
    )  # fmt: skip
    del other
    client, token = signed_in(site["app"], "fin")
    shown = []
    for no in (site["case"].case_no, "DC-2099-999999"):
        r = client.post(
            f"/bureau/cases/{no}/review", data={"decision": "pass", "csrf_token": token}
        )
        shown.append((r.status_code, r.text.replace(no, "<no>")))
    assert shown[0] == shown[1], shown  # not theirs looks exactly like missing
    assert "案件不存在" in shown[0][1]


def test_the_system_account_never_signs_in_even_with_a_password(site: dict[str, Any]) -> None:
    from sqlalchemy import update

    from api.security import password_hash
    from api.web_session import SESSION_COOKIE
    from models.tables import Account

    engine = site["engine"]
    with Session(engine.db) as s, s.begin():
        s.execute(
            update(Account)
            .where(Account.username == "system")
            .values(password_hash=password_hash("pw-system"))
        )  # type: ignore[arg-type]
    client = TestClient(site["app"])
    token = csrf_of(client.get("/login").text)
    r = client.post(
        "/login", data={"username": "system", "password": "pw-system", "csrf_token": token}
    )
    assert "用户名或密码不正确" in r.text
    # a session row for it (made behind relief's back) is no sign-in either
    from api.security import token_hash

    system = engine.actor("system")
    with Session(engine.db) as s, s.begin():
        s.add(WebSession(token_hash=token_hash("forged"), account_id=system.account_id,
                         expires_at=FIXED_NOW + timedelta(hours=1), created_at=FIXED_NOW,
                         flash=[]))  # fmt: skip
    forged = TestClient(site["app"], cookies={SESSION_COOKIE: "forged"})
    assert forged.get("/operator", follow_redirects=False).status_code == 303
    assert forged.get("/api/operator/counts").status_code == 401


def test_bot_urls_only_reach_the_vendors(site: dict[str, Any]) -> None:
    from models.input_errors import InvalidApplication

    for url in ("json://127.0.0.1:4200/api/flows/", "https://qyapi.weixin.qq.com.evil.example/x",
                "http://oapi.dingtalk.com/robot/send", "dingtalk://x@127.0.0.1/y"):  # fmt: skip
        data = S.application("CRED-01")
        data["applicant"].update(notify=["wecom"], im_url=url)
        with pytest.raises(InvalidApplication) as bad:
            site["engine"].submit(data, actor=staff.operator(site["engine"]))
        assert bad.value.errors[0].rule == "im_url.host", url
    ok = S.application("CRED-01")
    ok["applicant"].update(notify=["wecom"], im_url="wecombot://0123456789abcdef")
    assert site["engine"].submit(ok, actor=staff.operator(site["engine"]))
