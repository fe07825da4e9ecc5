"""What the loop records: job runs, decisions and canaries, as frozen records."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from mlprod.registry import Record

RunState = Literal["pending", "running", "succeeded", "failed", "abandoned"]
TriggerKind = Literal["cron", "drift", "performance", "new_data", "manual", "retry"]


class JobRun(Record):
    """One run of one job: why it ran, when, on which scheduler, how it ended, what it made.

    `attempt` counts from 1; a failed or abandoned run whose job allows retries is followed
    by the same `trigger_key` with the next attempt, due `retry_delay` later.
    """

    id: int
    model: str
    job: str
    trigger: str
    trigger_key: str
    attempt: int
    state: RunState
    scheduled_for: datetime
    not_before: datetime
    started_at: datetime | None
    ended_at: datetime | None
    owner: str | None
    lease_until: datetime | None
    error: str | None
    output: dict[str, Any]

    @property
    def name(self) -> str:
        """``churn/retrain``: what `mlprod jobs` shows."""
        return f"{self.model}/{self.job}"


class Decision(Record):
    """A step of the loop and its evidence: a retrained challenger judged, a canary decided.

    For a retrain, `difference` is challenger minus champion on `metric` over `rows`
    labelled rows (`basis`: live predictions or a fresh holdout), with its 95% interval;
    for a canary, the difference in mean Brier score (lower is better) at the last look.
    """

    id: int
    model: str
    at: datetime
    kind: Literal["retrain", "canary"]
    outcome: str
    champion: int | None
    challenger: int | None
    metric: str | None
    champion_value: float | None
    challenger_value: float | None
    difference: float | None
    low: float | None
    high: float | None
    margin: float | None
    rows: int | None
    basis: str | None
    reason: str
    details: dict[str, Any]


class Canary(Record):
    """A challenger taking a share of the traffic until it is promoted or rolled back."""

    id: int
    model: str
    champion: int
    challenger: int
    weight: float
    state: Literal["running", "promoted", "rolled_back"]
    started_at: datetime
    ended_at: datetime | None
    looks: int
    reason: str | None
