"""`relief edition diff` and `relief edition rejudge` on a second edition made by the test (the
guarantee-fee cap raised from 100,000 to 150,000): the change shown with its clause, the open
cases judged again with the money difference per case and in total, and nothing written."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import scenarios as S
from conftest import make_case_engine
from drive import count, submit
from typer.testing import CliRunner

from cli.main import app
from models.tables import CaseEvent
from states.edition import EDITIONS_DIR

runner = CliRunner()
SHIPPED = EDITIONS_DIR / "dongcheng-2022-8.yaml"


def second_edition(tmp_path: Path, *, cap: str = "150000.00", clause: str | None = None) -> Path:
    text = SHIPPED.read_text(encoding="utf-8")
    text = text.replace("id: dongcheng-2022-8\n", "id: dongcheng-2022-8-cap150k\n", 1)
    text = text.replace(
        "source_file: dongcheng-2022-8.source.txt",
        f"source_file: {EDITIONS_DIR / 'dongcheng-2022-8.source.txt'}",
    )
    before = '  guarantee_cap:\n    value: "100000.00"'
    assert before in text
    text = text.replace(before, f'  guarantee_cap:\n    value: "{cap}"')
    if clause is not None:
        text = text.replace("clause: 最高10万元的担保费补贴", f"clause: {clause}")
    path = tmp_path / "edition-b.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def database(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    from models.settings import get_settings

    monkeypatch.setenv("RELIEF_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("RELIEF_NOW", "2022-12-30T10:00:00+08:00")
    get_settings.cache_clear()
    yield make_case_engine(sqlite_url)
    get_settings.cache_clear()


def test_diff_shows_the_changed_number_beside_its_clause(tmp_path: Path) -> None:
    b = second_edition(tmp_path)
    out = runner.invoke(app, ["edition", "diff", "dongcheng-2022-8", str(b)])
    assert out.exit_code == 0, out.output
    assert "loan_subsidy.guarantee_cap" in out.output
    assert "100000.00" in out.output and "150000.00" in out.output
    assert "最高10万元的担保费补贴" in out.output
    assert "dongcheng-2022-8-cap150k" in out.output  # the id changed too
    same = runner.invoke(app, ["edition", "diff", str(SHIPPED), "dongcheng-2022-8"])
    assert same.exit_code == 0 and "no change" in same.output


def test_a_broken_edition_is_refused_by_name(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["edition", "diff", "dongcheng-2022-8", "nope.yaml"])
    assert missing.exit_code == 2 and "无法读取政策版本" in missing.output
    invented = second_edition(tmp_path, clause="最高15万元的担保费补贴")  # not in the source
    bad = runner.invoke(app, ["edition", "diff", "dongcheng-2022-8", str(invented)])
    assert bad.exit_code == 2 and "not found verbatim" in bad.output
    unknown = runner.invoke(app, ["edition", "rejudge", "no-such-edition"])
    assert unknown.exit_code == 2


def test_rejudge_reports_who_gains_and_writes_nothing(database: Any, tmp_path: Path) -> None:
    [loan] = submit(database, S.application("LOAN-01"))  # guarantee fee 150,000: capped at 100k
    [credit] = submit(database, S.application("CRED-01"))  # no money: unchanged
    events = count(database, CaseEvent)
    report = tmp_path / "rejudge.csv"
    out = runner.invoke(app, ["edition", "rejudge", str(second_edition(tmp_path)),
                              "--report", str(report)])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert loan.case_no in out.output and "+50000.00" in out.output
    assert credit.case_no not in out.output.split("合计")[0]  # only the changed are listed
    assert "合计 total: +50000.00" in out.output and "nothing was written" in out.output
    rows = list(csv.DictReader(report.open(encoding="utf-8")))
    by_case = {r["case_no"]: r for r in rows}
    assert by_case[loan.case_no]["amount_before"] == "340000.00"
    assert by_case[loan.case_no]["amount_after"] == "390000.00"
    assert by_case[credit.case_no]["difference"] == "0.00"
    assert count(database, CaseEvent) == events  # a dry run
