"""The fast predict path: JSON records straight to the model's matrix, no DataFrame.

Why it exists: the reference path (records, a DataFrame, the fitted FeatureTransformer,
the scorer) spends milliseconds per request in pandas construction and scikit-learn's
per-call checks, for a model whose own work takes tens of microseconds. The fast path
re-implements only the *fitted state* of the transformer (imputer statistics, missing
indicators, one-hot lookup tables) with dicts and a few numpy calls, then hands the
float64 matrix to the same scorer (LightGBM/XGBoost booster or scikit-learn).

Why it is safe: a version gets it only after it reproduces the reference path's scores,
to 1e-9, on the version's own test set sent as a client would send it (JSON: nulls,
ISO strings) and on adversarial probe records (unseen categories, nulls, huge numbers,
``"yes"``, time zones). Anything the compiler does not recognise, or any mismatch, leaves
the version on the reference path, and says why. Input validation is the reference's:
the same per-kind checks and the interface's bounds (tested a column at a time), and on
any problem the reference builds the exact 422.
"""

from __future__ import annotations

import copy
import functools
import logging
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import orjson
import pandas as pd

from mlprod.records._coerce import (
    DATETIME_PARTS,
    MISSING,
    NO_PARTS,
    boolean_value,
    category_string,
    datetime_parts,
    iso_parts,
    json_safe,
)
from mlprod.records._frames import FrameEncoder, frame_variants
from mlprod.records._rows import RowBuilder
from mlprod.records._validate import (
    CHECKS,
    Contract,
    record_problems,
    records_to_frame,
    value_check,
)

log = logging.getLogger("mlprod.records")

TOLERANCE = 1e-9
VERIFY_ROWS = 100_000  # test rows replayed at most (evenly spaced beyond that)
VERIFY_CHUNK = 10_000
VERIFY_SINGLES = 64  # test rows, and rows of each probe batch and frame, also scored alone
_EXACT_INT = 2**53  # beyond this an int does not survive pandas' float64 columns
_NONE = type(None)
_ABSENT = object()  # a field a record leaves out: no kind accepts it


# The transformer the fast path mirrors, named as the bundle's trusted types name it: it
# lives in a higher layer (features), and the compiled plan is checked against it anyway.
_TRANSFORMER = "mlprod.features._transformer.FeatureTransformer"


class Scored(Protocol):
    """What the fast path needs of a loaded version (``mlprod.bundle.Model``)."""

    @property
    def name(self) -> str: ...
    @property
    def signature(self) -> dict[str, Any]: ...

    transformer: Any
    scorer: Any
    version: int | None

    def test_data(self) -> tuple[pd.DataFrame, np.ndarray]: ...


class _InvalidError(Exception):
    """A value the reference's checks refuse; the reference then writes the 422."""


class NotCompilableError(Exception):
    """The fitted transformer holds something the fast path does not reproduce."""


# --- one field's raw JSON values, checked as the reference checks them --------------------

Values = Sequence[Any]


def _checked(kind: str, value: Any) -> Any:
    cleaned, expected = CHECKS[kind](value)
    if expected is not None:
        raise _InvalidError
    return cleaned


def _numeric_values(values: Values) -> list[Values]:
    """Numbers for numpy to convert (None becomes NaN: missing)."""
    if set(map(type, values)) <= _NUMERIC_FAST:
        return [values]  # NaN or infinity among them is caught after conversion
    return [[np.nan if v is None else _checked("numeric", v) for v in values]]


def _boolean_values(values: Values) -> list[Values]:
    if set(map(type, values)) <= _BOOLEAN_FAST:
        return [values]
    return [[np.nan if v is None else boolean_value(_checked("boolean", v)) for v in values]]


def _datetime_values(values: Values) -> list[Values]:
    """Four sequences: year, month, day of week and hour, NaN where missing."""
    found = []
    for value in values:
        parts = NO_PARTS if value is None else iso_parts(value) if type(value) is str else None
        if parts is None:
            return list(_datetime_reference(values).T)
        found.append(parts)
    return list(zip(*found, strict=True))


def _datetime_reference(values: Values) -> np.ndarray:
    """pandas on the whole column, in the one spelling the reference hands it."""
    cleaned = [None if value is None else _checked("datetime", value) for value in values]
    return datetime_parts(pd.Series(cleaned))


