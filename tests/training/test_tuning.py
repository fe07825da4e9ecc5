"""Tuning, ensembles, selection and curves on small real fits (no mocks)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

from mlprod.errors import SpecError
from mlprod.spec import CATALOGUE, CandidateSpec, EnsembleSpec, SelectionSpec, TuningSpec
from mlprod.training import (
    DEFAULT_SPACES,
    TuneTask,
    create_study,
    ensemble_holdout,
    fit_early_stopped,
    fit_holdout,
    fit_selection,
    learning_curve,
    make_estimator,
    run_worker,
    search_space,
    trial_rows,
    tuned_candidate,
    tuning_folds,
)


@pytest.fixture
def data(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(900, 8))
    logits = 2.0 * X[:, 0] - 1.5 * X[:, 1] + X[:, 0] * X[:, 2]
    y = (rng.random(900) < 1 / (1 + np.exp(-logits))).astype(int)
    return X, y


@pytest.mark.parametrize("kind", CATALOGUE)
def test_every_algorithm_has_a_default_space_that_builds(kind: str) -> None:
    space = search_space(CandidateSpec(type=kind))
    assert set(space) == set(DEFAULT_SPACES[kind]) and space
    fixed = next(iter(space))
    assert fixed not in search_space(CandidateSpec(type=kind, params={fixed: 1}))  # fixed wins


def test_search_typos_fail_before_any_trial() -> None:
    with pytest.raises(SpecError, match=r"candidates\[2\].search: unknown parameter.*num_leafs"):
        search_space(CandidateSpec(type="lightgbm", search={"num_leafs": [4, 8]}), 2)


def test_boosters_stop_early_on_a_slice_of_the_rows_they_are_given(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = data
    for kind in ("lightgbm", "xgboost", "hist_gbm"):
        key = "max_iter" if kind == "hist_gbm" else "n_estimators"
        model = make_estimator(kind, {key: 1000, "learning_rate": 0.3}, seed=0)
        _, kept = fit_early_stopped(kind, model, X, y, rounds=10, seed=0)
        assert kept is not None and 1 <= kept < 1000, kind
    _, none = fit_early_stopped(
        "logistic_regression", make_estimator("logistic_regression", {}, 0), X, y, 10, 0
    )
    assert none is None


def _task(X: np.ndarray, y: np.ndarray, settings: TuningSpec, candidate: CandidateSpec) -> TuneTask:
    return TuneTask("c", candidate, search_space(candidate), X, y,
                    tuning_folds(y, settings.folds, 0), settings, "roc_auc", 0)  # fmt: skip


def test_worker_runs_exactly_the_budget_and_prunes_hopeless_trials(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = data
    settings = TuningSpec(trials=12, folds=4, sampler="random")
    # Half of the learning rates cannot learn anything in 5 rounds: those trials are hopeless.
    candidate = CandidateSpec(
        type="lightgbm",
        params={"n_estimators": 5},
        search={"learning_rate": {"choices": [1e-6, 1e-6, 0.5]}, "num_leaves": [4, 16]},
    )
    task = _task(X, y, settings, candidate)
    storage = optuna.storages.InMemoryStorage()
    study = create_study(task, storage, "s", worker=0)
    outcome = run_worker(study, task)
    rows = trial_rows("c", study)
    states = [r["state"] for r in rows]
    assert len(rows) == 12 and outcome.ran == 12
    assert "pruned" in states
    for row in rows:
        expected = 4 if row["state"] == "complete" else None
        if expected:
            assert len(row["fold_scores"]) == 4
        else:
            assert 1 <= len(row["fold_scores"]) < 4  # stopped before the last fold
    tuned, summary = tuned_candidate(task, study)
    assert tuned.params["learning_rate"] == 0.5
    assert 1 <= tuned.params["n_estimators"] <= 5  # early stopping within the fixed cap
    assert summary["best_value"] == max(r["value"] for r in rows if r["state"] == "complete")


def test_grid_sampler_stops_at_the_grid_size(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    settings = TuningSpec(trials=50, folds=2, sampler="grid", pruning=False)
    candidate = CandidateSpec(
        type="logistic_regression", search={"C": {"choices": [0.01, 1.0, 100.0]}}
    )
    task = _task(X, y, settings, candidate)
    study = create_study(task, optuna.storages.InMemoryStorage(), "g", worker=0)
    run_worker(study, task)
    assert task.budget == 3
    assert sorted(r["params"]["C"] for r in trial_rows("c", study)) == [0.01, 1.0, 100.0]


def test_ensemble_is_scored_on_validation_and_reported_by_members(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = data
    candidates = [CandidateSpec(type="logistic_regression"), CandidateSpec(type="lightgbm"),
                  CandidateSpec(type="random_forest")]  # fmt: skip
    results = fit_holdout(candidates, X[:600], y[:600], X[600:], y[600:], metric="roc_auc", seed=0)
    for method in ("voting", "stacking"):
        built = ensemble_holdout(EnsembleSpec(method=method, top=2), results, X[:600], y[:600],
                                 y[600:], metric="roc_auc", seed=0)  # fmt: skip
        assert built is not None and built.type == "ensemble"
        best_two = sorted(results, key=lambda r: -r.validation_score)[:2]
        assert built.params["members"] == [r.name for r in best_two]
        scores = built.estimator.predict_proba(X[600:])[:, 1]
        np.testing.assert_allclose(scores, built.validation_scores, atol=1e-12)
        if method == "voting":
            mean = np.mean([r.validation_scores for r in best_two], axis=0)
            np.testing.assert_allclose(built.validation_scores, mean, atol=1e-12)


@pytest.mark.parametrize("method", ["importance", "rfe", "pca", "kernel_pca"])
def test_selection_keeps_k_columns_fitted_on_training_rows(
    method: str, data: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = data
    names = [f"x{i}" for i in range(8)]
    chosen = fit_selection(SelectionSpec(method=method, k=3), X, y, names, str, seed=0)  # type: ignore[arg-type]
    assert chosen.step.transform(X).shape == (900, 3)
    if method in ("importance", "rfe"):
        assert {"x0", "x1"} <= set(chosen.names)  # the signal columns survive
    with pytest.raises(SpecError, match=r"selection\.k is 9, but the features give only 8"):
        fit_selection(SelectionSpec(method=method, k=9), X, y, names, str, seed=0)  # type: ignore[arg-type]


def test_learning_curves_follow_the_rounds(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    for kind in ("lightgbm", "xgboost", "hist_gbm", "random_forest"):
        model = make_estimator(kind, {}, seed=0).fit(X[:600], y[:600])
        curve = learning_curve(model, X[600:], y[600:], "roc_auc")
        assert curve is not None, kind
        assert curve["x"][0] == 1 and len(curve["x"]) == len(curve["loss"]) == len(curve["metric"])
        assert curve["metric"][-1] > 0.75 and min(curve["loss"]) < curve["loss"][0], kind
    assert (
        learning_curve(make_estimator("logistic_regression", {}, 0).fit(X, y), X, y, "roc_auc")
        is None
    )


@pytest.mark.parametrize("kind", ["lightgbm", "xgboost"])
def test_a_boosters_curve_read_in_one_pass_equals_asking_for_each_size(
    kind: str, data: tuple[np.ndarray, np.ndarray]
) -> None:
    """Summing each stretch of rounds gives what "the first i rounds" gives, point by point.

    The one-pass sums are checked directly (the curve itself would fall back to the slow
    way if they were wrong), then the curve's metrics against scikit-learn's.
    """
    from sklearn.metrics import log_loss, roc_auc_score

    from mlprod.training._curves import _lightgbm_staged, _xgboost_staged

    X, y = data
    model = make_estimator(kind, {"n_estimators": 80}, seed=0).fit(X[:600], y[:600])
    curve = learning_curve(model, X[600:], y[600:], "roc_auc")
    assert curve is not None and len(curve["x"]) == 60
    one_pass = (_lightgbm_staged if kind == "lightgbm" else _xgboost_staged)(
        model, X[600:], curve["x"]
    )
    for i, size in enumerate(curve["x"]):
        if kind == "lightgbm":
            proba = model.predict_proba(X[600:], num_iteration=size)[:, 1]
        else:
            proba = model.predict_proba(X[600:], iteration_range=(0, size))[:, 1]
        assert np.abs(one_pass[i] - proba).max() < 1e-5, size
        assert curve["metric"][i] == pytest.approx(roc_auc_score(y[600:], proba), abs=2e-6)
        assert curve["loss"][i] == pytest.approx(log_loss(y[600:], proba), abs=2e-6)


def test_a_trial_whose_worker_died_before_its_first_beat_is_retried(
    data: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    """Optuna alone would leave such a trial running forever; the budget must still close."""
    from mlprod.store import Store
    from mlprod.training._studies import study_storage

    X, y = data
    settings = TuningSpec(trials=3, folds=2, sampler="random", pruning=False)
    task = _task(X, y, settings, CandidateSpec(type="logistic_regression"))
    with (
        Store.open(f"sqlite:///{tmp_path / 'm.db'}") as store,
        study_storage(store, heartbeat=1) as storage,
    ):
        study = create_study(task, storage, "s", worker=0)
        with pytest.warns(UserWarning, match="Heartbeat"):
            orphan = study.ask()  # created, never beating: its worker "died" right away
        started = time.monotonic()
        run_worker(study, task, poll=0.2, wait_for_others=True)
        rows = trial_rows("c", study)
    assert time.monotonic() - started < 30
    states = {r["number"]: r["state"] for r in rows}
    assert states[orphan.number] == "fail"
    assert sum(s == "complete" for s in states.values()) == 3
    assert any(r["retry_of"] == orphan.number and r["state"] == "complete" for r in rows)


def test_a_worker_whose_trial_was_failed_under_it_carries_on(
    data: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    """A starved worker's trial can be failed as stale by another worker while it still
    runs; Optuna then refuses the late result, and the worker must not die of it."""
    import threading

    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    from mlprod.store import Store
    from mlprod.training._studies import study_storage

    X, y = data
    settings = TuningSpec(trials=3, folds=3, sampler="random", pruning=False)
    slow = CandidateSpec(type="random_forest", params={"n_estimators": 300, "n_jobs": 1})
    task = _task(X, y, settings, slow)
    with (
        Store.open(f"sqlite:///{tmp_path / 'm.db'}") as store,
        study_storage(store, heartbeat=1) as storage,
    ):
        study = create_study(task, storage, "s", worker=0)
        other = create_study(task, storage, "s", worker=1)  # the worker that fails it
        result: list[Any] = []

        def work() -> None:
            try:
                result.append(run_worker(study, task, poll=0.2))
            except Exception as exc:
                result.append(exc)

        worker = threading.Thread(target=work, daemon=True)  # a hang fails, never blocks
        worker.start()
        failed = None
        deadline = time.monotonic() + 120
        while failed is None and worker.is_alive() and time.monotonic() < deadline:
            for trial in other.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                try:
                    storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
                except UpdateFinishedTrialError:
                    continue  # it finished first: try the next one
                storage.get_heartbeat_stale_trial_callback()(
                    other, storage.get_trial(trial._trial_id)
                )
                failed = trial.number
                break
            time.sleep(0.01)
        worker.join(timeout=300)
        assert result, "the worker did not finish its budget"
        outcome = result[0]
        if isinstance(outcome, Exception):
            raise outcome
        rows = trial_rows("c", study)
    assert failed is not None, "every trial finished before it could be failed"
    assert outcome.overtaken == 1
    states = {r["number"]: r["state"] for r in rows}
    assert states[failed] == "fail" and sum(s == "complete" for s in states.values()) == 3
    assert any(r["retry_of"] == failed and r["state"] == "complete" for r in rows)
