"""What training does differently for a target with three or more classes.

The label is the most probable class, so there is no threshold to choose (the version
records 0.0 and nothing reads it); the test metrics are the multiclass ones, per class
and averaged; the monitoring reference describes the top class's probability. Features
that only make sense for two classes are refused before any fitting, by name.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlprod.errors import SpecError
from mlprod.evaluation import MULTICLASS_METRIC_NAMES, MetricValue, class_key, evaluate_multiclass
from mlprod.spec import GATE_METRICS, ProjectSpec

NO_THRESHOLD = 0.0  # recorded for a multiclass version; its label is the argmax


def is_multiclass(classes: list[Any]) -> bool:
    """Three or more classes: the project is multiclass."""
    return len(classes) > 2


def refuse_unsupported(spec: ProjectSpec, classes: list[Any]) -> None:
    """A SpecError naming the first spec setting this target cannot honour, before fitting.

    Gates are checked against the metrics the target's kind has and the classes it holds.
    """
    check_gate_names(spec, classes)
    if not is_multiclass(classes):
        return
    found = f"target {spec.data.target!r} has {len(classes)} classes"
    if spec.value is not None:
        raise SpecError(
            f"value: the tp/fp/tn/fn matrix needs a binary target ({found}); remove the "
            "value section from mlprod.yaml"
        )
    if spec.threshold.policy != "max_f1" or spec.threshold.value is not None:
        raise SpecError(
            f"threshold: a multiclass label is the most probable class, there is no "
            f"threshold to choose ({found}); remove the threshold section from mlprod.yaml"
        )


def multiclass_metrics(
    y: np.ndarray, proba: np.ndarray, classes: list[Any]
) -> dict[str, MetricValue]:
    """The held-out metrics of a multiclass model, each with its bootstrap interval."""
    return evaluate_multiclass(y, proba, classes)


def reference_scores(proba: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The top class's probability per row and whether that class was right (0/1).

    What the monitoring reference bins for a multiclass version: confidence and its
    calibration, where a binary version has P(positive) and the label.
    """
    top = np.argmax(proba, axis=1)
    return proba[np.arange(len(top)), top], (top == y).astype(int)


def check_gate_names(spec: ProjectSpec, classes: list[Any]) -> None:
    """Every gate names a metric this target gets; per-class gates a class it has."""
    labels = [str(c) for c in classes]
    if is_multiclass(classes):
        known = {*MULTICLASS_METRIC_NAMES}
        known |= {class_key(m, label) for m in ("precision", "recall") for label in labels}
        kind = f"a multiclass target (classes {', '.join(labels)})"
    else:
        known, kind = set(GATE_METRICS), "a binary target"
    for name in spec.gates:
        if name in known:
            continue
        if name.endswith("]") and is_multiclass(classes):
            raise SpecError(
                f"gates.{name}: the target has no such class; its classes are {', '.join(labels)}"
            )
        raise SpecError(
            f"gates.{name} is not a metric of {kind}; gates can use "
            f"{', '.join(sorted(m for m in known if '[' not in m))}"
            + (", precision[CLASS] and recall[CLASS]" if is_multiclass(classes) else "")
        )
