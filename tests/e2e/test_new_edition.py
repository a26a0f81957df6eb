"""A second edition written by the test — a new measure declared as data, and a changed cap —
loads from RELIEF_EDITIONS_DIR and runs with no Python added: `relief edition check`, a case of
the new measure from filing to payment through the engine, `edition diff` and `rejudge` with the
money difference, and an operator's migration of a case to it (one audit event)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import drive
import pytest
import scenarios as S
import staff
from conftest import make_case_engine
from sqlalchemy import select
from sqlmodel import Session
from typer.testing import CliRunner

from base.civil_dates import SHANGHAI
from cli.main import app
from flows.payout import settle
from models.tables import CaseEvent, Notice, Payout
from states import catalog
from states.edition import EDITIONS_DIR
from states.errors import WrongState

runner = CliRunner()
SHIPPED = EDITIONS_DIR / "dongcheng-2022-8.yaml"
AMENDED = "dongcheng-2022-8-amended"
# the amending notice's own words (a fictional text: the test's source, not the district's)
NOTICE_TEXT = (
    "56.对2023年6月30日前新招用本市高校毕业生的小微企业，按每人5000元给予一次性招用补贴，"
    "每家企业最高5万元。（责任单位：区人力资源社会保障局）"
    "担保费补贴每家企业最高15万元。"
)
NEW_MEASURE = """
  graduate_hiring_bonus:
    measure: "56"
    label: 招用高校毕业生一次性补贴
    facts:
      graduates_hired:
        kind: integer
        label: 新招用本市高校毕业生人数
        clause: 对2023年6月30日前新招用本市高校毕业生的小微企业
        maximum: "1000"
    params:
      per_graduate: {value: "5000.00", basis: DOC, clause: 按每人5000元给予一次性招用补贴}
      cap: {value: "50000.00", basis: DOC, clause: 每家企业最高5万元}
    checks:
      - code: applicant.small_micro
        test: "applicant.kind == 'enterprise' && applicant.size in ['small', 'micro']"
        passed_zh: 申请人为小微企业
        failed_zh: 仅小微企业可以申请（申请人规模：{{ labels.size }}）
        passed_en: small or micro
        failed_en: only small and micro enterprises
        clause: 新招用本市高校毕业生的小微企业
      - code: hires.before_deadline
        test: "facts.graduates_hired >= 1.0 && filed_on <= '2023-06-30'"
        passed_zh: 新招用本市高校毕业生{{ facts.graduates_hired }}人
        failed_zh: 未新招用本市高校毕业生
        passed_en: "{{ facts.graduates_hired }} hired"
        failed_en: nobody hired
        clause: 对2023年6月30日前新招用本市高校毕业生的小微企业
    components:
      - code: hiring_bonus
        label: 一次性招用补贴
        base: graduates_hired
        share: per_graduate
        cap: cap
        cap_scope: per_enterprise
        clause: 每家企业最高5万元
    stages:
      review: [hrss.labour_service]
      decide: hrss.labour_service
      payout: finance
