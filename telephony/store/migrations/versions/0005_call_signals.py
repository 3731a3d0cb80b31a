"""Call signals: Twilio's callbacks for a call carried by another worker or instance, passed on.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_signals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("call_sid", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_call_signals_call_sid", "call_signals", ["call_sid"])
    op.create_index("ix_call_signals_created_at", "call_signals", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_call_signals_created_at", "call_signals")
    op.drop_index("ix_call_signals_call_sid", "call_signals")
    op.drop_table("call_signals")
