"""The survey's sampling counter: calls that reached each survey node, shared by every engine.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "survey_counts",
        sa.Column("flow", sa.String(), nullable=False),
        sa.Column("node", sa.String(), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("flow", "node", name=op.f("pk_survey_counts")),
    )


def downgrade() -> None:
    op.drop_table("survey_counts")
