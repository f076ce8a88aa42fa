"""Initial schema: calls, call events, call nodes, call tags, recordings, queue events.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("uniqueid", sa.String(), nullable=True),
        sa.Column("channel", sa.String(), nullable=True),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("flow", sa.String(), nullable=False),
        sa.Column("flow_version", sa.String(), nullable=True),
        sa.Column("caller", sa.String(), nullable=False),
        sa.Column("caller_name", sa.String(), nullable=True),
        sa.Column("caller_digits", sa.String(), nullable=False),
        sa.Column("language", sa.String(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("outcome", sa.String(), nullable=True),
        sa.Column("department", sa.String(), nullable=True),
        sa.Column("queue_wait", sa.Float(), nullable=True),
        sa.Column("agent", sa.String(), nullable=True),
        sa.Column("talk", sa.Float(), nullable=True),
        sa.Column("abandoned", sa.Boolean(), nullable=False),
        sa.Column("survey_score", sa.Integer(), nullable=True),
        sa.Column("last_flow", sa.String(), nullable=True),
        sa.Column("last_node", sa.String(), nullable=True),
        sa.Column("keys", sa.String(), nullable=False),
        sa.Column("reviewed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
    )
    op.create_index("ix_calls_started_at_caller_digits", "calls", ["started_at", "caller_digits"])
    op.create_index("ix_calls_department_started_at", "calls", ["department", "started_at"])
    op.create_index("ix_calls_agent_started_at", "calls", ["agent", "started_at"])
    op.create_index("ix_calls_outcome_started_at", "calls", ["outcome", "started_at"])
    op.create_index("ix_calls_survey_score_started_at", "calls", ["survey_score", "started_at"])
    op.create_index("ix_calls_reviewed_started_at", "calls", ["reviewed", "started_at"])
    op.create_index("ix_calls_duration", "calls", ["duration"])
    op.create_index("ix_calls_caller_digits", "calls", ["caller_digits"])
    op.create_index("ix_calls_uniqueid", "calls", ["uniqueid"])

    op.create_table(
        "call_events",
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("t", sa.Float(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("flow", sa.String(), nullable=False),
        sa.Column("node", sa.String(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], name=op.f("fk_call_events_call_id_calls"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("call_id", "seq", name=op.f("pk_call_events")),
        sqlite_with_rowid=False,
    )

    op.create_table(
        "call_nodes",
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("flow", sa.String(), nullable=False),
        sa.Column("node", sa.String(), nullable=False),
        sa.Column("t", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], name=op.f("fk_call_nodes_call_id_calls"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("call_id", "flow", "node", name=op.f("pk_call_nodes")),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_call_nodes_node_flow_call_id", "call_nodes", ["node", "flow", "call_id"])

    op.create_table(
        "call_tags",
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("tag", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], name=op.f("fk_call_tags_call_id_calls"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("call_id", "tag", name=op.f("pk_call_tags")),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_call_tags_tag_call_id", "call_tags", ["tag", "call_id"])

    op.create_table(
        "recordings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(), nullable=True),
        sa.Column("uniqueid", sa.String(), nullable=True),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("checksum", sa.String(), nullable=True),
        sa.Column("peaks", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("indexed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], name=op.f("fk_recordings_call_id_calls"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
        sa.UniqueConstraint("path", name=op.f("uq_recordings_path")),
    )
    op.create_index("ix_recordings_call_id", "recordings", ["call_id"])
    op.create_index("ix_recordings_uniqueid", "recordings", ["uniqueid"])

    op.create_table(
        "queue_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("uniqueid", sa.String(), nullable=True),
        sa.Column("queue", sa.String(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_events")),
    )
    op.create_index("ix_queue_events_uniqueid", "queue_events", ["uniqueid"])
    op.create_index("ix_queue_events_queue_at", "queue_events", ["queue", "at"])


def downgrade() -> None:
    for table in ("queue_events", "recordings", "call_tags", "call_nodes", "call_events", "calls"):
        op.drop_table(table)  # their indexes go with them
