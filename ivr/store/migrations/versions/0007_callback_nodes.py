"""Call-backs by node: the Asterisk each call-back is booked with and dialled through.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL: booked before nodes were named (or with one Asterisk): the first node dials it
    op.add_column("callbacks", sa.Column("node", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("callbacks") as batch:
        batch.drop_column("node")
