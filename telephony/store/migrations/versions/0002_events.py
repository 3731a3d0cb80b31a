"""Events to the user's systems (`TELEPHONY_EVENTS_URL`), kept until delivered.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("delivered_at", sa.Float),
        sa.Column("last_error", sa.Text),
    )
    op.create_index("ix_events_next_attempt_at", "events", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_events_next_attempt_at", "events")
    op.drop_table("events")
