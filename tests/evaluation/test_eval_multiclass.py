"""evaluate_multiclass(): scikit-learn parity, intervals, gates per class, charts, errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from mlprod.errors import SpecError, TrainingError
from mlprod.evaluation import (
    build_multiclass_charts,
    check_gates,
    evaluate_multiclass,
)
from mlprod.spec import ProjectSpec

CLASSES = ["cat", "dog", "fox", "owl"]


def scored(rng: np.random.Generator, n: int, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Labels 0..k-1 (the last class rare) and softmax probabilities with some signal."""
    share = np.array([*([1.0] * (k - 1)), 0.3])
    y = rng.choice(k, n, p=share / share.sum())
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.2
    proba = np.exp(logits)
    proba = np.round(proba / proba.sum(axis=1, keepdims=True), 2)  # ties, as real scores have
    return y, proba / proba.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("n", [40, 700])
def test_point_values_equal_sklearn(rng: np.random.Generator, n: int) -> None:
    y, proba = scored(rng, n)
    m = evaluate_multiclass(y, proba, CLASSES, n_boot=20)
    predicted = np.argmax(proba, axis=1)
    labels = list(range(4))
    assert m["accuracy"].value == pytest.approx(accuracy_score(y, predicted), abs=1e-12)
    for average in ("macro", "weighted"):
        expected = f1_score(y, predicted, labels=labels, average=average, zero_division=0)
        assert m[f"{average}_f1"].value == pytest.approx(expected, abs=1e-12)
    assert m["roc_auc"].value == pytest.approx(
        roc_auc_score(y, proba, multi_class="ovr", average="macro"), abs=1e-12
    )
    assert m["log_loss"].value == pytest.approx(log_loss(y, proba), abs=1e-9)
    precisions = precision_score(y, predicted, labels=labels, average=None, zero_division=0)
    recalls = recall_score(y, predicted, labels=labels, average=None, zero_division=0)
    for i, label in enumerate(CLASSES):
        assert m[f"precision[{label}]"].value == pytest.approx(precisions[i], abs=1e-12)
        assert m[f"recall[{label}]"].value == pytest.approx(recalls[i], abs=1e-12)


def test_intervals_use_the_binary_seed_and_cover_the_estimate(rng: np.random.Generator) -> None:
    y, proba = scored(rng, 1500)
    first = evaluate_multiclass(y, proba, CLASSES)
    again = evaluate_multiclass(y, proba, CLASSES)
    assert first == again  # one seed and resample count for every caller that gates
    for name, metric in first.items():
        assert metric.low <= metric.value <= metric.high, name
        assert metric.high - metric.low < 0.2, name
    # the rare class is measured on fewer rows: its recall is less sure than accuracy
    rare = first["recall[owl]"]
    assert rare.high - rare.low > first["accuracy"].high - first["accuracy"].low
    # another seed draws other resamples: same estimates, other interval ends
    other = evaluate_multiclass(y, proba, CLASSES, seed=1)
    assert other["accuracy"].value == first["accuracy"].value
    assert (other["accuracy"].low, other["accuracy"].high) != (
        first["accuracy"].low,
        first["accuracy"].high,
    )


def test_gates_per_class_and_macro_pass_and_fail_on_the_figures(
    rng: np.random.Generator,
) -> None:
    y, proba = scored(rng, 800)
    m = evaluate_multiclass(y, proba, CLASSES, n_boot=50)
    spec = ProjectSpec.model_validate(
        {
            "name": "pets",
            "data": {"source": "x.csv", "target": "kind"},
            "gates": {
                "recall[dog]": f">= {m['recall[dog]'].value - 0.01}",
                "precision[owl]": f">= {m['precision[owl]'].value + 0.01}",
                "macro_f1": {"threshold": f"> {m['macro_f1'].low - 0.01}", "bound": "lower"},
                "log_loss": "<= 0.1",
            },
        }
    )
    verdicts = {g.metric: g.passed for g in check_gates(m, spec.gates)}
    assert verdicts == {
        "recall[dog]": True,
        "precision[owl]": False,
        "macro_f1": True,
        "log_loss": False,
    }


def test_a_gate_on_a_class_the_target_lacks_names_the_classes(rng: np.random.Generator) -> None:
    y, proba = scored(rng, 200)
    m = evaluate_multiclass(y, proba, CLASSES, n_boot=10)
    spec = ProjectSpec.model_validate(
        {"name": "pets", "data": {"source": "x.csv", "target": "kind"},
         "gates": {"recall[fraud]": ">= 0.6"}}
    )  # fmt: skip
    with pytest.raises(SpecError, match=r"recall\[fraud\].*cat, dog, fox, owl"):
        check_gates(m, spec.gates)


def test_a_gate_name_that_is_no_metric_is_refused_by_the_spec() -> None:
    with pytest.raises(ValueError, match="recall\\[CLASS\\]"):
        ProjectSpec.model_validate(
            {"name": "pets", "data": {"source": "x.csv", "target": "kind"},
             "gates": {"recal[dog]": ">= 0.6"}}
        )  # fmt: skip


def test_charts_are_a_k_by_k_confusion_matrix_and_one_roc_curve_per_class(
    rng: np.random.Generator,
) -> None:
    y, proba = scored(rng, 300)
    charts = build_multiclass_charts(y, proba, CLASSES, {"a": 0.7, "b": 0.3})
    assert sorted(charts) == ["confusion", "feature_importance", "roc"]
    counts = np.array(charts["confusion"].data[0].z)
    assert counts.shape == (4, 4) and counts.sum() == 300
    assert counts.diagonal().sum() == int(np.count_nonzero(np.argmax(proba, axis=1) == y))
    assert counts.sum(axis=1).tolist() == np.bincount(y, minlength=4).tolist()
    curves = [trace.name for trace in charts["roc"].data]
    assert [name.split(" vs rest")[0] for name in curves[:4]] == CLASSES


@pytest.mark.parametrize(
    ("y", "proba", "words"),
    [
        (np.array([0, 1, 2]), np.full((3, 2), 0.5), "3 class probabilities"),
        (np.array([0, 1, 1]), np.full((3, 3), 1 / 3), "class(es) owl"),
        (np.array([0, 1, 5]), np.full((3, 3), 1 / 3), "coded 0..2"),
        (np.array([0, 1, 2]), np.array([[np.nan, 0.5, 0.5]] * 3), "probabilities in [0, 1]"),
    ],
)
def test_bad_inputs_are_clear_errors(y: np.ndarray, proba: np.ndarray, words: str) -> None:
    with pytest.raises(TrainingError, match=re.escape(words)):
        evaluate_multiclass(y, proba, ["cat", "dog", "owl"])
