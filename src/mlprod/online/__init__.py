"""The online feature store: aggregates kept current in Redis, looked up per request.

`materialize` applies event sources incrementally (a watermark per source),
`ingest_events` merges live events within a second (`StreamReader` reads them from
Redis streams), `FeatureClient` looks features up
for the server within a budget, and `skew_report` compares what was served with an
offline recomputation.

Example::

    online = OnlineStore.open("redis://127.0.0.1:6379/0")
    materialize(online, plan, events=read_event_sources(plan), tables=read_join_tables(plan))
    online.lookup(plan, [{"customer_id": "C1"}], at_ms=now_ms)
"""

from mlprod.online._client import FeatureClient
from mlprod.online._live import Ingested, apply_due, ingest_events
from mlprod.online._materialize import Materialized, SourceRun, materialize
from mlprod.online._skew import FeatureSkew, SkewReport, same_value, skew_report
from mlprod.online._store import DEFAULT_PREFIX, OnlineStore, key_text
from mlprod.online._stream import StreamReader, StreamStats, entry_event
from mlprod.records import LOOKUP_TIME

__all__ = [
    "DEFAULT_PREFIX",
    "LOOKUP_TIME",
    "FeatureClient",
    "FeatureSkew",
    "Ingested",
    "Materialized",
    "OnlineStore",
    "SkewReport",
    "SourceRun",
    "StreamReader",
    "StreamStats",
    "apply_due",
    "entry_event",
    "ingest_events",
    "key_text",
    "materialize",
    "same_value",
    "skew_report",
]
