"""When a job is due: its cron slots, and for retraining, alerts and new data.

Each reason to run carries a key that names it exactly (the cron slot, the alert's id, the
data's fingerprint), so the run it causes is inserted once however many schedulers notice.

* cron: the newest slot at or before now, once it is newer than the last cron run. After
  downtime, ``missed: catch_up`` runs the newest missed slot once; ``skip`` runs a slot
  only if it fell due within the last `GRACE` (the scheduler was up for it).
* drift / performance: each open alert of that kind for the model, once.
* new_data: the source's content changed since the last retraining looked at it.

Example::

    for due in due_now(store, job, now, first_seen=start, source=fingerprints):
        enqueue(store, job.model, job.kind, trigger=due.trigger, key=due.key, ...)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from mlprod.data import fingerprint, load_frame
from mlprod.monitoring import list_alerts
from mlprod.scheduling._cron import latest_slot
from mlprod.scheduling._jobs import Job
from mlprod.scheduling._runs import list_job_runs
from mlprod.spec import SqlSource
from mlprod.store import Store

GRACE = timedelta(minutes=1)


@dataclass(frozen=True)
class Due:
    """One reason to run a job now."""

    trigger: str
    key: str
    scheduled_for: datetime


def cron_due(store: Store, job: Job, now: datetime, *, first_seen: datetime) -> Due | None:
    """The cron slot to run now, if any (see the module docstring for missed slots)."""
    if job.cron is None:
        return None
    slot = latest_slot(job.cron, job.timezone, at_or_before=now)
    previous = list_job_runs(store, job.model, job=job.kind, triggers=("cron",), limit=1)
    last = previous[0].scheduled_for if previous else first_seen
    if slot <= last:
        return None
    if job.missed == "skip" and now - slot > GRACE:
        return None
    return Due("cron", f"cron:{slot.isoformat()}", slot)


def alert_due(store: Store, job: Job) -> list[Due]:
    """One retraining per open drift or performance alert the job listens to."""
    kinds = {"drift", "performance"} & set(job.triggers)
    if not kinds:
        return []
    alerts = list_alerts(store, job.model, open_only=True, limit=1000)
    return [Due(a.kind, f"alert:{a.id}", a.opened_at) for a in alerts if a.kind in kinds]


def data_due(store: Store, job: Job, now: datetime, *, signature: str, baseline: str) -> Due | None:
    """A retraining when the source's content differs from what retraining last saw.

    What it last saw: the source signature recorded by the newest retraining run, or,
    before there is one, `baseline` (the signature when this scheduler started).
    """
    if "new_data" not in job.triggers:
        return None
    previous = list_job_runs(store, job.model, job=job.kind, limit=1)
    seen = previous[0].output.get("source") if previous else None
    if previous and seen is None:
        seen = previous[0].trigger_key.removeprefix("data:")
    if (seen or baseline) == signature:
        return None
    return Due("new_data", f"data:{signature}", now)


class SourceSignatures:
    """The content signature of each data source, recomputed only when a file changes.

    Files are hashed once per (size, modification time); SQL sources are read and
    fingerprinted, at most once per `every`.
    """

    def __init__(self, every: timedelta = timedelta(minutes=5)) -> None:
        self.every = every
        self._files: dict[Path, tuple[tuple[int, int], str]] = {}
        self._queries: dict[str, tuple[datetime, str]] = {}

    def signature(self, source: str | SqlSource, now: datetime) -> str:
        if isinstance(source, SqlSource):
            key = f"{source.url}\0{source.query}"
            cached = self._queries.get(key)
            if cached is None or now - cached[0] >= self.every:
                cached = (now, fingerprint(load_frame(source)).sha256[:16])
                self._queries[key] = cached
            return cached[1]
        path = Path(source)
        stat = path.stat()
        stamp = (stat.st_size, stat.st_mtime_ns)
        found = self._files.get(path)
        if found is None or found[0] != stamp:
            found = (stamp, _file_sha(path))
            self._files[path] = found
        return found[1]


def _file_sha(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]
