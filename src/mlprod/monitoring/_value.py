"""Business value per live window: the labelled outcomes' counts times the spec's matrix.

The matrix is each version's own (``value:`` in the spec its run trained with), so a
window's value means what the version's offline value meant. The interval is the normal
one for a sum of independent rows: n times the per-row mean, +- 1.96 sqrt(n x variance).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from mlprod.registry import VersionRecord, get_run
from mlprod.store import Store

CELLS = ("tp", "fp", "tn", "fn")


def version_matrices(
    store: Store, versions: Iterable[VersionRecord], wanted: set[int]
) -> dict[int, dict[str, float]]:
    """The value matrix of each version in `wanted` whose run's spec has one."""
    found: dict[int, dict[str, float]] = {}
    for record in versions:
        if record.version not in wanted:
            continue
        value = (get_run(store, record.run_id).spec or {}).get("value")
        if value:
            found[record.version] = {c: float(value.get(c) or 0.0) for c in CELLS}
    return found


def live_value(counts: Mapping[str, Any], matrix: Mapping[str, float]) -> dict[str, float | None]:
    """``value`` (total over labelled rows) with its 95% interval, and ``value_per_row``.

    >>> v = live_value({"tp": 3, "fp": 5, "tn": 90, "fn": 2}, {"tp": 90, "fp": -10})
    >>> v["value"], v["value_per_row"]
    (220.0, 2.2)
    """
    n = sum(int(counts.get(c, 0)) for c in CELLS)
    if n == 0:
        return {"value": None, "value_low": None, "value_high": None, "value_per_row": None}
    # imported here: the evaluation package (charts, reports) is paid only by a report
    # that has labelled rows to value, not by every `mlprod monitor`
    from mlprod.evaluation import value_of_counts

    total = value_of_counts(counts, matrix)
    mean = total / n
    spread = sum(int(counts.get(c, 0)) * (matrix.get(c, 0.0) - mean) ** 2 for c in CELLS)
    variance = spread / n
    half = 1.96 * math.sqrt(n * variance)
    return {
        "value": total,
        "value_low": total - half,
        "value_high": total + half,
        "value_per_row": mean,
    }
