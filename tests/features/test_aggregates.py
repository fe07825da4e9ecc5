"""Aggregate definitions and their point-in-time computation (DuckDB), against a brute force."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from mlprod.errors import DataError, SpecError
from mlprod.features import point_in_time, value_text, window_start
from mlprod.features._aggregates import default_hop
from mlprod.spec import parse_spec
from support import (
    AGGREGATES,
    make_events,
    plan_for,
    random_events,
    random_plans,
    random_rows,
    write_aggregate_project,
)
from support import (
    T0 as START,
)

SPEC = AGGREGATES
T0 = pd.Timestamp(START)


def brute_force(
    plan: Any, rows: pd.DataFrame, events: pd.DataFrame, table: pd.DataFrame
) -> pd.DataFrame:
    """The definition, applied row by row in plain Python: the oracle DuckDB must match."""
    ev_ms = events["at"].to_numpy(dtype="datetime64[ms]").astype("int64")
    out = []
    for user, t in zip(rows["user"], rows["t"], strict=True):
        cutoff = int(pd.Timestamp(t).value // 1_000_000) - plan.delay * 1000
        values: dict[str, Any] = {}
        for f in plan.aggregates:
            start = window_start(cutoff, f.window, f.hop)
            mask = (events["user"].to_numpy() == user) & (ev_ms >= start) & (ev_ms < cutoff)
            where = plan.slots[f.slots[0]].where
            for cond in where:
                col = events[cond.column]
                hit = col.isin(cond.value) if cond.op == "in" else {
                    "==": col == cond.value, ">": col > cond.value}[cond.op]  # fmt: skip
                mask &= hit.fillna(False).to_numpy(dtype=bool)
            chosen = events.loc[mask]
            values[f.name] = _apply(f.function, chosen, f.column)
        mine = table.loc[(table["user_id"] == user)]
        mine = mine.loc[mine["since"].to_numpy(dtype="datetime64[ms]").astype("int64") < cutoff]
        best = None
        for _, r in mine.iterrows():
            texts = [value_text(r["tier"]), value_text(r["limit"])]
            key = (r["since"], orjson.dumps(texts).decode(), texts)
            best = key if best is None or key[:2] > best[:2] else best
        values["plan_tier"] = None if best is None else best[2][0].strip('"')
        values["plan_limit"] = None if best is None else int(best[2][1])
        out.append(values)
    return pd.DataFrame(out)


def _apply(function: str, chosen: pd.DataFrame, column: str | None) -> Any:
    if function == "count":
        return len(chosen)
    assert column is not None
    present = chosen[column].dropna()
    if function == "sum":
        return float(present.sum())
    if function == "distinct_count":
        return present.nunique()
    if function == "last":
        return _last(chosen, column)
    if not len(present):
        return None
    return float({"mean": present.mean, "min": present.min, "max": present.max}[function]())


def _last(chosen: pd.DataFrame, column: str) -> Any:
    present = chosen.loc[chosen[column].notna()]
    if not len(present):
        return None
    ordered = present.assign(text=present[column].map(value_text)).sort_values(["at", "text"])
    return ordered[column].iloc[-1]


def same(a: Any, b: Any) -> bool:
    a_missing = a is None or (isinstance(a, float) and math.isnan(a))
    b_missing = b is None or (isinstance(b, float) and math.isnan(b))
    if a_missing or b_missing:
        return a_missing and b_missing
    if isinstance(a, int | float | np.number) and isinstance(b, int | float | np.number):
        return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)))
    return value_text(a) == value_text(b)


def test_duckdb_matches_the_definition_applied_row_by_row(rng: np.random.Generator) -> None:
    plan = plan_for()
    events, rows, table = random_events(rng), random_rows(rng), random_plans(rng)
    got = point_in_time(rows, plan, time="t", events={"clicks": events}, tables=[table])
    want = brute_force(plan, rows, events, table)
    assert list(got.columns) == plan.names()
    mismatches = [
        (i, name, got[name].iloc[i], want[name].iloc[i])
        for name in plan.names()
        for i in range(len(rows))
        if not same(got[name].iloc[i], want[name].iloc[i])
    ]
    assert mismatches == []
    assert got["n_1d"].sum() > 100  # the windows do hold events: the comparison is not vacuous
    assert got["plan_tier"].notna().sum() > 50


def test_events_after_each_cutoff_never_count(rng: np.random.Generator) -> None:
    """The leak trap: plant events at and after every row's cutoff; nothing may change."""
    plan = plan_for()
    events, rows, table = random_events(rng), random_rows(rng), random_plans(rng)
    before = point_in_time(rows, plan, time="t", events={"clicks": events}, tables=[table])
    cutoffs = rows["t"] - pd.Timedelta(seconds=plan.delay)
    last = cutoffs.groupby(rows["user"]).max()  # after every cutoff of that user's rows
    traps = [
        {"user": user, "at": cutoff + after, "kind": "buy", "amount": 1e6}
        for user, cutoff in last.items()
        for after in (pd.Timedelta(0), pd.Timedelta(milliseconds=1), pd.Timedelta(hours=3))
    ]
    future_plans = pd.DataFrame(
        {"user_id": last.index, "since": last.to_numpy(), "tier": "leak", "limit": 999}
    )
    trapped = pd.concat([events, pd.DataFrame(traps)], ignore_index=True)
    after = point_in_time(
        rows, plan, time="t", events={"clicks": trapped},
        tables=[pd.concat([table, future_plans], ignore_index=True)],
    )  # fmt: skip
    pd.testing.assert_frame_equal(before, after)
    assert (after["plan_tier"] != "leak").all()
    # and the trap is armed: one millisecond before each row's cutoff, the same event counts
    armed = pd.DataFrame(
        {"user": rows["user"], "at": cutoffs - pd.Timedelta(milliseconds=1), "kind": "buy",
         "amount": 1e6}
    )  # fmt: skip
    counted = point_in_time(
        rows, plan, time="t", events={"clicks": pd.concat([events, armed])}, tables=[table]
    )
    assert (counted["hi_7d"] == 1e6).all()