class _CategoryCodes:
    """Category labels to output columns of the one-hot block (-1: no column)."""

    def __init__(self, lookup: Mapping[str, int], unknown: int) -> None:
        self.lookup: dict[str | None, int] = {}
        self.lookup.update(lookup)
        self.lookup[None] = lookup.get(MISSING, unknown)
        self.unknown = unknown

    def __call__(self, values: Values) -> list[int]:
        lookup, unknown = self.lookup, self.unknown
        if set(map(type, values)) <= _CATEGORY_FAST:
            return [lookup.get(value, unknown) for value in values]
        return [lookup.get(label, unknown) for label in _labels(values)]


def _labels(values: Values) -> list[str]:
    for value in values:
        if value is not None:
            _checked("categorical", value)
    if any(type(v) is int and abs(v) > _EXACT_INT for v in values):
        # pandas would hold this column as float64 (rounding big ints) or object: ask it
        return [category_string(v) for v in pd.Series(list(values)).tolist()]
    return [category_string(value) for value in values]


def _column_check(field: Mapping[str, Any]) -> Callable[[Values], bool] | None:
    """A whole-column test of an interface's bounds (None: the field has none).

    False sends the request to the reference, which names the problem; a test that
    cannot tell (a value of the wrong kind) passes, and the kind checks refuse it.
    """
    checks: list[Callable[[Values], bool]] = []
    if field.get("nullable") is False:
        checks.append(_no_nulls)
    kind, low, high = field.get("type"), field.get("minimum"), field.get("maximum")
    if kind == "integer" or (kind == "number" and (low is not None or high is not None)):
        checks.append(functools.partial(_numbers_within, low, high, kind == "integer"))
    if kind == "string":
        allowed = field.get("values")
        within = None if allowed is None else frozenset(allowed)
        checks.append(functools.partial(_strings_within, field.get("max_length"), within))
    if not checks:
        return None
    return lambda values: all(check(values) for check in checks)


def _no_nulls(values: Values) -> bool:
    return None not in values


def _present(values: Values) -> Values:
    return [v for v in values if v is not None] if None in values else values


def _numbers_within(low: float | None, high: float | None, whole: bool, values: Values) -> bool:
    present = _present(values)
    if not set(map(type, present)) <= {int, float}:
        return True  # a boolean or a string: the kind check refuses it
    try:
        numbers = np.asarray(present, dtype=float)
    except OverflowError:
        return False
    with np.errstate(invalid="ignore"):
        if low is not None and (numbers < low).any():
            return False
        if high is not None and (numbers > high).any():
            return False
        return not (whole and (numbers != np.floor(numbers)).any())


def _strings_within(longest: int | None, allowed: frozenset[str] | None, values: Values) -> bool:
    present = _present(values)
    if not set(map(type, present)) <= {str}:
        return False
    if longest is not None and max(map(len, present), default=0) > longest:
        return False
    return allowed is None or allowed.issuperset(present)


_NUMERIC_FAST = {float, int, _NONE}
_BOOLEAN_FAST = {bool, _NONE}
_CATEGORY_FAST = {str, _NONE}
_CONVERTERS: Mapping[str, Callable[[Values], list[Values]]] = {
    "numeric": _numeric_values,
    "boolean": _boolean_values,
    "datetime": _datetime_values,
}


# --- the compiled plan -------------------------------------------------------------------


@dataclass
class _Plan:
    """Where each field's values land in the transformer's output matrix.

    Imputed inputs (numeric values, booleans, datetime parts) are gathered in one matrix,
    in the fitted imputers' input order; each has a fill value (the imputer's statistic)
    and an output column, and some an indicator column. Categorical fields map labels
    straight to their one-hot output column.
    """

    names: tuple[str, ...]
    width: int
    converters: list[tuple[int, Callable[[Values], list[Values]]]] = field(default_factory=list)
    categories: list[tuple[int, _CategoryCodes]] = field(default_factory=list)
    inputs: list[tuple[int, int]] = field(default_factory=list)  # (field index, part)
    fill: list[float] = field(default_factory=list)
    dest: list[int] = field(default_factory=list)
    indicator_src: list[int] = field(default_factory=list)
    indicator_dest: list[int] = field(default_factory=list)


