"""Features: one fitted transformer shared by training and serving, kind inference, coercion;
aggregates over event tables and their point-in-time computation.

The coercion functions are the one definition of how a raw value becomes a number, a
category, a boolean or a time; training, serving's fast path and monitoring all call them.

The two scikit-learn estimators (`FeatureTransformer`, `ColumnSubset`) load on first use:
monitoring and the command line use the coercion functions without scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mlprod.features._aggregates import (
    AggregateFeature,
    FeaturePlan,
    JoinFeature,
    Slot,
    compile_plan,
    text_value,
    value_text,
    window_start,
)
from mlprod.features._infer import id_columns, infer_kind, infer_kinds, resolve_features
from mlprod.features._pit import (
    aggregate_kinds,
    empty_values,
    epoch_ms,
    event_frame,
    filters_of,
    join_frame,
    key_texts,
    point_in_time,
)
from mlprod.features._signature import (
    build_signature,
    check_contract,
    contract_differences,
    contract_signature,
    draft_interface,
)
from mlprod.features._sources import read_event_sources, read_join_tables
from mlprod.records import (
    DATETIME_PARTS,
    MISSING,
    as_boolean,
    as_category,
    as_datetime,
    as_numeric,
    boolean_value,
    category_string,
    datetime_parts,
    json_safe,
)

if TYPE_CHECKING:
    from mlprod.features._subset import ColumnSubset
    from mlprod.features._transformer import FeatureTransformer

_LAZY = {
    "ColumnSubset": "mlprod.features._subset",
    "FeatureTransformer": "mlprod.features._transformer",
}

__all__ = [
    "DATETIME_PARTS",
    "MISSING",
    "AggregateFeature",
    "ColumnSubset",
    "FeaturePlan",
    "FeatureTransformer",
    "JoinFeature",
    "Slot",
    "aggregate_kinds",
    "as_boolean",
    "as_category",
    "as_datetime",
    "as_numeric",
    "boolean_value",
    "build_signature",
    "category_string",
    "check_contract",
    "compile_plan",
    "contract_differences",
    "contract_signature",
    "datetime_parts",
    "draft_interface",
    "empty_values",
    "epoch_ms",
    "event_frame",
    "filters_of",
    "id_columns",
    "infer_kind",
    "infer_kinds",
    "join_frame",
    "json_safe",
    "key_texts",
    "point_in_time",
    "read_event_sources",
    "read_join_tables",
    "resolve_features",
    "text_value",
    "value_text",
    "window_start",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mlprod.features' has no attribute {name!r}")
