"""The prediction log: every answered prediction, spooled locally, then stored exactly once.

A request appends one entry to a local append-only `Spool` before its answer leaves; a
`PredictionLog` flusher moves entries into the store in batches, idempotently by
prediction id. A store that is down for an hour, or a ``kill -9``, costs no record.

Example::

    log = PredictionLog(store, Spool(settings.spool_dir(), max_bytes=256 << 20), policy="shed")
    log.start()
    log.submit([prediction_entry("churn", records, answers, at=now, latency_ms=4.1)])
    read_predictions(store, "churn", since=start)
    prune_predictions(store, before=utc_now() - timedelta(days=90))  # retention
"""

from mlprod.predlog._batch import insert_batch_predictions
from mlprod.predlog._entries import (
    COLUMNS,
    entry_rows,
    entry_size,
    line_rows,
    prediction_entry,
)
from mlprod.predlog._insert import insert_entries, insert_predictions
from mlprod.predlog._log import PredictionLog
from mlprod.predlog._prune import PruneResult, prune_predictions
from mlprod.predlog._read import count_predictions, read_predictions
from mlprod.predlog._spool import Spool, SpoolPosition

__all__ = [
    "COLUMNS",
    "PredictionLog",
    "PruneResult",
    "Spool",
    "SpoolPosition",
    "count_predictions",
    "entry_rows",
    "entry_size",
    "insert_batch_predictions",
    "insert_entries",
    "insert_predictions",
    "line_rows",
    "prediction_entry",
    "prune_predictions",
    "read_predictions",
]
