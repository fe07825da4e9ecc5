"""Point-in-time aggregates for labelled rows, computed by DuckDB on one machine.

For every row, only events strictly before its cutoff (its time minus the plan's delay)
count, inside each window as `mlprod.features._aggregates` defines it. One range join per
(event source, window, hop) computes every feature of that window at once; as-of joins
use DuckDB's ASOF join. Nothing here looks at the label, and nothing after the cutoff can
reach a row: a test plants events after every label time and checks they never count.

Example::

    frames = read_event_sources(plan)
    extra = point_in_time(rows, plan, time="event_time", events=frames)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd

from mlprod.data import parse_times, require_columns

if TYPE_CHECKING:
    import duckdb
from mlprod.errors import DataError
from mlprod.features._aggregates import (
    AggregateFeature,
    FeaturePlan,
    condition_mask,
    text_value,
    texts,
)
from mlprod.features._infer import infer_kind
from mlprod.records import category_string
from mlprod.spec import FeatureKind

_SEP = "\x1f"
_PAD = 15  # epoch milliseconds fit in 15 digits until the year 33658


def key_texts(values: pd.Series) -> pd.Series:
    """Entity keys as the text every path uses (``5``, ``5.0`` and ``"5"`` are one key).

    Integer and text columns convert in one vectorised step; anything else value by value.
    """
    if pd.api.types.is_integer_dtype(values) and not values.isna().any():
        return values.astype("int64").astype(str).astype(object)
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        return values.astype(object).where(values.notna(), None)
    out = [None if pd.isna(v) else category_string(v) for v in values.tolist()]
    return pd.Series(out, index=values.index, dtype=object)


def epoch_ms(values: pd.Series, column: str) -> np.ndarray:
    """Times as UTC epoch milliseconds (naive times are UTC); NaT stays as int64 min."""
    parsed = parse_times(values, column)
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.to_numpy(dtype="datetime64[ms]").astype("int64")


def point_in_time(
    rows: pd.DataFrame,
    plan: FeaturePlan,
    *,
    time: str,
    events: Mapping[str, pd.DataFrame],
    tables: Sequence[pd.DataFrame] = (),
) -> pd.DataFrame:
    """The plan's features for each row of `rows`, indexed like `rows`.

    `rows` needs the plan's key, the join keys and `time`; `events` maps each event
    source's name to its frame, `tables` holds each join's table in spec order.
    """
    require_columns(rows, [plan.key, time], "features.aggregates (the rows' key and time)")
    cutoff = epoch_ms(rows[time], time)
    if (cutoff == np.iinfo("int64").min).any():
        raise DataError(f"time column {time!r} has missing values: every row needs a cutoff")
    cutoff = cutoff - plan.delay * 1000
    out = pd.DataFrame(index=rows.index)
    import duckdb  # only point-in-time joins need it; importing features must not load it

    with duckdb.connect() as con:
        keys = key_texts(rows[plan.key]).to_numpy()
        for name in sorted({f.events for f in plan.aggregates}):
            if name not in events:
                raise DataError(f"no frame for event source {name!r} of features.aggregates")
            frame = event_frame(plan, name, events[name])
            row_codes, event_codes = _codes(keys, frame["k"].to_numpy())
            labels = pd.DataFrame({"rid": np.arange(len(rows)), "k": row_codes, "c": cutoff})
            frame = frame.assign(k=event_codes)
            for part in _window_groups(plan, name):
                found = _window_query(con, plan, part, labels, frame)
                for column in found.columns:
                    out[column] = found[column].to_numpy()
        for index, _ in enumerate(plan.joins):
            found = _asof(con, plan, index, rows, cutoff, tables)
            for column in found.columns:
                out[column] = found[column].to_numpy()
    return out[plan.names()]


def _codes(row_keys: np.ndarray, event_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keys as shared integer codes (missing: -1 and -2, never equal): joins on ints are fast."""
    codes, _ = pd.factorize(np.concatenate([row_keys, event_keys]), use_na_sentinel=True)
    rows, events = codes[: len(row_keys)], codes[len(row_keys) :].copy()
    events[events == -1] = -2
    return rows, events


