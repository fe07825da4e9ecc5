"""Training/serving skew: the values a server used, against an offline recomputation.

For each logged request the server merged aggregates into, the point-in-time engine
recomputes the same features for the same entity and lookup time; every feature's
mismatch rate is the share of rows where the two disagree (numbers beyond a relative
tolerance, anything else by canonical text). A missing-entity default served for an
entity that had events is a mismatch too: that is the point of looking.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field

from mlprod.features import FeaturePlan, point_in_time, value_text
from mlprod.records import LOOKUP_TIME

TOLERANCE = 1e-9
EXAMPLES = 5


class FeatureSkew(BaseModel):
    """One feature's agreement between serving and an offline recomputation."""

    feature: str
    compared: int
    mismatches: int
    rate: float
    examples: list[dict[str, Any]] = Field(default_factory=list)


class SkewReport(BaseModel):
    """Per-feature mismatch rates over the logged requests that carried looked-up features."""

    model: str
    namespace: str
    rows: int
    features: list[FeatureSkew]

    def document(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def same_value(served: Any, offline: Any, tolerance: float = TOLERANCE) -> bool:
    """Whether a served and a recomputed value agree (missing agrees with missing only)."""
    served_missing = _missing(served)
    if served_missing or _missing(offline):
        return served_missing and _missing(offline)
    if _number(served) and _number(offline):
        a, b = float(served), float(offline)
        return abs(a - b) <= tolerance * max(1.0, abs(a), abs(b))
    return value_text(served) == value_text(offline)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def skew_report(
    model: str,
    plan: FeaturePlan,
    records: Sequence[Mapping[str, Any]],
    *,
    events: Mapping[str, pd.DataFrame],
    tables: Sequence[pd.DataFrame] = (),
) -> SkewReport:
    """Compare `records` (logged inputs with ``@features_at``) with a recomputation."""
    looked_up = [r for r in records if isinstance(r, Mapping) and r.get(LOOKUP_TIME)]
    names = plan.names()
    if not looked_up:
        empty = [FeatureSkew(feature=n, compared=0, mismatches=0, rate=0.0) for n in names]
        return SkewReport(model=model, namespace=plan.namespace, rows=0, features=empty)
    ons = {plan.key} | {plan.join_key(i)[0] for i in range(len(plan.joins))}
    rows = pd.DataFrame({c: [r.get(c) for r in looked_up] for c in ons})
    rows[LOOKUP_TIME] = pd.to_datetime([r[LOOKUP_TIME] for r in looked_up], utc=True)
    offline = point_in_time(rows, plan, time=LOOKUP_TIME, events=events, tables=tables)
    found = []
    for name in names:
        compared = mismatched = 0
        examples: list[dict[str, Any]] = []
        for position, record in enumerate(looked_up):
            if name not in record:
                continue
            compared += 1
            served, recomputed = record[name], offline[name].iloc[position]
            if not same_value(served, recomputed):
                mismatched += 1
                if len(examples) < EXAMPLES:
                    examples.append({"entity": record.get(plan.key), "at": record[LOOKUP_TIME],
                                     "served": served, "offline": _plain(recomputed)})  # fmt: skip
        rate = mismatched / compared if compared else 0.0
        found.append(FeatureSkew(feature=name, compared=compared, mismatches=mismatched,
                                 rate=rate, examples=examples))  # fmt: skip
    return SkewReport(model=model, namespace=plan.namespace, rows=len(looked_up), features=found)


def _plain(value: Any) -> Any:
    if _missing(value):
        return None
    return value.item() if hasattr(value, "item") else value
