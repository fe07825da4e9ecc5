"""The closed loop in the spec: ``schedule:`` (jobs and triggers) and ``retrain:`` (the decision).

Example::

    schedule:
      timezone: Europe/Berlin
      jobs:
        retrain: {cron: "0 3 * * 1", triggers: [drift, performance, new_data]}
        monitor: {cron: "*/15 * * * *"}
        score: {cron: "0 * * * *", input: new_customers.csv, output: scored.parquet}
    retrain:
      window: 180d
      margin: 0.01
      canary: {weight: 10, max_duration: 7d}
"""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mlprod._time import parse_duration

JobKind = Literal["retrain", "score", "monitor", "materialize"]
Trigger = Literal["drift", "performance", "new_data"]
JOB_KINDS: tuple[JobKind, ...] = ("retrain", "score", "monitor", "materialize")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def _check_duration(value: str | None) -> str | None:
    if value is not None:
        parse_duration(value)
    return value


def _check_timezone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}: use an IANA name such as 'UTC' or 'Europe/Berlin'"
        ) from None
    return value


def check_cron(value: str | None) -> str | None:
    """A five-field cron expression (``0 3 * * 1``) or a nickname (``@daily``)."""
    if value is None:
        return None
    from croniter import croniter

    if len(value.split()) not in (1, 5) or not croniter.is_valid(value):
        raise ValueError(
            f"invalid cron expression {value!r}: use five fields, minute hour day-of-month "
            "month day-of-week (e.g. '0 3 * * 1' for Mondays at 03:00), or @hourly/@daily/@weekly"
        )
    return value


class JobSpec(_Strict):
    """One scheduled job: when it runs, what else triggers it, how failures are retried.

    Without ``cron`` the job runs only on its triggers and by hand (``mlprod jobs run``).
    """

    cron: str | None = Field(default=None, description="Five-field cron, or @daily etc.")
    timezone: str | None = Field(default=None, description="Overrides schedule.timezone.")
    triggers: list[Trigger] = Field(
        default_factory=list, description="Also run on: drift, performance, new_data."
    )
    missed: Literal["catch_up", "skip"] | None = Field(
        default=None, description="Overrides schedule.missed."
    )
    retries: int | None = Field(default=None, ge=0, le=10)
    retry_delay: str | None = None
    # score: batch scoring of a source into a destination (the options of `mlprod predict`)
    model: str | None = Field(default=None, description="score: the reference scored with.")
    input: str | None = Field(default=None, description="score: a file, folder or glob.")
    input_sql: str | None = Field(default=None, description="score: a query to score.")
    output: str | None = Field(default=None, description="score: the file or folder written.")
    output_table: str | None = Field(default=None, description="score: a SQL table.")
    url: str | None = Field(default=None, description="score: the database of the SQL parts.")
    engine: Literal["local", "spark"] = Field(default="local", description="score: where.")
    master: str | None = Field(default=None, description="score: the Spark master URL.")

    _cron = field_validator("cron")(check_cron)
    _timezone = field_validator("timezone")(_check_timezone)
    _delay = field_validator("retry_delay")(_check_duration)


class ScheduleSpec(_Strict):
    """The jobs that keep the model fresh, and the defaults they share."""

    timezone: str = Field(default="UTC", description="Time zone of every cron expression.")
    missed: Literal["catch_up", "skip"] = Field(
        default="catch_up",
        description="After downtime: run a missed job once (catch_up) or wait (skip).",
    )
    retries: int = Field(default=2, ge=0, le=10, description="Attempts after a failure.")
    retry_delay: str = Field(default="5min", description="Wait before a retry.")
    jobs: dict[JobKind, JobSpec] = Field(default_factory=dict)

    _timezone = field_validator("timezone")(_check_timezone)
    _delay = field_validator("retry_delay")(_check_duration)

    @model_validator(mode="after")
    def _score_has_its_files(self) -> ScheduleSpec:
        score = self.jobs.get("score")
        if score is not None:
            if (score.input is None) == (score.input_sql is None):
                raise ValueError("schedule.jobs.score needs input (a file) or input_sql (a query)")
            if (score.output is None) == (score.output_table is None):
                raise ValueError("schedule.jobs.score needs output (a file) or output_table")
            if (score.input_sql or score.output_table) and not score.url:
                raise ValueError("schedule.jobs.score needs url for input_sql or output_table")
        for kind, job in self.jobs.items():
            if job.triggers and kind != "retrain":
                raise ValueError(
                    f"schedule.jobs.{kind}.triggers: only retrain runs on drift, performance "
                    "or new_data; other jobs run on their cron"
                )
        return self


class CanarySpec(_Strict):
    """How a winning challenger earns all the traffic, or loses it."""

    weight: float = Field(default=10, gt=0, lt=100, description="Percent of traffic it gets.")
    min_labels: int = Field(
        default=100, ge=10, description="Labelled predictions per version before a look."
    )
    margin: float = Field(
        default=0.005, ge=0, description="Brier score it may be worse by and still win."
    )
    alpha: float = Field(default=0.05, gt=0, lt=0.5, description="Error rate of the decision.")
    max_duration: str = Field(default="7d", description="Undecided by then: rolled back.")
    max_error_rate: float = Field(default=0.02, gt=0, le=1)
    latency_factor: float = Field(
        default=2.0, ge=1, description="Rolled back when its p99 exceeds the champion's by this."
    )
    min_latency_ms: float = Field(
        default=20.0, ge=0, description="A p99 below this never rolls back."
    )

    _duration = field_validator("max_duration")(_check_duration)


class RetrainSpec(_Strict):
    """Fit on the newest data, then let the challenger meet the champion on the same rows."""

    window: str | None = Field(
        default=None, description="Newest span of the time column to fit on, e.g. 180d."
    )
    metric: Literal["roc_auc", "average_precision", "log_loss", "macro_f1"] | None = Field(
        default=None,
        description="Compared metric (default: the spec's selection_metric); a multiclass "
        "model: roc_auc, log_loss or macro_f1; a binary one: roc_auc, average_precision or "
        "log_loss.",
    )
    margin: float = Field(
        default=0.0, ge=0, description="How much worse the challenger may be and still win."
    )
    compare: Literal["auto", "live", "holdout"] = Field(
        default="auto", description="Labelled live predictions, a fresh holdout, or auto."
    )
    min_live_labels: int = Field(
        default=200, ge=20, description="auto uses live predictions from this many labels."
    )
    canary: CanarySpec = Field(default_factory=CanarySpec)

    _window = field_validator("window")(_check_duration)