def event_frame(plan: FeaturePlan, name: str, raw: pd.DataFrame) -> pd.DataFrame:
    """Events of source `name` as every path reads them: k, t, v<i>, x<i>, w<i>.

    ``k`` is the key text, ``t`` the time in epoch ms, ``v<i>`` the numbers and ``x<i>``
    the canonical texts of the i-th column aggregates read (``attrs["columns"]`` lists
    them), ``w<i>`` whether the i-th distinct filter holds. Events without a time are
    left out.
    """
    source = plan.spec.events[name]
    entity = plan.event_entity(name)
    columns = sorted({s.column for s in plan.slots if s.events == name and s.column})
    wanted = [entity, source.time, *columns]
    wanted += [c.column for s in plan.slots if s.events == name for c in s.where]
    require_columns(raw, list(dict.fromkeys(wanted)), f"features.aggregates.events.{name}")
    frame = pd.DataFrame(
        {"k": key_texts(raw[entity]).to_numpy(), "t": epoch_ms(raw[source.time], source.time)}
    )
    for index, column in enumerate(columns):
        values = raw[column]
        numeric = [s.partial for s in plan.slots if s.column == column and s.partial in _NUMERIC]
        if numeric:
            frame[f"v{index}"] = _numbers(values, f"{name}.{column}", numeric[0])
        if any(s.column == column and s.partial in ("distinct", "last") for s in plan.slots):
            frame[f"x{index}"] = texts(values).to_numpy()
    for index, where in enumerate(filters_of(plan, name)):
        frame[f"w{index}"] = condition_mask(raw, where)
    keep = frame["t"].to_numpy() != np.iinfo("int64").min
    frame.attrs["columns"] = columns
    kept: pd.DataFrame = frame.loc[keep].reset_index(drop=True)
    return kept


_NUMERIC = ("sum", "n", "min", "max")


