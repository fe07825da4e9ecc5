"""Checking request records against a model's contract, field by field, by name.

Fields are matched by name, never by position. Missing fields, wrong types and values
outside the contract are collected (up to a limit) and answered as one 422 that names
each record, field, what was expected and what came. ``null`` is a missing value and is
scored as training scored missing values. Values are never guessed at: ``"1.5"`` is not
a number, ``""`` is not a number either, and ``"now"`` is not a date-time.

A version trained with an ``interface:`` section keeps it in its signature: its bounds
apply on top of the kinds, and fields it does not name are refused (``extra: reject``)
or dropped before the prediction log sees them (``extra: ignore``, and every version
without an interface).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from mlprod.errors import SchemaError
from mlprod.spec import KIND_OF_TYPE

MAX_REPORTED = 20
LOOKUP_TIME = "@features_at"  # the instant a server looked a record's features up
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
        return None, 'a number, not a string (send 1.5, not "1.5"; null if unknown)'
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
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None, "an ISO 8601 date-time string such as 2024-05-01T12:00:00Z"
    # One spelling for pandas, whatever ISO form came ("20240501T1010", "2024-W18-3")
    return stamp.isoformat(), None


CHECKS: Mapping[str, Callable[[Any], tuple[Any, str | None]]] = {
    "numeric": _numeric,
    "categorical": _categorical,
    "boolean": _boolean,
    "datetime": _datetime,
}


Fields = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class Contract:
    """What a version accepts, built once from its signature (`Contract.of`).

    `fields` are the model's inputs (with the interface's bounds merged in) and make the
    frame; `context` are interface fields the model does not score (an entity id, say):
    checked, never framed. `allowed` is None unless extra fields are refused; `kept` are
    the names the prediction log stores.
    """

    fields: tuple[Mapping[str, Any], ...]
    context: tuple[Mapping[str, Any], ...] = ()
    allowed: frozenset[str] | None = None
    kept: frozenset[str] = frozenset()

    @classmethod
    def of(cls, signature: Mapping[str, Any]) -> Contract:
        """The contract of a version's signature; versions without an interface keep theirs."""
        learned = [dict(f) for f in signature["fields"]]
        interface = signature.get("interface") or {}
        request: Mapping[str, Mapping[str, Any]] = interface.get("request") or {}
        fields = tuple({**f, **_bounds(request.get(str(f["name"])))} for f in learned)
        names = {str(f["name"]) for f in learned}
        context = tuple(
            {"name": name, "kind": KIND_OF_TYPE[str(bounds["type"])], **_bounds(bounds)}
            for name, bounds in request.items()
            if name not in names
        )
        online = signature.get("online") or {}
        around = {signature.get("entity"), signature.get("time"), online.get("key")}
        kept = frozenset(names | set(request) | {str(n) for n in around if n} | {LOOKUP_TIME})
        allowed = kept if interface.get("extra") == "reject" else None
        return cls(fields, context, allowed, kept)

    @functools.cached_property
    def optional(self) -> dict[str, None]:
        """Model inputs a record may leave out (scored as missing)."""
        return {str(f["name"]): None for f in self.fields if f.get("required") is False}

    def extras(self, record: Mapping[str, Any]) -> list[str]:
        """Names in `record` the contract does not know."""
        return [name for name in record if name not in self.kept]


def without_extras(records: Sequence[Any], kept: frozenset[str]) -> list[Any] | None:
    """`records` without the fields outside `kept`; None when no record has any.

    Why: what a client adds beyond the contract (a 1 MB string in an unknown field, say)
    must never reach the prediction log.
    """
    if all(kept.issuperset(record) for record in records):
        return None
    return [{k: v for k, v in record.items() if k in kept} for record in records]


def _bounds(contract: Mapping[str, Any] | None) -> dict[str, Any]:
    """An interface field's bounds, without the keys left at their defaults."""
    return {k: v for k, v in (contract or {}).items() if v is not None and k != "description"}


def as_contract(fields: Fields | Contract) -> Contract:
    """A signature's field list is a contract without an interface."""
    return fields if isinstance(fields, Contract) else Contract(tuple(fields))


