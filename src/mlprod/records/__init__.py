"""Raw records in: how a value coerces, what a version accepts, and the verified fast path.

Every way of scoring a version reads raw records: the server (JSON), the library
(`mlprod.bundle.Model`: DataFrames, lists of dicts, one dict) and batch jobs. What they
share lives here, below all of them:

- coercion: the one definition of how a raw value becomes a number, a category, a
  boolean or a time (training's transformer calls the same functions);
- the contract: a version's fields, checked by name with errors that say which record,
  which field, what was expected and what came (`records_to_frame`, `Contract`);
- the fast path: the fitted transformer compiled to lookups and a few numpy calls, used
  only after it reproduces the full pipeline's scores to 1e-9 (`check_fast_path`).

Example::

    check = check_fast_path(model)          # FastPathCheck: .fast is None -> full pipeline
    if check.fast is not None:
        check.fast.score_records([{"tenure_months": 12, ...}])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mlprod.records._coerce import (
    DATETIME_PARTS,
    MISSING,
    as_boolean,
    as_category,
    as_datetime,
    as_numeric,
    boolean_value,
    category_string,
    datetime_parts,
    distinct_codes,
    json_safe,
)

if TYPE_CHECKING:
    from mlprod.records._fastpath import (
        TOLERANCE,
        FastPath,
        FastPathCheck,
        check_fast_path,
        client_records,
        compile_fast_path,
        max_difference,
        reference_scores,
        upgrade_scorer,
    )
    from mlprod.records._validate import (
        LOOKUP_TIME,
        Contract,
        record_problems,
        records_to_frame,
        without_extras,
    )

# The contract and the fast path load on first use (pandas): coercion alone does not.
_LAZY = {
    "Contract": "mlprod.records._validate",
    "FastPath": "mlprod.records._fastpath",
    "FastPathCheck": "mlprod.records._fastpath",
    "LOOKUP_TIME": "mlprod.records._validate",
    "TOLERANCE": "mlprod.records._fastpath",
    "check_fast_path": "mlprod.records._fastpath",
    "client_records": "mlprod.records._fastpath",
    "compile_fast_path": "mlprod.records._fastpath",
    "max_difference": "mlprod.records._fastpath",
    "record_problems": "mlprod.records._validate",
    "records_to_frame": "mlprod.records._validate",
    "reference_scores": "mlprod.records._fastpath",
    "upgrade_scorer": "mlprod.records._fastpath",
    "without_extras": "mlprod.records._validate",
}

__all__ = [
    "DATETIME_PARTS",
    "LOOKUP_TIME",
    "MISSING",
    "TOLERANCE",
    "Contract",
    "FastPath",
    "FastPathCheck",
    "as_boolean",
    "as_category",
    "as_datetime",
    "as_numeric",
    "boolean_value",
    "category_string",
    "check_fast_path",
    "client_records",
    "compile_fast_path",
    "datetime_parts",
    "distinct_codes",
    "json_safe",
    "max_difference",
    "record_problems",
    "records_to_frame",
    "reference_scores",
    "upgrade_scorer",
    "without_extras",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mlprod.records' has no attribute {name!r}")