class FastPath:
    """Validated JSON records to scores without pandas, for one verified model version.

    Build it with `compile_fast_path`, which only returns one that reproduces the
    reference path on the version's test set.

    Example::

        fast = compile_fast_path(model)
        if fast is not None:
            scores = fast.score_records([{"tenure_months": 12, ...}])
    """

    def __init__(self, model: Scored, plan: _Plan) -> None:
        self.transformer = model.transformer
        # A scorer may offer a leaner call for small matrices (LightGBM's C call without
        # its Python wrapper); the parity check below verifies whichever scores here.
        fast_scorer = getattr(model.scorer, "fast_scorer", None)
        self.scorer = model.scorer if fast_scorer is None else fast_scorer()
        self.engine = "model"  # what scores the matrix; "compiled trees" once upgraded
        self.contract = Contract.of(model.signature)
        self.fields = [dict(f) for f in self.contract.fields]
        self.plan = plan
        self.verified = ""
        self.frames: FrameEncoder | None = None  # DataFrames too, once verified
        self.frames_verified = "not checked"
        names = plan.names
        self._row = operator.itemgetter(*names) if len(names) > 1 else _single(names[0])
        self._fill = np.asarray(plan.fill, dtype=float)
        self._dest = np.asarray(plan.dest, dtype=np.intp)
        self._indicator_src = np.asarray(plan.indicator_src, dtype=np.intp)
        self._indicator_dest = np.asarray(plan.indicator_dest, dtype=np.intp)
        numeric = {i for i, name in enumerate(names) if self.kind(name) == "numeric"}
        self._numeric_fields = sorted(numeric)
        self._numeric_inputs = np.asarray(
            [j for j, (i, _) in enumerate(plan.inputs) if i in numeric], dtype=np.intp
        )
        self._numeric_list = [int(j) for j in self._numeric_inputs]
        self._rows = RowBuilder(plan)
        index = {name: i for i, name in enumerate(names)}
        bounded = ((index[str(f["name"])], _column_check(f)) for f in self.fields)
        self._bounded = [(i, check) for i, check in bounded if check is not None]

    def kind(self, name: str) -> str:
        """The signature kind of field `name`."""
        return next(str(f["kind"]) for f in self.fields if f["name"] == name)

    def score_records(self, records: Any, *, max_records: int = 10_000) -> np.ndarray:
        """P(positive) per record (multiclass: n x k); invalid input raises the reference's
        exact SchemaError."""
        if not isinstance(records, list) or not records or len(records) > max_records:
            records_to_frame(records, self.contract, max_records=max_records)  # raises
        try:
            matrix = self.encode(records)
        except _InvalidError:
            # The reference writes the 422 (it names every problem). Should it accept
            # what the fast checks refused, the reference scores it: it has the last word.
            frame = records_to_frame(records, self.contract, max_records=max_records)
            return np.asarray(self.scorer.scores(self.transformer.transform(frame)))
        return np.asarray(self.scorer.scores(matrix))

    def score_frame(self, frame: pd.DataFrame) -> np.ndarray | None:
        """P(positive) per row of raw columns; None when the full pipeline must answer."""
        matrix = None if self.frames is None else self.frames.encode(frame)
        return None if matrix is None else np.asarray(self.scorer.scores(matrix))

    def encode(self, records: list[Any]) -> np.ndarray:
        """The float64 matrix the transformer would produce, in its column order."""
        plan, n = self.plan, len(records)
        columns = self._columns(records)
        for i, check in self._bounded:
            if not check(columns[i]):
                raise _InvalidError
        if n == 1:
            return self._encode_one(columns)
        out = np.zeros((n, plan.width))
        if plan.inputs:
            self._impute(columns, out)
        hot = [
            row * plan.width + column
            for i, codes in plan.categories
            for row, column in enumerate(codes(columns[i]))
            if column >= 0
        ]
        out.reshape(-1)[hot] = 1.0
        return out

    def _columns(self, records: list[Any]) -> list[tuple[Any, ...]]:
        """Each model input's values; the contract's other checks on the way."""
        contract = self.contract
        try:
            columns = list(zip(*map(self._row, records), strict=True))
        except KeyError:  # a missing field: an optional one is scored as missing
            if not contract.optional:
                raise _InvalidError from None
            records = [{**contract.optional, **r} if isinstance(r, dict) else r for r in records]
            try:
                columns = list(zip(*map(self._row, records), strict=True))
            except (KeyError, TypeError):
                raise _InvalidError from None
        except TypeError:  # a record that is not an object
            raise _InvalidError from None
        for spec in contract.context:
            name, needed = str(spec["name"]), spec.get("required") is not False
            for record in records:
                present = name in record
                if (present or needed) and value_check(spec, record.get(name, _ABSENT))[1]:
                    raise _InvalidError
        allowed = contract.allowed
        if allowed is not None and not all(allowed.issuperset(r) for r in records):
            raise _InvalidError
        return columns

    def _encode_one(self, columns: list[tuple[Any, ...]]) -> np.ndarray:
        """`encode` for one record: the same converters and checks, one Python row."""
        plan = self.plan
        parts = {i: convert(columns[i]) for i, convert in plan.converters}
        try:  # numpy converts each value as it does for a batch (None: NaN)
            values: list[float] = np.array(
                [parts[i][p][0] for i, p in plan.inputs], dtype=float
            ).tolist()
        except OverflowError:  # an integer beyond float's range
            raise _InvalidError from None
        nones = sum(columns[i][0] is None for i in self._numeric_fields)
        if sum(values[j] != values[j] for j in self._numeric_list) != nones:
            raise _InvalidError  # a NaN sent as a number: the reference refuses it
        hot = [column for i, codes in plan.categories if (column := codes(columns[i])[0]) >= 0]
        matrix = self._rows.matrix(values, hot)
        if matrix is None:  # an infinity sent as a number: the reference refuses it
            raise _InvalidError
        return matrix

    def _impute(self, columns: list[tuple[Any, ...]], out: np.ndarray) -> None:
        plan = self.plan
        parts = {i: convert(columns[i]) for i, convert in plan.converters}
        try:
            raw = np.array([parts[i][p] for i, p in plan.inputs], dtype=float).T
        except OverflowError:  # an integer beyond float's range
            raise _InvalidError from None
        missing = np.isnan(raw)
        nones = sum(columns[i].count(None) for i in self._numeric_fields)
        if np.isinf(raw).any() or np.count_nonzero(missing[:, self._numeric_inputs]) != nones:
            raise _InvalidError  # a NaN or infinity sent as a number: the reference refuses it
        out[:, self._dest] = np.where(missing, self._fill, raw)
        out[:, self._indicator_dest] = missing[:, self._indicator_src]


