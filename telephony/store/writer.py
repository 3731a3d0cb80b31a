"""Writes to the call store, off the audio path: `put_*` never waits, one task writes.

A call's record is queued when it starts and again when it ends; status callbacks as they
come. The one writer task retries a failing database with backoff (an outage never touches
a call), so records written during an outage land once it is back. The queue is bounded:
past `max_queued`, the oldest entries are dropped, counted in
`telephony_store_dropped_total` and logged.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import time
from typing import Any

from telephony.call.record import CallRecord
from telephony.gemini.pricing import estimated_cost_usd
from telephony.metrics import Metrics
from telephony.store.database import CallStore

log = logging.getLogger(__name__)

INSTANCE = socket.gethostname()[:64]


def call_row(record: CallRecord, outcome: str | None, prices: dict[str, float] | None = None) -> tuple[dict[str, Any], list, list]:
    """The calls row, turns and tool calls of a record (a snapshot: the record lives on)."""
    summary = record.summary()
    for heavy in ("transcript", "tool_calls", "parameters"):
        summary.pop(heavy, None)
    parameters = record.parameters
    row = {
        "call_sid": record.call_sid,
        "stream_sid": record.stream_sid,
        "direction": parameters.get("direction"),
        "from_number": parameters.get("caller"),
        "to_number": parameters.get("called"),
        "agent": parameters.get("agent"),
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "outcome": outcome,
        "end_reason": record.end_reason or None,
        "duration_s": summary["duration_s"] if record.ended_at else None,
        "interruptions": record.interruptions,
        "reconnects": record.reconnects,
        "prompt_tokens": record.usage.get("prompt_tokens"),
        "response_tokens": record.usage.get("response_tokens"),
        "cost_usd": estimated_cost_usd(record.usage, prices),
        "recording": record.recording,
        "summary": summary | {"cost_usd": estimated_cost_usd(record.usage, prices), "outcome": outcome},
        "instance": INSTANCE,
    }
    lines = [
        {"seq": n, "speaker": line.speaker, "text": line.text, "at_ms": line.at_ms, "end_ms": line.end_ms, "interrupted": line.interrupted}
        for n, line in enumerate(record.transcript)
    ]
    tools = [
        {
            "seq": n,
            "name": tool.name,
            "arguments": tool.arguments,
            "result": tool.response,
            "at_ms": tool.at_ms,
            "duration_ms": tool.duration_ms,
            "error": tool.error,
        }
        for n, tool in enumerate(record.tool_calls)
    ]
    return row, lines, tools


class StoreWriter:
    """One task that owns every write to the store."""

    def __init__(self, store: CallStore, metrics: Metrics, max_queued: int = 10_000, statuses_per_call: int = 50) -> None:
        self.store = store
        self.metrics = metrics
        self.max_queued = max_queued
        self.statuses_per_call = statuses_per_call
        self.prices: dict[str, float] | None = None
        self._queue: collections.deque[tuple[str, Any]] = collections.deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing_since: float | None = None

    # --- producers (never wait) ---------------------------------------------------------------

    def put_call(self, record: CallRecord, outcome: str | None) -> None:
        if record.call_sid:
            self._put("call", call_row(record, outcome, self.prices))

    def put_annotation(self, call_sid: str, key: str, value: Any) -> None:
        """Something learnt after the call (its analysis): merged into its stored summary, so
        that nothing else kept there (an eval run's verdict) is written over."""
        self._put("annotation", (call_sid, key, value))

    def put_status(self, call_sid: str, entry: dict[str, str]) -> None:
        self._put("status", (call_sid, dict(entry), time.time()))

    def _put(self, kind: str, item: Any) -> None:
        self._queue.append((kind, item))
        while len(self._queue) > self.max_queued:
            self._queue.popleft()
            self.metrics.store_dropped.inc()
            log.error("call store backlog full (%d): oldest record dropped", self.max_queued)
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="call-store-writer")

    # --- the writer ---------------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        return len(self._queue)

    async def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return not self._queue

    async def close(self, timeout: float = 5.0) -> int:
        """Write what is queued (for up to `timeout`), then stop; returns how many records
        could not be written in that time (they are logged, not kept)."""
        if not await self.flush(timeout):
            log.error("call store: %d record(s) not written at shutdown (not taken within %.0f s)", len(self._queue), timeout)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.store.close()
        return len(self._queue)

    async def _run(self) -> None:
        delay = 0.2
        while True:
            while not self._queue:
                self._wake.clear()
                await self._wake.wait()
            kind, item = self._queue[0]
            try:
                if kind == "call":
                    row, lines, tools = item
                    await self.store.save_call(row, lines, tools)
                elif kind == "annotation":
                    await self.store.annotate(*item)
                else:
                    call_sid, entry, received_at = item
                    await self.store.add_status(call_sid, entry, received_at, self.statuses_per_call)
            except Exception as exc:  # the database is down or refuses: keep the record, retry
                self.metrics.store_errors.inc()
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                    log.error("call store unavailable, records are held and retried: %s", _short(exc))
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)
                continue
            if self._failing_since is not None:
                log.warning("call store back after %.1f s; %d record(s) waiting", time.monotonic() - self._failing_since, len(self._queue))
                self._failing_since = None
            delay = 0.2
            self._queue.popleft()


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}: {text[:200]}"
