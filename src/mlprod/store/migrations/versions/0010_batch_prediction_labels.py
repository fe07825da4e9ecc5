"""Batch predictions keep the predicted class of a multiclass version.

A binary prediction's class follows from its score and the version's threshold; a
multiclass one's does not (the score is only the top class's probability), so outcomes
need the label itself to tell a right answer from a wrong one. Null for binary jobs.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("batch_predictions") as batch:
        batch.add_column(sa.Column("label", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batch_predictions") as batch:
        batch.drop_column("label")
