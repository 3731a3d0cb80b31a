"""Call history: calls, their turns, tool calls and status callbacks.

Revision ID: 0001
Revises:
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
        sa.Column("call_sid", sa.String(64), primary_key=True),
        sa.Column("stream_sid", sa.String(64)),
        sa.Column("direction", sa.String(32)),
        sa.Column("from_number", sa.String(32)),
        sa.Column("to_number", sa.String(32)),
        sa.Column("agent", sa.String(128)),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float),
        sa.Column("outcome", sa.String(32)),
        sa.Column("end_reason", sa.Text),
        sa.Column("duration_s", sa.Float),
        sa.Column("interruptions", sa.Integer, nullable=False),
        sa.Column("reconnects", sa.Integer, nullable=False),
        sa.Column("prompt_tokens", sa.Integer),
        sa.Column("response_tokens", sa.Integer),
        sa.Column("cost_usd", sa.Float),
        sa.Column("recording", sa.Text),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.Column("instance", sa.String(64)),
    )
    op.create_index("ix_calls_started_at", "calls", ["started_at"])
    op.create_table(
        "turns",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("call_sid", sa.String(64), sa.ForeignKey("calls.call_sid", ondelete="CASCADE"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("speaker", sa.String(16), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("at_ms", sa.Integer, nullable=False),
        sa.Column("end_ms", sa.Integer),
        sa.Column("interrupted", sa.Boolean, nullable=False),
    )
    op.create_index("ix_turns_call", "turns", ["call_sid", "seq"])
    op.create_table(
        "tool_calls",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("call_sid", sa.String(64), sa.ForeignKey("calls.call_sid", ondelete="CASCADE"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("arguments", sa.JSON, nullable=False),
        sa.Column("result", sa.JSON, nullable=False),
        sa.Column("at_ms", sa.Integer, nullable=False),
        sa.Column("duration_ms", sa.Float),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_tool_calls_call", "tool_calls", ["call_sid", "seq"])
    op.create_table(
        "call_statuses",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("call_sid", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("sequence", sa.String(16)),
        sa.Column("timestamp", sa.String(64)),
        sa.Column("call_duration", sa.String(16)),
        sa.Column("received_at", sa.Float, nullable=False),
    )
    op.create_index("ix_call_statuses_call_sid", "call_statuses", ["call_sid"])


def downgrade() -> None:
    op.drop_table("call_statuses")
    op.drop_table("tool_calls")
    op.drop_table("turns")
    op.drop_table("calls")
