"""The real `relief` command at 80 columns, piped: nothing the reader needs is cut; one way to
name the database for every command; --version, -h and help without type noise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import scenarios as S
import typer.main
from conftest import FIXED_NOW, make_case_engine
from drive import case, fire_as_holder, pass_reviews, submit
from typer.testing import CliRunner

from cli.main import app

ROOT = Path(__file__).parents[2]
RELIEF = Path(sys.executable).with_name("relief")  # the console script pip installed
LONG_REASON = "租赁合同未覆盖2022年度且承租人未能提供在京纳税证明材料，故不予减免房屋租金" * 2


def relief(*args: str, stdin: str | None = None, cwd: Path | None = None, **env: str) -> Any:
    environ = {**os.environ, "COLUMNS": "80", "RELIEF_NOW": FIXED_NOW.isoformat(), **env}
    environ.pop("RELIEF_DATABASE_URL", None)
    return subprocess.run(
        [str(RELIEF), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environ,
        cwd=cwd or ROOT,
        timeout=120,
    )


def one_line(text: str) -> str:
    """What a reader sees, with the terminal's own line breaks taken out."""
    return text.replace("\n", "")


def test_estimate_shows_every_reason_and_clause_in_full() -> None:
    example = "docs/examples/rent_state_property.json"
    out = relief("estimate", example)
    assert out.returncode == 0, out.stderr
    data = json.loads(relief("estimate", example, "--json").stdout)
    checks = data["cases"][0]["checks"]
    assert checks and all(len(c["reason_zh"]) for c in checks)
    for c in checks:
        assert c["reason_zh"] in out.stdout and c["clause"] in out.stdout
    assert "…" not in out.stdout


def test_uscc_error_and_valid_types_in_full() -> None:
    bad = '{"type": "loan_subsidy", "applicant": {"uscc": "91110101MA00XY608A", "size": "small"}}'
    out = relief("estimate", "-", stdin=bad)
    assert out.returncode == 2
    assert "应为“9”，您填写的是“A”" in out.stderr
    full = json.loads(relief("estimate", "-", "--json", stdin=bad).stdout)["errors"]
    for error in full:
        assert error["message_zh"] in out.stderr

    unknown = relief("schema", "bogus")
    assert unknown.returncode == 2
    types = ("rent_state_property", "rent_incubator_subsidy", "rent_park_subsidy")
    types += ("credit_exemption", "licence_extension", "loan_subsidy")
    assert "可选：" + ", ".join(types) in unknown.stderr
    typo = relief("estimate", "-", stdin='{"type": "loan"}')
    assert "、".join(types) in typo.stderr and "…" not in typo.stderr


def test_database_option_and_reading_a_missing_database(tmp_path: Path) -> None:
    db = tmp_path / "mine.db"
    made = relief("--database", str(db), "account", "create", "ops", "--role", "operator")
    assert made.returncode == 0, made.stderr
    filed = relief(
        "--database", str(db), "submit", str(ROOT / "docs/examples/credit_exemption.json"),
        "--as", "ops",
    )  # fmt: skip
    assert filed.returncode == 0, filed.stderr
    case_no = filed.stdout.split(":")[0].strip()
    by_path = relief("--database", str(db), "status", case_no, "--json")
    by_url = relief("--database", f"sqlite:///{db}", "status", case_no, "--json")
    assert json.loads(by_path.stdout) == json.loads(by_url.stdout)
    assert relief("--database", "mine.db", "history", case_no, cwd=tmp_path).returncode == 0

    for command in ("status", "history", "notices"):
        missing = relief(command, "DC-2022-000001", cwd=tmp_path)
        assert missing.returncode == 2
        assert "relief --database relief-demo.db status DC-2022-000001" in missing.stderr
        assert str(tmp_path / "relief.db") in one_line(missing.stderr)
        gone = relief("--database", "nowhere.db", command, "DC-2022-000001", cwd=tmp_path)
        assert gone.returncode == 2 and "nowhere.db" in one_line(gone.stderr)
    made = {p.name.split(".db")[0] for p in tmp_path.iterdir()}  # mine.db and its -wal, -shm
    assert made == {"mine"}  # no relief.db, no nowhere.db


def test_history_and_notices_keep_reasons_whole(sqlite_url: str) -> None:
    engine = make_case_engine(sqlite_url)
    [r] = submit(engine, S.application("CRED-01"))
    pass_reviews(engine, r.case_id, "fail", LONG_REASON)
    if case(engine, r.case_id).state == "awaiting_confirmation":
        fire_as_holder(engine, r.case_id, "confirm", "confirm")
    fire_as_holder(engine, r.case_id, "reject", "decide", payload={"reason": LONG_REASON})
    engine.db.dispose()
    db = sqlite_url.removeprefix("sqlite:///")
    history = relief("--database", db, "history", r.case_no)
    assert history.returncode == 0, history.stderr
    assert LONG_REASON in history.stdout and "…" not in history.stdout
    notices = relief("--database", db, "notices", r.case_no)
    assert notices.returncode == 0 and "不予决定书" in notices.stdout
    assert "…" not in notices.stdout


def test_version() -> None:
    out = relief("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"relief {version('relief')}"


def _commands(command: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path of the CLI, groups included."""
    found: list[tuple[str, ...]] = [prefix]
    for name, sub in getattr(command, "commands", {}).items():
        found += _commands(sub, (*prefix, name))
    return found


@pytest.mark.parametrize(
    "argv", _commands(typer.main.get_command(app)), ids=lambda a: " ".join(a) or "relief"
)
def test_h_is_help_and_help_has_no_type_noise(argv: tuple[str, ...]) -> None:
    out = CliRunner().invoke(app, [*argv, "-h"], env={"COLUMNS": "80"})
    assert out.exit_code == 0, out.output
    assert "Usage:" in out.output
    for noise in ("<str>", "<bool>", "<int>", "<path>", "{", "}"):
        assert noise not in out.output.replace('{"', "").replace('"}', ""), noise
