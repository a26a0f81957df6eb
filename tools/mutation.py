"""Mutation testing of the rule modules: can the tests tell when a rule is wrong?

    python tools/mutation.py [MODULE ...] [--jobs 2] [--tests TEST ...] [--list]

Each mutant changes one thing in one module — a comparison flipped (< for <=, == for !=, in
for not in), and for or, a `not` dropped, a number off by one, True for False, + for -, min
for max, an `if` whose test is always true or always false, an appended check dropped — and the
rule tests run against it in a copy of the tree (stopping at the first failure). A mutant the
tests fail on is killed; one they pass is a survivor: something no test asserts. It prints each
module's score and every survivor with its line. Not a test: it takes minutes, and its
figures go in docs/mutation.md.

Written here rather than with mutmut or cosmic-ray: mutmut 3 runs the whole suite once first
to map tests to functions (here that is PostgreSQL, chromium and nine minutes) and imports the
mutated tree through its own trampoline, which the editable install shadows; cosmic-ray needs a
session database and a config per module. This runner copies the tracked files once per job,
mutates with `ast`, and runs only the rule tests.
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = [
    "states/loan_subsidy.py",
    "states/rent_park_subsidy.py",
    "states/rent_incubator_subsidy.py",
    "states/rent_state_property.py",
    "states/credit_exemption.py",
    "states/licence_extension.py",
    "states/grants.py",
    "states/configured_rules.py",
    "base/money.py",
    "base/working_days.py",
]
RULE_TESTS = [  # the fast ones first: a killed mutant stops at its first failure
    "tests/unit/test_check_goldens.py",
    "tests/unit/test_rule_checks.py",
    "tests/unit/test_configured_rules.py",
    "tests/unit/test_rule_checks_effects.py",
    "tests/unit/test_rule_checks_rent.py",
    "tests/unit/test_grants.py",
    "tests/unit/test_estimate_scenarios.py",
    "tests/unit/test_cap_properties.py",
    "tests/unit/test_money.py",
    "tests/unit/test_working_days.py",
    "tests/unit/test_civil_dates.py",
    "tests/e2e/test_engine_scenarios.py",
]
FLIP = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}  # fmt: skip
ARITH = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}


@dataclass(frozen=True)
class Mutant:
    module: str
    line: int
    what: str
    source: str


def mutants(module: str) -> Iterator[Mutant]:
    """Every single-change mutant of one module, in source order."""
    text = (ROOT / module).read_text(encoding="utf-8")
    tree = ast.parse(text)
    # annotations are strings under `from __future__ import annotations`: nothing to mutate there
    for index, node in enumerate(ast.walk(tree)):
        for what, change in _changes(node):
            mutated = copy.deepcopy(tree)
            target = list(ast.walk(mutated))[index]
            if change(target) is False:
                continue
            ast.fix_missing_locations(mutated)
            yield Mutant(module, getattr(node, "lineno", 0), what, ast.unparse(mutated))


def _changes(node: ast.AST) -> Iterator[tuple[str, object]]:
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in FLIP:
                new = FLIP[type(op)]

                def flip(n: ast.Compare, i: int = i, new: type = new) -> None:
                    n.ops[i] = new()

                yield f"{type(op).__name__} → {new.__name__}", flip
    elif isinstance(node, ast.BoolOp):
        other = ast.Or if isinstance(node.op, ast.And) else ast.And

        def swap(n: ast.BoolOp, other: type = other) -> None:
            n.op = other()

        yield f"{type(node.op).__name__} → {other.__name__}", swap
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):

        def drop_not(n: ast.UnaryOp) -> None:
            n.op = ast.UAdd()  # +bool(x) is x's truth as an int: `not` gone

        yield "not dropped", drop_not
    elif isinstance(node, ast.Constant) and type(node.value) is bool:

        def negate(n: ast.Constant) -> None:
            n.value = not n.value

        yield f"{node.value} → {not node.value}", negate
    elif isinstance(node, ast.Constant) and type(node.value) in (int, float):

        def bump(n: ast.Constant) -> None:
            n.value = n.value + 1

        yield f"{node.value} → {node.value + 1}", bump
    elif isinstance(node, ast.BinOp) and type(node.op) in ARITH:
        new = ARITH[type(node.op)]

        def arith(n: ast.BinOp, new: type = new) -> None:
            n.op = new()

        yield f"{type(node.op).__name__} → {new.__name__}", arith
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        swapped = {"min": "max", "max": "min"}.get(node.func.id)
        if swapped:

            def minmax(n: ast.Call, swapped: str = swapped) -> None:
                assert isinstance(n.func, ast.Name)
                n.func.id = swapped

            yield f"{node.func.id} → {swapped}", minmax
    if isinstance(node, ast.If | ast.IfExp):
        for value in (True, False):

            def fixed(n: ast.If | ast.IfExp, value: bool = value) -> None:
                n.test = ast.Constant(value)

            yield f"if-test always {value}", fixed
    if isinstance(node, ast.FunctionDef | ast.If | ast.For | ast.With):
        for j, stmt in enumerate(node.body):
            call = stmt.value if isinstance(stmt, ast.Expr) else None
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr in ("append", "extend", "add")
            ):

                def drop(n: ast.AST, j: int = j) -> None:
                    n.body[j] = ast.Pass()  # type: ignore[attr-defined]

                yield f"dropped .{call.func.attr}(…) at line {stmt.lineno}", drop


def tracked_copy() -> Path:
    """The tracked files, copied to a fresh folder (a mutant never touches the checkout)."""
    out = Path(tempfile.mkdtemp(prefix="relief-mutants-"))
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in files:
        dest = out / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest)
    return out


def run_tests(tree: Path, tests: list[str], timeout: float) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
           "-k", "not postgresql", *[t for t in tests if (tree / t).exists()]]  # fmt: skip
    try:
        done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout"
    return "survived" if done.returncode == 0 else "killed"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", default=MODULES)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--tests", nargs="*", default=RULE_TESTS)
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    args = parser.parse_args()
    every = [m for module in args.modules for m in mutants(module)]
    if args.list:
        for m in every:
            print(f"{m.module}:{m.line}: {m.what}")
        print(f"{len(every)} mutants")
        return 0
    trees = [tracked_copy() for _ in range(args.jobs)]
    t0 = time.perf_counter()
    baseline = run_tests(trees[0], args.tests, timeout=1800)
    took = time.perf_counter() - t0
    if baseline != "survived":
        print(f"the tests fail without any mutant ({baseline}): fix them first")
        return 2
    print(f"# mutation testing: {len(every)} mutants, tests pass unmutated in {took:.0f} s")
    free = list(trees)
    results: dict[Mutant, str] = {}

    def one(m: Mutant) -> tuple[Mutant, str]:
        tree = free.pop()
        target = tree / m.module
        original = target.read_text(encoding="utf-8")
        try:
            target.write_text(m.source, encoding="utf-8")
            return m, run_tests(tree, args.tests, timeout=max(60.0, took * 3))
        finally:
            target.write_text(original, encoding="utf-8")
            free.append(tree)

    with ThreadPoolExecutor(args.jobs) as pool:
        for m, outcome in pool.map(one, every):
            results[m] = outcome
            mark = {"killed": ".", "survived": "S", "timeout": "T"}[outcome]
            print(mark, end="", flush=True)
    print()
    for module in args.modules:
        mine = {m: r for m, r in results.items() if m.module == module}
        if not mine:
            continue
        killed = sum(r != "survived" for r in mine.values())
        print(f"\n## {module}: {killed}/{len(mine)} killed ({100 * killed / len(mine):.0f} %)")
        for m, r in mine.items():
            if r == "survived":
                print(f"- line {m.line}: {m.what}")
    for tree in trees:
        shutil.rmtree(tree, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
