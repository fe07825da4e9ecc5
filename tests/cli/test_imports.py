"""The command line imports only what a command uses, so `mlprod --help` starts fast.

`mlprod --help` lists the commands from a table and imports none of their modules; a
command imports its own module, and whatever that module imports at its top is paid by
that command. Each check runs in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support import Project, run_cli

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


def heavy_after(code: str, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    """Which of `heavy` a fresh interpreter holds after running `code`."""
    found = f"[m for m in {heavy!r} if m in sys.modules]"
    probe = f"import json, sys\n{code}\nprint(json.dumps({found}))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return sorted(json.loads(done.stdout.strip().splitlines()[-1]))


def test_importing_the_cli_and_building_every_command_loads_no_heavy_library() -> None:
    # Every command module imported and every command built from its signature, as
    # running each command would: their tops import nothing heavy.
    code = (
        "from mlprod.cli import COMMANDS\nfrom mlprod.cli._lazy import build\n"
        "for name, entry in COMMANDS.items():\n    build(name, entry)"
    )
    assert heavy_after(code) == []


# What `mlprod --help` must not import: no command module, no settings or spec (pydantic,
# pydantic-settings, YAML), no library of HEAVY.
NOT_FOR_HELP = (
    *HEAVY,
    "mlprod.settings",
    "mlprod.spec",
    "pydantic_settings",
    "yaml",
    *(f"mlprod.cli.{name}" for name in ("_models", "_monitor", "_project", "_deploy")),
)
HELP = "from mlprod.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"


def test_help_imports_no_command_module_and_no_heavy_library() -> None:
    assert heavy_after(HELP, NOT_FOR_HELP) == []
    # The sibling: running a command imports its module, the store and the settings.
    code = HELP.replace("'--help'", "'models', 'list'")
    loaded = set(heavy_after(code, NOT_FOR_HELP))
    assert {"mlprod.cli._models", "mlprod.settings", "pydantic_settings", "sqlalchemy"} <= loaded


def test_the_probe_sees_what_a_store_command_imports_when_it_runs() -> None:
    # The sibling: a command that reads the store imports it in its body, and then the
    # probe does see SQLAlchemy.
    assert heavy_after("import mlprod.cli\nimport mlprod.store") == ["sqlalchemy"]


def test_training_imports_redis_only_when_a_data_cache_is_used() -> None:
    """`mlprod train` without MLPROD_CACHE never talks to Redis, so it does not import it."""
    assert "redis" not in heavy_after("import mlprod.pipelines._train")
    # The sibling: once a cache reports an error, the client library is there.
    assert "redis" in heavy_after("from mlprod.data._cache import _redis_error\n_redis_error()")


def test_models_show_reads_the_remembered_path_without_loading_the_model(
    trained_project: Project, tmp_path: Path
) -> None:
    """The first `models show` checks the fast path and remembers it; the next only reads.

    A private cache folder keeps other tests' loads of the shared project out of it.
    """
    env = {**trained_project.env(), "MLPROD_COMPILED": str(tmp_path / "cache")}
    first = json.loads(
        run_cli(trained_project, "models", "show", "churn", "--json", env=env).stdout
    )
    assert len(list((tmp_path / "cache").glob("path-*.json"))) == 1
    code = (
        "import os, sys\n"
        f"os.environ.update({env!r})\n"
        "from mlprod.cli import app\n"
        "sys.argv = ['mlprod', 'models', 'show', 'churn', '--json']\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
    )
    assert set(heavy_after(code)) <= {"sqlalchemy", "alembic"}
    again = json.loads(
        run_cli(trained_project, "models", "show", "churn", "--json", env=env).stdout
    )
    version, remembered = first["versions"][0], again["versions"][0]
    assert version["serving_path"] == remembered["serving_path"] == "fast"
    assert version["serving_path_reason"] == remembered["serving_path_reason"]
    assert "matches the reference path" in remembered["serving_path_reason"]


def test_a_remembered_verdict_never_hides_a_damaged_bundle(
    trained_project: Project, tmp_path: Path
) -> None:
    """The files are checked against the store's hashes on every `models show`."""
    import shutil

    project = Project(tmp_path / "copy")
    shutil.copytree(trained_project.root, project.root)
    env = {**project.env(), "MLPROD_COMPILED": str(tmp_path / "cache")}
    first = json.loads(run_cli(project, "models", "show", "churn", "--json", env=env).stdout)
    assert first["versions"][0]["serving_path"] == "fast"
    bundle = next(p for p in (project.root / ".mlprod").rglob("manifest.json")).parent
    test_data = bundle / "test.parquet"
    test_data.write_bytes(test_data.read_bytes()[:-10])
    again = json.loads(run_cli(project, "models", "show", "churn", "--json", env=env).stdout)
    shown = again["versions"][0]
    assert shown["serving_path"] == "unavailable"
    assert "test.parquet" in shown["serving_path_reason"]


