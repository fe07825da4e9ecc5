"""Aggregate definitions compiled into a plan: features, the partials they need, their hops.

The meaning every path shares (training, the online store, the skew check): for a row or
request at time ``t`` the cutoff is ``c = t - delay``; a window ``W`` with hop ``h``
counts the events with ``floor(c, h) - W <= time < c``. Only events strictly before the
cutoff count; the window's start moves in steps of one hop, so the online store keeps one
partial aggregate per hop ("tile") and a window is ``W / h + 1`` tiles, the last one
still filling. An as-of join takes the latest row of its table from strictly before ``c``.

Example::

    plan = compile_plan(spec.features.aggregates, key="customer_id")
    plan.names()        # ['clicks_1h', 'clicks_7d', 'spend_7d', 'plan_tier']
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import orjson
import pandas as pd

from mlprod._time import parse_duration
from mlprod.errors import SpecError
from mlprod.spec import AggregateSpec, AggregatesSpec, Condition, JoinSpec

HOPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
        86400, 604800)  # fmt: skip
MAX_TILES = 30
# What one tile keeps per slot: count, sum, non-null count, min, max, last, distinct set.
Partial = Literal["count", "sum", "n", "min", "max", "last", "distinct"]
_PARTIALS: dict[str, tuple[Partial, ...]] = {
    "count": ("count",),
    "sum": ("sum",),
    "mean": ("sum", "n"),
    "min": ("min",),
    "max": ("max",),
    "distinct_count": ("distinct",),
    "last": ("last",),
}


def seconds_of(text: str, what: str) -> int:
    """A duration in whole seconds; a SpecError naming `what` otherwise."""
    seconds = parse_duration(text).total_seconds()
    if seconds != int(seconds):
        raise SpecError(f"{what} {text!r} must be a whole number of seconds")
    return int(seconds)


def default_hop(window: int) -> int:
    """The finest standard hop dividing `window` into at most `MAX_TILES` tiles.

    Finer hops slide more smoothly but make every lookup read more tiles.
    """
    dividing = [hop for hop in HOPS if window % hop == 0]
    fitting = [hop for hop in dividing if window // hop <= MAX_TILES]
    if fitting:
        return fitting[0]
    return dividing[-1] if dividing else 1


def window_start(cutoff_ms: int, window: int, hop: int) -> int:
    """The first millisecond a window counts: ``floor(cutoff, hop) - window``."""
    hop_ms = hop * 1000
    return (cutoff_ms // hop_ms) * hop_ms - window * 1000


def value_text(value: Any) -> str | None:
    """One canonical text per value, shared by distinct counts and last values.

    ``5``, ``5.0`` and ``numpy.int64(5)`` are the same number; ``"5"`` is a string and
    stays apart; missing (None, NaN, NaT) has no text and is ignored.
    """
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return None
        if number.is_integer() and abs(number) < 2**53:
            return str(int(number))
        return repr(number)
    if isinstance(value, pd.Timestamp):
        return orjson.dumps(value.isoformat()).decode()
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def text_value(text: str | None) -> Any:
    """The value behind a `value_text` (a number, a string, a boolean)."""
    return None if text is None else orjson.loads(text)


def texts(values: pd.Series) -> pd.Series:
    """`value_text` of every value, as an object Series with None where missing."""
    return pd.Series([value_text(v) for v in values.tolist()], index=values.index, dtype=object)


# --- filters, evaluated the same way on a DataFrame (offline) and one event (online)


def condition_mask(frame: pd.DataFrame, conditions: tuple[Condition, ...]) -> np.ndarray:
    """Rows of `frame` meeting every condition; a missing value meets none."""
    mask = np.ones(len(frame), dtype=bool)
    for cond in conditions:
        column = frame[cond.column]
        present = column.notna().to_numpy()
        if cond.op in ("in", "not in"):
            hit = column.isin(cond.value).to_numpy()
            hit = hit if cond.op == "in" else ~hit
        else:
            hit = _compare(column, cond.op, cond.value)
        mask &= present & hit
    return mask


def _compare(column: pd.Series, op: str, value: Any) -> np.ndarray:
    try:
        result = {
            "==": column == value, "!=": column != value, "<": column < value,
            "<=": column <= value, ">": column > value, ">=": column >= value,
        }[op]  # fmt: skip
    except TypeError:
        return np.zeros(len(column), dtype=bool)
    return np.asarray(result.fillna(False).to_numpy(dtype=bool), dtype=bool)


# --- the plan


@dataclass(frozen=True)
class Slot:
    """One partial aggregate kept per tile: a function of a column over filtered events."""

    events: str
    partial: Partial
    column: str | None
    where: tuple[Condition, ...]
    hop: int


@dataclass(frozen=True)
class AggregateFeature:
    """One output column: a function over a window, read from one or two slots."""

    name: str
    function: str
    events: str
    column: str | None
    window: int
    hop: int
    slots: tuple[int, ...]

    @property
    def tiles(self) -> int:
        """How many tiles a lookup reads: the window's hops plus the one still filling."""
        return self.window // self.hop + 1


