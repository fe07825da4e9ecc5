"""What one labelled prediction adds to its window: confusion counts and its score's bin.

Binary: the observed class against the version's threshold (tp, fp, fn, tn) and the
score into the histogram of its observed class. Multiclass: the answer is right (tp) or
wrong (fp), its top-class probability goes into the histogram of right or wrong answers,
and the (observed, predicted) cell of the k x k confusion matrix is added under the
pseudo-feature `CONFUSION` of the feature counts. An answer without a class (a
non-finite score) counts as wrong and has no cell.

Example::

    row = labelled_row(prediction, "gold", info, bucket_seconds=60)
    windows, confusion = summed([row, ...])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlprod.monitoring._classes import class_index, not_a_class_note
from mlprod.monitoring._live import window_start
from mlprod.monitoring._reference import CONFUSION, SCORE_BINS, score_bin
from mlprod.records import boolean_value, category_string

WINDOW_KEYS = ("model", "version", "window_start")


def observed_class(label: Any, info: Mapping[str, Any]) -> int | None:
    """1 for the positive class, 0 for the negative, None for anything else (binary)."""
    negative, positive = info["classes"]
    text = category_string(label).lower()
    if text == category_string(positive).lower():
        return 1
    if text == category_string(negative).lower():
        return 0
    if isinstance(positive, bool) or isinstance(negative, bool):
        value = boolean_value(label)
        if not np.isnan(value):
            return int(value == float(bool(positive)))
    return None


def observed_index(label: Any, info: Mapping[str, Any]) -> int | None:
    """The observed class's position in the version's classes; None: no class of it.

    Binary classes are [negative, positive], so this is `observed_class` there.
    """
    if info["multiclass"]:
        return class_index(label, info["classes"])
    return observed_class(label, info)


def invalid_note(label: Any, info: Mapping[str, Any]) -> str:
    """Why an outcome's label was refused, naming the classes the model has."""
    if info["multiclass"]:
        return not_a_class_note(label, info["classes"])
    negative, positive = info["classes"]
    return f"label {label!r} is neither class of the model ({negative!r} or {positive!r})"


def labelled_row(
    prediction: Mapping[str, Any], label: Any, info: Mapping[str, Any], bucket_seconds: int
) -> dict[str, Any] | None:
    """One labelled prediction's share of its window (None: `label` is no class of it).

    Its score bin is kept as an index and its confusion cell as ``cells`` (``width`` is
    k x k; 0 for a binary version), summed per window by `summed`.
    """
    observed = observed_index(label, info)
    if observed is None:
        return None
    score = prediction["score"]
    row: dict[str, Any] = {
        "model": prediction["model"],
        "version": prediction["version"],
        "window_start": window_start(prediction["at"], bucket_seconds),
        "labelled": 1,
    }
    if info["multiclass"]:
        k = len(info["classes"])
        answered = class_index(prediction.get("label"), info["classes"])
        right = answered == observed
        cells = [] if answered is None else [observed * k + answered]
        counts = {"tp": int(right), "fp": int(not right), "fn": 0, "tn": 0}
        good = right
        row.update(counts, cells=cells, width=k * k)
    else:
        predicted = score is not None and score >= info["threshold"]
        row.update(
            tp=int(predicted and observed == 1),
            fp=int(predicted and observed == 0),
            fn=int(not predicted and observed == 1),
            tn=int(not predicted and observed == 0),
            cells=[],
            width=0,
        )
        good = observed == 1
    row["pos_bins"] = [score_bin(score)] if score is not None and good else []
    row["neg_bins"] = [score_bin(score)] if score is not None and not good else []
    return row


def summed(
    rows: Sequence[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(window_stats rows, confusion feature-count rows): one of each per window.

    Histograms and confusion matrices are counted once per window (`merge_rows` adds
    each key once). Each outcome carries its score bin and cell, not a histogram, so
    matching costs the same per outcome however fine the bins are.
    """
    grouped: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(row[k] for k in WINDOW_KEYS)
        current = grouped.get(key)
        if current is None:
            grouped[key] = {
                **row,
                **{name: list(row[name]) for name in ("pos_bins", "neg_bins", "cells")},
            }
            continue
        for name, value in row.items():
            if name in WINDOW_KEYS or name == "width":
                continue
            if isinstance(value, list):
                current[name].extend(value)
            else:
                current[name] += value
    windows, confusion = [], []
    for row in grouped.values():
        for bins, hist in (("pos_bins", "pos_hist"), ("neg_bins", "neg_hist")):
            counts = np.bincount(np.asarray(row.pop(bins), dtype=np.int64), minlength=SCORE_BINS)
            row[hist] = counts.tolist()
        cells, width = row.pop("cells"), row.pop("width")
        if cells:
            matrix = np.bincount(np.asarray(cells, dtype=np.int64), minlength=width)
            confusion.append(
                {
                    **{k: row[k] for k in WINDOW_KEYS},
                    "feature": CONFUSION,
                    "counts": matrix.tolist(),
                    "total": len(cells),
                }
            )
        windows.append(row)
    return windows, confusion
