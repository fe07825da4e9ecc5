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
from mlprod.evaluation import MetricValue, evaluate_multiclass
from mlprod.spec import ProjectSpec

NO_THRESHOLD = 0.0  # recorded for a multiclass version; its label is the argmax


def is_multiclass(classes: list[Any]) -> bool:
    """Three or more classes: the project is multiclass."""
    return len(classes) > 2


def refuse_unsupported(spec: ProjectSpec, classes: list[Any]) -> None:
    """A SpecError naming the first spec setting that multiclass training cannot honour."""
    if not is_multiclass(classes):
        return
    found = f"target {spec.data.target!r} has {len(classes)} classes"
    if spec.ensemble is not None:
        raise SpecError(
            f"ensemble: not yet supported for a multiclass target ({found}); remove the "
            "ensemble section from mlprod.yaml"
        )
    if spec.value is not None:
        raise SpecError(
            f"value: the tp/fp/tn/fn matrix needs a binary target ({found}); remove the "
            "value section from mlprod.yaml"
        )
    if spec.training.engine == "spark":
        raise SpecError(
            f"training.engine spark is not yet supported for a multiclass target ({found}); "
            "use engine: local"
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