def _single(name: str) -> Callable[[Any], tuple[Any]]:
    def row(record: Any) -> tuple[Any]:
        return (record[name],)

    return row


# --- compiling the fitted transformer ------------------------------------------------------


def _compile(model: Scored) -> FastPath:
    """A FastPath mirroring `model`'s fitted transformer, or `NotCompilableError` saying why."""
    transformer = model.transformer
    mirrored = any(_qualified(kind) == _TRANSFORMER for kind in type(transformer).__mro__)
    if not mirrored or not hasattr(transformer, "encoder_"):
        kind = type(transformer).__name__
        raise NotCompilableError(f"the transformer is a {kind}, not a fitted FeatureTransformer")
    kinds = {str(k): str(v) for k, v in (transformer.kinds or {}).items()}
    signature = {str(f["name"]): str(f["kind"]) for f in model.signature["fields"]}
    if kinds != signature:
        raise NotCompilableError("the transformer's columns differ from the signature's fields")
    plan = _Plan(names=tuple(signature), width=int(transformer.n_features_out_))
    index = {name: i for i, name in enumerate(plan.names)}
    plan.converters = [(index[n], _CONVERTERS[k]) for n, k in kinds.items() if k in _CONVERTERS]
    ct = transformer.encoder_
    for part_name, fitted, inputs in ct.transformers_:
        if isinstance(fitted, str) and fitted == "drop":
            continue
        where: slice = ct.output_indices_[part_name]
        if _is_imputer(fitted):
            _add_imputer(plan, fitted, [str(c) for c in inputs], kinds, where)
        else:
            _add_onehot(plan, fitted, [str(c) for c in inputs], kinds, where)
    _check_coverage(plan)
    return FastPath(model, plan)


