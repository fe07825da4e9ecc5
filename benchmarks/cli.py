"""CLI start-up: CPU seconds of `mlprod --help`, `models show` and `monitor`.

One command (about a minute, most of it training the small model)::

    .venv/bin/python benchmarks/cli.py
    .venv/bin/python benchmarks/cli.py --before ../mlprod-old/src   # beside an older tree

It trains the quickstart's churn model (LightGBM only, 2,000 rows) into a SQLite store
in a temporary folder and scores those rows once (so `monitor` has traffic and drift to
report), then runs each command in a fresh process and reads the process's
own CPU time (user + system, from `wait4`), which a busy neighbour inflates far less than
wall time. Beside them, in the same passes: `python -c "pass"` (the interpreter's floor)
and `python -c "import typer"` (the floor of any typer CLI). Passes are interleaved and
every figure is the median of `--passes` runs. The goal is under 0.5 s for every command.

The commands run as from an installed package: with bytecode, kept in a private cache in
the temporary folder and written by one untimed pass, even where the environment sets
PYTHONDONTWRITEBYTECODE (then every run would compile mlprod's sources again, a cost no
installed copy pays). `--no-bytecode` measures that case instead.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = str(HERE.parent / "src")
MODEL = "churn"
COMMANDS: dict[str, list[str]] = {
    'python -c "pass"': ["-c", "pass"],
    'python -c "import typer"': ["-c", "import typer"],
    "mlprod --help": ["-m", "mlprod", "--help"],
    f"mlprod models show {MODEL}": ["-m", "mlprod", "models", "show", MODEL],
    f"mlprod monitor {MODEL}": ["-m", "mlprod", "monitor", MODEL],
}


def cpu_seconds(args: list[str], src: str, folder: Path, bytecode: Path | None) -> float:
    """User + system CPU seconds of one fresh `python args` importing mlprod from `src`.

    With `bytecode`, compiled modules are kept in (and read from) that folder.
    """
    env = {**os.environ, "PYTHONPATH": src, "MLPROD_STORE": str(folder / ".mlprod")}
    if bytecode is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(bytecode)
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    errors = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{args} exited {process.returncode}: {errors.decode()[-2000:]}")
    return usage.ru_utime + usage.ru_stime


def train(folder: Path, src: str) -> None:
    """The serving benchmark's small trained project, trained by the tree in `src`.

    Its 2,000 rows are then scored once with the prediction log on, so `monitor` reports
    traffic and drift, as it would for a model in use.
    """
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r}); from pathlib import Path; "
        f"from serve import train_model; train_model(Path({str(folder)!r}), rows=2000)"
    )
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": src, "MLPROD_STORE": str(folder / ".mlprod")}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=1800)
    score = ["predict", MODEL, "--input", "customers.csv", "--output", "scored.parquet"]
    subprocess.run(
        [sys.executable, "-m", "mlprod", *score],
        cwd=folder,
        env=env,
        check=True,
        timeout=600,
        stdout=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="src folder of another mlprod to compare with")
    parser.add_argument("--after", default=SRC, help="src folder measured (default: this tree)")
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument(
        "--no-bytecode", action="store_true", help="compile the sources in every run"
    )
    args = parser.parse_args()

    trees = {"before": args.before, "after": args.after} if args.before else {"": args.after}
    folder = Path(tempfile.mkdtemp(prefix="mlprod-cli-"))
    try:
        # Each tree trains its own project: a newer tree migrates a store forward, which
        # an older one then refuses to read.
        for tree, src in trees.items():
            train(folder / f"project{tree}", src)
        bytecode = None if args.no_bytecode else folder / "pycache"
        figures: dict[tuple[str, str], list[float]] = {}
        for run in range(args.passes + (bytecode is not None)):
            for label, command in COMMANDS.items():
                for tree, src in trees.items():
                    seconds = cpu_seconds(command, src, folder / f"project{tree}", bytecode)
                    if run or bytecode is None:  # the first pass writes the bytecode
                        figures.setdefault((label, tree), []).append(seconds)
        header = "".join(f"{tree or 'CPU s':>12}" for tree in trees)
        print(f"\n{'median of ' + str(args.passes) + ' runs':34}{header}")
        for label in COMMANDS:
            row = [statistics.median(figures[(label, tree)]) for tree in trees]
            print(f"{label:34}" + "".join(f"{value:>12.3f}" for value in row))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
