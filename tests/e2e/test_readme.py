"""The README's shell blocks work as written: the walkthrough (accounts, serve, a filing
through the API, a review, a refused and an accepted decision, the notices) runs in one shell
on a fresh database. The Quick start's demo and its follow-up command run in
test_serve_and_demo.py::test_demo_finishes_and_matches_the_database."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def shell_blocks(heading: str) -> list[str]:
    """The ```sh blocks of the section under `heading` (up to the next heading)."""
    start = README.index(heading)
    end = min(
        (i for i in (README.find("\n## ", start + 1), README.find("\n### ", start + 1)) if i > 0),
        default=len(README),
    )
    return re.findall(r"```sh\n(.*?)```", README[start:end], re.S)


def quick_start_demo() -> str:
    """The Quick start's first command, without the install the suite has already done."""
    [install_and_demo, _tests] = shell_blocks("## Quick start")
    install, demo = install_and_demo.strip().split(" && ")
    assert install.startswith("python -m pip install -c constraints.txt -e .")
    return demo


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_walkthrough_runs_as_written(tmp_path: Path) -> None:
    blocks = shell_blocks("### Walkthrough")
    assert len(blocks) == 4
    port = str(free_port())  # the README's port 8000 may be taken on a shared machine
    script = "set -e\n" + "\n".join(b.replace("8000", port) for b in blocks)
    (tmp_path / "docs").symlink_to(ROOT / "docs")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELIEF_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["COLUMNS"] = "200"
    shell = subprocess.Popen(
        ["bash", "-c", script], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = shell.communicate(timeout=300)
    finally:
        try:
            os.killpg(shell.pid, signal.SIGKILL)  # the background serve, if a step failed
        except ProcessLookupError:
            pass
    assert shell.returncode == 0, out
    assert '"case_no":"DC-2022-000001"' in out and '"state":"under_review"' in out
    assert "职责分离" in out and "refused, as it should be" in out
    assert "DC-2022-000001: 办结 (closed)" in out
    assert "受理通知书" in out and "准予决定书" in out
    assert "api/applications HTTP/1.1" in (tmp_path / "serve.log").read_text(encoding="utf-8")
