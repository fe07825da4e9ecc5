"""Tuned runs end to end: records, reports, leakage, ensembles, selection, re-runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlprod
from mlprod.pipelines import compare_runs, profile_data, rank_spec_features, rerun, train
from mlprod.registry import get_run, list_trials, read_curves
from mlprod.store import Store
from support import SMALL_SPEC, Project, write_project

TUNED = SMALL_SPEC.replace(
    "candidates: [logistic_regression, lightgbm]",
    """candidates:
  - logistic_regression
  - {type: lightgbm, search: {num_leaves: [4, 32, log], learning_rate: [0.03, 0.3, log]}}
tuning: {trials: 5, folds: 3}""",
)


def _store(project: Project) -> Store:
    return Store.open(f"sqlite:///{project.store}/mlprod.db")


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, mlprod.TrainedRun]:
    project = write_project(tmp_path_factory.mktemp("tuned"), rows=2500, spec=TUNED)
    return project, train(project.spec, store=project.store)


def test_tuned_run_stores_trials_curves_and_draws_them(
    tuned: tuple[Project, mlprod.TrainedRun],
) -> None:
    project, run = tuned
    with _store(project) as store:
        trials = list_trials(store, run.id)
        curves = {c.candidate: c for c in read_curves(store, run.id)}
        record = get_run(store, run.id)
    by_candidate = {name: [t for t in trials if t.candidate == name]
                    for name in ("logistic_regression", "lightgbm")}  # fmt: skip
    assert [len(v) for v in by_candidate.values()] == [5, 5]
    for t in trials:
        assert t.state in {"complete", "pruned"} and t.fold_scores and t.seconds is not None
    lgbm = [t for t in by_candidate["lightgbm"] if t.state == "complete"]
    assert all(4 <= t.params["num_leaves"] <= 32 and t.best_iteration for t in lgbm)
    summary = next(c for c in record.candidates if c["name"] == "lightgbm")
    best = max(lgbm, key=lambda t: t.value or 0)
    assert summary["best_value"] == pytest.approx(best.value)
    assert summary["best_params"]["num_leaves"] == best.params["num_leaves"]
    assert summary["best_params"]["n_estimators"] == best.best_iteration  # early stopping
    assert summary["search"]["learning_rate"] == [0.03, 0.3, "log"]
    assert set(curves) == {"lightgbm"} and curves["lightgbm"].x[-1] == best.best_iteration
    html = run.report.read_text(encoding="utf-8") if run.report else ""
    for chart in ("optimisation_history", "param_importance", "training_curves",
                  "candidate_comparison"):  # fmt: skip
        assert f'id="chart-{chart}"' in html


def test_tuning_never_sees_the_test_set(
    tuned: tuple[Project, mlprod.TrainedRun], tmp_path: Path
) -> None:
    """Scramble every test-window row: the trials come out identical, to the last digit."""
    project, run = tuned
    df = pd.read_csv(project.root / "customers.csv")
    with _store(project) as store:
        split = get_run(store, run.id).params["split"]
        before = [(t.candidate, t.params, t.fold_scores) for t in list_trials(store, run.id)]
    test_rows = pd.to_datetime(df["event_time"]) >= pd.Timestamp(split["test_start"])
    assert test_rows.sum() == split["test_rows"]
    rng = np.random.default_rng(0)
    for column in ("tenure_months", "monthly_charges", "support_calls"):
        df.loc[test_rows, column] = rng.permutation(df.loc[test_rows, column].to_numpy())
    df.loc[test_rows, "churned"] = ~df.loc[test_rows, "churned"]
    other = write_project(tmp_path, rows=10, spec=TUNED)
    df.to_csv(other.root / "customers.csv", index=False)
    again = train(other.spec, store=other.store)
    with _store(other) as store:
        after = [(t.candidate, t.params, t.fold_scores) for t in list_trials(store, again.id)]
    assert after == before
    assert again.metrics["roc_auc"].value != run.metrics["roc_auc"].value  # the test set did change


def test_rerun_reproduces_the_parent_and_changes_apply(
    tuned: tuple[Project, mlprod.TrainedRun],
) -> None:
    project, run = tuned
    child = rerun(run.id[:10], store=project.store)
    assert {k: v.value for k, v in child.metrics.items()} == {
        k: v.value for k, v in run.metrics.items()
    }
    assert child.winner == run.winner and child.threshold == run.threshold
    changed = rerun(run.id, ["tuning.trials=2", "split.gap=10d"], store=project.store)
    with _store(project) as store:
        record = get_run(store, changed.id)
        assert record.parent_run_id == run.id
        assert get_run(store, child.id).parent_run_id == run.id
        assert record.spec["tuning"]["trials"] == 2 and record.spec["split"]["gap"] == "10d"
        assert len(list_trials(store, changed.id)) == 4
    diff = compare_runs(run.id, changed.id, store=project.store)
    keys = {row["key"] for row in diff["config"]}
    assert {"spec.tuning.trials", "spec.split.gap"} <= keys
    same = compare_runs(run.id, child.id, store=project.store)
    assert same["config"] == [] or {r["key"] for r in same["config"]} <= {"params.split.test_start"}
    auc = next(r for r in same["metrics"] if r["metric"] == "roc_auc")
    assert auc["paired"] is True and auc["delta"] == 0.0 and auc["low"] == auc["high"] == 0.0


def test_ensemble_and_selection_travel_in_the_bundle(tmp_path: Path) -> None:
    spec = SMALL_SPEC.replace(
        "candidates: [logistic_regression, lightgbm]",
        "candidates: [logistic_regression, lightgbm, {type: lightgbm, params: {num_leaves: 4}}]\n"
        "ensemble: {method: voting, top: 2}\nselection: {method: importance, k: 10}",
    )
    project = write_project(tmp_path, rows=2500, spec=spec)
    run = train(project.spec, store=project.store)
    names = [c["name"] for c in run.candidates]
    assert any(name.startswith("voting(") for name in names)
    ensemble = next(c for c in run.candidates if c["type"] == "ensemble")
    singles = [c["validation_score"] for c in run.candidates if c["type"] != "ensemble"]
    kept = run.winner == ensemble["name"]
    assert kept == (ensemble["validation_score"] > max(singles))  # kept only if it beats them
    model = mlprod.load(f"churn@{run.version}", store=project.store)
    X, y = model.test_data()
    assert model.transformer.transform(X).shape[1] == 10  # the selection step travels along
    recorded = model.manifest
    assert recorded.flavor == ("ensemble" if kept else recorded.flavor)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, model.score(X)) == pytest.approx(
        run.metrics["roc_auc"].value, abs=1e-12
    )


def test_profile_flags_ids_and_leaks_and_ranking_finds_the_signal(tmp_path: Path) -> None:
    project = write_project(tmp_path, rows=2000)
    df = pd.read_csv(project.root / "customers.csv")
    df["refund_issued"] = df["churned"].astype(int)  # known only after churn: a leak
    df.to_csv(project.root / "customers.csv", index=False)
    profile = profile_data(project.root / "customers.csv", target="churned",
                           output=tmp_path / "profile.html")  # fmt: skip
    flags = {s["column"]: s["flags"] for s in profile["suspects"]}
    assert flags == {"customer_id": ["looks like an id"], "refund_issued": ["possible leak"]}
    tenure = next(c for c in profile["columns"] if c["column"] == "tenure_months")
    bins = [r for r in tenure["target_rate"] if r["group"] != "(missing)"]
    assert tenure["kind"] == "numeric" and len(bins) == 10
    assert sum(r["rows"] for r in tenure["target_rate"]) == 2000
    rates = [r["rate"] for r in bins]
    assert rates[0] > rates[-1]  # new customers churn more than old ones
    html = (tmp_path / "profile.html").read_text(encoding="utf-8")
    assert "refund_issued" in html and 'id="chart-correlations"' in html and "Plotly" in html
    df = df.drop(columns="refund_issued").assign(noise=np.random.default_rng(1).normal(size=2000))
    df.to_csv(project.root / "customers.csv", index=False)
    spec = project.spec.read_text().replace("last_login_days]", "last_login_days, noise]")
    project.spec.write_text(spec, encoding="utf-8")
    ranks = rank_spec_features(project.spec)
    order = [r["column"] for r in ranks]
    assert "tenure_months" in order[:3] and order.index("noise") >= len(order) // 2
    assert [r["rank"] for r in ranks] == list(range(1, len(ranks) + 1))
    assert {"mutual_info", "tree_importance", "permutation_importance"} <= set(ranks[0])
