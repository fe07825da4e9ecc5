"""The CLI as a user runs it: subprocesses, exit codes, what they print."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

import mlprod
from mlprod.features import json_safe
from mlprod.registry import list_runs, list_versions
from support import Project, Server, write_project
from support import run_cli as cli


def test_models_show_and_runs_print_one_json_document(trained_project: Project) -> None:
    shown = json.loads(cli(trained_project, "models", "show", "churn", "--json").stdout)
    assert shown["aliases"] == {"production": 1}
    assert shown["versions"][0]["gates_passed"] is True
    assert shown["versions"][0]["metrics"]["roc_auc"]["value"] > 0.7
    listed = json.loads(cli(trained_project, "models", "list", "--json").stdout)
    assert listed["models"][0]["name"] == "churn"
    runs = json.loads(cli(trained_project, "runs", "list", "--json").stdout)["runs"]
    assert runs[0]["status"] == "finished"
    run = json.loads(cli(trained_project, "runs", "show", runs[0]["id"][:8], "--json").stdout)
    assert run["id"] == runs[0]["id"] and run["fingerprint"]["rows"] == 3000
    table = cli(trained_project, "models", "show", "churn").stdout
    assert "churn" in table and "passed" in table


def test_gates_write_a_junit_report(trained_project: Project, tmp_path: Path) -> None:
    junit = tmp_path / "gates.xml"
    done = cli(trained_project, "gates", "churn@1", "--junit", str(junit), "--json")
    result = json.loads(done.stdout)
    assert result["passed"] is True and result["version"] == 1
    assert [g["metric"] for g in result["gates"]] == ["roc_auc"]
    suite = ET.parse(junit).getroot()
    cases = suite.findall(".//testcase")
    assert len(cases) == 1 and "roc_auc" in cases[0].get("name", "")
    assert suite.find(".//failure") is None


def test_batch_rest_and_library_give_the_same_scores(
    trained_project: Project, server: Server, tmp_path: Path
) -> None:
    """Parity: mlprod.load, mlprod predict and the REST answer agree."""
    rows = pd.read_csv(trained_project.root / "customers.csv").drop(columns=["churned"]).head(200)
    rows.to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "scored.parquet"
    cli(
        trained_project,
        "predict",
        "churn@production",
        "--input",
        str(tmp_path / "new.csv"),
        "--output",
        str(out),
    )
    batch = pd.read_parquet(out)
    assert len(batch) == 200 and set(batch["version"]) == {1} and set(batch["model"]) == {"churn"}
    assert batch["scored_at"].notna().all()
    library = mlprod.load("churn@production", store=trained_project.store).score(
        pd.read_csv(tmp_path / "new.csv")
    )
    records = [{k: json_safe(v) for k, v in r.items()} for r in rows.to_dict("records")]
    rest = httpx.post(server.url + "/v1/models/churn/predict", json={"records": records}).json()
    np.testing.assert_allclose(batch["score"].to_numpy(), library, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        [p["score"] for p in rest["predictions"]], library, rtol=0, atol=1e-12
    )


def test_init_writes_a_spec_that_trains(tmp_path: Path) -> None:
    project = write_project(tmp_path, rows=800)
    (project.root / "mlprod.yaml").unlink()
    cli(project, "init", "--data", "customers.csv", "--target", "churned")
    text = (project.root / "mlprod.yaml").read_text()
    assert "name: customers" in text and "- plan" in text and "- tenure_months" in text
    assert (
        "customer_id" not in text.split("features:")[1].split("split:")[0]
    )  # an id is not a feature
    again = cli(project, "init", "--data", "customers.csv", "--target", "churned", check=False)
    assert again.returncode == 1 and "--overwrite" in again.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("promote", "churn", "7"), "versions"),
        (("models", "show", "nothing"), "nothing"),
        (("predict", "churn@staging", "--input", "x.csv", "--output", "y.parquet"), "staging"),
        (("runs", "show", "zzzzzzzz"), "zzzzzzzz"),
        (("train", "missing.yaml"), "mlprod init"),
    ],
)
def test_user_mistakes_exit_1_with_a_message_not_a_traceback(
    trained_project: Project, args: tuple[str, ...], message: str
) -> None:
    done = cli(trained_project, *args, check=False)
    assert done.returncode == 1
    assert message in done.stderr and "Traceback" not in done.stderr


def test_two_trainings_at_once_get_distinct_versions(tmp_path: Path) -> None:
    project = write_project(tmp_path, rows=1200)
    command = [sys.executable, "-m", "mlprod", "train", "--json"]
    procs = [
        subprocess.Popen(
            command,
            cwd=project.root,
            env=project.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outputs]
    assert sorted(json.loads(o[0])["version"] for o in outputs) == [1, 2]


def test_a_killed_training_leaves_no_version(tmp_path: Path) -> None:
    import time

    from mlprod.store import Store

    project = write_project(tmp_path, rows=20_000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlprod", "train"],
        cwd=project.root,
        env=project.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"sqlite:///{project.store}/mlprod.db"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if Path(project.store, "mlprod.db").exists():
            with Store.open(url) as store:
                if list_runs(store, "churn"):
                    break
        time.sleep(0.1)
    time.sleep(1.0)  # well inside fitting
    proc.kill()
    proc.wait()
    with Store.open(url) as store:
        assert list_versions(store, "churn") == []
        assert [r.status for r in list_runs(store, "churn")] == ["running"]
    leftovers = list(Path(project.store, "artifacts").glob("bundles/*"))
    assert leftovers == []
