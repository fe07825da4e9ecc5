"""Reading the event tables and join tables a plan names, once per run."""

from __future__ import annotations

import pandas as pd

from mlprod.data import DataCache, read_source
from mlprod.features._aggregates import FeaturePlan


def read_event_sources(
    plan: FeaturePlan, *, cache: DataCache | None = None
) -> dict[str, pd.DataFrame]:
    """Every event source the plan's aggregates read, by name (empty tables allowed).

    With a `cache`, a source with a fresh datamart entry is read from Redis instead.
    """
    used = sorted({feature.events for feature in plan.aggregates})
    return {
        name: read_source(plan.spec.events[name].source, cache=cache, allow_empty=True)
        for name in used
    }


def read_join_tables(plan: FeaturePlan, *, cache: DataCache | None = None) -> list[pd.DataFrame]:
    """Each as-of join's table, in spec order."""
    return [read_source(join.source, cache=cache, allow_empty=True) for join in plan.joins]
