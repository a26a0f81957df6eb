"""PostgreSQL 客户端程序 — finding pg_dump, pg_restore and psql, their versions, running them.

The programs come from `--pg-bindir` if given, else PATH, else Debian's versioned layout; a
client older than the server is refused before it runs (an old pg_dump cannot read a new
server). A failure is a `BackupError` carrying the tail of the program's stderr; the password
goes to the programs in the environment, never on a command line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from models.backup_manifest import BackupError

CLIENT_HINT = (
    "请安装 PostgreSQL 客户端（Debian：apt-get install postgresql-client），或用 --pg-bindir "
    "（RELIEF_PG_BINDIR）指明其文件夹"
)
_DEBIAN_BINDIRS = Path("/usr/lib/postgresql")
_TAIL = 1500  # characters of a tool's stderr kept in a message


def find_tool(name: str, bindir: Path | None) -> str:
    """A PostgreSQL client program: from `bindir` if given, else PATH, else Debian's layout."""
    if bindir is not None:
        path = Path(bindir).expanduser() / name
        if os.access(path, os.X_OK):
            return str(path)
        raise BackupError(
            f"在 {bindir} 中找不到 {name}：{CLIENT_HINT}", f"{name} not found in {bindir}"
        )
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(_DEBIAN_BINDIRS.glob(f"*/bin/{name}"), key=lambda p: _number(p.parts[-3]))
    if versions:
        return str(versions[-1])
    raise BackupError(
        f"找不到 {name}（PostgreSQL 客户端程序）：{CLIENT_HINT}",
        f"{name} is not installed (PostgreSQL client programs); --pg-bindir names their folder",
    )


def major_version(tool: str) -> int:
    """The major version a client program reports (`pg_dump (PostgreSQL) 15.4` → 15)."""
    out = run_tool([tool, "--version"], None, what=Path(tool).name)
    found = re.search(r"\(PostgreSQL\)\s+(\d+)", out)
    if not found:
        raise BackupError(f"无法识别 {tool} 的版本：{out.strip()}", f"unknown version: {out}")
    return int(found.group(1))


def check_versions(conn: Connection, *tools: str) -> int:
    """The clients' major version, refused if the server's is newer than any of them."""
    server = int(conn.execute(text("SHOW server_version_num")).scalar_one()) // 10000
    majors = {Path(tool).name: major_version(tool) for tool in tools}
    for name, major in majors.items():
        if major < server:
            raise BackupError(
                f"服务器是 PostgreSQL {server}，而 {name} 是 {major}，"
                f"旧的客户端不能处理新的服务器：{CLIENT_HINT}（{server} 或更新版本）",
                f"the server is PostgreSQL {server} but {name} is {major}: install client "
                f"programs {server} or newer (--pg-bindir)",
            )
    return min(majors.values())


def libpq(url: str) -> tuple[str, dict[str, str]]:
    """The SQLAlchemy URL as a libpq connection string, with the password in the environment
    (never on a command line, where `ps` shows it)."""
    from psycopg.conninfo import make_conninfo

    parsed = make_url(url)
    query = {k: v if isinstance(v, str) else v[-1] for k, v in parsed.query.items()}
    conninfo = make_conninfo(
        "", host=parsed.host, port=parsed.port, user=parsed.username, dbname=parsed.database,
        **query,
    )  # fmt: skip
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    return conninfo, env


def run_tool(argv: list[str], env: dict[str, str] | None, *, what: str) -> str:
    """Run a client program; its stdout, or a `BackupError` with the tail of its stderr."""
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise BackupError(
            f"无法运行 {what}：{exc}（{CLIENT_HINT}）", f"cannot run {what}: {exc}"
        ) from exc
    if done.returncode != 0:
        tail = done.stderr.strip()[-_TAIL:]
        raise BackupError(
            f"{what} 失败（退出码 {done.returncode}），未作改动：{tail}",
            f"{what} failed (exit {done.returncode}); nothing was changed: {tail}",
        )
    return done.stdout


def _number(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())
