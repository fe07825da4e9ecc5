"""The metadata store's schema (SQLAlchemy Core): what every table holds.

The tables here describe the schema the code expects; the Alembic scripts in
``migrations/versions`` create it. A test compares the two on SQLite and PostgreSQL, so
they cannot drift apart silently. Other packages read and write these tables inside
`Store.read` / `Store.write` transactions: ``from mlprod.store import schema as t``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from mlprod._time import as_utc

NAME = sa.String(63)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite returns naive values)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"refusing a naive datetime {value!r}: the store keeps UTC times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


metadata = sa.MetaData()

models = sa.Table(
    "models",
    metadata,
    sa.Column("name", NAME, primary_key=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("model", NAME, sa.ForeignKey("models.name"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("user_name", sa.Text(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("ended_at", UTCDateTime(), nullable=True),
    sa.Column("spec", sa.JSON(), nullable=False),
    sa.Column("params", sa.JSON(), nullable=False),
    sa.Column("metrics", sa.JSON(), nullable=False),
    sa.Column("fingerprint", sa.JSON(), nullable=False),
    sa.Column("candidates", sa.JSON(), nullable=False),
    sa.Column("git_commit", sa.Text(), nullable=True),
    sa.Column("library_versions", sa.JSON(), nullable=False),
    sa.Column("parent_run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=True),
    sa.Column("version", sa.Integer(), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Index("ix_runs_model_started_at", "model", "started_at"),
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("model", NAME, sa.ForeignKey("models.name"), primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("bundle_id", sa.Text(), nullable=False),
    sa.Column("flavor", sa.Text(), nullable=False),
    sa.Column("metrics", sa.JSON(), nullable=False),
    sa.Column("gates", sa.JSON(), nullable=False),
    sa.Column("gates_passed", sa.Boolean(), nullable=False),
    sa.Column("signature", sa.JSON(), nullable=False),
    sa.Column("threshold", sa.Float(), nullable=False),
    # revision 0008: every bundle file's sha256 at registration; NULL before it
    sa.Column("files", sa.JSON(), nullable=True),
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("model", NAME, primary_key=True),
    sa.Column("alias", NAME, primary_key=True),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(["model", "version"], ["versions.model", "versions.version"]),
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.Text(), nullable=False),
    sa.Column("action", sa.Text(), nullable=False),
    sa.Column("model", NAME, nullable=False),
    sa.Column("alias", NAME, nullable=True),
    sa.Column("from_version", sa.Integer(), nullable=True),
    sa.Column("to_version", sa.Integer(), nullable=True),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Index("ix_audit_model_id", "model", "id"),
)

# --- serving (revision 0002): deployments, the prediction log, API tokens

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("model", NAME, primary_key=True),
    sa.Column("routes", sa.JSON(), nullable=False),  # [{"version": 3, "weight": 90}, ...]
    sa.Column("shadows", sa.JSON(), nullable=False),  # [5, ...]
    sa.Column("log_sample_rate", sa.Float(), nullable=True),  # 0003; None: the server's default
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("updated_by", sa.Text(), nullable=False),
)

predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("model", NAME, nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("record", sa.JSON(), nullable=False),
    sa.Column("score", sa.Float(), nullable=True),
    sa.Column("label", sa.JSON(), nullable=True),
    sa.Column("latency_ms", sa.Float(), nullable=False),
    sa.Column("entity", sa.Text(), nullable=True),
    sa.Column("shadow_of", sa.String(32), nullable=True),  # the answered prediction's id
    sa.Column("labelled", sa.Boolean(), nullable=True),  # 0004: its outcome was counted
    sa.Index("ix_predictions_model_at", "model", "at"),
    sa.Index("ix_predictions_entity", "model", "entity", "at"),  # 0004: outcomes by entity
    # 0004: outcomes reach shadows too; only shadow rows are indexed. Migration 0004 gives
    # the index the same condition on PostgreSQL; naming it here (postgresql_where) would
    # load SQLAlchemy's PostgreSQL dialects, every driver's, in every process that imports
    # the schema: about 25 ms of CPU for `mlprod models show` on SQLite.
    sa.Index(
        "ix_predictions_shadow_of", "shadow_of", sqlite_where=sa.text("shadow_of IS NOT NULL")
    ),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("scopes", sa.JSON(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.Text(), nullable=False),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
)

# --- experiments (revision 0005): tuning trials and training curves

trials = sa.Table(
    "trials",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("candidate", sa.String(100), primary_key=True),
    sa.Column("number", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("state", sa.String(16), nullable=False),  # complete, pruned, fail, running
    sa.Column("value", sa.Float(), nullable=True),
    sa.Column("params", sa.JSON(), nullable=False),
    sa.Column("fold_scores", sa.JSON(), nullable=False),
    sa.Column("attrs", sa.JSON(), nullable=False),  # best_iteration, error, retry_of
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("seconds", sa.Float(), nullable=True),
)

curves = sa.Table(
    "curves",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("candidate", sa.String(100), primary_key=True),
    sa.Column("curve", sa.JSON(), nullable=False),  # x, loss, metric and their names
)


# --- monitoring (revision 0004): additive live statistics per window, outcomes, alerts

COUNT = sa.BigInteger()
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER

window_stats = sa.Table(
    "window_stats",
    metadata,
    sa.Column("model", NAME, primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True),
    sa.Column("window_start", UTCDateTime(), primary_key=True),
    sa.Column("predictions", COUNT, nullable=False),
    sa.Column("predicted_positive", COUNT, nullable=False),
    sa.Column("est_tp", sa.Float(), nullable=False),  # sum of calibrated P(+) where label is +
    sa.Column("est_positive", sa.Float(), nullable=False),  # sum of calibrated P(+)
    sa.Column("score_hist", sa.JSON(), nullable=False),  # scores in the live score bins
    sa.Column("labelled", COUNT, nullable=False),  # predictions joined to an outcome
    sa.Column("tp", COUNT, nullable=False),
    sa.Column("fp", COUNT, nullable=False),
    sa.Column("fn", COUNT, nullable=False),
    sa.Column("tn", COUNT, nullable=False),
    sa.Column("pos_hist", sa.JSON(), nullable=False),  # scores of observed positives
    sa.Column("neg_hist", sa.JSON(), nullable=False),  # scores of observed negatives
    sa.Index("ix_window_stats_model_window", "model", "window_start"),
)

feature_counts = sa.Table(
    "feature_counts",
    metadata,
    sa.Column("model", NAME, primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True),
    sa.Column("feature", sa.String(255), primary_key=True),
    sa.Column("window_start", UTCDateTime(), primary_key=True),
    sa.Column("counts", sa.JSON(), nullable=False),  # in the version's reference bins
    sa.Column("total", COUNT, nullable=False),
    sa.Index("ix_feature_counts_model_window", "model", "window_start"),
)

request_errors = sa.Table(
    "request_errors",
    metadata,
    sa.Column("model", NAME, primary_key=True),
    sa.Column("window_start", UTCDateTime(), primary_key=True),
    sa.Column("code", sa.String(32), primary_key=True),
    sa.Column("count", COUNT, nullable=False),
)

outcomes = sa.Table(
    "outcomes",
    metadata,
    sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
    sa.Column("model", NAME, nullable=True),
    sa.Column("prediction_id", sa.String(32), nullable=True),
    sa.Column("entity", sa.Text(), nullable=True),
    sa.Column("event_time", UTCDateTime(), nullable=True),
    sa.Column("label", sa.JSON(), nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending, matched, invalid, duplicate
    sa.Column("matched_id", sa.String(32), nullable=True),
    sa.Column("version", sa.Integer(), nullable=True),
    sa.Column("note", sa.Text(), nullable=True),
    sa.UniqueConstraint("prediction_id", name="uq_outcomes_prediction"),
    sa.UniqueConstraint("model", "entity", "event_time", name="uq_outcomes_entity_time"),
    sa.Index("ix_outcomes_status_id", "status", "id"),
    sa.Index("ix_outcomes_received_at", "received_at"),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
    sa.Column("model", NAME, nullable=False),
    sa.Column("version", sa.Integer(), nullable=True),
    sa.Column("kind", sa.String(16), nullable=False),  # drift, performance, errors
    sa.Column("subject", sa.Text(), nullable=False),  # the feature or metric
    sa.Column("open_key", sa.Text(), nullable=True),  # unique while open: one incident, one row
    sa.Column("opened_at", UTCDateTime(), nullable=False),
    sa.Column("last_seen_at", UTCDateTime(), nullable=False),
    sa.Column("closed_at", UTCDateTime(), nullable=True),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("details", sa.JSON(), nullable=False),
    sa.UniqueConstraint("open_key", name="uq_alerts_open_key"),
    sa.Index("ix_alerts_model_opened", "model", "opened_at"),
)


# --- the closed loop (revision 0006): job runs, retraining decisions, canaries

job_runs = sa.Table(
    "job_runs",
    metadata,
    sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
    sa.Column("model", NAME, nullable=False),
    sa.Column("job", sa.String(16), nullable=False),  # retrain, score, monitor, materialize
    sa.Column("trigger", sa.String(16), nullable=False),  # cron, drift, performance, ...
    sa.Column("trigger_key", sa.Text(), nullable=False),  # what fired: a cron slot, an alert
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # pending, running, succeeded, failed
    sa.Column("scheduled_for", UTCDateTime(), nullable=False),
    sa.Column("not_before", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("ended_at", UTCDateTime(), nullable=True),
    sa.Column("owner", sa.Text(), nullable=True),  # the scheduler holding the lease
    sa.Column("lease_until", UTCDateTime(), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("output", sa.JSON(), nullable=False),
    sa.UniqueConstraint("model", "job", "trigger_key", "attempt", name="uq_job_runs_key"),
    sa.Index("ix_job_runs_model_job", "model", "job", "scheduled_for"),
    sa.Index("ix_job_runs_state", "state", "not_before"),
)

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
    sa.Column("model", NAME, nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # retrain, canary
    sa.Column("outcome", sa.String(24), nullable=False),  # canary, refused, promoted, ...
    sa.Column("champion", sa.Integer(), nullable=True),
    sa.Column("challenger", sa.Integer(), nullable=True),
    sa.Column("metric", sa.String(32), nullable=True),
    sa.Column("champion_value", sa.Float(), nullable=True),
    sa.Column("challenger_value", sa.Float(), nullable=True),
    sa.Column("difference", sa.Float(), nullable=True),
    sa.Column("low", sa.Float(), nullable=True),
    sa.Column("high", sa.Float(), nullable=True),
    sa.Column("margin", sa.Float(), nullable=True),
    sa.Column("rows", sa.Integer(), nullable=True),
    sa.Column("basis", sa.String(16), nullable=True),  # live, holdout
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("details", sa.JSON(), nullable=False),
    sa.Index("ix_decisions_model_at", "model", "at"),
)

canaries = sa.Table(
    "canaries",
    metadata,
    sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
    sa.Column("model", NAME, nullable=False),
    sa.Column("champion", sa.Integer(), nullable=False),
    sa.Column("challenger", sa.Integer(), nullable=False),
    sa.Column("weight", sa.Float(), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # running, promoted, rolled_back
    sa.Column("active_model", NAME, nullable=True),  # set while running: one canary per model
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("ended_at", UTCDateTime(), nullable=True),
    sa.Column("looks", sa.Integer(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.UniqueConstraint("active_model", name="uq_canaries_active_model"),
    sa.Index("ix_canaries_model", "model", "started_at"),
)


# --- batch scoring (revision 0007): one row per job, so a job run again resumes or no-ops

batch_jobs = sa.Table(
    "batch_jobs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("model", NAME, nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("engine", sa.String(16), nullable=False),  # local, spark
    sa.Column("source", sa.JSON(), nullable=False),  # what was read, and its fingerprint
    sa.Column("destination", sa.JSON(), nullable=False),
    sa.Column("chunk_rows", sa.Integer(), nullable=False),  # fixed at start: resume lines up
    sa.Column("status", sa.String(16), nullable=False),  # running, publishing, done, failed
    sa.Column("rows", COUNT, nullable=False),
    sa.Column("counted_chunks", sa.Integer(), nullable=False),  # logged and counted in monitoring
    sa.Column("scored_at", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("user_name", sa.Text(), nullable=False),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("timings", sa.JSON(), nullable=False),
    sa.Column("key", sa.String(16), nullable=True),  # 0009: its prediction ids' first half
    sa.Index("ix_batch_jobs_model_started", "model", "started_at"),
    sa.Index("ix_batch_jobs_key", "key", unique=True),  # 0009
)

# 0009: the prediction log of batch jobs, one narrow row per scored row. The job's model,
# version and time are in its `batch_jobs` row (joined by key), so a row holds only what
# differs: it costs a quarter of a `predictions` row to write. A prediction id is the
# job's key then the row's `seq` in 16 hex digits.
batch_predictions = sa.Table(
    "batch_predictions",
    metadata,
    sa.Column("job", sa.String(16), primary_key=True),  # batch_jobs.key
    sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("entity", sa.Text(), nullable=True),
    sa.Column("score", sa.Float(), nullable=True),  # multiclass: the top class's probability
    sa.Column("labelled", sa.Boolean(), nullable=True),  # its outcome was counted
    sa.Column("label", sa.JSON(), nullable=True),  # 0010: a multiclass version's predicted class
    sa.Index("ix_batch_predictions_entity", "entity"),
    sqlite_with_rowid=False,
)
