"""Call lists (`telephony dial --list`): every row's state and outcome, for resuming.

Revision ID: 0003
Revises: 0002
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
        "list_calls",
        sa.Column("list_id", sa.String(64), primary_key=True),
        sa.Column("row_key", sa.String(32), primary_key=True),
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("call_sid", sa.String(64)),
        sa.Column("outcome", sa.String(32)),
        sa.Column("answered_by", sa.String(40)),
        sa.Column("duration_s", sa.Float),
        sa.Column("voicemail_left", sa.Boolean),
        sa.Column("summary", sa.Text),
        sa.Column("next_at", sa.Float),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_list_calls_number", "list_calls", ["number"])


def downgrade() -> None:
    op.drop_index("ix_list_calls_number", "list_calls")
    op.drop_table("list_calls")
