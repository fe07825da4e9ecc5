"""A profile of a table before modelling: types, gaps, distributions, target rates, suspects.

Plain data out (JSON-able dicts), so the CLI can print it, a report can draw it and a
test can assert on it. Columns that look like ids (almost every value distinct) or
leaks (on their own they separate the classes almost perfectly) are flagged, because
either one makes a model look better in training than it will be in production.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

LEAK_AUC = 0.95
ID_UNIQUE_SHARE = 0.95
MOSTLY_MISSING = 0.5
TOP_CATEGORIES = 20
BINS = 10
MIN_CATEGORY_ROWS = 10


def _auc(values: np.ndarray, y: np.ndarray) -> float | None:
    """ROC AUC of one score against the labels, folded so 0.5 is useless and 1 perfect."""
    from sklearn.metrics import roc_auc_score

    keep = ~np.isnan(values)
    if keep.sum() < 10 or len(np.unique(y[keep])) < 2 or len(np.unique(values[keep])) < 2:
        return None
    auc = float(roc_auc_score(y[keep], values[keep]))
    return round(max(auc, 1 - auc), 6)


def _kind(series: pd.Series, declared: str | None) -> str:
    if declared:
        return declared
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "categorical"


def _numeric(series: pd.Series, y: np.ndarray | None) -> dict[str, Any]:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {}
    counts, edges = np.histogram(finite, bins=min(30, max(1, np.unique(finite).size)))
    found: dict[str, Any] = {
        "min": float(finite.min()), "max": float(finite.max()),
        "mean": float(finite.mean()), "std": float(finite.std()),
        "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
    }  # fmt: skip
    if y is not None:
        bins = pd.qcut(pd.Series(values), q=BINS, duplicates="drop")
        if bins.isna().any():
            bins = bins.cat.add_categories("(missing)").fillna("(missing)")
        found["target_rate"] = _rates(bins, y)  # in bin order, missing last
        found["auc"] = _auc(values, y)
    return found


def _categorical(series: pd.Series, y: np.ndarray | None) -> dict[str, Any]:
    text = series.astype("string").fillna("(missing)")
    top = text.value_counts().head(TOP_CATEGORIES)
    found: dict[str, Any] = {"top": {str(k): int(v) for k, v in top.items()}}
    if y is not None:
        grouped = text.where(text.isin(top.index), "(other)")
        found["target_rate"] = _rates(grouped, y)
        # rare categories get the overall rate: an id's own row would "predict" itself
        labels = pd.Series(y, index=text.index)
        rate = labels.groupby(text).transform("mean")
        size = labels.groupby(text).transform("size")
        rate = rate.where(size >= MIN_CATEGORY_ROWS, float(np.mean(y)))
        found["auc"] = _auc(rate.to_numpy(dtype=float), y)
    return found


def _rates(groups: pd.Series, y: np.ndarray) -> list[dict[str, Any]]:
    frame = pd.DataFrame({"group": groups.to_numpy(), "y": y})
    table = frame.groupby("group", sort=True, observed=True)["y"]
    stats = table.agg(["size", "mean"])
    return [
        {"group": str(g), "rows": int(row["size"]), "rate": round(float(row["mean"]), 6)}
        for g, row in stats.iterrows()
    ]


def _flags(info: dict[str, Any], rows: int) -> list[str]:
    flags = []
    if info["distinct"] <= 1:
        flags.append("constant")
    if info["missing_rate"] >= MOSTLY_MISSING:
        flags.append("mostly missing")
    discrete = info["kind"] in ("categorical", "boolean") or info.get("integers", False)
    if rows and discrete and info["distinct"] >= ID_UNIQUE_SHARE * rows:
        flags.append("looks like an id")
    if (info.get("auc") or 0) >= LEAK_AUC:
        flags.append("possible leak")
    return flags


def profile_column(
    series: pd.Series, y: np.ndarray | None = None, kind: str | None = None
) -> dict[str, Any]:
    """One column's profile: kind, missing share, distinct values, distribution, flags."""
    rows = len(series)
    info: dict[str, Any] = {
        "column": str(series.name),
        "kind": _kind(series, kind),
        "missing_rate": round(float(series.isna().mean()) if rows else 0.0, 6),
        "distinct": int(series.nunique(dropna=True)),
    }
    if info["kind"] == "numeric":
        info.update(_numeric(series, y))
        numbers = pd.to_numeric(series, errors="coerce").dropna()
        info["integers"] = bool(len(numbers) and (numbers % 1 == 0).all())
    elif info["kind"] == "datetime":
        stamps = pd.to_datetime(series, errors="coerce", utc=True)
        info.update(min=str(stamps.min()), max=str(stamps.max()))
    else:
        info.update(_categorical(series, y))
    info["flags"] = _flags(info, rows)
    return info


def profile_frame(
    df: pd.DataFrame,
    y: np.ndarray | None = None,
    *,
    target: str | None = None,
    kinds: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The profile of a table; `y` (0/1 labels of the same rows) adds target rates.

    Example::

        profile = profile_frame(df.drop(columns="churned"), y, target="churned")
        [c["column"] for c in profile["columns"] if "possible leak" in c["flags"]]
    """
    kinds = dict(kinds or {})
    columns = [profile_column(df[c], y, kinds.get(str(c))) for c in df.columns if c != target]
    numeric = [c["column"] for c in columns if c["kind"] == "numeric"][:30]
    frame = df[numeric].apply(pd.to_numeric, errors="coerce")
    matrix = frame.corr().round(4).fillna(0.0)
    return {
        "rows": len(df),
        "columns": columns,
        "target": target,
        "positive_rate": round(float(np.mean(y)), 6) if y is not None and len(y) else None,
        "correlations": {"columns": numeric, "matrix": matrix.to_numpy().tolist()},
        "suspects": [
            {"column": c["column"], "flags": c["flags"]}
            for c in columns
            if {"looks like an id", "possible leak"} & set(c["flags"])
        ],
    }
