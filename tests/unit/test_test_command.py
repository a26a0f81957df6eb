"""`python tools/test.py` names every missing system part and how to install it.

The parts are hidden for real, not stubbed: a PATH holding only python (no chromium, no dot,
no pg_ctl), RELIEF_PG_BINDIR pointing at an empty folder (the one place the PostgreSQL search
then looks) and a fontconfig configuration with no font folders.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_check_names_each_missing_part_and_the_command(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    (tmp_path / "pg").mkdir()
    fonts = tmp_path / "fonts.conf"
    fonts.write_text('<?xml version="1.0"?>\n<fontconfig></fontconfig>\n')
    env = {
        **os.environ,
        "PATH": str(bin_dir),
        "RELIEF_PG_BINDIR": str(tmp_path / "pg"),
        "FONTCONFIG_FILE": str(fonts),
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "test.py"), "--check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    for part in ("PostgreSQL server binaries", "chromium", "CJK font", "graphviz"):
        assert part in done.stdout
    assert (
        "install with: sudo apt-get install -y --no-install-recommends "
        "postgresql chromium fonts-wqy-microhei fontconfig graphviz"
    ) in done.stdout


def test_readme_and_ci_run_name_the_same_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert 'TEST_COMMAND="python tools/test.py"' in ci
    assert "\npython tools/test.py\n" in quick_start
    assert "\npython -m pip install -c constraints.txt -e . && relief demo\n" in quick_start
    assert quick_start.count("```sh") == 2  # the Quick start stays at two commands
