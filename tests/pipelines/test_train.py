"""mlprod.train end to end: spec in, registered and gated version out, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlprod
from mlprod.errors import DataError, GateFailedError, SpecError
from mlprod.pipelines import promote, train
from mlprod.registry import audit_log, get_run, get_version, list_runs, list_versions
from mlprod.store import Store
from support import SMALL_SPEC, Project, write_project


def test_train_registers_a_gated_version_with_its_evidence(trained_project: Project) -> None:
    with Store.open(f"sqlite:///{trained_project.store}/mlprod.db") as store:
        version = get_version(store, "churn", 1)
        run = get_run(store, version.run_id)
    assert version.gates_passed
    assert version.flavor in {"lightgbm", "sklearn"}
    assert [g["metric"] for g in version.gates] == ["roc_auc"]
    assert (
        version.metrics["roc_auc"]["low"]
        <= version.metrics["roc_auc"]["value"]
        <= version.metrics["roc_auc"]["high"]
    )
    assert 0.7 < version.metrics["roc_auc"]["value"] < 0.95
    assert {f["name"] for f in version.signature["fields"]} >= {
        "tenure_months",
        "plan",
        "signup_date",
    }
    assert "customer_id" not in {f["name"] for f in version.signature["fields"]}
    # the run records who, when, what, on which data
    assert run.status == "finished" and run.version == 1
    assert run.ended_at is not None and run.ended_at >= run.started_at
    assert run.fingerprint["rows"] == 3000
    assert (
        run.fingerprint["time_column"] == "event_time" and run.fingerprint["time_min"] is not None
    )
    assert len(run.fingerprint["sha256"]) == 64
    assert run.spec["split"]["gap"] == "3d"
    assert {c["name"] for c in run.candidates} == {"logistic_regression", "lightgbm"}
    assert run.params["model"] in {"logistic_regression", "lightgbm"}
    assert "scikit-learn" in run.library_versions and run.user


def test_loaded_model_scores_its_test_set_as_recorded(trained_project: Project) -> None:
    model = mlprod.load("churn@production", store=trained_project.store)
    X, y = model.test_data()
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    from sklearn.metrics import roc_auc_score

    recorded = json.loads((model.folder / "metrics.json").read_text())["roc_auc"]["value"]
    assert roc_auc_score(y, proba[:, 1]) == pytest.approx(recorded, abs=1e-12)
    assert set(model.predict(X).tolist()) <= {True, False}


def test_report_is_self_contained(trained_project: Project) -> None:
    model = mlprod.load("churn@1", store=trained_project.store)
    html = (model.folder / "report.html").read_text()
    assert "Plotly" in html and len(html) > 1_000_000  # the library itself is inlined
    assert not re.search(r"<(script|link)[^>]+(src|href)=[\"']?(https?:)?//", html)  # no CDN
    for chart in (
        "roc",
        "pr",
        "confusion",
        "calibration",
        "score_distribution",
        "feature_importance",
    ):
        assert chart in html


def test_time_split_never_trains_on_the_test_window(tmp_path: Path) -> None:
    """Leakage: every training row is older than the test window minus the gap."""
    project = write_project(tmp_path, rows=2000, spec=SMALL_SPEC.replace("gap: 3d", "gap: 30d"))
    run = train(project.spec, store=project.store)
    with Store.open(f"sqlite:///{project.store}/mlprod.db") as store:
        split = get_run(store, run.id).params["split"]
    times = pd.to_datetime(pd.read_csv(project.root / "customers.csv")["event_time"])
    test_start, train_end = pd.Timestamp(split["test_start"]), pd.Timestamp(split["train_end"])
    assert train_end < test_start - pd.Timedelta(days=30)
    assert split["train_rows"] + split["validation_rows"] == int(
        (times < test_start - pd.Timedelta(days=30)).sum()
    )
    assert split["test_rows"] == int((times >= test_start).sum())
    model = mlprod.load(f"churn@{run.version}", store=project.store)
    assert len(model.test_data()[0]) == split["test_rows"]


def test_cv_split_and_failed_gates_block_promotion(tmp_path: Path) -> None:
    spec = SMALL_SPEC.replace(
        "split: {method: time, test_size: 0.2, gap: 3d}", "split: {method: cv, folds: 3}"
    )
    spec = spec.replace(
        'roc_auc: ">= 0.7"', 'roc_auc: ">= 0.99"\n  recall: {threshold: ">= 0.2", bound: lower}'
    )
    project = write_project(tmp_path, rows=1500, spec=spec)
    run = train(project.spec, store=project.store)
    assert not run.gates_passed
    failed = {g.metric: g for g in run.gates}
    assert not failed["roc_auc"].passed and "0.99" in failed["roc_auc"].message
    with pytest.raises(GateFailedError, match="failed its gates"):
        promote("churn", run.version, store=project.store)
    with pytest.raises(SpecError, match="--reason"):
        promote("churn", run.version, store=project.store, force=True)
    entry = promote(
        "churn", run.version, store=project.store, force=True, reason="demo", actor="ann"
    )
    assert (entry.action, entry.actor, entry.reason, entry.to_version) == (
        "force-promote",
        "ann",
        "demo",
        1,
    )


@pytest.mark.postgres
def test_train_and_promote_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    project = write_project(tmp_path, rows=1500)
    first = train(project.spec, store=postgres_url)
    second = train(project.spec, store=postgres_url)
    assert (first.version, second.version) == (1, 2)
    promote("churn", 2, "production", store=postgres_url, actor="bob", reason="better")
    promote("churn", 1, "production", store=postgres_url, actor="bob", reason="rollback")
    with Store.open(postgres_url) as store:
        moves = audit_log(store, "churn")
    assert [(m.from_version, m.to_version) for m in moves] == [(2, 1), (None, 2)]
    assert mlprod.load("churn@production", store=postgres_url).version == 1


def test_bad_data_is_a_clear_error_and_recorded(tmp_path: Path) -> None:
    project = write_project(
        tmp_path, rows=500, spec=SMALL_SPEC.replace("target: churned", "target: churn")
    )
    with pytest.raises(DataError, match="churn"):
        train(project.spec, store=project.store)
    with Store.open(f"sqlite:///{project.store}/mlprod.db") as store:
        runs = list_runs(store, "churn")
        assert [r.status for r in runs] == ["failed"]
        assert "churn" in (runs[0].error or "")
        assert list_versions(store, "churn") == []
