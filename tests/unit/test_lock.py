"""The lock (constraints.txt) pins every dependency pyproject.toml names, inside its range:
a dependency added without recompiling the lock would install unpinned on a fresh machine."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[2]


def test_every_dependency_is_pinned_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lock = (ROOT / "constraints.txt").read_text(encoding="utf-8")
    pins = {
        canonicalize_name(name): version
        for name, version in re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", lock, re.M)
    }
    wanted = [*project["dependencies"]]
    for extra in ("test", "bench"):
        wanted += project["optional-dependencies"][extra]
    problems = []
    for spec in wanted:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{req.name} is not in constraints.txt")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{req.name}=={pins[name]} is outside {req.specifier}")
    assert not problems, "recompile the lock (README, Dependencies): " + "; ".join(problems)


def test_the_lock_has_no_extras_pip_would_refuse_as_constraints() -> None:
    lock = (ROOT / "constraints.txt").read_text(encoding="utf-8")
    assert not re.findall(r"^[A-Za-z0-9_.\-]+\[", lock, re.M)