def _qualified(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def _check_coverage(plan: _Plan) -> None:
    """Every field feeds the matrix, and every output column is written exactly once."""
    fed = {i for i, _ in plan.inputs} | {i for i, _ in plan.categories}
    if fed != set(range(len(plan.names))):
        raise NotCompilableError("some signature fields feed no output column")
    written = plan.dest + plan.indicator_dest
    for _, codes in plan.categories:
        written += sorted({c for c in codes.lookup.values() if c >= 0} | {codes.unknown} - {-1})
    if sorted(written) != list(range(plan.width)):
        raise NotCompilableError("the compiled columns do not cover the transformer's output")


def _width(where: slice) -> int:
    return int(where.stop - where.start)


def _is_imputer(fitted: Any) -> bool:
    from sklearn.impute import SimpleImputer

    return type(fitted) is SimpleImputer


def _add_imputer(
    plan: _Plan, imputer: Any, inputs: list[str], kinds: Mapping[str, str], where: slice
) -> None:
    missing = imputer.missing_values
    if not (isinstance(missing, float) and np.isnan(missing)):
        raise NotCompilableError(f"an imputer treats {missing!r} as missing, not NaN")
    fill = np.asarray(imputer.statistics_, dtype=float)
    if fill.shape != (len(inputs),) or np.isnan(fill).any():
        raise NotCompilableError("an imputer dropped or cannot fill a column (empty at fit)")
    indicator = getattr(imputer, "indicator_", None)
    features = [] if indicator is None else [int(j) for j in indicator.features_]
    if len(inputs) + len(features) != _width(where):
        raise NotCompilableError("an imputer's output width is not inputs plus indicators")
    first = len(plan.inputs)
    index = {name: i for i, name in enumerate(plan.names)}
    for j, column in enumerate(inputs):
        name, part = _source(column, kinds)
        plan.inputs.append((index[name], part))
        plan.fill.append(float(fill[j]))
        plan.dest.append(int(where.start) + j)
    for k, j in enumerate(features):
        plan.indicator_src.append(first + j)
        plan.indicator_dest.append(int(where.start) + len(inputs) + k)


def _source(column: str, kinds: Mapping[str, str]) -> tuple[str, int]:
    """The field and part index (0 unless a datetime part) an imputer input comes from."""
    if kinds.get(column) in ("numeric", "boolean"):
        return column, 0
    name, _, part = column.rpartition(".")
    if kinds.get(name) == "datetime" and part in DATETIME_PARTS:
        return name, DATETIME_PARTS.index(part)
    raise NotCompilableError(f"an imputer reads {column!r}, no numeric or boolean column")


def _add_onehot(
    plan: _Plan, fitted: Any, inputs: list[str], kinds: Mapping[str, str], where: slice
) -> None:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    single = type(fitted) is Pipeline and len(fitted.steps) == 1
    encoder = fitted.steps[-1][1] if single else fitted
    if type(encoder) is not OneHotEncoder:
        raise NotCompilableError(f"unsupported transformer step {type(encoder).__name__}")
    if encoder.drop_idx_ is not None or encoder.handle_unknown not in _UNKNOWN_OK:
        raise NotCompilableError("a one-hot encoder drops a category or errors on unknown ones")
    infrequent = getattr(encoder, "infrequent_categories_", None) or [None] * len(inputs)
    index = {name: i for i, name in enumerate(plan.names)}
    column = int(where.start)
    for name, categories, rare in zip(inputs, encoder.categories_, infrequent, strict=True):
        if kinds.get(name) != "categorical" or not all(isinstance(c, str) for c in categories):
            raise NotCompilableError(f"one-hot column {name!r} is not a string categorical")
        rare_set = set() if rare is None else {str(c) for c in rare}
        lookup: dict[str, int] = {}
        for category in categories:
            if category not in rare_set:
                lookup[category] = column
                column += 1
        unknown = -1
        if rare_set:  # sklearn's order: frequent categories, then one "infrequent" column
            lookup.update(dict.fromkeys(rare_set, column))
            unknown = column if encoder.handle_unknown == "infrequent_if_exist" else -1
            column += 1
        plan.categories.append((index[name], _CategoryCodes(lookup, unknown)))
    if column != where.stop:
        raise NotCompilableError("the one-hot encoder's width does not match its categories")


_UNKNOWN_OK = ("infrequent_if_exist", "ignore")


# --- verifying against the reference path, and remembering the verdict ---------------------


class _MismatchError(Exception):
    """The fast path's scores differ from the reference path's."""


@dataclass(frozen=True)
class FastPathCheck:
    """Which path a version serves with, and why (for the log and `mlprod models show`)."""

    fast: FastPath | None
    reason: str

    @property
    def path(self) -> str:
        return "reference" if self.fast is None else "fast"


def check_fast_path(model: Scored) -> FastPathCheck:
    """Compile `model`'s fast path and replay its test set and probes through both paths."""
    try:
        fast = _compile(model)
        summary, probes = _verify(model, fast)
    except NotCompilableError as exc:
        return FastPathCheck(None, f"not compiled: {exc}")
    except _MismatchError as exc:
        return FastPathCheck(None, str(exc))
    except Exception as exc:  # an optimisation must never make a servable version unservable
        return FastPathCheck(None, f"verification failed: {type(exc).__name__}: {exc}")
    fast.verified = summary
    _check_frames(model, fast, probes)
    return FastPathCheck(fast, summary)


def _check_frames(model: Scored, fast: FastPath, probes: list[_Probe]) -> None:
    """Let `fast` take DataFrames too once it encodes them as the transformer does."""
    try:
        encoder = FrameEncoder(fast.plan, {str(f["name"]): str(f["kind"]) for f in fast.fields})
        fast.frames_verified = _verify_frames(model, fast, encoder, probes)
    except _MismatchError as exc:
        fast.frames_verified = f"DataFrames take the full pipeline: {exc}"
    except Exception as exc:  # as above: a faster path is never worth a failed load
        fast.frames_verified = f"DataFrames take the full pipeline: {type(exc).__name__}: {exc}"
    else:
        fast.frames = encoder


def compile_fast_path(model: Scored) -> FastPath | None:
    """The verified fast path of `model`, or None (logged with the reason) to use the reference.

    Example::

        fast = compile_fast_path(mlprod.load("churn@production"))
    """
    check = check_fast_path(model)
    where = f"{model.name}@{model.version}"
    if check.fast is None:
        log.warning("%s serves on the reference path: %s", where, check.reason)
    else:
        log.info("%s serves on the fast path: %s", where, check.reason)
    return check.fast


def upgrade_scorer(model: Scored, fast: FastPath, scorer: Any) -> str:
    """Let `scorer` (with an ``engine`` name) score `model`'s fast path `fast` from now on.

    Only after it passes the fast path's own check: the version's test set and probes
    scored like the reference path to 1e-9. Raises `_MismatchError` when the scores
    differ; the old scorer stays then.
    """
    candidate = copy.copy(fast)
    candidate.scorer = scorer
    summary, _ = _verify(model, candidate)
    fast.scorer, fast.engine, fast.verified = scorer, str(scorer.engine), summary
    return summary


@dataclass(frozen=True)
class _Probe:
    """One probe batch, framed as the server frames it, with the transformer's matrix of
    that frame (None where the transformer refuses it).

    Made once per check: `_verify` scores the matrices and `_verify_frames` holds the
    DataFrame encoder to them, so the transformer (most of a small model's check) runs
    once per batch, not twice.
    """

    records: list[dict[str, Any]]
    frame: pd.DataFrame
    matrix: np.ndarray | None


def _probes(model: Scored, fast: FastPath, base: Mapping[str, Any]) -> list[_Probe]:
    """`_probe_batches` around `base`, each framed and transformed (see `_Probe`)."""
    made = []
    for batch in _probe_batches(fast, base):
        frame = records_to_frame(batch, fast.contract, max_records=len(batch))
        made.append(_Probe(batch, frame, _transformed(model, frame)))
    return made


def _transformed(model: Scored, frame: pd.DataFrame) -> np.ndarray | None:
    """The transformer's matrix of `frame`, or None where it refuses the frame."""
    try:
        matrix: np.ndarray = model.transformer.transform(frame)
    except (ValueError, TypeError):
        return None
    return matrix


def _verify(model: Scored, fast: FastPath) -> tuple[str, list[_Probe]]:
    """The summary of `fast` matching the reference path, and the probes it was checked on."""
    frame, _ = model.test_data()
    if len(frame) > VERIFY_ROWS:
        frame = frame.iloc[np.linspace(0, len(frame) - 1, VERIFY_ROWS).astype(int)]
    worst, rows, singles, base = 0.0, 0, 0, None
    for start in range(0, len(frame), VERIFY_CHUNK):
        chunk = frame.iloc[start : start + VERIFY_CHUNK].reset_index(drop=True)
        records = client_records(chunk)
        keep = [i for i, r in enumerate(records) if not record_problems(r, fast.contract, i)]
        if not keep:
            continue
        records = [records[i] for i in keep]
        base = base or records[0]
        got = fast.score_records(records, max_records=len(records))
        reference = reference_scores(model, chunk.iloc[keep])
        worst = max(worst, max_difference(got, reference))
        singles = singles or _one_by_one(fast, records)
        rows += len(keep)
    probes = _probes(model, fast, base or _example_record(fast.fields))
    for probe in probes:
        if probe.matrix is None:  # the transformer's own error ends the check
            reference = reference_scores(model, probe.frame)
        else:
            reference = np.asarray(model.scorer.scores(probe.matrix), dtype=float)
        got = fast.score_records(probe.records, max_records=len(probe.records))
        worst = max(worst, max_difference(got, reference))
        singles += _one_by_one(fast, probe.records)
    count = sum(len(probe.records) for probe in probes)
    where = f"{rows:,} test rows and {count} probe records ({singles} also one by one)"
    if not worst <= TOLERANCE:
        raise _MismatchError(f"scores differ from the reference path by {worst:.3g} on {where}")
    return f"matches the reference path to {worst:.1e} on {where}", probes


def _one_by_one(fast: FastPath, records: list[dict[str, Any]]) -> int:
    """Up to VERIFY_SINGLES of `records` encoded alone (one record takes its own route
    through `encode`) and as a batch of two of itself (the batch route, which the scores
    check): the same matrix row, or both refused. Returns how many were checked.

    Rows, not scores: a batch's matrix product may round differently from one row's, by
    far less than the tolerance but in the model, not in the encoding.
    """
    chosen = _spread(len(records), VERIFY_SINGLES)
    for i in chosen:
        alone, twice = _encoded(fast, [records[i]]), _encoded(fast, [records[i]] * 2)
        same = (
            alone is None
            if twice is None
            else alone is not None and (np.array_equal(alone, twice[:1], equal_nan=True))
        )
        if not same:
            raise _MismatchError(
                f"one record alone encodes differently from the same record in a batch: "
                f"{records[i]!r}"
            )
    return len(chosen)


def _encoded(fast: FastPath, records: list[dict[str, Any]]) -> np.ndarray | None:
    try:
        return fast.encode(records)
    except _InvalidError:
        return None


def _spread(count: int, most: int) -> list[int]:
    """Up to `most` indices evenly spread over `count`, first and last included."""
    return sorted({int(i) for i in np.linspace(0, count - 1, min(count, most))})


def _verify_frames(
    model: Scored, fast: FastPath, encoder: FrameEncoder, probes: list[_Probe]
) -> str:
    """The transformer's exact matrix from `encoder` on the test rows and the probes.

    The test rows go in as stored, as objects and with their timestamps parsed; the
    probes both as a client's raw records and as the server framed them (`_verify`
    transformed those already). A frame the transformer refuses must be declined (None)
    too.
    """
    frame, _ = model.test_data()
    kinds = {str(f["name"]): str(f["kind"]) for f in fast.fields}
    frame = frame.iloc[: min(len(frame), VERIFY_CHUNK)].reset_index(drop=True)
    variants = list(frame_variants(frame, kinds)) if len(frame) else []
    rows = singles = frames = 0
    for candidate, expected in _with_matrices(model, variants, probes):
        frames += 1
        got = encoder.encode(candidate)
        if got is not None:  # None: the full pipeline answers this one, as it always did
            _same_matrix(got, expected, candidate)
            rows += len(candidate)
        singles += _rows_alone(model, encoder, candidate, expected)
    return (
        f"DataFrames match the transformer's matrix exactly on {rows:,} rows ({frames} "
        f"frames; {singles:,} rows also framed alone)"
    )


def _with_matrices(
    model: Scored, variants: list[pd.DataFrame], probes: list[_Probe]
) -> Iterator[tuple[pd.DataFrame, np.ndarray | None]]:
    """Each frame `_verify_frames` checks with the transformer's matrix of it, one at a
    time (a wide model's matrices are large): the test rows' variants, then each probe
    batch as a client's raw records and as the server framed it."""
    for variant in variants:
        yield variant, _transformed(model, variant)
    for probe in probes:
        raw = pd.DataFrame(probe.records)
        yield raw, _transformed(model, raw)
        yield probe.frame, probe.matrix


def _rows_alone(
    model: Scored, encoder: FrameEncoder, frame: pd.DataFrame, expected: np.ndarray | None
) -> int:
    """Up to VERIFY_SINGLES rows of `frame`, each as a frame of its own (one row takes its
    own route through the encoder), checked against the transformer; how many it encoded."""
    checked = 0
    for i in _spread(len(frame), VERIFY_SINGLES):
        alone = frame.iloc[[i]]
        got = encoder.encode(alone)
        if got is None:
            continue
        if expected is not None:
            _same_matrix(got, expected[i : i + 1], alone)
        else:  # the transformer refused the whole frame: ask it about this row
            _same_matrix(got, _transformed(model, alone), alone)
        checked += 1
    return checked


def _same_matrix(got: np.ndarray, expected: np.ndarray | None, frame: pd.DataFrame) -> None:
    if expected is None or not np.array_equal(got, expected):
        raise _MismatchError(
            f"the DataFrame encoding differs from the transformer's on a frame of "
            f"{len(frame)} row(s) with dtypes {sorted({str(d) for d in frame.dtypes})}"
        )


def reference_scores(model: Scored, frame: pd.DataFrame) -> np.ndarray:
    """The full pipeline's scores: the fitted transformer, then the model's own scorer."""
    return np.asarray(model.scorer.scores(model.transformer.transform(frame)), dtype=float)


def max_difference(got: np.ndarray, expected: np.ndarray) -> float:
    """The largest absolute difference; inf when shapes or missing values differ.

    Over whole matrices: a multiclass version's check covers every class's probability.
    """
    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    if got.shape != expected.shape or not np.array_equal(np.isnan(got), np.isnan(expected)):
        return float("inf")
    finite = ~np.isnan(got)
    return float(np.max(np.abs(got[finite] - expected[finite]), initial=0.0))


def client_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as a client sends them: JSON values (null for missing, ISO date-time strings).

    Built column by column: every load replays up to `VERIFY_ROWS` test rows as records,
    and converting cell by cell was a third of that check.
    """
    names = [str(name) for name in frame.columns]
    if not names:
        return [{} for _ in range(len(frame))]
    columns = [_json_values(frame.iloc[:, i]) for i in range(len(names))]
    plain = [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
    records: list[dict[str, Any]] = orjson.loads(orjson.dumps(plain))
    return records


def _json_values(column: pd.Series) -> list[Any]:
    """One column's cells as JSON values: numpy numbers and booleans come out of `tolist`
    as Python's own (a float NaN is missing); any other cell goes through `json_safe`."""
    values: list[Any] = column.tolist()
    kind = column.dtype.kind if isinstance(column.dtype, np.dtype) else None
    if kind is not None and kind in "biu":
        return values
    if kind == "f":
        return [None if value != value else value for value in values]  # NaN != NaN
    return [None if value is pd.NA else json_safe(value) for value in values]


# Values a client may send that training data rarely holds: each must score identically.
_PROBES: Mapping[str, tuple[Any, ...]] = {
    "numeric": (None, 0, -1, 2.5, 1e9, 10**20),
    "boolean": (None, True, False, "yes", "No", " TRUE ", "f", "0", 0, 1),
    "categorical": (None, "never-seen-before", "", MISSING, 5, 5.0, -3, 2.5, True, 10**17 + 1),
    "datetime": (
        None,
        "2024-05-01",
        "2024-05-01T12:00:00+05:30",
        "2023-12-31T23:30:00-02:00",
        "2024-02-29 06:15",
        "2024-05-01T00:00:00.123456789Z",
    ),
}
# ISO spellings the fast parser leaves to pandas: a batch of them checks that branch.
_ODD_DATETIMES = ("20240501T101010", "2024-W18-3", "2024-05-01T12Z", "2024-05-01T12:30:45,5")


def _probe_batches(fast: FastPath, base: Mapping[str, Any]) -> list[list[dict[str, Any]]]:
    """One batch per field (each value in turn, the rest from `base`), plus all nulls.

    Only records the contract accepts: a refused one has no score to compare.
    """
    batches = [[dict.fromkeys(base)]]
    codes = {fast.plan.names[i]: c for i, c in fast.plan.categories}
    for spec in fast.fields:
        name, kind = str(spec["name"]), str(spec["kind"])
        values = list(_PROBES.get(kind, (None,)))
        if name in codes:
            values += [label for label in codes[name].lookup if label is not None]
        batches.append([{**base, name: value} for value in values])
        if kind == "datetime":
            batches.append([{**base, name: value} for value in _ODD_DATETIMES])
    valid = [[r for r in batch if not record_problems(r, fast.contract)] for batch in batches]
    return [batch for batch in valid if batch]


def _example_record(fields: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A record from the signature's examples, when the test set offers none."""
    return {str(f["name"]): f.get("example") for f in fields}