@dataclass(frozen=True)
class JoinFeature:
    """One column brought in by an as-of join."""

    name: str
    join: int
    column: str


@dataclass(frozen=True)
class FeaturePlan:
    """Everything the three paths need to agree on, compiled from `features.aggregates`."""

    spec: AggregatesSpec
    key: str
    delay: int
    slots: tuple[Slot, ...]
    aggregates: tuple[AggregateFeature, ...]
    joined: tuple[JoinFeature, ...]
    namespace: str = field(default="")

    def names(self) -> list[str]:
        """Every feature column the plan adds, in a stable order."""
        return [f.name for f in self.aggregates] + [f.name for f in self.joined]

    @property
    def joins(self) -> list[JoinSpec]:
        return self.spec.joins

    def join_key(self, index: int) -> tuple[str, str]:
        """(row column, table column) an as-of join matches on."""
        join = self.spec.joins[index]
        on = join.on or self.key
        return on, join.key or on

    def event_entity(self, events: str) -> str:
        """The key column inside an event source."""
        return self.spec.events[events].entity or self.key

    def document(self) -> dict[str, Any]:
        """What a bundle's signature keeps so servers and the skew check rebuild the plan."""
        return {"key": self.key, "namespace": self.namespace, "spec": _portable(self.spec)}

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> FeaturePlan:
        """The plan a bundle's signature describes."""
        spec = AggregatesSpec.model_validate(document["spec"])
        return compile_plan(spec, key=str(document["key"]))


def _portable(spec: AggregatesSpec) -> dict[str, Any]:
    """The definitions without where the data lives: the same features wherever it is."""
    raw = spec.model_dump(mode="json")
    for item in raw["events"].values():
        item["source"] = "-"
        item.pop("stream", None)  # where live events arrive; absent from older documents
    for join in raw["joins"]:
        join["source"] = "-"
    return raw


def compile_plan(spec: AggregatesSpec, *, key: str) -> FeaturePlan:
    """Features, their slots (shared where two features need the same partial) and a hash."""
    slots: list[Slot] = []
    features: list[AggregateFeature] = []
    for item in spec.define:
        for window_text in item.windows:
            features.append(_feature(item, window_text, slots))
    joined = [
        JoinFeature(name=f"{join.name}_{column}", join=index, column=column)
        for index, join in enumerate(spec.joins)
        for column in join.columns
    ]
    names = [f.name for f in features] + [f.name for f in joined]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SpecError(f"features.aggregates makes the feature name(s) {twice} twice; rename")
    delay = seconds_of(spec.delay, "aggregates.delay")
    digest = hashlib.sha256(orjson.dumps([key, _portable(spec)], option=orjson.OPT_SORT_KEYS))
    return FeaturePlan(spec, key, delay, tuple(slots), tuple(features), tuple(joined),
                       digest.hexdigest()[:16])  # fmt: skip


def _feature(item: AggregateSpec, window_text: str, slots: list[Slot]) -> AggregateFeature:
    window = seconds_of(window_text, f"{item.name}: window")
    hop = seconds_of(item.hop, f"{item.name}: hop") if item.hop else default_hop(window)
    indices = []
    for partial in _PARTIALS[item.function]:
        slot = Slot(item.events, partial, item.column, tuple(item.where), hop)
        if slot not in slots:
            slots.append(slot)
        indices.append(slots.index(slot))
    return AggregateFeature(
        name=f"{item.name}_{window_text}",
        function=item.function,
        events=item.events,
        column=item.column,
        window=window,
        hop=hop,
        slots=tuple(indices),
    )
