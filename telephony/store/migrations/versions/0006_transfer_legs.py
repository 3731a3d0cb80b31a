"""Transfer legs: a warm transfer's person and their briefing, for the instance their stream reaches.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "transfer_legs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("caller_call_sid", sa.String(64), nullable=False),
        sa.Column("briefing", sa.LargeBinary),
        sa.Column("failure", sa.String(200)),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_transfer_legs_created_at", "transfer_legs", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_transfer_legs_created_at", "transfer_legs")
    op.drop_table("transfer_legs")
