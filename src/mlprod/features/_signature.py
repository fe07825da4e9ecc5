"""The model's signature: the request fields a version accepts, by name and kind.

It is stored in the bundle manifest and in the registry, and the server builds its
request validation and OpenAPI document from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mlprod.features._coerce import MISSING, as_category

TOP_CATEGORIES = 20


def json_safe(value: Any) -> Any:
    """A plain JSON value for one cell (numpy scalars, timestamps, missing)."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return value


def build_signature(
    df: pd.DataFrame,
    kinds: Mapping[str, str],
    *,
    target: str,
    classes: list[Any],
    entity: str | None,
    time: str | None,
) -> dict[str, Any]:
    """Fields (name, kind, dtype, missing share, example, top categories) and context."""
    fields = []
    for column, kind in kinds.items():
        values = df[column]
        present = values.dropna()
        field: dict[str, Any] = {
            "name": column,
            "kind": kind,
            "dtype": str(values.dtype),
            "missing_rate": round(float(values.isna().mean()), 6),
            "example": json_safe(present.iloc[0]) if len(present) else None,
        }
        if kind == "categorical":
            counts = pd.Series(as_category(values)).value_counts()
            field["categories"] = [c for c in counts.index.tolist() if c != MISSING][
                :TOP_CATEGORIES
            ]
        fields.append(field)
    return {
        "fields": fields,
        "target": target,
        "classes": [json_safe(c) for c in classes],
        "entity": entity,
        "time": time,
    }
