"""Serving: deployments (routes and shadows), the prediction log, API tokens.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _when(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("model", sa.String(63), primary_key=True),
        sa.Column("routes", sa.JSON(), nullable=False),
        sa.Column("shadows", sa.JSON(), nullable=False),
        _when("updated_at"),
        sa.Column("updated_by", sa.Text(), nullable=False),
    )
    op.create_table(
        "predictions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("model", sa.String(63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _when("at"),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("label", sa.JSON(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("entity", sa.Text(), nullable=True),
        sa.Column("shadow_of", sa.String(32), nullable=True),
    )
    op.create_index("ix_predictions_model_at", "predictions", ["model", "at"])
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        _when("created_at"),
        sa.Column("created_by", sa.Text(), nullable=False),
        _when("revoked_at", nullable=True),
    )


def downgrade() -> None:
    op.drop_table("tokens")
    op.drop_index("ix_predictions_model_at", table_name="predictions")
    op.drop_table("predictions")
    op.drop_table("deployments")
