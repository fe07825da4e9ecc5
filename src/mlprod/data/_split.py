"""Holding rows out: the test set is carved first and never seen by selection.

Three methods, all deterministic for a seed:

- ``stratified``: a stratified test holdout, then a stratified validation set from the rest.
- ``time``: the latest rows are the test window; rows within ``gap`` before it are
  dropped, so no training row is closer to the test window than the gap (features
  computed over a trailing window, or labels that take time to arrive, cannot leak).
- ``cv``: a stratified test holdout, then stratified k folds over the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import tzinfo

import numpy as np
import pandas as pd

from mlprod.data._sources import parse_times
from mlprod.errors import DataError
from mlprod.spec import SplitSpec

Fold = tuple[np.ndarray, np.ndarray]
_EMPTY = np.array([], dtype=np.intp)


@dataclass(frozen=True)
class Split:
    """Positional row indices for each part; `folds` only for cv, times only for time splits.

    `train` fits candidates, `validation` picks the winner and the threshold, `test` is
    touched once, for the final evaluation. For cv, `train` holds every non-test row,
    `folds` pairs (fit, validate) indices over those rows and `validation` is empty.
    """

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    folds: tuple[Fold, ...] = field(default=())
    test_start: pd.Timestamp | None = None
    train_end: pd.Timestamp | None = None


def make_split(
    y: np.ndarray, spec: SplitSpec, *, times: pd.Series | None = None, seed: int = 0
) -> Split:
    """Split rows by `spec.method`; a `DataError` when a part would be empty or one-class.

    Example::

        split = make_split(df["churned"].to_numpy(), SplitSpec(), seed=42)
        X_train, X_test = df.iloc[split.train], df.iloc[split.test]
    """
    labels = _check_labels(y)
    if spec.method == "time":
        return _time_split(labels, spec, times)
    if spec.method == "cv":
        return _cv_split(labels, spec, seed)
    return _stratified_split(labels, spec, seed)


def _check_labels(y: np.ndarray) -> np.ndarray:
    labels = np.asarray(y)
    missing = int(pd.isna(labels).sum())
    if missing:
        raise DataError(
            f"the target has {missing} missing value(s); every training row needs a label. "
            "Drop those rows from the source or fill the target."
        )
    if len(np.unique(labels)) < 2:
        raise DataError(
            f"the target has a single class ({_plain(labels[0])!r} in all {len(labels)} rows); "
            "a classifier needs rows of both classes. Check data.target and the source query."
        )
    return labels


def _holdout(indices: np.ndarray, labels: np.ndarray, size: float, seed: int, part: str) -> Fold:
    """(kept, held out) positions, stratified on `labels` at those positions."""
    # scikit-learn loads on first split, not with `mlprod.data`: readers of a store or a
    # bundle (monitoring, batch scoring, the CLI) import this package and never split.
    from sklearn.model_selection import train_test_split

    try:
        kept, held = train_test_split(
            indices, test_size=size, stratify=labels[indices], random_state=seed
        )
    except ValueError as exc:
        raise DataError(
            f"cannot hold out a stratified {part} set of {size:g} from {len(indices)} rows: "
            f"{exc}. Use more rows, or change split.{part}_size in mlprod.yaml."
        ) from exc
    return np.sort(kept), np.sort(held)


def _stratified_split(labels: np.ndarray, spec: SplitSpec, seed: int) -> Split:
    rest, test = _holdout(np.arange(len(labels)), labels, spec.test_size, seed, "test")
    train, validation = _holdout(rest, labels, spec.validation_size, seed, "validation")
    parts = {"train": train, "validation": validation, "test": test}
    _check_parts(labels, parts, "split.test_size or split.validation_size")
    return Split(train=train, validation=validation, test=test)


def _cv_split(labels: np.ndarray, spec: SplitSpec, seed: int) -> Split:
    train, test = _holdout(np.arange(len(labels)), labels, spec.test_size, seed, "test")
    _check_parts(labels, {"train": train, "test": test}, "split.test_size")
    classes, counts = np.unique(labels[train], return_counts=True)
    if counts.min() < spec.folds:
        rare = classes[counts.argmin()]
        raise DataError(
            f"class {_plain(rare)!r} has only {counts.min()} row(s) outside the test set, "
            f"fewer than split.folds={spec.folds}; every fold needs both classes. "
            "Lower split.folds or use more data."
        )
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=spec.folds, shuffle=True, random_state=seed)
    folds = tuple((train[fit], train[val]) for fit, val in splitter.split(train, labels[train]))
    return Split(train=train, validation=_EMPTY.copy(), test=test, folds=folds)


def _time_split(labels: np.ndarray, spec: SplitSpec, times: pd.Series | None) -> Split:
    if times is None:
        raise DataError(
            "split.method 'time' needs event times; set data.time in mlprod.yaml "
            "to the column that holds them."
        )
    stamps = _time_values(times, len(labels))
    tz = stamps.dt.tz
    naive = (stamps.dt.tz_convert("UTC").dt.tz_localize(None) if tz else stamps).to_numpy()
    order = np.argsort(naive, kind="stable")
    earlier, test, test_start = _latest(order, naive, spec.test_size)
    cutoff = test_start - spec.gap_delta().to_timedelta64()
    candidates = earlier[naive[earlier] < cutoff]
    train, validation = _EMPTY, _EMPTY
    if len(candidates):
        train, validation, _ = _latest(candidates, naive, spec.validation_size)
    parts = {"train": np.sort(train), "validation": np.sort(validation), "test": np.sort(test)}
    _check_parts(labels, parts, "split.test_size, split.validation_size or split.gap")
    return Split(
        train=parts["train"],
        validation=parts["validation"],
        test=parts["test"],
        test_start=_stamp(test_start, tz),
        train_end=_stamp(naive[candidates].max(), tz),
    )


def _latest(
    order: np.ndarray, times: np.ndarray, fraction: float
) -> tuple[np.ndarray, np.ndarray, np.datetime64]:
    """Time-ordered positions split into (earlier, latest, start of latest).

    The latest part is every row at or after the time found `fraction` from the end, so
    rows sharing that time all land on the same side.
    """
    n_latest = max(1, math.ceil(len(order) * fraction))
    start = times[order[len(order) - n_latest]]
    is_latest = times[order] >= start
    return order[~is_latest], order[is_latest], start


def _stamp(value: np.datetime64, tz: tzinfo | None) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC").tz_convert(tz) if tz is not None else stamp


def _time_values(times: pd.Series, n_rows: int) -> pd.Series:
    """The event times as a datetime Series without missing values, one per label."""
    label = getattr(times, "name", None)
    name = str(label) if label is not None else "data.time"
    if len(times) != n_rows:
        raise DataError(
            f"time column {name!r} has {len(times)} values but there are {n_rows} labels; "
            "pass the time column of the same rows as the target."
        )
    stamps = parse_times(pd.Series(times).reset_index(drop=True), name)
    missing = int(stamps.isna().sum())
    if missing:
        raise DataError(
            f"time column {name!r} has {missing} missing or unparseable value(s); a time "
            "split must place every row in time. Fill or drop those rows, or use "
            "split.method 'stratified'."
        )
    return stamps


def _check_parts(labels: np.ndarray, parts: dict[str, np.ndarray], knobs: str) -> None:
    for part, indices in parts.items():
        if len(indices) == 0:
            raise DataError(
                f"the {part} set of the split is empty; change {knobs} in mlprod.yaml "
                "or use more data."
            )
        classes = np.unique(labels[indices])
        if len(classes) < 2:
            raise DataError(
                f"the {part} set of the split has a single class ({_plain(classes[0])!r} in all "
                f"{len(indices)} rows), so it cannot fit or score a classifier; "
                f"change {knobs} in mlprod.yaml."
            )


def _plain(value: object) -> object:
    """A numpy scalar as the Python value it holds, so messages read True, not np.True_."""
    return value.item() if isinstance(value, np.generic) else value
