"""Stream claims shared by every worker and instance: single-use stream tokens, one live stream per CallSid.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stream_claims",
        sa.Column("key", sa.String(160), primary_key=True),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_stream_claims_expires_at", "stream_claims", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_stream_claims_expires_at", "stream_claims")
    op.drop_table("stream_claims")
