"""Trials, curves and run search in the registry, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mlprod.errors import NotFoundError, SpecError
from mlprod.registry import (
    create_run,
    finish_run,
    list_trials,
    read_curves,
    record_curves,
    record_trials,
    search_runs,
)
from mlprod.store import Store


def _run(store: Store, model: str, auc: float | None, winner: str, user: str = "ana") -> str:
    run_id = create_run(store, model, user=user, spec={"seed": 1}, git_commit=None,
                              library_versions={})  # fmt: skip
    metrics = (
        {} if auc is None else {"roc_auc": {"value": auc, "low": auc - 0.02, "high": auc + 0.02}}
    )
    finish_run(store, run_id, status="finished", params={"model": winner, "num_leaves": 31},
                     metrics=metrics)  # fmt: skip
    return run_id


def test_trials_and_curves_round_trip(store_url: str) -> None:
    with Store.open(store_url) as store:
        run_id = _run(store, "churn", 0.8, "lightgbm")
        started = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
        rows = [
            {"candidate": "lightgbm", "number": n, "state": s, "value": v,
             "params": {"num_leaves": 8 * (n + 1)}, "fold_scores": [v or 0.5, 0.7],
             "best_iteration": 40 + n, "error": None, "retry_of": 1 if n == 2 else None,
             "started_at": started, "finished_at": started + timedelta(seconds=2), "seconds": 2.0}
            for n, s, v in [(0, "complete", 0.81), (1, "fail", None), (2, "complete", 0.83)]
        ]  # fmt: skip
        assert record_trials(store, run_id, rows) == 3
        assert record_trials(store, run_id, rows) == 3  # replaces, never doubles
        trials = list_trials(store, run_id[:8])
        assert [(t.number, t.state, t.value) for t in trials] == [
            (0, "complete", 0.81), (1, "fail", None), (2, "complete", 0.83),
        ]  # fmt: skip
        assert trials[2].retry_of == 1 and trials[2].best_iteration == 42
        assert trials[0].params == {"num_leaves": 8} and trials[0].started_at == started
        assert list_trials(store, run_id, candidate="logistic_regression") == []
        curve = {"x_label": "round", "x": [1, 2], "loss_name": "log_loss", "loss": [0.6, 0.5],
                 "metric_name": "roc_auc", "metric": [0.7, 0.8]}  # fmt: skip
        record_curves(store, run_id, {"lightgbm": curve})
        (read,) = read_curves(store, run_id)
        assert (read.candidate, read.x, read.loss, read.metric) == (
            "lightgbm",
            [1, 2],
            [0.6, 0.5],
            [0.7, 0.8],
        )
        with pytest.raises(NotFoundError):
            record_trials(store, "f" * 32, rows)


def test_search_filters_sorts_and_refuses_code(store_url: str) -> None:
    with Store.open(store_url) as store:
        a = _run(store, "churn", 0.90, "lightgbm")
        b = _run(store, "churn", 0.86, "logistic_regression", user="bob")
        c = _run(store, "churn", 0.80, "lightgbm")
        _run(store, "fraud", 0.95, "lightgbm")
        none = _run(store, "churn", None, "lightgbm")
        wanted = "roc_auc > 0.85 and params.model == 'lightgbm'"
        found = search_runs(store, model="churn", where=wanted, since="7d", sort="-roc_auc")
        assert [r.id for r in found] == [a]
        ranked = search_runs(store, model="churn", sort="roc_auc")
        assert [r.id for r in ranked] == [c, b, a, none]  # a run without the metric comes last
        assert [r.id for r in search_runs(store, user="bob")] == [b]
        assert {
            r.id
            for r in search_runs(store, where="metrics.roc_auc.low >= 0.84 and model != 'fraud'")
        } == {a, b}
        assert {
            r.id
            for r in search_runs(
                store, where="params.model in ['logistic_regression'] or roc_auc < 0.81"
            )
        } == {b, c}
        assert search_runs(store, since="2999-01-01") == []
        cases = {
            "__import__('os').system('true')": "is not a comparison",
            "roc_auc > 0.8 and open('x')": "is not a comparison",
            "roc_aux > 0.8": "unknown field 'roc_aux'",
            "roc_auc > params.model": "compare a field with a value",
            "roc_auc >": "is not a valid filter",
            "roc_auc > (1).__class__": "compare a field with a value",
            "roc_auc > 1 + 1": "is not allowed here",
            "model == x.y()": "is not allowed here",
            "[x for x in ()]": "is not a comparison",
        }
        for text, message in cases.items():
            with pytest.raises(SpecError, match=message):
                search_runs(store, where=text)
        with pytest.raises(SpecError, match="neither a duration"):
            search_runs(store, since="last tuesday")
