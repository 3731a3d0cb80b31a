"""The call history tables (SQLAlchemy Core). Changes go through an alembic revision in
`telephony/store/migrations/versions/`, never straight into these definitions alone."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Float, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Table, Text

SCHEMA_REVISION = "0006"
"""The alembic revision these tables match (the newest in migrations/versions): a store already
there is ready after one query, without importing alembic (12 MB a server would carry all its
life for a one-off migration). tests/test_call_history.py checks it is alembic's head."""

metadata = MetaData()

calls = Table(
    "calls",
    metadata,
    Column("call_sid", String(64), primary_key=True),
    Column("stream_sid", String(64)),
    Column("direction", String(32)),
    Column("from_number", String(32)),
    Column("to_number", String(32)),
    Column("agent", String(128)),
    Column("started_at", Float, nullable=False, index=True),
    Column("ended_at", Float),
    Column("outcome", String(32)),
    Column("end_reason", Text),
    Column("duration_s", Float),
    Column("interruptions", Integer, nullable=False, default=0),
    Column("reconnects", Integer, nullable=False, default=0),
    Column("prompt_tokens", Integer),
    Column("response_tokens", Integer),
    Column("cost_usd", Float),
    Column("recording", Text),
    # The whole record as the API shows it (timings, errors, usage by modality, ...).
    Column("summary", JSON, nullable=False),
    Column("instance", String(64)),
)

turns = Table(
    "turns",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_sid", String(64), ForeignKey("calls.call_sid", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("speaker", String(16), nullable=False),
    Column("text", Text, nullable=False),
    Column("at_ms", Integer, nullable=False),
    Column("end_ms", Integer),
    Column("interrupted", Boolean, nullable=False, default=False),
    Index("ix_turns_call", "call_sid", "seq"),
)

tool_calls = Table(
    "tool_calls",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_sid", String(64), ForeignKey("calls.call_sid", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("name", String(128), nullable=False),
    Column("arguments", JSON, nullable=False),
    Column("result", JSON, nullable=False),
    Column("at_ms", Integer, nullable=False),
    Column("duration_ms", Float),
    Column("error", Text),
    Index("ix_tool_calls_call", "call_sid", "seq"),
)

call_statuses = Table(
    "call_statuses",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_sid", String(64), nullable=False, index=True),
    Column("status", String(32), nullable=False),
    Column("sequence", String(16)),
    Column("timestamp", String(64)),
    Column("call_duration", String(16)),
    Column("received_at", Float, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", String(64), primary_key=True),  # the receiver's idempotency key
    Column("type", String(64), nullable=False),
    Column("url", Text, nullable=False),
    Column("body", Text, nullable=False),  # the JSON exactly as signed and sent
    Column("created_at", Float, nullable=False),
    Column("next_attempt_at", Float, nullable=False, index=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("delivered_at", Float),
    Column("last_error", Text),
)

list_calls = Table(
    "list_calls",
    metadata,
    Column("list_id", String(64), primary_key=True),  # the list file, by its resolved path
    Column("row_key", String(32), primary_key=True),  # its number and values (`telephony.call_lists.list_file`)
    Column("line", Integer, nullable=False),
    Column("number", String(32), nullable=False, index=True),
    Column("state", String(16), nullable=False),  # dialing, retry, done, unknown
    Column("attempts", Integer, nullable=False, default=0),
    Column("call_sid", String(64)),
    Column("outcome", String(32)),
    Column("answered_by", String(40)),
    Column("duration_s", Float),
    Column("voicemail_left", Boolean),
    Column("summary", Text),
    Column("next_at", Float),
    Column("updated_at", Float, nullable=False),
)
"""Every number a call list dialled, and how it went: a resumed run calls nobody twice."""

stream_claims = Table(
    "stream_claims",
    metadata,
    Column("key", String(160), primary_key=True),  # token:<stream token> or call:<CallSid>
    Column("expires_at", Float, nullable=False, index=True),
)
"""What must hold across every worker and instance: a stream token is used once, a live
CallSid has one stream (`telephony.store.claims`)."""

call_signals = Table(
    "call_signals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_sid", String(64), nullable=False, index=True),
    Column("kind", String(32), nullable=False),  # answered_by, status
    Column("value", String(64), nullable=False),
    Column("created_at", Float, nullable=False, index=True),
)
"""What Twilio told one instance about a call another carries, waiting to be taken by it
(`telephony.store.signals`)."""

transfer_legs = Table(
    "transfer_legs",
    metadata,
    Column("id", String(64), primary_key=True),  # the transfer's unguessable id (the person's stream names it)
    Column("caller_call_sid", String(64), nullable=False),
    Column("briefing", LargeBinary),  # mu-law 8 kHz, once it is made
    Column("failure", String(200)),  # why it could not be made
    Column("created_at", Float, nullable=False, index=True),
)
"""A warm transfer in progress, for the instance the person's leg reaches when it is not the
one carrying the caller (`telephony.store.transfer_legs`)."""
