"""``features.aggregates``: features computed over event tables, one definition for three paths.

Training computes them point-in-time for each labelled row, ``mlprod features
materialize`` and ``POST /v1/events`` keep them current in the online store, and the
server merges them into requests that carry only the entity key. The definitions live
here, as data; their meaning (windows, hops, the point-in-time rule) is `mlprod.features`'.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mlprod._time import parse_duration

AggregateFunction = Literal["count", "sum", "mean", "min", "max", "distinct_count", "last"]
COLUMN_FUNCTIONS = ("sum", "mean", "min", "max", "distinct_count", "last")
NUMERIC_FUNCTIONS = ("sum", "mean", "min", "max")
_IDENT = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
_STREAM_KEY = r"^[^\s]{1,200}$"
_OPS = ("==", "!=", "<", "<=", ">", ">=", "in", "not in")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class SqlTable(_Strict):
    """A whole table through SQLAlchemy: ``{url: postgresql+psycopg://db/x, table: clicks}``."""

    url: str
    table: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.]{0,126}$")


class EventQuery(_Strict):
    """A SQL query whose rows are events, e.g. ``{url: ..., query: SELECT ...}``."""

    url: str
    query: str


class StreamSpec(_Strict):
    """A Redis stream the source's live events also arrive on (``mlprod features stream``).

    ``{key: events:activity}`` reads it with the consumer group ``mlprod``; bad entries go
    to `dead_letter` (default ``<key>:dead``) with the reason.
    """

    key: str = Field(pattern=_STREAM_KEY, description="The stream's key in MLPROD_ONLINE.")
    group: str = Field(default="mlprod", pattern=_STREAM_KEY, description="Consumer group.")
    dead_letter: str | None = Field(
        default=None, pattern=_STREAM_KEY, description="Stream for bad entries (<key>:dead)."
    )

    @model_validator(mode="after")
    def _apart(self) -> StreamSpec:
        if self.dead_letter == self.key:
            raise ValueError(f"stream.dead_letter must differ from stream.key ({self.key!r})")
        return self

    @property
    def dead_key(self) -> str:
        """Where bad entries go."""
        return self.dead_letter or f"{self.key}:dead"


class EventSource(_Strict):
    """A table of events: who (the entity column), when (the time column), and values."""

    source: str | EventQuery | SqlTable = Field(
        description="CSV or Parquet path, {url, query} or {url, table}."
    )
    entity: str | None = Field(
        default=None, description="The key column in the events (default: aggregates.entity)."
    )
    time: str = Field(description="The event-time column.")
    stream: StreamSpec | None = Field(
        default=None, description="A Redis stream of live events: {key, group, dead_letter}."
    )

    @field_validator("stream", mode="before")
    @classmethod
    def _stream(cls, value: Any) -> Any:
        return {"key": value} if isinstance(value, str) else value


class Condition(_Strict):
    """One filter condition on an event column: ``{column: kind, op: '==', value: buy}``."""

    column: str
    op: Literal["==", "!=", "<", "<=", ">", ">=", "in", "not in"] = "=="
    value: Any

    @model_validator(mode="after")
    def _lists_for_membership(self) -> Condition:
        listed = isinstance(self.value, list)
        if self.op in ("in", "not in") and not listed:
            raise ValueError(f"op {self.op!r} needs a list value, got {self.value!r}")
        if self.op not in ("in", "not in") and (listed or isinstance(self.value, dict)):
            raise ValueError(f"op {self.op!r} needs a single value, got {self.value!r}")
        return self


def _conditions(raw: Any) -> Any:
    """``{kind: buy}`` (equality), one condition, or a list of them; all must hold."""
    if raw is None:
        return []
    if isinstance(raw, dict) and "column" not in raw:
        return [
            {"column": k, "op": "in" if isinstance(v, list) else "==", "value": v}
            for k, v in raw.items()
        ]
    if isinstance(raw, dict):
        return [raw]
    return raw


