"""`relief bpmn` — an application type's process as BPMN 2.0 XML (docs/bpmn.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

SHOWN = 40  # at most this much of a bad type name is echoed back


def bpmn_command(
    case_type: Annotated[
        str | None,
        typer.Argument(help="application type, e.g. loan_subsidy (relief schema TYPE)"),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="write the XML to this file, not to stdout")
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="every type of the catalog, one file each (--out-dir)")
    ] = False,
    out_dir: Annotated[
        Path | None, typer.Option("--out-dir", help="with --all: where <type>.bpmn are written")
    ] = None,
) -> None:
    """Export a type's process as BPMN 2.0 with its diagram, generated from its transition
    table; opens laid out in bpmn.io or Camunda Modeler (docs/bpmn.md)."""
    from states.catalog import catalog

    known = list(catalog())
    if every:
        if case_type is not None or out is not None or out_dir is None:
            _fail("--all", "bpmn.usage", "--all 须与 --out-dir 目录同用，且不再指定类型或 --out",
                  "--all goes with --out-dir DIR, without TYPE or --out")  # fmt: skip
        documents = {code: _export(code) for code in known}  # all made before any is written
        _write_all(out_dir, documents)
        typer.echo(f"已导出{len(documents)}个申请类型的 BPMN：{out_dir}")
        return
    if out_dir is not None:
        _fail("--out-dir", "bpmn.usage", "--out-dir 只与 --all 同用；单个类型请用 --out",
              "--out-dir goes with --all; one type takes --out FILE")  # fmt: skip
    if case_type is None or case_type not in known:
        shown = (case_type or "")[:SHOWN] + ("…" if len(case_type or "") > SHOWN else "")
        what = f"未知的申请类型“{shown}”" if case_type else "请指定申请类型"
        _fail("TYPE", "type.unknown", f"{what}，可选：{'、'.join(known)}",
              f"choose one of {', '.join(known)} (or --all --out-dir DIR)")  # fmt: skip
    xml = _export(case_type)
    if out is None:
        typer.echo(xml.decode("utf-8"), nl=False)
        return
    _write(out, xml)
    typer.echo(f"已写入 {out}")


def _export(code: str) -> bytes:
    from process.bpmn import bpmn_of

    try:
        return bpmn_of(code)
    except FileNotFoundError:  # a type dropped in with an edition, without its example
        _fail("TYPE", "bpmn.no_example",
              f"类型{code}没有示例申请 docs/examples/{code}.json，无法确定承办单位",
              f"no example application docs/examples/{code}.json: units unknown")  # fmt: skip


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        _fail(str(path), "file.unwritable", f"无法写入文件：{exc.strerror}", str(exc))


def _write_all(directory: Path, documents: dict[str, bytes]) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(str(directory), "dir.unwritable", f"无法创建目录：{exc.strerror}", str(exc))
    for code, data in documents.items():
        _write(directory / f"{code}.bpmn", data)


def _fail(field: str, rule: str, zh: str, en: str) -> NoReturn:
    """Bad input: reported as `relief` reports it (exit 2), nothing written."""
    from cli.main import _fail_input  # not at the top: cli.main imports this module
    from models.input_errors import FieldError

    _fail_input([FieldError(field, rule, zh, en)])
    raise AssertionError("unreachable")  # _fail_input always exits
