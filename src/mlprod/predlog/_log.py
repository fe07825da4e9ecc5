"""The prediction log: requests write to the local spool, a thread moves rows to the store.

Why this shape: a request must never wait on the database, and a database that is down
for an hour must not cost a single record. `submit` only appends to the spool (one write
per request, about a microsecond per record); a daemon thread reads batches, inserts them
idempotently and commits the spool position afterwards. A crash between insert and commit
replays the batch, which the store's unique prediction id absorbs: delivered at least
once, stored exactly once.

When the spool reaches its cap the configured policy applies, never silently: ``shed``
raises `SpoolFullError` (503, the client retries), ``drop`` drops the rows and counts them.

Example::

    log = PredictionLog(store, Spool(settings.spool_dir(), max_bytes=256 << 20), policy="shed")
    log.start()
    log.submit([prediction_entry("churn", records, answers, at=now, latency_ms=4.1)])
    log.stats()  # {"spooled": 1, "flushed": 1, "pending": 0, "dropped": 0, ...}
    log.stop(timeout=5)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

import orjson
from sqlalchemy import exc as sa_exc

from mlprod._threads import lower_priority
from mlprod.errors import DataError, MlprodError, SpoolFullError
from mlprod.predlog._entries import entry_rows, entry_size, line_rows
from mlprod.predlog._insert import insert_entries, insert_predictions
from mlprod.predlog._spool import Spool
from mlprod.store import Store

log = logging.getLogger("mlprod.serving")

MAX_BACKOFF = 2.0  # seconds between attempts while the store is down
FIRST_BACKOFF = 0.05
ADOPT_EVERY = 30.0  # seconds between looks for spools of servers that died meanwhile

T = TypeVar("T")


class PredictionLog:
    """Never blocks a request on the store, never loses a record it accepted.

    `policy` says what happens when the spool is full: ``shed`` re-raises `SpoolFullError`
    so the server answers 503; ``drop`` drops the rows and counts them in `stats`. The
    flusher inserts up to `batch_rows` rows at a time and looks for new rows every
    `interval` seconds when idle. Why a second: each commit rewrites the index pages its rows
    touched (entities land all over their index), so five times fewer, larger commits cost
    a stored row about a fifth less; the spool keeps the rows safe meanwhile.
    """

    def __init__(
        self,
        store: Store,
        spool: Spool,
        *,
        policy: Literal["shed", "drop"] = "shed",
        batch_rows: int = 10_000,
        interval: float = 1.0,
    ) -> None:
        if policy not in ("shed", "drop"):
            raise ValueError(f"policy must be 'shed' or 'drop', got {policy!r}")
        self.store = store
        self.spool = spool
        self.policy = policy
        self.batch_rows = batch_rows
        self.interval = interval
        self._counts = {"flushed": 0, "inserted": 0, "dropped": 0, "failures": 0}
        self._count_lock = threading.Lock()
        self._dropping = False
        self._down_since: float | None = None  # monotonic time of the outage's first failure
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._adopted = threading.Event()  # set once the first pass took in dead spools
        self._deadline = 0.0
        self._thread: threading.Thread | None = None

    # --- lifecycle

    def start(self) -> None:
        """Open the spool and start the flusher; it first adopts spools of dead servers."""
        if self._thread is not None:
            raise RuntimeError("a PredictionLog starts once; create a new one to restart")
        self.spool.open()
        self._thread = threading.Thread(target=self._loop, name="mlprod-predlog", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Flush for up to `timeout` seconds, then stop; what is left waits in the spool.

        The next `start` on the same spool folder, in any process on this host, flushes it.
        """
        thread = self._thread
        if thread is None:
            self.spool.close()
            return
        self._deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        thread.join(timeout + 1.0)  # plus one in-flight insert
        if thread.is_alive():
            log.warning(
                "the prediction log flusher is still waiting on the store after %.1f s; "
                "%d rows stay in the spool at %s for the next start",
                timeout,
                self.spool.pending_rows,
                self.spool.folder,
            )

    # --- the request path

    def submit(self, entries: list[dict[str, Any]]) -> None:
        """Spool `entries` (`prediction_entry`s or plain rows); never touches the store.

        Raises `SpoolFullError` when the spool is full and the policy is ``shed``.
        """
        try:
            self.spool.append(entries)
        except SpoolFullError as exc:
            if self.policy == "shed":
                raise
            self._drop(sum(map(entry_size, entries)), exc)
            return
        if self._dropping:
            self._dropping = False
            log.warning("the prediction log spool has room again: logging resumed")

    def _drop(self, count: int, exc: SpoolFullError) -> None:
        with self._count_lock:
            self._counts["dropped"] += count
            first = not self._dropping
            self._dropping = True
        if first:
            log.warning("dropping prediction logs (MLPROD_SPOOL_FULL=drop), counted: %s", exc)

    def stats(self) -> dict[str, int]:
        """Counters for /metrics.

        spooled: rows this process appended; recovered: rows adopted from dead servers;
        flushed: rows now in the store (inserted + already there); inserted: rows new to the
        store; pending: rows waiting in the spool; dropped: rows refused by a full spool
        (drop policy); rejected: rows the store refused, kept in rejected.jsonl; torn:
        partial lines left by a crash; failures: flush attempts that failed; spool_bytes.
        """
        spool = self.spool
        with self._count_lock:
            counts = dict(self._counts)
        return {
            "spooled": spool.appended,
            "recovered": spool.recovered,
            "pending": spool.pending_rows,
            "rejected": spool.rejected,
            "torn": spool.torn,
            "spool_bytes": spool.pending_bytes if spool.path is not None else 0,
            **counts,
        }

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row spooled so far is in the store; False if `timeout` passed.

        Rows left by dead servers count too: the first pass adopts them, so this waits
        for that pass before it trusts an empty spool.
        """
        deadline = time.monotonic() + timeout
        if not self._adopted.wait(timeout):
            return False
        while self.spool.pending_rows > 0:
            if time.monotonic() > deadline or self._thread is None or not self._thread.is_alive():
                return False
            self._wake.set()
            time.sleep(0.01)
        return True

    # --- the flusher thread

    def _loop(self) -> None:
        lower_priority()
        backoff = 0.0
        next_adopt = 0.0
        try:
            while not (self._stop.is_set() and self._drained_or_late()):
                if time.monotonic() >= next_adopt:
                    self._adopt()
                    self._adopted.set()
                    next_adopt = time.monotonic() + ADOPT_EVERY
                try:
                    moved = self._flush_batch()
                except (MlprodError, sa_exc.SQLAlchemyError, OSError) as exc:
                    backoff = min(max(backoff * 2, FIRST_BACKOFF), MAX_BACKOFF)
                    self._failed(exc)
                    self._pause(backoff)
                    continue
                backoff = 0.0
                self._recovered()
                if self._stop.is_set() and moved == 0:
                    break  # only torn or rejected lines were left
                if moved < self.batch_rows and not self._stop.is_set():
                    self._pause(self.interval)
        finally:
            self.spool.close()

    def _drained_or_late(self) -> bool:
        return self.spool.pending_rows == 0 or time.monotonic() >= self._deadline

    def _pause(self, seconds: float) -> None:
        """Sleep, cut short by `flush` or `stop`, and never past the stop deadline."""
        if self._stop.is_set():
            seconds = min(seconds, max(self._deadline - time.monotonic(), 0.0))
        self._wake.wait(seconds)
        self._wake.clear()

    def _adopt(self) -> None:
        try:
            self.spool.adopt_orphans()
        except OSError as exc:
            log.error("cannot adopt spools of dead servers in %s: %s", self.spool.folder, exc)

    def _flush_batch(self) -> int:
        """Move one batch from the spool to the store; returns the spool rows it consumed."""
        lines, position = self.spool.read(self.batch_rows)
        if not position.moved:
            return 0
        inserted, rejected = self._bisect(lines, self._insert_lines, self._split)
        self.spool.commit(position)
        with self._count_lock:
            self._counts["flushed"] += sum(line_rows(line) or 0 for line in lines) - rejected
            self._counts["inserted"] += inserted
        return position.rows

    def _bisect(
        self,
        items: Sequence[T],
        insert: Callable[[Sequence[T]], int],
        last_resort: Callable[[T, DataError], tuple[int, int]],
    ) -> tuple[int, int]:
        """Insert `items`: (rows new to the store, rows set aside as unstorable).

        What the store refuses (`DataError`) is found by bisection, so one bad record cannot
        hold the log up; a single refused item goes to `last_resort`. `StoreError` (the
        store is down) propagates and the whole batch is retried later.
        """
        if not items:
            return 0, 0
        try:
            return insert(items), 0
        except DataError as exc:
            if len(items) == 1:
                return last_resort(items[0], exc)
        middle = len(items) // 2
        left = self._bisect(items[:middle], insert, last_resort)
        right = self._bisect(items[middle:], insert, last_resort)
        return left[0] + right[0], left[1] + right[1]

    def _insert_lines(self, lines: Sequence[bytes]) -> int:
        return insert_entries(self.store, lines)

    def _insert_rows(self, rows: Sequence[dict[str, Any]]) -> int:
        return insert_predictions(self.store, rows)

    def _split(self, line: bytes, refused: DataError) -> tuple[int, int]:
        """Retry a refused entry row by row; a lone row or a malformed entry is set aside."""
        try:
            rows = entry_rows(orjson.loads(line))
        except (DataError, TypeError, ValueError, AttributeError) as exc:
            rows, refused = [], DataError(f"{refused.message}; {exc}")
        if len(rows) <= 1:
            self.spool.reject(line, refused.message)
            return 0, line_rows(line) or 1
        return self._bisect(rows, self._insert_rows, self._reject)

    def _reject(self, row: dict[str, Any], refused: DataError) -> tuple[int, int]:
        self.spool.reject(row, refused.message)
        return 0, 1

    def _failed(self, exc: Exception) -> None:
        with self._count_lock:
            self._counts["failures"] += 1
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning(
                "cannot write prediction logs to the store (%s); keeping them in the spool "
                "at %s and retrying every %.0f s at most",
                exc,
                self.spool.folder,
                MAX_BACKOFF,
            )

    def _recovered(self) -> None:
        if self._down_since is not None:
            log.warning(
                "the store takes prediction logs again after %.1f s; %d rows still pending",
                time.monotonic() - self._down_since,
                self.spool.pending_rows,
            )
            self._down_since = None
