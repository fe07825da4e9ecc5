"""What a new user hits first: exit codes, the positive class, ids, brackets, empty folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pandas as pd
import pytest

import mlprod
from mlprod.evaluation import evaluate
from mlprod.predlog import insert_entries, prediction_entry
from mlprod.registry import get_version
from mlprod.store import Store
from mlprod.testing import run_gate_suite
from support import SMALL_SPEC, Project, write_project
from support import run_cli as cli

EXIT_GATES_FAILED = 4


def _bare_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLPROD_")}
    return env | {"NO_COLOR": "1", "COLUMNS": "200"}


def _mlprod(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mlprod", *args]
    return subprocess.run(
        command, cwd=cwd, env=_bare_env(), capture_output=True, text=True, timeout=300
    )


def test_gates_write_junit_without_pytest_installed(
    trained_project: Project, tmp_path: Path
) -> None:
    """The README's first command installs no pytest; `mlprod gates --junit` still works."""
    junit = tmp_path / "gates.xml"
    blocked = (
        "import sys; sys.modules['pytest'] = None; sys.modules['_pytest'] = None; "
        "from mlprod.cli import main; main(sys.argv[1:])"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocked, "gates", "churn@production", "--junit", str(junit)],
        cwd=trained_project.root,
        env=trained_project.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "PASSED churn@1 gate roc_auc >= 0.7 passed" in done.stdout
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "1" and suite.get("failures") == "0"
    (case,) = suite.findall("testcase")
    assert case.get("name") == "test_gate[roc_auc]" and case.find("failure") is None


def test_gate_intervals_are_the_same_in_training_and_in_ci(trained_project: Project) -> None:
    """Training (spec seed 42) and `mlprod gates` draw the same resamples: same interval."""
    model = mlprod.load("churn@1", store=trained_project.store)
    features, labels = model.test_data()
    again = evaluate(labels, model.score(features), model.threshold)
    with Store.from_settings(trained_project.settings()) as store:
        recorded = get_version(store, "churn", 1)
    for name, metric in again.items():
        stored = recorded.metrics[name]
        assert abs(metric.low - stored["low"]) < 1e-12, name
        assert abs(metric.high - stored["high"]) < 1e-12, name
    result = run_gate_suite("churn@1", settings=trained_project.settings(), quiet=True)
    assert [g["passed"] for g in result["gates"]] == [g["passed"] for g in recorded.gates]


@pytest.mark.slow
def test_train_exits_4_when_the_gates_fail_and_names_the_positive_class(tmp_path: Path) -> None:
    spec = SMALL_SPEC.replace('roc_auc: ">= 0.7"', 'roc_auc: ">= 0.999"').replace(
        "[logistic_regression, lightgbm]", "[logistic_regression]"
    )
    project = write_project(tmp_path, rows=800, spec=spec)
    done = cli(project, "train", check=False)
    assert done.returncode == EXIT_GATES_FAILED, done.stderr
    assert "positive class: churned = True" in done.stdout
    assert "gates failed: churn@1 is registered" in done.stderr
    shown = json.loads(cli(project, "models", "show", "churn", "--json").stdout)
    assert shown["versions"][0]["gates_passed"] is False
    assert (shown["versions"][0]["target"], shown["versions"][0]["positive"]) == ("churned", True)
    assert "positive class: churned = True" in cli(project, "models", "show", "churn").stdout
    gates = cli(project, "gates", "churn@1", check=False)
    assert gates.returncode == EXIT_GATES_FAILED and "FAILED churn@1" in gates.stdout


def test_init_names_the_positive_class_and_leaves_out_row_numbers(tmp_path: Path) -> None:
    project = write_project(tmp_path, rows=300)
    (project.root / "mlprod.yaml").unlink()
    frame = pd.read_csv(project.root / "customers.csv")
    frame.insert(0, "rownames", range(1, len(frame) + 1))  # as R's write.csv leaves it
    frame["churned"] = frame["churned"].map({True: "Yes", False: "No"})
    frame.to_csv(project.root / "customers.csv", index=False)
    done = _mlprod(project.root, "init", "--data", "customers.csv", "--target", "churned")
    assert done.returncode == 0, done.stderr
    assert "positive class: churned = 'Yes'" in done.stdout
    assert "left out as row identifiers, not features: rownames, customer_id" in done.stdout
    text = (project.root / "mlprod.yaml").read_text()
    assert "positive: 'Yes'" in text
    features = text.split("features:")[1].split("split:")[0]
    assert "rownames" not in features and "- tenure_months" in features


def test_messages_keep_their_square_brackets(trained_project: Project) -> None:
    done = cli(trained_project, "runs", "show", "[red]abc[/red]", check=False)
    assert done.returncode == 1
    assert "[red]abc[/red]" in done.stderr and "Traceback" not in done.stderr


def test_read_only_commands_outside_a_project_leave_no_store(tmp_path: Path) -> None:
    for args in (("models", "list"), ("runs", "list"), ("monitor", "churn")):
        done = _mlprod(tmp_path, *args)
        assert done.returncode == 1, (args, done.stderr)
        assert "no mlprod store at" in done.stderr and "--store" in done.stderr
        assert "Traceback" not in done.stderr
        assert not (tmp_path / ".mlprod").exists(), args
    # a command that writes still creates the store where it is run
    created = _mlprod(tmp_path, "tokens", "create", "ci", "--scope", "predict")
    assert created.returncode == 0, created.stderr
    assert (tmp_path / ".mlprod" / "mlprod.db").is_file()


def test_predictions_export_keeps_labels_as_values(store_url: str, tmp_path: Path) -> None:
    """A label "Yes" is exported as Yes, not as the JSON text '"Yes"' (SQLite and PostgreSQL)."""
    with Store.open(store_url) as store:
        answers = [
            {"id": "p-yes", "version": 1, "score": 0.9, "label": "Yes"},
            {"id": "p-no", "version": 1, "score": 0.1, "label": "No"},
        ]
        entry = prediction_entry(
            "churn", [{"a": 1}, {"a": 2}], answers, at=datetime.now(UTC), latency_ms=1.0
        )
        assert insert_entries(store, [orjson.dumps(entry)]) == 2
    project = Project(tmp_path, store=store_url)
    for name in ("log.parquet", "log.csv"):
        cli(project, "predictions", "export", "churn", "--output", str(tmp_path / name))
    parquet = pd.read_parquet(tmp_path / "log.parquet").set_index("id")
    csv = pd.read_csv(tmp_path / "log.csv").set_index("id")
    for frame in (parquet, csv):
        assert frame.loc["p-yes", "label"] == "Yes" and frame.loc["p-no", "label"] == "No"
        assert json.loads(frame.loc["p-yes", "record"]) == {"a": 1}
