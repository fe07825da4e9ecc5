"""Reference distributions: fixed bins per input and for the score, set once at training.

Drift is computed from counts in these bins, never from raw rows: training fixes the
bins and their counts; servers and batch jobs count live values into the same bins per
time window. Comparing two windows then costs the same whatever the traffic was.

Bins per kind:

* numeric and datetime (as epoch seconds): up to 10 quantile bins of the training
  values, then one bin for missing values;
* categorical and boolean: the top categories, then "other" (seen in training, not in
  the top), "unseen" (never seen in training) and "missing".

The reference also carries a calibration map (isotonic, fitted on the held-out test
scores), so live windows without labels can estimate precision and recall from scores.

Example::

    reference = build_reference(train_frame, kinds, test_scores, y_test)
    binner = Binner(reference)
    counts = binner.count_records(records)   # {"plan": array([...]), ...}
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from mlprod.records import (
    MISSING,
    as_boolean,
    as_category,
    as_datetime,
    as_numeric,
    boolean_value,
    category_string,
    distinct_codes,
)

if TYPE_CHECKING:
    import pandas as pd

FORMAT = 1
NUMERIC_BINS = 10
TOP_CATEGORIES = 20
KNOWN_CATEGORIES = 10_000  # categories remembered to tell "other" from "unseen"
LEGACY_SCORE_BINS = 50  # equal-width bins of windows stored before the finer ones below
LOGIT_EDGES = 1.0 / (1.0 + np.exp(-np.arange(-12.0, 12.0 + 1e-9, 0.25)))  # logit step 0.25
LEGACY_EDGES = np.arange(1, LEGACY_SCORE_BINS) / LEGACY_SCORE_BINS
# Live score bins (by class for ROC AUC and AP, all for estimated performance): equal steps
# in log-odds, fine where imbalanced tables put most scores (near 0 or 1), plus every
# legacy edge, so a fine histogram folds exactly into a legacy one. Fixed for every model
# and version, so windows from any server merge by addition.
SCORE_EDGES = np.unique(np.concatenate([LOGIT_EDGES, LEGACY_EDGES]))
SCORE_BINS = len(SCORE_EDGES) + 1
CALIBRATION_POINTS = 200
CACHE_LIMIT = 10_000  # raw values remembered per categorical feature by a Binner
OTHER, UNSEEN = "__other__", "__unseen__"
SCORE = "__score__"  # the score's histogram is stored like a feature's, under this name
PREDICTED = "__class__"  # a multiclass version's predicted classes, stored the same way
# A multiclass version's labelled confusion matrix (row: observed class, column: predicted
# class, flattened row-major), added up by outcome matching like feature counts.
CONFUSION = "__confusion__"


def build_reference(
    frame: pd.DataFrame,
    kinds: Mapping[str, str],
    test_scores: np.ndarray,
    test_labels: np.ndarray,
    predicted: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Bins and counts of every feature in `frame` (training rows) and of the test scores.

    `predicted`: a multiclass version's predicted class per test row; its class shares
    become the reference that live class shares drift from.
    """
    features = {name: _feature_reference(frame[name], kind) for name, kind in kinds.items()}
    scores = np.asarray(test_scores, dtype=float)
    reference = {
        "format": FORMAT,
        "rows": len(frame),
        "features": features,
        "score": _numeric_reference(scores, "numeric"),
        "calibration": _calibration(scores, np.asarray(test_labels, dtype=int)),
    }
    if predicted is not None:
        import pandas as pd  # training and batch scoring only: a report reads no frames

        labels = pd.Series([str(label) for label in predicted], dtype=object)
        reference["predicted"] = _feature_reference(labels, "categorical")
    return reference