class AggregateSpec(_Strict):
    """One function of one event column over one or more windows.

    ``{name: spend, events: clicks, function: sum, column: amount, windows: [7d, 30d]}``
    makes the features ``spend_7d`` and ``spend_30d``. Events whose column is null are
    ignored by every function but ``count``, which counts the events that pass `where`.
    """

    name: str = Field(pattern=_IDENT)
    events: str = Field(description="The name of an entry of aggregates.events.")
    function: AggregateFunction
    column: str | None = None
    windows: list[str] = Field(min_length=1)
    hop: str | None = Field(
        default=None,
        description="How far windows slide at a time (default: a window / 30, rounded up).",
    )
    where: list[Condition] = Field(default_factory=list)

    @field_validator("where", mode="before")
    @classmethod
    def _where(cls, value: Any) -> Any:
        return _conditions(value)

    @field_validator("windows")
    @classmethod
    def _windows(cls, value: list[str]) -> list[str]:
        for window in value:
            if parse_duration(window) < timedelta(seconds=1):
                raise ValueError(f"window {window!r} is shorter than one second")
        if len(set(value)) != len(value):
            raise ValueError(f"windows repeat: {value}")
        return value

    @field_validator("hop")
    @classmethod
    def _hop(cls, value: str | None) -> str | None:
        if value is not None and parse_duration(value) < timedelta(seconds=1):
            raise ValueError(f"hop {value!r} is shorter than one second")
        return value

    @model_validator(mode="after")
    def _column_when_needed(self) -> AggregateSpec:
        if self.function == "count" and self.column is not None:
            raise ValueError("count counts events: drop `column` (or use distinct_count)")
        if self.function != "count" and self.column is None:
            raise ValueError(f"function {self.function!r} needs `column`: which values to use")
        if self.hop is not None:
            hop = parse_duration(self.hop)
            for window in self.windows:
                if parse_duration(window) % hop:
                    raise ValueError(f"window {window} is not a whole number of hops ({self.hop})")
        return self


class JoinSpec(_Strict):
    """An as-of join: the latest row of another table, by key, from before the row's time."""

    name: str = Field(pattern=_IDENT, description="Prefix of the joined columns' features.")
    source: str | EventQuery | SqlTable
    key: str | None = Field(default=None, description="Key column in the table (default: on).")
    on: str | None = Field(
        default=None, description="The row's column to match (default: aggregates.entity)."
    )
    time: str = Field(description="When each row of the table became true.")
    columns: list[str] = Field(min_length=1)


class AggregatesSpec(_Strict):
    """Event aggregates and as-of joins; see README "Features".

    `delay` shifts every cutoff back: only events strictly before a row's time minus the
    delay count, in training, in the online store and in the skew check alike.
    `on_missing` says what the server does with an entity the online store does not know:
    ``defaults`` (the values training gives an entity without events), ``impute`` (every
    aggregate missing, imputed as training imputes) or ``reject`` (422); the first two flag
    the prediction and are counted. `on_error` says what happens when the store cannot
    answer in time: follow `on_missing` (``policy``) or answer 503 (``fail``).
    """

    entity: str | None = Field(
        default=None,
        description="The row and request column holding the key (default: data.entity).",
    )
    delay: str = "0s"
    events: dict[str, EventSource] = Field(default_factory=dict)
    define: list[AggregateSpec] = Field(default_factory=list)
    joins: list[JoinSpec] = Field(default_factory=list)
    on_missing: Literal["defaults", "impute", "reject"] = "defaults"
    on_error: Literal["policy", "fail"] = "policy"

    @field_validator("delay")
    @classmethod
    def _delay(cls, value: str) -> str:
        parse_duration(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> AggregatesSpec:
        for number, item in enumerate(self.define):
            if item.events not in self.events:
                known = ", ".join(sorted(self.events)) or "none"
                raise ValueError(
                    f"define[{number}] ({item.name}) reads events {item.events!r}, which "
                    f"aggregates.events does not declare (declared: {known})"
                )
        names = [item.name for item in self.define] + [join.name for join in self.joins]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"aggregate and join names must be unique; repeated: {twice}")
        for name in self.events:
            if not re.match(_IDENT, name):
                raise ValueError(f"event source name {name!r}: letters, digits and _ only")
        streams = [e.stream.key for e in self.events.values() if e.stream is not None]
        shared = sorted({key for key in streams if streams.count(key) > 1})
        if shared:
            raise ValueError(
                f"event sources share the stream(s) {shared}: give each source its own stream"
            )
        return self

    def delay_delta(self) -> timedelta:
        """The delay as a timedelta."""
        return parse_duration(self.delay)
