"""What the metadata store hands back: frozen, JSON-able records, never live ORM rows.

Records are plain values, so the CLI prints them with ``model_dump(mode="json")``, the
server returns them, and nothing holds a database connection open by accident.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

RunStatus = Literal["running", "finished", "failed"]


class Record(BaseModel):
    # defer_build: a record's validator is built when the first one is read, not at import:
    # a command pays for the kinds of record it reads (building one is about a millisecond).
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class RunRecord(Record):
    """One training run: what it was asked to do, what it found, and where it ended."""

    id: str
    model: str
    status: RunStatus
    user: str
    started_at: datetime
    ended_at: datetime | None
    spec: dict[str, Any]
    params: dict[str, Any]
    metrics: dict[str, Any]
    fingerprint: dict[str, Any]
    candidates: list[dict[str, Any]]
    git_commit: str | None
    library_versions: dict[str, str]
    parent_run_id: str | None
    version: int | None
    error: str | None


class VersionRecord(Record):
    """One immutable registered version; `aliases` are the aliases pointing at it now."""

    model: str
    version: int
    run_id: str
    created_at: datetime
    bundle_id: str
    flavor: str
    metrics: dict[str, Any]
    gates: list[dict[str, Any]]
    gates_passed: bool
    signature: dict[str, Any]
    threshold: float
    aliases: list[str]
    files: dict[str, str] | None = None  # every bundle file's sha256; None before 0008

    @property
    def ref(self) -> str:
        """``name@version``, the reference that always means exactly this version."""
        return f"{self.model}@{self.version}"


class AuditRecord(Record):
    """One alias move: who moved what from where to where, and why."""

    id: int
    at: datetime
    actor: str
    action: str
    model: str
    alias: str | None
    from_version: int | None
    to_version: int | None
    reason: str | None


class TrialRecord(Record):
    """One tuning trial of one candidate: what it tried and how it scored.

    `state` is ``complete``, ``pruned`` (stopped early as hopeless), ``fail`` (its model
    failed to fit, or its worker died: then `retry_of` on a later trial points back) or
    ``running``. `value` is the mean cross-validated score, higher is better.
    """

    run_id: str
    candidate: str
    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    fold_scores: list[float]
    best_iteration: int | None = None
    error: str | None = None
    retry_of: int | None = None
    started_at: datetime | None
    finished_at: datetime | None
    seconds: float | None


class CurveRecord(Record):
    """A candidate's validation loss and metric at each size (round, iteration, trees)."""

    run_id: str
    candidate: str
    x_label: str
    x: list[int]
    loss_name: str
    loss: list[float]
    metric_name: str
    metric: list[float]
    telemetry: dict[str, Any] | None = None  # networks: per-epoch layer statistics, graph