def test_delay_moves_every_cutoff_back() -> None:
    raw = {**SPEC, "delay": "1h", "joins": []}
    plan = plan_for(raw)
    rows = pd.DataFrame(
        {"user": ["a"] * 3, "t": [T0 + pd.Timedelta(s, unit="s") for s in (7201, 7200, 3660)]}
    )
    events = pd.DataFrame({"user": ["a"], "at": [T0 + pd.Timedelta("1h")], "kind": ["buy"],
                           "amount": [10.0]})  # fmt: skip
    got = point_in_time(rows, plan, time="t", events={"clicks": events})
    # at 2:00:01 the 1:00 event is an hour old; at 2:00 exactly (and at 1:01) not yet
    assert got["n_1d"].tolist() == [1, 0, 0]


def test_windows_slide_by_hop() -> None:
    plan = plan_for({**SPEC, "joins": [], "delay": "0s"})
    hop = next(f for f in plan.aggregates if f.name == "n_1h").hop
    assert hop == 120 and default_hop(86400) == 3600 and default_hop(7 * 86400) == 21600
    start = T0 + pd.Timedelta("10h")
    rows = pd.DataFrame(
        {
            "user": ["a"] * 3,
            "t": [start + pd.Timedelta(s, unit="s") for s in (3600, 3600 + 119, 3600 + 120)],
        }
    )
    events = pd.DataFrame(
        {"user": ["a"], "at": [start + pd.Timedelta("1s")], "kind": ["view"], "amount": [1.0]}
    )
    got = point_in_time(rows, plan, time="t", events={"clicks": events})
    # the 1h window starts at the hop boundary an hour back: the event counts until the
    # window's start passes it, one hop later
    assert got["n_1h"].tolist() == [1, 1, 0]


def test_definitions_are_checked_with_clear_messages(tmp_path: Path) -> None:
    base = {"name": "m", "data": {"source": "x.csv", "target": "y", "time": "t", "entity": "e"}}
    cases = {
        "reads events 'nope'": {"events": {}, "define": [
            {"name": "a", "events": "nope", "function": "count", "windows": ["1h"]}]},
        "needs `column`": {"events": {"c": {"source": "x", "time": "t"}}, "define": [
            {"name": "a", "events": "c", "function": "sum", "windows": ["1h"]}]},
        "not a whole number of hops": {"events": {"c": {"source": "x", "time": "t"}}, "define": [
            {"name": "a", "events": "c", "function": "count", "windows": ["90min"], "hop": "1h"}]},
    }  # fmt: skip
    for needle, aggregates in cases.items():
        with pytest.raises(SpecError, match=re.escape(needle)):
            parse_spec({**base, "features": {"aggregates": aggregates}})
    no_time = {**base, "data": {"source": "x.csv", "target": "y", "entity": "e"}}
    with pytest.raises(SpecError, match=r"needs data\.time"):
        parse_spec({**no_time, "features": {"aggregates": {}}})


def test_a_text_column_cannot_be_summed() -> None:
    summed = {
        "name": "s",
        "events": "clicks",
        "function": "sum",
        "column": "kind",
        "windows": ["1h"],
    }
    raw = {**SPEC, "joins": [], "define": [summed]}
    rows = pd.DataFrame({"user": ["a"], "t": [T0]})
    events = pd.DataFrame({"user": ["a"], "at": [T0], "kind": ["buy"]})
    with pytest.raises(DataError, match=r"clicks\.kind feeds a sum aggregate but holds 'buy'"):
        point_in_time(rows, plan_for(raw), time="t", events={"clicks": events})


def test_namespace_follows_the_definitions_not_the_paths() -> None:
    a = plan_for()
    moved = {**SPEC, "events": {"clicks": {"source": "/elsewhere.parquet", "time": "at",
                                           "entity": "user"}}}  # fmt: skip
    assert plan_for(moved).namespace == a.namespace
    changed = {**SPEC, "delay": "2min"}
    assert plan_for(changed).namespace != a.namespace


@pytest.mark.slow
def test_training_adds_aggregates_and_the_signature_carries_the_plan(tmp_path: Path) -> None:
    from mlprod.pipelines import load, train

    project = write_aggregate_project(tmp_path / "p", rows=1200)
    run = train(project.spec, store=project.store)
    model = load(f"churn@{run.version}", store=project.store)
    fields = {f["name"]: f["kind"] for f in model.signature["fields"]}
    assert fields["tickets_7d"] == "numeric" and fields["last_kind_30d"] == "categorical"
    assert model.signature["online"]["key"] == "customer_id"
    frame, _ = model.test_data()
    assert frame["events_7d"].sum() > 0
    # recent tickets predict churn in this data: the aggregate is among the useful inputs
    assert run.metrics["roc_auc"].value > 0.6


def test_make_events_plants_events_after_each_customer() -> None:
    from mlprod.data import make_churn_table

    table = make_churn_table(200, seed=3)
    events = make_events(table)
    times = dict(zip(table["customer_id"], pd.to_datetime(table["event_time"]), strict=True))
    later = sum(at > times[c] for c, at in zip(events["customer_id"], events["at"], strict=True))
    assert later > 0