def _feature_reference(values: pd.Series, kind: str) -> dict[str, Any]:
    if kind in ("numeric", "datetime"):
        return _numeric_reference(_as_numbers(values, kind), kind)
    import pandas as pd

    labels = pd.Series(_column_labels(values, kind), dtype=object)
    missing = labels == MISSING
    frequencies = labels[~missing].value_counts()
    categories = [str(c) for c in frequencies.index[:TOP_CATEGORIES]]
    known = [str(c) for c in frequencies.index[:KNOWN_CATEGORIES]]
    reference = {"kind": kind, "categories": categories, "known": known}
    lookup, top = _category_lookup(reference), len(categories)
    counts = np.zeros(top + 3, dtype=np.int64)  # top categories, other, unseen, missing
    for label, count in frequencies.items():
        counts[lookup.get(str(label), top + 1)] += int(count)
    counts[top + 2] = int(missing.sum())
    return {**reference, "counts": counts.tolist()}


def _column_labels(values: pd.Series, kind: str) -> np.ndarray:
    """Each value's category label (`MISSING` for none), converted once per distinct value
    where the column's type allows it (`as_category`, `as_boolean`)."""
    if kind == "boolean":
        numbers = as_boolean(values)
        named = np.where(numbers == 1.0, "true", "false").astype(object)
        return np.where(np.isnan(numbers), MISSING, named)
    return as_category(values)


def _numeric_reference(numbers: np.ndarray, kind: str) -> dict[str, Any]:
    present = numbers[~np.isnan(numbers)]
    if len(present):
        quantiles = np.quantile(present, np.linspace(0, 1, NUMERIC_BINS + 1)[1:-1])
        edges = sorted({float(q) for q in quantiles})
    else:
        edges = []
    return {"kind": kind, "edges": edges, "counts": numeric_counts(numbers, edges).tolist()}


