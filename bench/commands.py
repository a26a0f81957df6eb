"""What an operator waits for at the command line: `relief` commands from start to exit.

    python bench/commands.py [--runs 9]

On a database of a few hundred cases (`relief demo`'s), each command is started as a process,
in turn, RUNS times, and timed from its start to its exit:

- `relief status CASE` and `relief estimate FILE` (goal: at most 0.5 s each);
- `relief flow run intake ONE-ROW-FILE` with a Prefect server running as `relief serve` runs it
  (goal: at most 3 s), each run a new batch of one row;
- for scale: `python -c pass` (the interpreter alone), the libraries a status needs imported
  and nothing else (typer, rich, pydantic-settings, SQLAlchemy: the floor of any `relief status`
  built on them), and `relief --help` (the command line's own imports and the settings).

It prints the median, minimum and maximum seconds of each, and each command's median per run
of `relief --help` measured in the same rounds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import ROOT, dump_json, header, median, relief_command, running_prefect_server

EXAMPLE = ROOT / "docs" / "examples" / "loan_subsidy.json"


LIBRARIES = "import typer, rich.console, pydantic_settings, sqlalchemy"


def python_alone(code: str = "pass") -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    header("relief commands, start to exit")
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="relief-bench-cli-") as tmp:
        folder = Path(tmp)
        db = folder / "relief-demo.db"
        relief_command(["demo", "--database", str(db)], {})
        env = {"RELIEF_DATABASE_URL": f"sqlite:///{db}"}
        case = "DC-2022-000001"
        with running_prefect_server(folder) as prefect_env:
            env.update(prefect_env)
            example = json.loads(EXAMPLE.read_text(encoding="utf-8"))
            commands = {
                "python -c pass": None,
                "the libraries alone": LIBRARIES,
                "relief --help": ["--help"],
                f"relief status {case}": ["status", case],
                "relief estimate FILE": ["estimate", str(EXAMPLE)],
                "relief flow run intake (1 row)": "intake",
            }
            for run in range(args.runs):
                for label, argv in commands.items():
                    if argv is None:
                        seconds = python_alone()
                    elif argv == LIBRARIES:
                        seconds = python_alone(LIBRARIES)
                    elif argv == "intake":
                        one = folder / f"one-{run}.json"
                        row = {**example, "applicant": {**example["applicant"]}}
                        one.write_text(json.dumps([row], ensure_ascii=False), encoding="utf-8")
                        seconds, _ = relief_command(
                            ["flow", "run", "intake", str(one), "--as", "demo-ops"], env
                        )
                    else:
                        seconds, _ = relief_command(list(argv), env)
                    times.setdefault(label, []).append(seconds)
        shutil.rmtree(folder / "prefect-home", ignore_errors=True)
    base = times["relief --help"]
    print("| command | median s | min | max | median / relief --help |")
    print("|---|---|---|---|---|")
    for label, xs in times.items():
        ratio = median([x / b for x, b in zip(xs, base, strict=True)])
        print(
            f"| `{label}` | **{median(xs):.2f}** | {min(xs):.2f} | {max(xs):.2f} | {ratio:.2f}× |"
        )
    dump_json(args.json, {"runs": args.runs, "seconds": times})


if __name__ == "__main__":
    main()