POSTGRESQL = ("sqlalchemy.dialects.postgresql",)


def test_a_sqlite_store_loads_no_postgresql_dialect(tmp_path: Path) -> None:
    """Reading and writing a SQLite store never imports SQLAlchemy's PostgreSQL dialects.

    Importing them loads every PostgreSQL driver's dialect, a cost `mlprod models show`
    and `mlprod monitor` would pay for nothing.
    """
    from mlprod.store import Store

    url = f"sqlite:///{tmp_path / 'mlprod.db'}"
    Store.open(url).close()  # migrated here: Alembic's PostgreSQL support is its own affair
    code = (
        "from mlprod.store import Store\n"
        "from mlprod.registry import create_run, list_models\n"
        f"with Store.open({url!r}) as store:\n"
        "    create_run(store, 'churn', user='a', spec={}, git_commit=None, library_versions={})\n"
        "    assert list_models(store) == ['churn']\n"
    )
    assert heavy_after(code, POSTGRESQL) == []
    # The sibling: a PostgreSQL store does load them, and the probe sees it.
    code = "from mlprod.store import Store\nStore.open_later('postgresql+psycopg://127.0.0.1/test')"
    assert heavy_after(code, POSTGRESQL) == list(POSTGRESQL)


def test_a_report_loads_evaluation_only_to_value_labelled_rows() -> None:
    """`mlprod monitor` imports the report's code without the evaluation package."""
    assert heavy_after("from mlprod.monitoring import monitor_model", ("mlprod.evaluation",)) == []
    # The sibling: valuing labelled rows (a spec with a value matrix) does load it.
    code = (
        "from mlprod.monitoring._value import live_value\n"
        "assert live_value({'tp': 1, 'fp': 1}, {'tp': 10.0, 'fp': -1.0})['value'] == 9.0"
    )
    assert heavy_after(code, ("mlprod.evaluation",)) == ["mlprod.evaluation"]


def _blas_after(argv: list[str], **settings: str) -> dict[str, object]:
    """The OpenBLAS setting and numpy's thread count after `main(argv)`, in a fresh process
    whose environment sets no thread count but `settings`."""
    import os

    probe = (
        "import json, os\nfrom mlprod.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "import numpy\nfrom threadpoolctl import threadpool_info\n"
        "pools = [p['num_threads'] for p in threadpool_info() if p['internal_api'] == 'openblas']\n"
        "print(json.dumps({'env': os.environ.get('OPENBLAS_NUM_THREADS'), 'pools': pools}))"
    )
    names = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if k not in names} | settings
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env
    )
    found: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_reading_commands_load_numpy_with_one_blas_thread() -> None:
    """OpenBLAS's idle threads spin at load: 0.09 s of CPU `mlprod monitor` has no use for."""
    from mlprod.cli import COMMANDS, FITS_NOTHING

    # Every command that fits or scores in bulk, named: adding one to FITS_NOTHING fails.
    assert set(COMMANDS) - FITS_NOTHING == {
        "train", "tune", "quickstart", "serve", "predict", "scheduler", "retrain",
        "runs", "data", "features", "jobs",
    }  # fmt: skip
    reading = _blas_after(["monitor", "--help"])
    assert reading["env"] == "1"
    assert reading["pools"] in ([1], [])  # [] where numpy is built on another BLAS
    # The siblings: commands that fit models keep the thread per core, subcommands too;
    # and a thread count the user set, in any variable OpenBLAS reads, stands.
    for fits in (["train", "--help"], ["runs", "rerun", "--help"], ["jobs", "run", "--help"]):
        assert _blas_after(fits)["env"] is None, fits
    assert _blas_after(["monitor", "--help"], OMP_NUM_THREADS="2")["env"] is None
    assert _blas_after(["monitor", "--help"], OPENBLAS_NUM_THREADS="2")["env"] == "2"
