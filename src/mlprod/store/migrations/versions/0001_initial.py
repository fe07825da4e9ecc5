"""The first schema: models, runs, versions, aliases and the audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _when(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("name", sa.String(63), primary_key=True),
        _when("created_at"),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("model", sa.String(63), sa.ForeignKey("models.name"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("user_name", sa.Text(), nullable=False),
        _when("started_at"),
        _when("ended_at", nullable=True),
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
    )
    op.create_index("ix_runs_model_started_at", "runs", ["model", "started_at"])
    op.create_table(
        "versions",
        sa.Column("model", sa.String(63), sa.ForeignKey("models.name"), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=False),
        _when("created_at"),
        sa.Column("bundle_id", sa.Text(), nullable=False),
        sa.Column("flavor", sa.Text(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("gates", sa.JSON(), nullable=False),
        sa.Column("gates_passed", sa.Boolean(), nullable=False),
        sa.Column("signature", sa.JSON(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
    )
    op.create_table(
        "aliases",
        sa.Column("model", sa.String(63), primary_key=True),
        sa.Column("alias", sa.String(63), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        _when("updated_at"),
        sa.ForeignKeyConstraint(["model", "version"], ["versions.model", "versions.version"]),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        _when("at"),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("model", sa.String(63), nullable=False),
        sa.Column("alias", sa.String(63), nullable=True),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_audit_model_id", "audit", ["model", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_model_id", table_name="audit")
    op.drop_table("audit")
    op.drop_table("aliases")
    op.drop_table("versions")
    op.drop_index("ix_runs_model_started_at", table_name="runs")
    op.drop_table("runs")
    op.drop_table("models")
