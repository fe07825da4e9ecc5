"""Training with the mlp and svm candidates, business value and the final fit, end to end;
and a network's curve stored epoch by epoch while it trains (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mlprod
from mlprod.pipelines import _final, train
from mlprod.registry import create_run, get_run, read_curves
from mlprod.store import Store
from mlprod.training import make_estimator
from support import SMALL_SPEC, write_project

pytest.importorskip("torch", reason="the mlp candidate needs pip install 'mlprod[torch]'")

SPEC = SMALL_SPEC.replace(
    "candidates: [logistic_regression, lightgbm]",
    """candidates:
  - {type: mlp, params: {width: 16, max_epochs: 15, patience: 4}}
  - {type: svm, params: {C: 1.0}}
value: {tp: 90, fp: -10, tn: 0, fn: -30, unit: EUR}
threshold: {policy: max_value}
training: {final_fit: train+validation}""",
)


def test_mlp_and_svm_train_with_value_telemetry_and_a_final_fit(tmp_path: Path) -> None:
    project = write_project(tmp_path, rows=800, spec=SPEC)
    run = train(project.spec, store=project.store)
    names = [c["name"] for c in run.candidates]
    assert names == ["mlp", "svm"] and all(c["error"] is None for c in run.candidates)

    model = mlprod.load(f"churn@{run.version}", store=project.store)
    frame, y = model.test_data()
    flagged = model.score(frame) >= run.threshold
    by_hand = (
        90 * np.sum(flagged & (y == 1))
        - 10 * np.sum(flagged & (y == 0))
        - 30 * np.sum(~flagged & (y == 1))
    )
    value = run.metrics["value"]
    assert value.value == pytest.approx(float(by_hand))
    assert value.low <= value.value <= value.high

    with Store.open(f"sqlite:///{project.store}/mlprod.db") as store:
        record = get_run(store, run.id)
        curves = {c.candidate: c for c in read_curves(store, run.id)}
    effect = record.params["final_fit"]
    assert set(effect["roc_auc"]) == {"train", "train+validation"}
    assert effect["value"]["train+validation"] == pytest.approx(value.value, rel=1e-6)
    assert effect["roc_auc"]["train"] != effect["roc_auc"]["train+validation"]  # refitted

    mlp = curves["mlp"]
    assert mlp.x_label == "epoch" and mlp.telemetry is not None
    assert len(mlp.telemetry["epochs"]) == len(mlp.x) >= 1
    assert mlp.telemetry["epochs"][0]["layers"][0]["update_ratio"] > 0

    assert run.report is not None
    html = run.report.read_text(encoding="utf-8")
    for shown in ("network graph", "update-to-weight ratio", "final fit", "business value"):
        assert shown in html


def test_a_network_curve_is_stored_after_its_epochs_while_training(
    store: Store, monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator
) -> None:
    monkeypatch.setattr(_final, "LIVE_EVERY", 0.0)
    run_id = create_run(store, "churn", user="ana", spec={}, git_commit=None, library_versions={})
    write = _final.live_curves(store, run_id)
    seen: list[int] = []

    def on_epoch(name: str, curve: dict[str, object]) -> None:
        write(name, curve)
        stored = read_curves(store, run_id)  # what a dashboard polling the run reads now
        seen.append(len(stored[0].x))

    X = rng.normal(size=(300, 4))
    y = (X[:, 0] > 0).astype(int)
    model = make_estimator("mlp", {"width": 8, "max_epochs": 6}, seed=0)
    model.fit(X, y, on_epoch=lambda curve: on_epoch("mlp", curve))
    assert seen == list(range(1, len(model.telemetry_) + 1))
    stored = read_curves(store, run_id)[0]
    assert stored.candidate == "mlp" and stored.telemetry is not None
    assert stored.telemetry["epochs"][-1]["val_loss"] == pytest.approx(
        model.telemetry_[-1].val_loss, rel=1e-5
    )
