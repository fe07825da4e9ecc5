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
