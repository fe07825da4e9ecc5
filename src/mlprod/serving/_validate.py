"""Checking request records against a model's signature, field by field, by name.

Fields are matched by name, never by position; extra fields are ignored; missing
fields, wrong types and unparseable values are collected (up to a limit) and answered
as one 422 that names each record, field and what was expected. ``null`` is a missing
value and is scored as training scored missing values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from mlprod.errors import SchemaError

MAX_REPORTED = 20
_BOOL_TEXT = {"true", "false", "yes", "no", "t", "f", "y", "n", "1", "0"}


def _numeric(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, bool):
        return None, "a number (got a boolean)"
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an integer beyond float's range: a 422, not a crash
            return None, "a finite number (NaN and infinity are not allowed)"
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None, "a number (could not parse the string)"
    else:
        return None, f"a number (got {type(value).__name__})"
    if not math.isfinite(number):
        return None, "a finite number (NaN and infinity are not allowed)"
    return number, None


def _categorical(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, str | int | bool):
        return value, None
    if isinstance(value, float) and math.isfinite(value):
        return value, None
    return None, f"a string category (got {type(value).__name__})"


def _boolean(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, bool):
        return value, None
    if isinstance(value, int) and value in (0, 1):
        return bool(value), None
    if isinstance(value, str) and value.strip().lower() in _BOOL_TEXT:
        return value, None
    return None, "a boolean (true or false)"


def _datetime(value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        return None, f"an ISO 8601 date-time string (got {type(value).__name__})"
    try:
        datetime.fromisoformat(value)
    except ValueError:
        try:
            pd.Timestamp(value)
        except ValueError:
            return None, "an ISO 8601 date-time string such as 2024-05-01T12:00:00"
    return value, None


CHECKS: Mapping[str, Callable[[Any], tuple[Any, str | None]]] = {
    "numeric": _numeric,
    "categorical": _categorical,
    "boolean": _boolean,
    "datetime": _datetime,
}


def records_to_frame(
    records: Any, fields: Sequence[Mapping[str, Any]], *, max_records: int
) -> pd.DataFrame:
    """A DataFrame of the signature's columns, or a `SchemaError` listing every problem."""
    if not isinstance(records, list) or not records:
        raise SchemaError(
            'the body must be {"records": [ {...}, ... ]} with at least one record',
            fields=[{"field": "records", "expected": "a non-empty list of objects"}],
        )
    if len(records) > max_records:
        raise SchemaError(
            f"{len(records)} records in one request; the limit is {max_records}: split the batch",
            fields=[{"field": "records", "expected": f"at most {max_records} records"}],
        )
    columns: dict[str, list[Any]] = {str(f["name"]): [] for f in fields}
    problems: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        problems.extend(record_problems(record, fields, index, columns))
        if len(problems) >= MAX_REPORTED:
            break
    if problems:
        raise SchemaError(_summary(problems), fields=problems[:MAX_REPORTED])
    return pd.DataFrame(columns)


def record_problems(
    record: Any,
    fields: Sequence[Mapping[str, Any]],
    index: int = 0,
    columns: dict[str, list[Any]] | None = None,
) -> list[dict[str, Any]]:
    """What is wrong with one record (empty if nothing); its clean values go to `columns`.

    Shared with the fast path, which replays test rows and must skip exactly the rows
    the server would refuse.
    """
    if not isinstance(record, dict):
        return [{"record": index, "field": None, "expected": "an object of field values"}]
    if columns is None:
        columns = {str(f["name"]): [] for f in fields}
    problems: list[dict[str, Any]] = []
    for field in fields:
        _check_field(record, field, index, columns, problems)
    return problems


def _check_field(
    record: Mapping[str, Any],
    field: Mapping[str, Any],
    index: int,
    columns: dict[str, list[Any]],
    problems: list[dict[str, Any]],
) -> None:
    name = str(field["name"])
    if name not in record:
        problems.append(
            {"record": index, "field": name, "expected": "this field (use null if unknown)"}
        )
        return
    value = record[name]
    if value is None:
        columns[name].append(None)
        return
    cleaned, expected = CHECKS[str(field["kind"])](value)
    if expected is not None:
        problems.append(
            {"record": index, "field": name, "expected": expected, "got": repr(value)[:80]}
        )
        return
    columns[name].append(cleaned)


def _summary(problems: Sequence[Mapping[str, Any]]) -> str:
    first = problems[0]
    where = f"record {first['record']}" + (
        f", field {first['field']!r}" if first.get("field") else ""
    )
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return f"{where}: expected {first['expected']}{more}"
