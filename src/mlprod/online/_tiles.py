"""Events to tile partials: what `materialize` and live events merge into Redis.

Both paths build the same `event_frame` the point-in-time computation reads, then group
it by entity and tile here, so the online store and training read events one way. A
partial is (field, op, value) for the MERGE script; a field is ``<slot>:<tile index>``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mlprod.features import FeaturePlan, Slot, event_frame, filters_of, join_frame

Merge = tuple[str, str, str]
SEP = "\x1f"  # between a padded time and a text
SET_SEP = "\x1e"  # between the texts of a distinct set
PAD = 15
_OPS = {"count": "c", "n": "c", "sum": "s", "min": "m", "max": "x", "last": "l", "distinct": "d"}
TTL_MARGIN = 86_400


@dataclass
class Merges:
    """Partials per Redis hash (by key suffix), plus fields each hash may let go of."""

    by_hash: dict[str, list[Merge]] = field(default_factory=lambda: defaultdict(list))
    prune: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    events: int = 0
    since_ms: int | None = None  # every event of the merged entities from here on is in

    def __len__(self) -> int:
        return len(self.by_hash)


def entity_hash(key: str) -> str:
    return f"e:{key}"


def join_hash(index: int, key: str) -> str:
    return f"j{index}:{key}"


def entity_ttl(plan: FeaturePlan) -> int:
    """Seconds an entity's tiles outlive its last event: its longest window, and a day."""
    longest = max((f.window + f.hop for f in plan.aggregates), default=0)
    return longest + plan.delay + TTL_MARGIN


def keep_tiles(plan: FeaturePlan, slot: int) -> int:
    """Tiles of a slot any lookup can still read, counted back from the newest."""
    return max(f.tiles for f in plan.aggregates if slot in f.slots) + 1


def tile_merges(plan: FeaturePlan, name: str, raw: pd.DataFrame, merges: Merges) -> None:
    """Add the partials of source `name`'s events in `raw` to `merges`."""
    frame = event_frame(plan, name, raw)
    merges.events += len(frame)
    if not len(frame):
        return
    first = int(frame["t"].min())
    merges.since_ms = first if merges.since_ms is None else min(merges.since_ms, first)
    filters = filters_of(plan, name)
    columns: list[str] = frame.attrs["columns"]
    for index, slot in enumerate(plan.slots):
        if slot.events != name:
            continue
        rows = frame
        if slot.where:
            rows = frame.loc[frame[f"w{filters.index(slot.where)}"].to_numpy()]
        column = columns.index(slot.column) if slot.column else -1
        keep = keep_tiles(plan, index)
        for (key, tile), value in _partials(rows, slot, column).items():
            target = entity_hash(str(key))
            merges.by_hash[target].append((f"{index}:{tile}", _OPS[slot.partial], value))
            merges.prune[target].append(f"{index}:{int(tile) - keep}")


def _partials(rows: pd.DataFrame, slot: Slot, column: int) -> dict[Any, str]:
    """One partial per (key, tile index), as the text the MERGE script reads."""
    if not len(rows):
        return {}
    tile = rows["t"] // (slot.hop * 1000)
    groups = [rows["k"], tile.rename("tile")]
    if slot.partial == "count":
        return {k: str(int(v)) for k, v in rows.groupby(groups).size().items()}
    if slot.partial in ("sum", "n", "min", "max"):
        grouped = rows[f"v{column}"].groupby(groups)
        found = {
            "sum": lambda: grouped.sum(min_count=1),
            "n": grouped.count,
            "min": grouped.min,
            "max": grouped.max,
        }[slot.partial]()
        found = found[found > 0] if slot.partial == "n" else found.dropna()
        if slot.partial == "n":
            return {k: str(int(v)) for k, v in found.items()}
        return {k: repr(float(v)) for k, v in found.items()}
    text = rows[f"x{column}"]
    present = text.notna().to_numpy()
    rows, text = rows.loc[present], text.loc[present]
    tile = tile.loc[present]
    if slot.partial == "last":
        packed = rows["t"].astype(str).str.zfill(PAD) + SEP + text
        return dict(packed.groupby([rows["k"], tile.rename("tile")]).max().items())
    sets = text.groupby([rows["k"], tile.rename("tile")]).agg(
        lambda s: SET_SEP.join(sorted(set(s)))
    )
    return dict(sets.items())


def join_merges(plan: FeaturePlan, index: int, table: pd.DataFrame, merges: Merges) -> None:
    """Each key's latest row of join `index` (ties: the greatest row text, as in training)."""
    frame = join_frame(plan, index, table)
    merges.events += len(frame)
    if not len(frame):
        return
    packed = frame["t"].astype(str).str.zfill(PAD) + SEP + frame["r"]
    for key, value in packed.groupby(frame["k"]).max().items():
        merges.by_hash[join_hash(index, str(key))].append(("r", "l", value))