def _numbers(values: pd.Series, where: str, partial: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(values):
        return values.astype(float).to_numpy()
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    if (numbers.isna() & values.notna()).any():
        bad = values[numbers.isna() & values.notna()].iloc[0]
        raise DataError(
            f"column {where} feeds a {partial} aggregate but holds {bad!r}, not a number; "
            "use distinct_count or last for text columns"
        )
    return numbers.to_numpy()


def filters_of(plan: FeaturePlan, name: str) -> list[tuple[Any, ...]]:
    """The distinct filters of source `name`'s slots; ``w<i>`` in `event_frame` is the i-th."""
    found: list[tuple[Any, ...]] = []
    for slot in plan.slots:
        if slot.events == name and slot.where and slot.where not in found:
            found.append(slot.where)
    return found


def _window_groups(plan: FeaturePlan, name: str) -> list[list[AggregateFeature]]:
    groups: dict[tuple[int, int], list[AggregateFeature]] = {}
    for feature in plan.aggregates:
        if feature.events == name:
            groups.setdefault((feature.window, feature.hop), []).append(feature)
    return list(groups.values())


def _window_query(
    con: duckdb.DuckDBPyConnection,
    plan: FeaturePlan,
    features: list[AggregateFeature],
    labels: pd.DataFrame,
    frame: pd.DataFrame,
) -> pd.DataFrame:
    window, hop = features[0].window * 1000, features[0].hop * 1000
    columns: list[str] = frame.attrs["columns"]
    wheres = filters_of(plan, features[0].events)
    selects = [_select(f, plan, columns, wheres) for f in features]
    con.register("labels", labels)
    con.register("events", frame)
    sql = f"""
        WITH b AS (
            SELECT rid, k, c, (c - ((c % {hop}) + {hop}) % {hop}) - {window} AS s FROM labels
        )
        SELECT b.rid, {", ".join(selects)}
        FROM b LEFT JOIN events AS e ON e.k = b.k AND e.t >= b.s AND e.t < b.c
        GROUP BY b.rid ORDER BY b.rid
    """
    result = con.sql(sql).df()
    con.unregister("labels")
    con.unregister("events")
    out = pd.DataFrame(index=result["rid"].to_numpy())
    for feature in features:
        values = result[_alias(feature)]
        if feature.function == "last":
            values = values.map(
                lambda v: text_value(v.split(_SEP, 1)[1]) if isinstance(v, str) else None
            )
        out[feature.name] = values.to_numpy()
    return out.reindex(np.arange(len(labels)))


def _last_value(packed: object) -> Any:
    """The value inside ``<padded time>\x1f<text>``, the greatest of which is the last."""
    return text_value(packed.split(_SEP, 1)[1]) if isinstance(packed, str) else None


def _alias(feature: AggregateFeature) -> str:
    return "f_" + "".join(ch if ch.isalnum() else "_" for ch in feature.name)


def _select(
    feature: AggregateFeature, plan: FeaturePlan, columns: list[str], wheres: list[Any]
) -> str:
    where = plan.slots[feature.slots[0]].where
    condition = f" FILTER (WHERE e.w{wheres.index(where)})" if where else ""
    index = columns.index(feature.column) if feature.column else -1
    value, text = f"e.v{index}", f"e.x{index}"
    expression = {
        "count": f"count(e.t){condition}",
        "sum": f"coalesce(sum({value}){condition}, 0)",
        "mean": f"avg({value}){condition}",
        "min": f"min({value}){condition}",
        "max": f"max({value}){condition}",
        "distinct_count": f"count(DISTINCT {text}){condition}",
        "last": f"max(lpad(e.t::VARCHAR, {_PAD}, '0') || chr(31) || {text}){condition}",
    }[feature.function]
    return f"{expression} AS {_alias(feature)}"


def join_frame(plan: FeaturePlan, index: int, table: pd.DataFrame) -> pd.DataFrame:
    """A join's table as the online store and the as-of join see it: k, t, r, j<i>.

    `r` is the row's canonical text: among rows of one key at one time the greatest wins,
    in training and online alike.
    """
    join = plan.joins[index]
    _, key = plan.join_key(index)
    require_columns(table, [key, join.time, *join.columns], f"features.aggregates.joins[{index}]")
    frame = pd.DataFrame(
        {"k": key_texts(table[key]).to_numpy(), "t": epoch_ms(table[join.time], join.time)}
    )
    row_texts = [texts(table[c]).tolist() for c in join.columns]
    frame["r"] = [_row_text(values) for values in zip(*row_texts, strict=True)]
    for i, column in enumerate(join.columns):
        frame[f"j{i}"] = table[column].to_numpy()
    frame = frame.loc[frame["t"].to_numpy() != np.iinfo("int64").min]
    frame = frame.sort_values(["k", "t", "r"], kind="stable")
    latest: pd.DataFrame = frame.drop_duplicates(["k", "t"], keep="last").reset_index(drop=True)
    return latest


def _row_text(values: Sequence[str | None]) -> str:
    return orjson.dumps(list(values)).decode()


def _asof(
    con: duckdb.DuckDBPyConnection,
    plan: FeaturePlan,
    index: int,
    rows: pd.DataFrame,
    cutoff: np.ndarray,
    tables: Sequence[pd.DataFrame],
) -> pd.DataFrame:
    if index >= len(tables):
        raise DataError(f"no table for features.aggregates.joins[{index}]")
    on, _ = plan.join_key(index)
    require_columns(rows, [on], f"features.aggregates.joins[{index}].on")
    frame = join_frame(plan, index, tables[index])
    labels = pd.DataFrame(
        {"rid": np.arange(len(rows)), "k": key_texts(rows[on]).to_numpy(), "c": cutoff}
    )
    con.register("labels", labels)
    con.register("tbl", frame)
    picked = ", ".join(f"tbl.j{i}" for i in range(len(plan.joins[index].columns)))
    result = con.sql(
        f"SELECT labels.rid, {picked} FROM labels ASOF LEFT JOIN tbl "
        "ON labels.k = tbl.k AND labels.c > tbl.t ORDER BY labels.rid"
    ).df()
    con.unregister("labels")
    con.unregister("tbl")
    out = pd.DataFrame(index=np.arange(len(rows)))
    for feature in plan.joined:
        if feature.join == index:
            column = plan.joins[index].columns.index(feature.column)
            out[feature.name] = result[f"j{column}"].to_numpy()
    return out


def aggregate_kinds(plan: FeaturePlan, computed: pd.DataFrame) -> dict[str, FeatureKind]:
    """Kinds of the plan's columns: numbers are numeric, last values and joins as inferred."""
    kinds: dict[str, FeatureKind] = {}
    for feature in plan.aggregates:
        if feature.function != "last":
            kinds[feature.name] = "numeric"
            continue
        kinds[feature.name] = infer_kind(computed[feature.name]) or "categorical"
    for joined in plan.joined:
        kinds[joined.name] = infer_kind(computed[joined.name]) or "categorical"
    return kinds


def empty_values(plan: FeaturePlan) -> dict[str, Any]:
    """What an entity without any event gets: counts and sums 0, everything else missing."""
    zero = {"count", "sum", "distinct_count"}
    values: dict[str, Any] = {f.name: (0 if f.function in zero else None) for f in plan.aggregates}
    values.update({f.name: None for f in plan.joined})
    return values
