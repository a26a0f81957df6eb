"""The report page in a real chromium over the seeded district: an operator picks the months,
reads the table, and downloads the XLSX, which openpyxl opens with the same grand total.
Screenshot under test-output/screenshots/report-page.png."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from conftest import SHOTS, LiveServer
from seeded import CLOCKS, seeded_copy

from api.main import create_app
from api.security import create_account
from models.db import make_engine
from models.settings import Settings
from reports.measures import measure_report
from reports.query import report_query


@pytest.fixture
def site(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.getbasetemp() / "seeded"
    folder.mkdir(exist_ok=True)
    url = seeded_copy(folder, tmp_path / "report.db")
    db = make_engine(url)
    create_account(db, username="op_report", role="operator", password="pw-op_report",
                   now=CLOCKS[-1])  # fmt: skip
    SHOTS.mkdir(parents=True, exist_ok=True)
    with LiveServer(create_app(Settings(database_url=url, now=CLOCKS[-1]))) as server:
        yield {"url": server.url, "db": db}
    db.dispose()


def test_an_operator_reads_and_downloads_the_report(
    browser: Any, site: dict[str, Any], tmp_path: Path
) -> None:
    page = browser.new_page(locale="zh-CN", viewport={"width": 1600, "height": 900},
                            accept_downloads=True)  # fmt: skip
    page.goto(f"{site['url']}/login")
    page.fill("input[name=username]", "op_report")
    page.fill("input[name=password]", "pw-op_report")
    page.click("button[type=submit]")
    page.wait_for_url("**/operator")
    page.click("text=统计报表")
    page.fill("input[name=from]", "2022-07")
    page.fill("input[name=to]", "2022-12")
    page.click("#report-form button[type=submit]")
    page.wait_for_selector("#report")
    expected = measure_report(
        site["db"], report_query(first="2022-07", last="2022-12", today=CLOCKS[-1].date())
    ).total.values
    last = page.locator("#report tbody tr.total td")
    cells = last.all_inner_texts()
    assert str(expected["applications"]) in cells
    assert f"{expected['paid_amount']:,.2f}" in cells
    page.screenshot(path=str(SHOTS / "report-page.png"), full_page=True)
    with page.expect_download() as info:
        page.click("text=XLSX")
    target = tmp_path / "report.xlsx"
    info.value.save_as(target)
    sheet = openpyxl.load_workbook(target).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    header, total = rows[0], rows[-1]
    assert total[header.index("申请")] == expected["applications"]
    paid = total[header.index("已拨付金额（元）")]
    assert f"{paid:.2f}" == f"{expected['paid_amount']:.2f}"
    page.close()
