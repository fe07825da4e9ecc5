"""Batch predictions in a narrow table of their own, joined to their job by its key.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("batch_jobs") as batch:
        batch.add_column(sa.Column("key", sa.String(16), nullable=True))
    # jobs before 0009 logged into `predictions`; a job resumed now records its key then
    op.create_index("ix_batch_jobs_key", "batch_jobs", ["key"], unique=True)
    op.create_table(
        "batch_predictions",
        sa.Column("job", sa.String(16), primary_key=True),
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("entity", sa.Text(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("labelled", sa.Boolean(), nullable=True),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_batch_predictions_entity", "batch_predictions", ["entity"])


def downgrade() -> None:
    op.drop_index("ix_batch_predictions_entity", table_name="batch_predictions")
    op.drop_table("batch_predictions")
    op.drop_index("ix_batch_jobs_key", table_name="batch_jobs")
    with op.batch_alter_table("batch_jobs") as batch:
        batch.drop_column("key")
