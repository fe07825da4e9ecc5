"""The command line imports only what a command uses, so `mlprod --help` starts fast.

Typer reads every command's signature at start-up: whatever a command module imports at
its top is paid by every command. Each check runs in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "sklearn",
    "scipy",
    "lightgbm",
    "xgboost",
    "torch",
    "pyspark",
    "plotly",
    "fastapi",
    "uvicorn",
    "skops",
    "duckdb",
    "pandas",
    "pyarrow",
    "sqlalchemy",
    "alembic",
    "redis",
)


def heavy_after(code: str) -> list[str]:
    """Which of `HEAVY` a fresh interpreter holds after running `code`."""
    found = f"[m for m in {HEAVY!r} if m in sys.modules]"
    probe = f"import json, sys\n{code}\nprint(json.dumps({found}))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return sorted(json.loads(done.stdout.strip().splitlines()[-1]))


def test_importing_the_cli_and_building_every_command_loads_no_heavy_library() -> None:
    # get_command builds the click commands from every signature, as `mlprod --help` does.
    code = "import typer.main\nfrom mlprod.cli import app\ntyper.main.get_command(app)"
    assert heavy_after(code) == []


def test_the_probe_sees_what_a_store_command_imports_when_it_runs() -> None:
    # The sibling: a command that reads the store imports it in its body, and then the
    # probe does see SQLAlchemy.
    assert heavy_after("import mlprod.cli\nimport mlprod.store") == ["sqlalchemy"]
