"""Call history that lasts: calls, turns, tool calls, usage and status callbacks in SQLite
(default) or PostgreSQL (`TELEPHONY_DATABASE_URL`), written off the audio path."""

from telephony.store.database import CallQuery, CallStore, async_url
from telephony.store.writer import StoreWriter

__all__ = ["CallQuery", "CallStore", "StoreWriter", "async_url"]
