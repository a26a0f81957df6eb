"""The one test command: `python tools/test.py [PYTEST ARGS]` installs what the suite needs, then
runs all of it.

The suite tests real parts, so it needs more than pip can give: the PostgreSQL server binaries
(the suite starts its own throwaway server from them), Debian's chromium (the page tests drive
it with Playwright), a CJK font (legible screenshots of the Chinese pages) and graphviz (state
diagrams). As root on Debian the missing ones are installed with apt-get, without letting the
postgresql package start its own cluster; anywhere else each missing part is named with the
command that installs it, and the suite runs anyway (the tests that need it skip or fail).
Then the Python packages are installed from the lock (constraints.txt) and pytest runs with
the arguments given. `--check` only reports what is missing (exit 1 if anything is);
`--no-install` skips both installs. Only the standard library is used here: this runs before
anything is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = "constraints.txt"
# apt-get and dpkg need the usual system PATH whatever the caller's is
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")


def _postgres() -> bool:
    """The same search as tests/pg_server.py: $RELIEF_PG_BINDIR alone if set, else Debian's
    /usr/lib/postgresql/*/bin, else pg_ctl on PATH."""
    names = ("initdb", "pg_ctl", "postgres")

    def has(d: Path) -> bool:
        return all(os.access(d / n, os.X_OK) for n in names)

    override = os.environ.get("RELIEF_PG_BINDIR")
    if override:
        return has(Path(override))
    if any(has(d) for d in Path("/usr/lib/postgresql").glob("*/bin")):
        return True
    on_path = shutil.which("pg_ctl")
    return bool(on_path) and has(Path(os.path.realpath(on_path)).parent)


def _cjk_font() -> bool:
    """A font that covers Chinese, as fontconfig (which chromium uses) sees it."""
    fc_list = shutil.which("fc-list", path=f"{os.environ.get('PATH', '')}:{SYSTEM_PATH}")
    if not fc_list:
        return False
    out = subprocess.run([fc_list, ":lang=zh", "family"], capture_output=True, text=True)
    return out.returncode == 0 and bool(out.stdout.strip())


@dataclass(frozen=True)
class Need:
    what: str
    packages: tuple[str, ...]  # Debian's
    why: str
    present: Callable[[], bool]


NEEDS = (
    Need(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres)",
        ("postgresql",),
        "every database test runs on SQLite and on a PostgreSQL server the suite starts",
        _postgres,
    ),
    Need(
        "chromium",
        ("chromium",),
        "the page tests drive it with Playwright",
        lambda: shutil.which("chromium") is not None,
    ),
    Need(
        "a CJK font (fontconfig's fc-list :lang=zh)",
        ("fonts-wqy-microhei", "fontconfig"),
        "legible screenshots of the Chinese pages",
        _cjk_font,
    ),
    Need(
        "graphviz (dot)",
        ("graphviz",),
        "diagrams of the state machines",
        lambda: shutil.which("dot") is not None,
    ),
)


def _packages(needs: Sequence[Need]) -> list[str]:
    return [p for n in needs for p in n.packages]


def missing() -> list[Need]:
    return [n for n in NEEDS if not n.present()]


def _say(message: str) -> None:
    print(f"tools/test.py: {message}", flush=True)


def report(needs: Sequence[Need]) -> None:
    _say("missing:")
    for n in needs:
        _say(f"  - {n.what}, Debian: {' '.join(n.packages)}; {n.why}")
    packages = " ".join(_packages(needs))
    _say(f"install with: sudo apt-get install -y --no-install-recommends {packages}")
    if any("postgresql" in n.packages for n in needs):
        _say("  (the suite starts its own PostgreSQL server; the Debian cluster need not run)")


def _apt_get() -> str | None:
    return shutil.which("apt-get", path=f"{os.environ.get('PATH', '')}:{SYSTEM_PATH}")


def can_install() -> bool:
    return os.geteuid() == 0 and _apt_get() is not None


def apt_install(packages: Sequence[str]) -> bool:
    """apt-get install as root; a policy-rc.d that forbids starting services keeps the
    postgresql package from starting Debian's cluster (the suite starts its own)."""
    apt = _apt_get()
    assert apt is not None
    env = {**os.environ, "PATH": SYSTEM_PATH, "DEBIAN_FRONTEND": "noninteractive"}
    added_policy = False
    if not POLICY_RC_D.exists():
        POLICY_RC_D.write_text("#!/bin/sh\nexit 101\n")
        POLICY_RC_D.chmod(0o755)
        added_policy = True
    try:
        _say(f"installing with apt-get: {' '.join(packages)}")
        if subprocess.run([apt, "update", "-q"], env=env).returncode != 0:
            return False
        cmd = [apt, "install", "-y", "-q", "--no-install-recommends", *packages]
        return subprocess.run(cmd, env=env).returncode == 0
    finally:
        if added_policy:
            POLICY_RC_D.unlink(missing_ok=True)


def system_parts(*, install: bool) -> None:
    """Install what is missing if we can; name what is still missing."""
    absent = missing()
    if not absent:
        return
    if install and can_install():
        if not apt_install(_packages(absent)):
            _say("apt-get failed (see above)")
        absent = missing()
        if not absent:
            return
    elif install:
        _say("cannot install the system parts here (that needs root and apt-get)")
    report(absent)
    _say("running the suite anyway: the tests that need these will be skipped or fail")


def _externally_managed() -> bool:
    """Debian's own python refuses `pip install` outside a virtualenv (PEP 668)."""
    marker = Path(sysconfig.get_path("stdlib")) / "EXTERNALLY-MANAGED"
    return sys.prefix == sys.base_prefix and marker.exists()


def pip_install() -> None:
    """The project with its test extra, at the versions of the lock."""
    if _externally_managed():
        _say(
            "this python is managed by the system (PEP 668); make a virtualenv first:\n"
            "    python3 -m venv .venv && . .venv/bin/activate && python tools/test.py"
        )
        sys.exit(2)
    cmd = [sys.executable, "-m", "pip", "install", "-q", "-c", LOCK, "-e", ".[test]"]
    _say(" ".join(["pip", *cmd[3:]]))
    if subprocess.run(cmd, cwd=ROOT).returncode != 0:
        _say("pip install failed (see above)")
        sys.exit(2)


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    own = {a for a in args if a in ("--check", "--no-install")}
    pytest_args = [a for a in args if a not in own]
    if "--check" in own:
        absent = missing()
        if absent:
            report(absent)
            return 1
        _say("every system part the suite needs is installed")
        return 0
    install = "--no-install" not in own
    system_parts(install=install)
    if install:
        pip_install()
    os.chdir(ROOT)
    # exec: pytest's exit code (5: no tests collected) and signals reach the caller unchanged
    os.execv(sys.executable, [sys.executable, "-m", "pytest", *pytest_args])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
