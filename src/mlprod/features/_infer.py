"""Which kind each column is, when the spec does not say."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from mlprod.errors import DataError
from mlprod.spec import FeatureKind, ProjectSpec

_BOOL_WORDS = {"true", "false", "yes", "no", "t", "f", "y", "n"}
ID_UNIQUE_RATIO = 0.95
_MIN_ROWS_FOR_NUMBERING = 20  # fewer rows numbered 1..n may well be a real count
_ID_NAMES = {"id", "rownames", "row_names", "row.names", "rowid", "index", "unnamed: 0"}


def infer_kind(values: pd.Series) -> FeatureKind | None:
    """The feature kind of a column, or None when it looks like an id (not a feature)."""
    if pd.api.types.is_bool_dtype(values):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(values):
        return "datetime"
    present = values.dropna()
    if pd.api.types.is_numeric_dtype(values):
        if len(present) and set(present.unique().tolist()) <= {0, 1}:
            return "boolean"
        return "numeric"
    text = present.astype(str).str.strip().str.lower()
    if len(text) and set(text.unique().tolist()) <= _BOOL_WORDS:
        return "boolean"
    if _looks_like_dates(text):
        return "datetime"
    if len(text) > 50 and text.nunique() / len(text) > ID_UNIQUE_RATIO:
        return None
    return "categorical"


def _looks_like_dates(text: pd.Series) -> bool:
    sample = text.head(200)
    if sample.empty or not sample.str.contains(r"\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}").all():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return bool(parsed.notna().mean() > 0.95)


def is_id_like(values: pd.Series) -> bool:
    """A row identifier rather than a feature: one distinct value per row, and either named
    like an id (``id``, ``rownames``, ``customer_id``, ``index``) or the integers 1..n (0..n-1),
    the row numbers R and pandas write into CSV files.

    A model fitted on one learns nothing that carries to new rows, and drifts by design.
    """
    present = values.dropna()
    if len(present) < 2 or len(present) != len(values) or present.nunique() != len(present):
        return False
    name = str(values.name).strip().lower()
    if name in _ID_NAMES or name.endswith(("_id", " id")):
        return True
    if len(present) < _MIN_ROWS_FOR_NUMBERING or not pd.api.types.is_integer_dtype(values):
        return False
    ordered = np.sort(present.to_numpy())
    return int(ordered[0]) in (0, 1) and bool(np.all(np.diff(ordered) == 1))


def id_columns(df: pd.DataFrame, skip: set[str]) -> list[str]:
    """The columns `infer_kinds` leaves out as row identifiers (see `is_id_like`)."""
    return [
        str(c)
        for c in df.columns
        if c not in skip and (is_id_like(df[c]) or infer_kind(df[c]) is None)
    ]


def infer_kinds(df: pd.DataFrame, skip: set[str]) -> dict[str, FeatureKind]:
    """Kinds of every column not in `skip`; id-like columns are left out."""
    kinds: dict[str, FeatureKind] = {}
    for column in df.columns:
        if column in skip or is_id_like(df[column]):
            continue
        kind = infer_kind(df[column])
        if kind is not None:
            kinds[str(column)] = kind
    return kinds


def resolve_features(spec: ProjectSpec, df: pd.DataFrame) -> dict[str, FeatureKind]:
    """The feature columns and kinds a run uses: declared lists win, else inference.

    The target, time and entity columns are never features.
    """
    reserved = {c for c in (spec.data.target, spec.data.time, spec.data.entity) if c is not None}
    declared = spec.features.declared()
    clash = sorted(reserved & set(declared))
    if clash:
        raise DataError(
            f"feature list(s) in mlprod.yaml name {clash}, which are the target, time or "
            "entity column; remove them from features"
        )
    missing = sorted(set(declared) - set(df.columns))
    if missing:
        raise DataError(
            f"features in mlprod.yaml name column(s) {missing} that the data does not have; "
            f"available: {sorted(map(str, df.columns))[:30]}"
        )
    if declared:
        kinds = declared
    else:
        skip = {str(c) for c in reserved} | set(spec.features.exclude)
        kinds = infer_kinds(df, skip)
    if not kinds and spec.features.aggregates is None:
        raise DataError("no feature columns left after excluding target, time, entity and exclude")
    return kinds