"""


def amended(folder: Path) -> Path:
    """The shipped edition, amended: in force from 2022-12-01, one new measure, a cap raised."""
    source = (EDITIONS_DIR / "dongcheng-2022-8.source.txt").read_text(encoding="utf-8")
    (folder / "amended.source.txt").write_text(source + NOTICE_TEXT, encoding="utf-8")
    text = SHIPPED.read_text(encoding="utf-8")
    window = "window:\n  start: 2022-06-15\n  end: 2022-12-31"
    last_day = "application_window_to:\n    value: 2022-12-31"
    cap = '  guarantee_cap:\n    value: "100000.00"\n    basis: DOC\n'
    cap += "    clause: 最高10万元的担保费补贴"
    for old, new in [
        ("id: dongcheng-2022-8\n", f"id: {AMENDED}\n"),
        ("source_file: dongcheng-2022-8.source.txt", "source_file: amended.source.txt"),
        (window, window.replace("2022-06-15", "2022-12-01").replace("2022-12-31", "2023-06-30")),
        (last_day, last_day.replace("2022-12-31", "2023-06-30")),
        (cap, cap.replace("100000.00", "150000.00").replace("最高10万元的担保费补贴",
                                                             "担保费补贴每家企业最高15万元")),
        ("configured_types:\n", "configured_types:" + NEW_MEASURE),
    ]:  # fmt: skip
        assert old in text, old
        text = text.replace(old, new, 1)
    path = folder / "amended.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def editions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> Iterator[Path]:
    from models.settings import get_settings

    folder = tmp_path / "editions"
    folder.mkdir()
    path = amended(folder)
    monkeypatch.setenv("RELIEF_EDITIONS_DIR", str(folder))
    monkeypatch.setenv("RELIEF_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("RELIEF_NOW", "2023-03-01T10:00:00+08:00")
    get_settings.cache_clear()
    catalog.reload()
    yield path
    monkeypatch.undo()
    get_settings.cache_clear()
    catalog.reload()


def bonus(graduates: int) -> dict[str, Any]:
    party = S.application("LOAN-01")["applicant"]
    return {"type": "graduate_hiring_bonus", "applicant": {**party, "size": "small"},
            "graduates_hired": graduates}  # fmt: skip


def test_the_new_edition_checks_and_carries_the_new_measure(editions: Path) -> None:
    out = runner.invoke(app, ["edition", "check", str(editions)])
    assert out.exit_code == 0, out.output
    assert "graduate_hiring_bonus（第56条）" in out.output
    assert "graduate_hiring_bonus" in catalog.catalog()
    broken = editions.with_name("broken.yaml")
    broken.write_text(
        editions.read_text(encoding="utf-8").replace("facts.graduates_hired >= 1.0",
                                                      "facts.graduates >= 1.0"),
        encoding="utf-8",
    )  # fmt: skip
    bad = runner.invoke(app, ["edition", "check", str(broken)])
    assert bad.exit_code == 1 and "hires.before_deadline" in bad.output
    broken.unlink()


def test_a_case_of_the_new_measure_runs_to_payment(editions: Path, sqlite_url: str) -> None:
    engine = make_case_engine(sqlite_url, now=datetime(2023, 3, 1, 10, tzinfo=SHANGHAI))
    [filed] = drive.submit(engine, bonus(12))  # 12 × 5,000 = 60,000, capped at 50,000
    case = drive.case(engine, filed.case_id)
    assert case.edition_id == AMENDED and case.decision == "partially_granted"
    assert case.amount_ceiling == Decimal("50000.00")
    drive.decide(engine, filed.case_id, approve=True)
    with Session(engine.db) as s:
        payout = s.execute(select(Payout).where(Payout.case_id == filed.case_id)).scalar_one()
    assert payout.amount == Decimal("50000.00") and payout.payer_bureau == "finance"
    settle(engine, payout, "TR-1", staff.system(engine))
    assert drive.case(engine, filed.case_id).state == "closed"
    with Session(engine.db) as s:
        notices = s.execute(
            select(Notice).where(Notice.case_id == filed.case_id).order_by(Notice.id)
        ).scalars().all()  # fmt: skip
    assert [n.kind for n in notices] == ["acceptance", "decision_partial", "payout"]
    decision = notices[1].body_text
    assert "第56条" in decision and "新招用本市高校毕业生人数12 × 5,000.00元" in decision
    assert "每家企业最高5万元" in decision and "50,000.00" in decision
    # the cap is the enterprise's: a second application finds it used up
    [again] = drive.submit(engine, bonus(1))
    assert drive.case(engine, again.case_id).amount_ceiling == Decimal("5000.00")


def test_diff_rejudge_and_migrate(editions: Path, sqlite_url: str, tmp_path: Path) -> None:
    diff = runner.invoke(app, ["edition", "diff", "dongcheng-2022-8", AMENDED])
    assert diff.exit_code == 0, diff.output
    assert "loan_subsidy.guarantee_cap" in diff.output and "150000.00" in diff.output
    assert "担保费补贴每家企业最高15万元" in diff.output
    assert "configured_types.graduate_hiring_bonus" in diff.output and "第56条" in diff.output

    old = make_case_engine(sqlite_url, now=datetime(2022, 12, 30, 10, tzinfo=SHANGHAI))
    [loan] = drive.submit(old, S.application("LOAN-01"))  # guarantee fee 150,000: capped at 100k
    [credit] = drive.submit(old, S.application("CRED-01"))
    before = drive.case(old, loan.case_id)
    assert before.edition_id == "dongcheng-2022-8"
    report = tmp_path / "rejudge.csv"
    out = runner.invoke(app, ["edition", "rejudge", AMENDED, "--report", str(report)])
    assert out.exit_code == 0, out.output
    assert "+50000.00" in out.output and before.case_no in out.output

    engine = make_case_engine(sqlite_url, now=datetime(2023, 3, 1, 10, tzinfo=SHANGHAI))
    events = drive.count(engine, CaseEvent)
    operator = staff.operator(engine)
    moved = runner.invoke(app, ["edition", "migrate", AMENDED, before.case_no or "",
                                "--as", operator.username])  # fmt: skip
    assert moved.exit_code == 0, moved.output
    after = drive.case(engine, loan.case_id)
    assert after.edition_id == AMENDED and after.version == before.version + 1
    assert after.amount_ceiling == before.amount_ceiling + Decimal("50000.00")
    assert drive.count(engine, CaseEvent) == events + 1  # one audit event
    with Session(engine.db) as s:
        event = s.execute(select(CaseEvent).order_by(CaseEvent.id.desc())).scalars().first()
    assert event is not None and event.trigger == "migrate_edition"
    assert event.payload["from"] == "dongcheng-2022-8" and event.payload["to"] == AMENDED
    with pytest.raises(WrongState):  # on it already
        engine.migrate_edition(loan.case_id, AMENDED, actor=operator)
    drive.decide(engine, credit.case_id, approve=True)
    with pytest.raises(WrongState):  # decided: it keeps its edition
        engine.migrate_edition(credit.case_id, AMENDED, actor=operator)
    applicant = staff.applicant_for(engine, S.application("LOAN-01")).username
    refused = runner.invoke(app, ["edition", "migrate", AMENDED, before.case_no or "",
                                  "--as", applicant])  # fmt: skip
    assert refused.exit_code != 0
    unknown = runner.invoke(app, ["edition", "migrate", "no-such-edition", before.case_no or "",
                                  "--as", operator.username])  # fmt: skip
    assert unknown.exit_code == 2 and "没有政策版本" in unknown.output
    nobody = runner.invoke(app, ["edition", "migrate", AMENDED, "DC-2099-999999'; drop table",
                                 "--as", operator.username])  # fmt: skip
    assert nobody.exit_code == 2 and "不存在" in nobody.output
    assert drive.case(engine, loan.case_id).version == after.version  # nothing more written