def records_to_frame(records: Any, fields: Fields | Contract, *, max_records: int) -> pd.DataFrame:
    """A DataFrame of the model's columns, or a `SchemaError` listing every problem."""
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
    contract = as_contract(fields)
    columns: dict[str, list[Any]] = {str(f["name"]): [] for f in contract.fields}
    problems: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        problems.extend(record_problems(record, contract, index, columns))
        if len(problems) >= MAX_REPORTED:
            break
    if problems:
        raise SchemaError(_summary(problems), fields=problems[:MAX_REPORTED])
    return pd.DataFrame(columns)


def record_problems(
    record: Any,
    fields: Fields | Contract,
    index: int = 0,
    columns: dict[str, list[Any]] | None = None,
) -> list[dict[str, Any]]:
    """What is wrong with one record (empty if nothing); its clean values go to `columns`.

    Shared with the fast path, which replays test rows and must skip exactly the rows
    the server would refuse.
    """
    if not isinstance(record, dict):
        return [{"record": index, "field": None, "expected": "an object of field values"}]
    contract = as_contract(fields)
    problems: list[dict[str, Any]] = []
    for field in contract.fields:
        _check_field(record, field, index, columns, problems)
    for field in contract.context:
        _check_field(record, field, index, None, problems)
    if contract.allowed is not None:
        for name in contract.extras(record)[:3]:
            problems.append(
                {"record": index, "field": name,
                 "expected": "no such field: the interface refuses fields it does not name",
                 "got": _shown(record[name])}
            )  # fmt: skip
    return problems


def _check_field(
    record: Mapping[str, Any],
    field: Mapping[str, Any],
    index: int,
    columns: dict[str, list[Any]] | None,
    problems: list[dict[str, Any]],
) -> None:
    name = str(field["name"])
    if name in record:
        value = record[name]
    elif field.get("required") is False:
        value = None
    else:
        problems.append(
            {"record": index, "field": name, "expected": "this field (use null if unknown)",
             "got": "no such field"}
        )  # fmt: skip
        return
    cleaned, expected = value_check(field, value)
    if expected is not None:
        problems.append(
            {"record": index, "field": name, "expected": expected, "got": _shown(value)}
        )
    elif columns is not None:
        columns[name].append(cleaned)


def value_check(field: Mapping[str, Any], value: Any) -> tuple[Any, str | None]:
    """One value against its field: (the clean value, None) or (None, what was expected)."""
    if value is None:
        if field.get("nullable") is False:
            return None, "a value: null is not allowed for this field"
        return None, None
    cleaned, expected = CHECKS[str(field["kind"])](value)
    if expected is None and "type" in field:
        expected = _bound_problem(field, value)
    return (None, expected) if expected is not None else (cleaned, None)


def _bound_problem(field: Mapping[str, Any], value: Any) -> str | None:
    """What the interface's bounds say about a value its kind accepts (None: fine)."""
    kind = field["type"]
    if kind == "integer" and not (isinstance(value, int) or float(value).is_integer()):
        return "an integer"
    if kind in ("number", "integer"):
        low, high = field.get("minimum"), field.get("maximum")
        if low is not None and value < low:
            return f"a number >= {low:g}"
        if high is not None and value > high:
            return f"a number <= {high:g}"
        return None
    if kind == "string":
        if not isinstance(value, str):
            return f"a string (got {type(value).__name__})"
        longest = field.get("max_length")
        if longest is not None and len(value) > longest:
            return f"a string of at most {longest} characters (got {len(value):,})"
        allowed = field.get("values")
        if allowed is not None and value not in allowed:
            return f"one of {allowed}"
    return None


def _shown(value: Any) -> str:
    """A value as an answer shows it: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _summary(problems: Sequence[Mapping[str, Any]]) -> str:
    first = problems[0]
    where = f"record {first['record']}" + (
        f", field {first['field']!r}" if first.get("field") else ""
    )
    got = f", got {first['got']}" if "got" in first else ""
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return f"{where}: expected {first['expected']}{got}{more}"
