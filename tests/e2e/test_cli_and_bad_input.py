"""The `relief` command against a real SQLite file: bad input is named and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import scenarios as S
import staff
from conftest import make_case_engine
from sqlalchemy import create_engine, func, select, text
from typer.testing import CliRunner

from cli.main import app
from models.db import migrate
from models.settings import get_settings
from models.tables import Case

runner = CliRunner()


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A SQLite file with an operator (`ops`) and two reviewers of 区国资委资产管理科."""
    url = f"sqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("RELIEF_DATABASE_URL", url)
    monkeypatch.setenv("RELIEF_NOW", "2022-12-30T10:00:00+08:00")
    get_settings.cache_clear()
    migrate(url)
    engine = make_case_engine(url)
    staff.account(engine, "ops", role="operator")
    for name in ("wangyu", "lisi"):
        staff.account(engine, name, role="reviewer", bureau="sasac", section="asset_mgmt")
    engine.db.dispose()
    yield url
    get_settings.cache_clear()


def invoke(*args: str, stdin: str | None = None) -> Any:
    return runner.invoke(app, list(args), input=stdin, env={"COLUMNS": "240"})


def write(tmp_path: Path, data: Any) -> str:
    path = tmp_path / "in.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return str(path)


def cases_in(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        has_table = conn.execute(
            text("select count(*) from sqlite_master where name = 'relief_case'")
        ).scalar_one()
        n = conn.execute(select(func.count()).select_from(Case)).scalar_one() if has_table else 0
    engine.dispose()
    return int(n)


def mutate(sid: str, path: str, value: Any) -> dict[str, Any]:
    data = S.application(sid)
    node = data
    *parents, last = path.split(".")
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    key: Any = int(last) if isinstance(node, list) else last
    if value is DELETE:
        del node[key]
    else:
        node[key] = value
    return data


DELETE = object()

BAD = [
    (
        "non-numeric money",
        mutate("RENT-01", "lease.monthly_rent", "八千"),
        "lease.monthly_rent",
        "decimal_parsing",
        "须为数字金额",
    ),
    (
        "negative money",
        mutate("RENT-01", "lease.monthly_rent", -8000),
        "lease.monthly_rent",
        "greater_than_equal",
        "不得为负数",
    ),
    (
        "fractions of a fen",
        mutate("RENT-01", "lease.monthly_rent", "8000.001"),
        "lease.monthly_rent",
        "decimal_max_places",
        "两位小数",
    ),
    (
        "unknown type",
        mutate("RENT-01", "type", "tax_refund"),
        "type",
        "union_tag_invalid",
        "未知的申请类型",
    ),
    (
        "missing field",
        mutate("RENT-01", "applicant.service_industry", DELETE),
        "applicant.service_industry",
        "missing",
        "缺少必填字段",
    ),
    ("missing lease", mutate("RENT-01", "lease", DELETE), "(申请书)", "lease.one_of", "租赁信息"),
    (
        "unknown field",
        mutate("LOAN-01", "applicant.sizee", "small"),
        "applicant.sizee",
        "extra_forbidden",
        "不认识的字段",
    ),
    (
        "bad date",
        mutate("CRED-01", "penalty.decided", "2022-13-01"),
        "penalty.decided",
        "date_from_datetime_parsing",
        "日期",
    ),
    (
        "future filing date",
        mutate("CRED-01", "application_date", "2023-03-01"),
        "application_date",
        "date.future",
        "不得晚于今天",
    ),
    (
        "bad USCC",
        mutate("CRED-01", "applicant.uscc", "91110101MA00XY608A"),
        "applicant.uscc",
        "uscc.check_char",
        "应为“9”",
    ),
    (
        "zero principal",
        mutate("LOAN-01", "loans.0.principal", 0),
        "loans.0.principal",
        "greater_than",
        "须大于0",
    ),
]


@pytest.mark.parametrize(("label", "data", "field", "rule", "zh"), BAD, ids=[b[0] for b in BAD])
@pytest.mark.parametrize("command", ["estimate", "submit"])
def test_bad_input_is_named_and_writes_nothing(
    cli_env: str,
    tmp_path: Path,
    command: str,
    label: str,
    data: Any,
    field: str,
    rule: str,
    zh: str,
) -> None:
    who = ["--as", "ops"] if command == "submit" else []
    result = invoke(command, write(tmp_path, data), "--json", *who)
    assert result.exit_code == 2, result.stdout
    out = json.loads(result.stdout)
    assert out["ok"] is False
    matching = [e for e in out["errors"] if e["field"] == field]
    assert matching, out["errors"]
    assert matching[0]["rule"] == rule
    assert zh in matching[0]["message_zh"]
    assert "Traceback" not in result.stdout
    assert cases_in(cli_env) == 0


def test_broken_json_is_an_input_error(cli_env: str, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"type": "loan_subsidy", ', encoding="utf-8")
    result = invoke("submit", str(path), "--as", "ops")
    assert result.exit_code == 2
    assert cases_in(cli_env) == 0


def test_submit_status_history_from_stdin(cli_env: str) -> None:
    result = invoke(
        "submit", "-", "--json", "--as", "ops", stdin=json.dumps(S.application("LOAN-01"))
    )
    assert result.exit_code == 0, result.stdout
    [case] = json.loads(result.stdout)
    assert case["state"] == "under_review"
    status = json.loads(invoke("status", case["case_no"], "--json").stdout)
    assert status["state_zh"] == "审核中"
    assert {t["unit"] for t in status["tasks"]} == {"区金融办金融发展科", "区国资委财务预算科"}
    assert all(t["due_on"] for t in status["tasks"])
    history = invoke("history", case["case_no"])
    assert "submit" in history.stdout and "start_review" in history.stdout


def test_review_and_fire_through_the_cli(cli_env: str, tmp_path: Path) -> None:
    [case] = json.loads(
        invoke("submit", write(tmp_path, S.application("RENT-01")), "--json", "--as", "ops").stdout
    )
    status = json.loads(invoke("status", case["case_no"], "--json").stdout)
    [task] = status["tasks"]
    assert invoke("review", str(task["id"]), "pass", "--as", "wangyu").exit_code == 0
    same = invoke("fire", case["case_no"], "approve", "--as", "wangyu")
    assert same.exit_code == 3 and "职责分离" in same.stderr  # the reviewer may not decide
    stale = invoke("fire", case["case_no"], "approve", "--version", "1", "--as", "lisi")
    assert stale.exit_code == 3 and "刷新后重试" in stale.stderr
    done = invoke("fire", case["case_no"], "approve", "--as", "lisi")
    assert done.exit_code == 0 and "办结" in done.stdout
    refused = invoke("fire", case["case_no"], "approve", "--as", "lisi")
    assert refused.exit_code == 3 and "已办理" in refused.stderr
    nobody = invoke("fire", case["case_no"], "approve", "--as", "nobody")
    assert nobody.exit_code == 3 and "不存在" in nobody.stderr
    assert "--as" in invoke("fire", case["case_no"], "approve").stderr  # who must be said


def test_schema_prints_json_schema() -> None:
    result = invoke("schema", "loan_subsidy")
    schema = json.loads(result.stdout)
    assert "loans" in schema["properties"]
    assert invoke("schema", "nope").exit_code == 2


def test_register_import(cli_env: str, tmp_path: Path) -> None:
    csv = tmp_path / "r7.csv"
    csv.write_text(
        "subject,family,object_id,period_from,period_to\n"
        "91110101MA00JR107G,loan_subsidy,,2022-01-01,2022-06-30\n",
        encoding="utf-8",
    )
    assert "导入1条" in invoke("register", "import-7", str(csv)).stdout
    assert "导入0条" in invoke("register", "import-7", str(csv)).stdout  # idempotent
    [case] = json.loads(
        invoke("submit", write(tmp_path, S.application("LOAN-01")), "--json", "--as", "ops").stdout
    )
    assert json.loads(invoke("status", case["case_no"], "--json").stdout)["decision"] == "refused"


def test_account_create(cli_env: str) -> None:
    out = invoke(
        "account",
        "create",
        "wangyu2",
        "--role",
        "reviewer",
        "--bureau",
        "sasac",
        "--section",
        "asset_mgmt",
        "--password",
        "secret",
    )
    assert out.exit_code == 0, out.stdout
    token = out.stdout.strip().splitlines()[-1]
    assert len(token) > 30
    engine = create_engine(cli_env)
    with engine.connect() as conn:
        stored = conn.execute(
            text("select token_hash, password_hash from account where username = 'wangyu2'")
        ).one()
    engine.dispose()
    assert token not in stored[0] and stored[1].startswith("scrypt$")  # only hashes are kept
    assert invoke("account", "create", "wangyu2", "--role", "operator").exit_code == 2  # taken
    assert invoke("account", "create", "x", "--role", "reviewer", "--bureau", "nope").exit_code == 2
