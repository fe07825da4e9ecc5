"""Monitoring: live window statistics, feature bin counts, request errors, outcomes, alerts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = sa.String(63)
COUNT = sa.BigInteger()
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER


def _when(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _count(name: str) -> sa.Column[object]:
    return sa.Column(name, COUNT, nullable=False)


def upgrade() -> None:
    op.create_table(
        "window_stats",
        sa.Column("model", NAME, primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("window_start", sa.DateTime(timezone=True), primary_key=True),
        _count("predictions"),
        _count("predicted_positive"),
        sa.Column("est_tp", sa.Float(), nullable=False),
        sa.Column("est_positive", sa.Float(), nullable=False),
        sa.Column("score_hist", sa.JSON(), nullable=False),
        _count("labelled"),
        _count("tp"),
        _count("fp"),
        _count("fn"),
        _count("tn"),
        sa.Column("pos_hist", sa.JSON(), nullable=False),
        sa.Column("neg_hist", sa.JSON(), nullable=False),
    )
    op.create_index("ix_window_stats_model_window", "window_stats", ["model", "window_start"])
    op.create_table(
        "feature_counts",
        sa.Column("model", NAME, primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("feature", sa.String(255), primary_key=True),
        sa.Column("window_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("counts", sa.JSON(), nullable=False),
        _count("total"),
    )
    op.create_index("ix_feature_counts_model_window", "feature_counts", ["model", "window_start"])
    op.create_table(
        "request_errors",
        sa.Column("model", NAME, primary_key=True),
        sa.Column("window_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("code", sa.String(32), primary_key=True),
        _count("count"),
    )
    op.create_table(
        "outcomes",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("model", NAME, nullable=True),
        sa.Column("prediction_id", sa.String(32), nullable=True),
        sa.Column("entity", sa.Text(), nullable=True),
        _when("event_time", nullable=True),
        sa.Column("label", sa.JSON(), nullable=False),
        _when("received_at"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("matched_id", sa.String(32), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.UniqueConstraint("prediction_id", name="uq_outcomes_prediction"),
        sa.UniqueConstraint("model", "entity", "event_time", name="uq_outcomes_entity_time"),
    )
    op.create_index("ix_outcomes_status_id", "outcomes", ["status", "id"])
    op.create_index("ix_outcomes_received_at", "outcomes", ["received_at"])
    op.create_table(
        "alerts",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("model", NAME, nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("open_key", sa.Text(), nullable=True),
        _when("opened_at"),
        _when("last_seen_at"),
        _when("closed_at", nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.UniqueConstraint("open_key", name="uq_alerts_open_key"),
    )
    op.create_index("ix_alerts_model_opened", "alerts", ["model", "opened_at"])
    op.create_index("ix_predictions_entity", "predictions", ["model", "entity", "at"])
    shadows_only = sa.text("shadow_of IS NOT NULL")  # answered rows, nearly all, stay out of it
    op.create_index(
        "ix_predictions_shadow_of",
        "predictions",
        ["shadow_of"],
        sqlite_where=shadows_only,
        postgresql_where=shadows_only,
    )
    with op.batch_alter_table("predictions") as batch:  # set once its outcome is counted
        batch.add_column(sa.Column("labelled", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("labelled")
    op.drop_index("ix_predictions_shadow_of", table_name="predictions")
    op.drop_index("ix_predictions_entity", table_name="predictions")
    op.drop_index("ix_alerts_model_opened", table_name="alerts")
    op.drop_table("alerts")
    op.drop_index("ix_outcomes_received_at", table_name="outcomes")
    op.drop_index("ix_outcomes_status_id", table_name="outcomes")
    op.drop_table("outcomes")
    op.drop_table("request_errors")
    op.drop_index("ix_feature_counts_model_window", table_name="feature_counts")
    op.drop_table("feature_counts")
    op.drop_index("ix_window_stats_model_window", table_name="window_stats")
    op.drop_table("window_stats")
