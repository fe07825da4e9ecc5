"""A multiclass version's answers: the most probable class, its probability, every class's.

One function builds them for the library (`Model.predict_record`) and the server (each
prediction of a request), so the two cannot answer differently. A row holding a
probability that is not a finite number gets no label: every field is None and it is
flagged, as a binary version's non-finite score is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

NON_FINITE = "non_finite_score"  # the flag a prediction with no usable score carries


def multiclass_answers(scores: np.ndarray, classes: Sequence[Any]) -> list[dict[str, Any]]:
    """One answer per row of `scores` (n x k, columns in `classes` order).

    ``label`` is the most probable class (the first on a tie, as `numpy.argmax` and
    `Model.predict` pick), ``score`` its probability, ``probabilities`` every class's, keyed
    by the class as a string (JSON object keys are strings) in class order.

    >>> multiclass_answers(np.array([[0.2, 0.7, 0.1]]), ["bronze", "gold", "silver"])
    [{'label': 'gold', 'score': 0.7, 'probabilities': {'bronze': 0.2, 'gold': 0.7, 'silver': 0.1}}]
    """
    matrix = np.asarray(scores, dtype=float)
    if matrix.ndim != 2 or matrix.shape[1] != len(classes):
        raise ValueError(
            f"expected an n x {len(classes)} matrix of class probabilities, got shape "
            f"{matrix.shape}"
        )
    keys = [str(c) for c in classes]
    labels = list(classes)
    finite = np.isfinite(matrix).all(axis=1).tolist()
    top = np.argmax(matrix, axis=1).tolist()
    answers: list[dict[str, Any]] = []
    for row, ok, best in zip(matrix.tolist(), finite, top, strict=True):
        if ok:
            named = dict(zip(keys, row, strict=True))
            answers.append({"label": labels[best], "score": row[best], "probabilities": named})
        else:
            answers.append(
                {"label": None, "score": None, "probabilities": None, "flags": [NON_FINITE]}
            )
    return answers
