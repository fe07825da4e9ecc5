"""The `mlp` candidate: the estimator contract, early stopping, seeding, telemetry, k classes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from mlprod.errors import SpecError
from mlprod.spec import CandidateSpec
from mlprod.training import make_estimator, search_space

pytest.importorskip("torch", reason="the mlp candidate needs pip install 'mlprod[torch]'")

SMALL = {"width": 16, "max_epochs": 12}


def _rows(rng: np.random.Generator, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(n, 5))
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(0, 0.5, n) > 0).astype(int)
    return X, y


def test_mlp_follows_the_estimator_contract_and_learns(rng: np.random.Generator) -> None:
    X, y = _rows(rng)
    model = make_estimator("mlp", SMALL, seed=3)
    assert model.get_params()["width"] == 16 and not hasattr(model, "network_")
    fitted = model.fit(X, y)
    assert fitted is model
    proba = model.predict_proba(X)
    assert proba.shape == (400, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert roc_auc_score(y, proba[:, 1]) > 0.85
    assert set(model.predict(X)) <= {0, 1}
    copy = clone(model)
    assert copy.get_params() == model.get_params() and not hasattr(copy, "network_")


def test_mlp_is_deterministic_for_a_seed(rng: np.random.Generator) -> None:
    X, y = _rows(rng)
    first = make_estimator("mlp", SMALL, seed=5).fit(X, y).predict_proba(X)
    second = make_estimator("mlp", SMALL, seed=5).fit(X, y).predict_proba(X)
    other = make_estimator("mlp", SMALL, seed=6).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)
    assert np.abs(first - other).max() > 1e-4


def test_mlp_stops_early_and_keeps_its_best_epoch(rng: np.random.Generator) -> None:
    X = rng.normal(size=(300, 4))
    y = rng.integers(0, 2, 300)  # noise: validation loss soon stops improving
    model = make_estimator(
        "mlp", {"width": 64, "max_epochs": 200, "patience": 3, "learning_rate": 0.01}, seed=1
    ).fit(X, y)
    epochs = [e.epoch for e in model.telemetry_]
    assert len(epochs) < 200
    assert len(epochs) == model.best_epoch_ + 3
    best = min(e.val_loss for e in model.telemetry_)
    assert model.telemetry_[model.best_epoch_ - 1].val_loss == best


def test_mlp_records_telemetry_per_epoch_and_calls_back(rng: np.random.Generator) -> None:
    X, y = _rows(rng)
    seen: list[int] = []
    model = make_estimator("mlp", {**SMALL, "depth": 2}, seed=0)
    model.fit(X, y, on_epoch=lambda curve: seen.append(len(curve["x"])))
    assert seen == list(range(1, len(model.telemetry_) + 1))
    curve = model.telemetry_curve()
    assert curve["x_label"] == "epoch" and curve["metric_name"] == "roc_auc"
    epoch = curve["telemetry"]["epochs"][-1]
    assert epoch["train_loss"] > 0 and epoch["val_loss"] > 0 and 0.5 < epoch["val_metric"] <= 1
    layers = epoch["layers"]
    assert [layer["name"] for layer in layers] == ["linear0", "linear1", "linear2"]
    for layer in layers:
        assert layer["activation_var"] > 0 and layer["gradient_var"] > 0
        assert 0 < layer["update_ratio"] < 1
    labels = [node["label"] for node in curve["telemetry"]["graph"]]
    assert labels[0] == "input" and labels.count("Linear") == 3 and labels[-1] == "sigmoid"
    assert curve["telemetry"]["device"] == "cpu"
    assert all(0 < e.telemetry_seconds < e.seconds for e in model.telemetry_)


def test_mlp_without_telemetry_records_losses_only(rng: np.random.Generator) -> None:
    X, y = _rows(rng)
    model = make_estimator("mlp", {**SMALL, "telemetry": False}, seed=0).fit(X, y)
    assert model.telemetry_ and all(e.layers == [] for e in model.telemetry_)
    assert all(e.telemetry_seconds == 0.0 for e in model.telemetry_)


def test_cuda_falls_back_to_the_cpu_when_no_gpu_is_present(rng: np.random.Generator) -> None:
    import torch

    X, y = _rows(rng, 200)
    model = make_estimator("mlp", {**SMALL, "device": "cuda"}, seed=0).fit(X, y)
    assert model.device_ == ("cuda:0" if torch.cuda.is_available() else "cpu")
    with pytest.raises(SpecError, match="device must be 'cpu' or 'cuda', got 'tpu'"):
        make_estimator("mlp", {**SMALL, "device": "tpu"}, seed=0).fit(X, y)


def test_mlp_has_a_default_search_space() -> None:
    space = search_space(CandidateSpec(type="mlp"))
    assert {"width", "depth", "learning_rate"} <= set(space)
    assert space["learning_rate"].log


def test_mlp_without_torch_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # what an install without torch sees
    monkeypatch.delitem(sys.modules, "mlprod.training._mlp", raising=False)
    with pytest.raises(SpecError, match=r"pip install 'mlprod\[torch\]'"):
        make_estimator("mlp", {}, seed=0)


def test_cross_validation_hands_each_folds_epochs_to_the_sink(rng: np.random.Generator) -> None:
    from mlprod.training import fit_cross_validated, tuning_folds

    X, y = _rows(rng, 300)
    seen: dict[str, int] = {}
    results = fit_cross_validated(
        [CandidateSpec(type="mlp", params={"width": 8, "max_epochs": 3})],
        X,
        y,
        tuning_folds(y, 2, 0),
        metric="roc_auc",
        seed=0,
        on_epoch=lambda name, curve: seen.__setitem__(name, len(curve["x"])),
    )
    assert results[0].error is None
    assert seen == {"mlp (fold 1/2)": 3, "mlp (fold 2/2)": 3}


def test_mlp_fits_k_classes_with_a_softmax_and_its_bundle_scores_the_same(
    rng: np.random.Generator, tmp_path: Path
) -> None:
    from mlprod.bundle import Model, write_bundle
    from mlprod.features import FeatureTransformer

    n = 900
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    score = frame["a"] + 0.5 * frame["b"] + rng.normal(0, 0.4, n)
    y = np.digitize(score, [-0.6, 0.6])  # three ordered classes, codes 0, 1, 2
    transformer = FeatureTransformer(kinds={"a": "numeric", "b": "numeric"}).fit(frame)
    X = transformer.transform(frame)
    model = make_estimator("mlp", {"width": 16, "max_epochs": 40}, seed=2).fit(X, y)
    assert model.architecture()["output"] == "softmax" and model.n_out_ == 3
    proba = model.predict_proba(X)
    assert proba.shape == (n, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert roc_auc_score(y, proba, multi_class="ovr") > 0.85
    assert model.predict(X).tolist() == np.argmax(proba, axis=1).tolist()
    assert model.telemetry_[-1].val_metric > np.bincount(y).max() / n  # accuracy beats priors
    folder = tmp_path / "bundle"
    folder.mkdir()
    write_bundle(
        folder,
        name="tiers",
        run_id="0" * 32,
        transformer=transformer,
        estimator=model,
        threshold=0.0,
        signature={"fields": [], "classes": ["low", "mid", "high"]},
        test_frame=frame,
        y_test=y,
        expected_scores=proba,
    )
    loaded = Model.open(folder)
    assert loaded.flavor == "mlp" and loaded.multiclass
    np.testing.assert_allclose(loaded.score(frame), proba, rtol=0, atol=1e-12)
