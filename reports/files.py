"""导出文件 — CSV and XLSX that Excel opens in Chinese and that cannot run a formula.

CSV is UTF-8 with a byte-order mark (Excel reads a BOM-less file as the local code page and
garbles Chinese). Spreadsheet programs run a cell that begins with = + - or @ (and, after
trimming, a tab or carriage return) as a formula: `=HYPERLINK(…)` in an applicant's name
would become a link in a clerk's spreadsheet (OWASP, "CSV Injection"). Every text cell that
starts with one of those characters gets a leading apostrophe, in CSV and XLSX alike; numbers
we write ourselves (counts, money, shares) are not text and are written as they are.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

Cell = str | int | Decimal | bool | None
BOM = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MONEY_FORMAT = "0.00"
SHARE_FORMAT = "0.0%"


def neutralise(text: str) -> str:
    """A text cell a spreadsheet will show, never run: a leading apostrophe before = + - @,
    tab or carriage return."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)
    return neutralise(str(value))


def csv_lines(headers: Sequence[str], rows: Iterable[Sequence[Cell]]) -> Iterator[str]:
    """The CSV as pieces of text (BOM and header first), one per row: for streaming."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(cells: Iterable[str]) -> str:
        writer.writerow(cells)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield BOM + line(neutralise(h) for h in headers)
    for row in rows:
        yield line(csv_cell(v) for v in row)


@dataclass
class Sheet:
    """One worksheet: headers, rows, a number format per column kind, which rows are totals."""

    title: str
    headers: Sequence[str]
    rows: list[Sequence[Cell]]
    kinds: Sequence[str]  # per column: text, count, money or share
    bold: set[int] = field(default_factory=set)  # indexes into rows (totals)


def xlsx_cell(value: Cell) -> str | int | Decimal | None:
    """A value as openpyxl should store it: text stripped of the control characters XML
    cannot carry (openpyxl refuses them); numbers as numbers. Text is never a formula: it is
    stored as a string, and one that looks like a formula also carries Excel's quote prefix
    (xlsx_bytes), which shows it as typed, without an apostrophe of ours."""
    if value is None or (isinstance(value, int | Decimal) and not isinstance(value, bool)):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return ILLEGAL_CHARACTERS_RE.sub("", value)


def xlsx_bytes(sheets: Sequence[Sheet]) -> bytes:
    """A workbook: Chinese headers in bold, frozen below the header, money as numbers in
    0.00, shares as percentages, total rows in bold."""
    book = Workbook()
    book.remove(book.active)  # type: ignore[arg-type]
    bold = Font(bold=True)
    for spec in sheets:
        ws = book.create_sheet(title=spec.title[:31])
        ws.append([xlsx_cell(h) for h in spec.headers])  # our own labels
        for cell in ws[1]:
            cell.font = bold
        for index, row in enumerate(spec.rows):
            ws.append([xlsx_cell(v) for v in row])
            line = ws.max_row
            for col, kind in enumerate(spec.kinds, start=1):
                cell = ws.cell(row=line, column=col)
                if kind == "money":
                    cell.number_format = MONEY_FORMAT
                elif kind == "share":
                    cell.number_format = SHARE_FORMAT
                elif isinstance(cell.value, str):
                    cell.data_type = "s"  # never a formula, whatever the text
                    cell.quotePrefix = cell.value.startswith(FORMULA_STARTS)
                if index in spec.bold:
                    cell.font = bold
        ws.freeze_panes = "A2"
        for col, header in enumerate(spec.headers, start=1):
            width = max(10, min(40, len(header) * 2 + 2))  # a CJK character is two wide
            ws.column_dimensions[get_column_letter(col)].width = width
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