def numeric_counts(numbers: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Counts per bin: ``len(edges) + 1`` value bins, then one for missing (NaN)."""
    missing = np.isnan(numbers)
    bins = np.searchsorted(np.asarray(edges, dtype=float), numbers[~missing], side="right")
    counts = np.bincount(bins, minlength=len(edges) + 1).astype(np.int64)
    return np.append(counts, int(missing.sum()))


def _category_lookup(reference: Mapping[str, Any]) -> dict[str, int]:
    """Category label -> bin: top categories first, then "other" for the rest of `known`."""
    top = list(reference["categories"])
    lookup = {label: index for index, label in enumerate(top)}
    other = len(top)
    for label in reference["known"]:
        lookup.setdefault(label, other)
    return lookup


def bin_labels(feature: Mapping[str, Any]) -> list[str]:
    """Readable names of a feature's bins, in count order (for reports and charts)."""
    if "edges" in feature:
        edges = [f"{edge:.4g}" for edge in feature["edges"]]
        if not edges:
            return ["all", "missing"]
        inner = [f"[{a}, {b})" for a, b in itertools.pairwise(edges)]
        return [f"< {edges[0]}", *inner, f">= {edges[-1]}", "missing"]
    return [*feature["categories"], "other", "unseen", "missing"]


def _as_numbers(values: pd.Series, kind: str) -> np.ndarray:
    if kind == "datetime":
        stamps = as_datetime(values).to_numpy(dtype="datetime64[ns]")
        seconds = stamps.astype(np.int64).astype(float) / 1e9
        seconds[np.isnat(stamps)] = np.nan
        return seconds
    return as_numeric(values)


def _column(records: Sequence[Mapping[str, Any]], name: str) -> list[Any]:
    """One field of every record; validated records have them all, others read None."""
    try:
        return list(map(operator.itemgetter(name), records))
    except KeyError:
        return [record.get(name) for record in records]


def _record_numbers(values: list[Any], feature: Mapping[str, Any]) -> np.ndarray:
    """Floats from JSON values; numpy takes numbers and nulls at once, pandas the rest."""
    if feature["kind"] == "numeric":
        try:
            numbers: np.ndarray = np.array(values, dtype=float)
            return numbers
        except (TypeError, ValueError):  # a string that is not a number: missing, as in training
            pass
    import pandas as pd

    return _as_numbers(pd.Series(values, dtype=object), feature["kind"])


def _as_labels(values: Sequence[Any], kind: str) -> list[str]:
    if kind == "boolean":
        return [_boolean_label(value) for value in values]
    return [category_string(value) for value in values]


def _boolean_label(value: Any) -> str:
    number = boolean_value(value)
    return MISSING if np.isnan(number) else ("true" if number else "false")


def _calibration(scores: np.ndarray, labels: np.ndarray) -> dict[str, list[float]]:
    """P(positive | score) as a monotone step map, fitted on held-out rows."""
    from sklearn.isotonic import IsotonicRegression

    finite = np.isfinite(scores)
    if finite.sum() < 2 or len(np.unique(labels[finite])) < 2:
        return {"scores": [0.0, 1.0], "probabilities": [0.0, 1.0]}
    fitted = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    fitted.fit(scores[finite], labels[finite])
    xs, ys = fitted.X_thresholds_, fitted.y_thresholds_
    if len(xs) > CALIBRATION_POINTS:  # keep the map small; interpolation fills in between
        keep = np.unique(np.linspace(0, len(xs) - 1, CALIBRATION_POINTS).astype(int))
        xs, ys = xs[keep], ys[keep]
    return {"scores": [float(x) for x in xs], "probabilities": [float(y) for y in ys]}


class Binner:
    """Counts live values into a reference's bins; built once per loaded version.

    Categorical values are looked up through a small cache (live values repeat), so a
    record costs a dictionary lookup per categorical field.
    """

    def __init__(self, reference: Mapping[str, Any]) -> None:
        self.reference = reference
        self.features: dict[str, Mapping[str, Any]] = dict(reference["features"])
        self._lookups = {
            name: _category_lookup(feature)
            for name, feature in self.features.items()
            if "categories" in feature
        }
        self._caches: dict[str, dict[Any, int]] = {name: {} for name in self._lookups}
        calibration = reference["calibration"]
        self._calibration_x = np.asarray(calibration["scores"], dtype=float)
        self._calibration_y = np.asarray(calibration["probabilities"], dtype=float)
        self.score_edges = list(reference["score"]["edges"])
        self.predicted: Mapping[str, Any] | None = reference.get("predicted")
        if self.predicted is not None:
            self._lookups[PREDICTED] = _category_lookup(self.predicted)
            self._caches[PREDICTED] = {}

    def count_records(self, records: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """Counts per feature for request records (raw JSON values, fields by name)."""
        counts = {}
        for name, feature in self.features.items():
            values = _column(records, name)
            if "edges" in feature:
                counts[name] = numeric_counts(_record_numbers(values, feature), feature["edges"])
            else:
                counts[name] = self._count_categories(name, feature, values)
        return counts

    def count_frame(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Counts per feature for a DataFrame of raw columns (batch scoring)."""
        counts = {}
        for name, feature in self.features.items():
            if name not in frame:
                continue
            if "edges" in feature:
                numbers = _as_numbers(frame[name], feature["kind"])
                counts[name] = numeric_counts(numbers, feature["edges"])
            else:
                counts[name] = self._count_column(name, feature, frame[name])
        return counts

    def _count_column(self, name: str, feature: Mapping[str, Any], values: pd.Series) -> np.ndarray:
        """A typed column's bins found once per distinct value (a batch chunk of 100,000
        rows holds a few dozen); an object column's per value, as records are."""
        distinct = distinct_codes(values)
        if distinct is None:
            return self._count_categories(name, feature, values.tolist())
        codes, uniques = distinct
        bins = self._category_bins(name, feature, uniques)
        top = len(feature["categories"])
        missing = top + 2  # what None takes in `_count_categories`, for either kind
        per_code = np.bincount(codes + 1, minlength=len(uniques) + 1)
        counts = np.bincount(
            np.asarray([missing, *bins], dtype=np.int64), weights=per_code, minlength=top + 3
        )
        return counts.astype(np.int64)

    def _count_categories(
        self, name: str, feature: Mapping[str, Any], values: Sequence[Any]
    ) -> np.ndarray:
        """Counts over the feature's bins: top categories, other, unseen, missing."""
        bins = self._category_bins(name, feature, values)
        top = len(feature["categories"])
        counts: np.ndarray = np.bincount(np.asarray(bins, dtype=np.int64), minlength=top + 3)
        return counts

    def _category_bins(
        self, name: str, feature: Mapping[str, Any], values: Sequence[Any]
    ) -> list[int]:
        """Each value's bin: one dictionary lookup per value (in C); only values never seen
        take the slow path.

        True, 1 and 1.0 are equal keys in Python but different categories, so a categorical
        cache holds strings (and None) only; for a boolean they all mean true anyway.
        """
        cache, lookup = self._caches[name], self._lookups[name]
        top = len(feature["categories"])
        any_key = feature["kind"] == "boolean"
        bins: list[int | None] = list(map(cache.get, values)) if cache else [None] * len(values)
        if None in bins:
            for position, found in enumerate(bins):
                if found is not None:
                    continue
                value = values[position]
                label = _as_labels([value], feature["kind"])[0]
                index = top + 2 if label == MISSING else lookup.get(label, top + 1)
                cacheable = any_key or value is None or isinstance(value, str)
                if cacheable and len(cache) < CACHE_LIMIT:
                    cache[value] = index
                bins[position] = index
        return cast(list[int], bins)  # every None was filled above

    def class_counts(self, labels: Sequence[Any]) -> np.ndarray | None:
        """Counts of predicted classes in the reference's class bins (None: not multiclass).

        A label that is None (a non-finite score) counts as missing.
        """
        if self.predicted is None:
            return None
        values = [None if label is None else str(label) for label in labels]
        return self._count_categories(PREDICTED, self.predicted, values)

    def calibrated(self, scores: np.ndarray) -> np.ndarray:
        """P(positive) for each score, from the map fitted on held-out rows."""
        calibrated: np.ndarray = np.interp(scores, self._calibration_x, self._calibration_y)
        return calibrated

    def score_counts(self, scores: np.ndarray) -> np.ndarray:
        """Counts of scores in the reference's score bins (missing: non-finite)."""
        return numeric_counts(np.where(np.isfinite(scores), scores, np.nan), self.score_edges)


def score_histogram(scores: np.ndarray) -> np.ndarray:
    """Counts of finite scores in the live score bins (`SCORE_EDGES`)."""
    finite = scores[np.isfinite(scores)]
    index = np.searchsorted(SCORE_EDGES, finite, side="right")
    return np.bincount(index, minlength=SCORE_BINS).astype(np.int64)


def score_bin(score: float) -> int:
    """The live score bin of one score (see `score_histogram`)."""
    return int(np.searchsorted(SCORE_EDGES, score, side="right"))


def score_bin_middles(width: int) -> np.ndarray:
    """The middle score of each bin of a stored histogram `width` bins wide (legacy or live)."""
    if width == LEGACY_SCORE_BINS:
        legacy: np.ndarray = (np.arange(width) + 0.5) / width
        return legacy
    bounds = np.concatenate([[0.0], SCORE_EDGES, [1.0]])
    middles: np.ndarray = (bounds[:-1] + bounds[1:]) / 2
    return middles


def _to_legacy(hist: np.ndarray) -> np.ndarray:
    """A live histogram folded into the legacy equal-width bins (exact: edges are shared)."""
    lower = np.concatenate([[0.0], SCORE_EDGES])
    index = np.searchsorted(LEGACY_EDGES, lower, side="right")
    folded: np.ndarray = np.bincount(index, weights=hist, minlength=LEGACY_SCORE_BINS)
    return folded


def add_score_histograms(current: Sequence[float], extra: Sequence[float]) -> np.ndarray:
    """`current + extra`; a window begun before the live bins were refined stays legacy.

    Only a window that was open while servers were upgraded holds both widths: the live
    counts fold into its legacy bins, so nothing is lost and the sum stays consistent.
    """
    a, b = np.asarray(current, dtype=float), np.asarray(extra, dtype=float)
    if a.size == b.size:
        total: np.ndarray = a + b
        return total
    if a.size == 0 or b.size == 0:
        return a if b.size == 0 else b
    if {a.size, b.size} != {LEGACY_SCORE_BINS, SCORE_BINS}:
        raise ValueError(f"score histograms of {a.size} and {b.size} bins cannot be added")
    folded: np.ndarray = (_to_legacy(a) if a.size == SCORE_BINS else a) + (
        _to_legacy(b) if b.size == SCORE_BINS else b
    )
    return folded
