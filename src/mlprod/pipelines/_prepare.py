"""From a spec to the training matrix: load, label, split, fit features, select.

Shared by `mlprod train` and by every tuning worker (`mlprod tune --join`), which must
see exactly the same rows and columns: everything here is deterministic for a spec and
its data. Only training rows fit the transformer and the selection step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlprod.data import (
    DataCache,
    DataFingerprint,
    Split,
    fingerprint,
    make_split,
    parse_times,
    read_source,
    require_columns,
)
from mlprod.errors import DataError
from mlprod.features import (
    FeaturePlan,
    FeatureTransformer,
    aggregate_kinds,
    compile_plan,
    point_in_time,
    read_event_sources,
    read_join_tables,
    resolve_features,
)
from mlprod.pipelines._progress import Steps
from mlprod.pipelines._target import encode_target
from mlprod.spec import FeatureKind, ProjectSpec
from mlprod.training import fit_selection, with_selection


@dataclass
class Prepared:
    """The labelled rows, the split and the model's input matrix for every row.

    `X` is what candidates see (after any selection step); `transformer` is what the
    bundle stores (the feature transformer, then the selection step); `names` and
    `source` describe `X`'s columns for importances.
    """

    df: pd.DataFrame
    y: np.ndarray
    classes: list[Any]
    kinds: dict[str, FeatureKind]
    fingerprint: DataFingerprint
    split: Split
    features: FeatureTransformer
    transformer: Any
    X: np.ndarray
    names: list[str]
    source: Callable[[str], str]
    plan: FeaturePlan | None = None


def prepare(spec: ProjectSpec, steps: Steps, *, cache: DataCache | None = None) -> Prepared:
    """Everything before fitting candidates, in the order the spec implies.

    With a `cache` (the datamart), sources with a fresh entry are read from Redis.
    """
    steps("loading data")
    df = read_source(spec.data.source, cache=cache)
    require_columns(
        df,
        [c for c in (spec.data.target, spec.data.time, spec.data.entity) if c],
        "data in mlprod.yaml",
    )
    df = within_window(df, spec)
    y, classes, labelled = encode_target(df[spec.data.target], spec.data.positive)
    df = df.loc[labelled].reset_index(drop=True)
    kinds = dict(resolve_features(spec, df))
    plan = None
    if spec.features.aggregates is not None:
        df, plan, added = with_aggregates(spec, df, steps, cache)
        kinds.update(added)
    print_ = fingerprint(df, spec.data.time)
    times = df[spec.data.time] if spec.data.time else None
    split = make_split(y, spec.split, times=times, seed=spec.seed)
    steps(f"fitting features on {len(split.train):,} training rows")
    features = FeatureTransformer(kinds=dict(kinds))
    X = fit_features(features, df, split.train)
    names: list[str] = list(features.feature_names_)
    source: Callable[[str], str] = features.source_column
    selection = None
    if spec.selection is not None:
        chosen = spec.selection
        steps(f"selecting {chosen.k} columns by {chosen.method} on the training rows")
        train = split.train
        selection = fit_selection(chosen, X[train], y[train], names, source, spec.seed)
        X = np.asarray(selection.step.transform(X), dtype=float)
        names, source = selection.names, selection.source
    return Prepared(
        df, y, classes, kinds, print_, split, features,
        with_selection(features, selection), X, names, source, plan,
    )  # fmt: skip


def fit_features(features: FeatureTransformer, df: pd.DataFrame, train: np.ndarray) -> np.ndarray:
    """Fit `features` on the `train` rows; return the matrix of every row of `df`.

    The training rows' part is what fitting computed, so they are coerced and encoded
    once; each row's encoding depends on that row alone, so the matrix is the one
    ``features.transform(df)`` gives.
    """
    fitted = features.fit_transform(df.iloc[train])
    X = np.empty((len(df), fitted.shape[1]))
    X[train] = fitted
    rest = np.ones(len(df), dtype=bool)
    rest[train] = False
    if rest.any():
        X[rest] = features.transform(df.iloc[np.flatnonzero(rest)])
    return X


def with_aggregates(
    spec: ProjectSpec, df: pd.DataFrame, steps: Steps, cache: DataCache | None = None
) -> tuple[pd.DataFrame, FeaturePlan, dict[str, FeatureKind]]:
    """`df` with the spec's aggregates computed point-in-time for every row, and their kinds."""
    aggregates, key, time = spec.features.aggregates, spec.aggregate_key(), spec.data.time
    if aggregates is None or key is None or time is None:  # the spec's validator ensures all
        raise DataError("features.aggregates needs data.time and an entity key")
    plan = compile_plan(aggregates, key=key)
    clash = sorted(set(plan.names()) & {str(c) for c in df.columns})
    if clash:
        raise DataError(
            f"features.aggregates makes column(s) {clash}, which the data already has; rename "
            "the aggregates or the columns"
        )
    steps(f"computing {len(plan.names())} aggregate feature(s) point-in-time")
    computed = point_in_time(
        df,
        plan,
        time=time,
        events=read_event_sources(plan, cache=cache),
        tables=read_join_tables(plan, cache=cache),
    )
    return pd.concat([df, computed], axis=1), plan, aggregate_kinds(plan, computed)


def within_window(df: pd.DataFrame, spec: ProjectSpec) -> pd.DataFrame:
    """The rows with ``data.since <= time < data.until`` (retraining's window), if set."""
    since, until = spec.data.since, spec.data.until
    if spec.data.time is None or (since is None and until is None):
        return df
    times = parse_times(df[spec.data.time], spec.data.time)
    if times.dt.tz is None:
        times = times.dt.tz_localize("UTC")
    keep = pd.Series(True, index=df.index)
    if since is not None:
        keep &= times >= pd.Timestamp(since)
    if until is not None:
        keep &= times < pd.Timestamp(until)
    if not keep.any():
        raise DataError(
            f"no rows of {spec.data.source} have {spec.data.time} in "
            f"[{since or 'the start'}, {until or 'the end'}); check data.since and data.until"
        )
    return df.loc[keep].reset_index(drop=True)


def training_folds(split: Split) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """The training rows and, for a cv split, its folds as positions into those rows."""
    train_idx = np.asarray(split.train)
    position = {row: i for i, row in enumerate(train_idx.tolist())}
    folds = [
        (
            np.array([position[r] for r in fit.tolist()]),
            np.array([position[r] for r in val.tolist()]),
        )
        for fit, val in split.folds
    ]
    return train_idx, folds
