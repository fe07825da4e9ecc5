"""The closed loop: job runs (with leases), retraining decisions, canaries.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = sa.String(63)
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _when(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("model", NAME, nullable=False),
        sa.Column("job", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("trigger_key", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        _when("scheduled_for"),
        _when("not_before"),
        _when("started_at", nullable=True),
        _when("ended_at", nullable=True),
        sa.Column("owner", sa.Text(), nullable=True),
        _when("lease_until", nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("output", sa.JSON(), nullable=False),
        sa.UniqueConstraint("model", "job", "trigger_key", "attempt", name="uq_job_runs_key"),
    )
    op.create_index("ix_job_runs_model_job", "job_runs", ["model", "job", "scheduled_for"])
    op.create_index("ix_job_runs_state", "job_runs", ["state", "not_before"])
    op.create_table(
        "decisions",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("model", NAME, nullable=False),
        _when("at"),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(24), nullable=False),
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
        sa.Column("basis", sa.String(16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
    )
    op.create_index("ix_decisions_model_at", "decisions", ["model", "at"])
    op.create_table(
        "canaries",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("model", NAME, nullable=False),
        sa.Column("champion", sa.Integer(), nullable=False),
        sa.Column("challenger", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("active_model", NAME, nullable=True),
        _when("started_at"),
        _when("ended_at", nullable=True),
        sa.Column("looks", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.UniqueConstraint("active_model", name="uq_canaries_active_model"),
    )
    op.create_index("ix_canaries_model", "canaries", ["model", "started_at"])


def downgrade() -> None:
    op.drop_table("canaries")
    op.drop_table("decisions")
    op.drop_table("job_runs")
