"""Events to the user's systems: `call.started`, `call.ended` and `call.analysis_ready` as
signed JSON POSTs to `TELEPHONY_EVENTS_URL` (or an agent's own `events_url`), and the same
events to the agent's callbacks in code (`@agent.on_call_ended`).

Delivery is at least once: each event is kept in the call store (`store.outbox`) before it
is sent, and retried with backoff (1 s, 2 s, 4 s ... at most 5 minutes apart, for a day)
until the receiver answers 2xx, across restarts of ours. Each carries its id as
`Idempotency-Key` (and in the body), so that a receiver can drop a repeat.

Signature: `X-Telephony-Timestamp: <unix seconds>` and `X-Telephony-Signature:
sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with TELEPHONY_EVENTS_SECRET>`. To verify:

    expected = "sha256=" + hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    ok = hmac.compare_digest(expected, signature) and abs(time.time() - int(timestamp)) < 300

Without a call store (`TELEPHONY_DATABASE_URL=off`) events wait in memory: a restart loses
those not yet delivered (said once at start).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from telephony.http_client import http_client
from telephony.store.outbox import EventOutbox, StoredEvent

log = logging.getLogger("telephony.events")

MAX_BACKOFF_S = 300.0
GIVE_UP_AFTER_S = 86400.0
POLL_S = 5.0
"""How often the store is looked at for events due (other instances' too) when idle."""

Callback = Callable[[dict[str, Any]], Awaitable[None] | None]


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def backoff_s(attempts: int) -> float:
    return min(MAX_BACKOFF_S, 2.0 ** max(0, attempts - 1))


@dataclass
class _Memory:
    """The outbox without a store: the same interface, in this process only."""

    rows: dict[str, dict[str, Any]]

    async def add(self, event_id: str, kind: str, url: str, body: str, now: float) -> None:
        self.rows[event_id] = {"id": event_id, "type": kind, "url": url, "body": body, "attempts": 0, "next": now}

    async def due(self, now: float, limit: int = 20) -> list[StoredEvent]:
        ready = [r for r in self.rows.values() if r["next"] <= now][:limit]
        return [StoredEvent(r["id"], r["type"], r["url"], r["body"], r["attempts"]) for r in ready]

    async def next_due(self) -> float | None:
        return min((r["next"] for r in self.rows.values()), default=None)

    async def delivered(self, event_id: str, now: float) -> None:
        self.rows.pop(event_id, None)

    async def failed(self, event_id: str, attempts: int, next_attempt_at: float, error: str) -> None:
        self.rows[event_id] |= {"attempts": attempts, "next": next_attempt_at}

    async def pending(self) -> int:
        return len(self.rows)  # a delivered event leaves the outbox


class EventPublisher:
    """Publishes a call's events: to the callbacks at once, to the URL through the outbox."""

    def __init__(self, outbox: EventOutbox | None, secret: bytes | None, client: httpx.AsyncClient | None = None) -> None:
        self.outbox: EventOutbox | _Memory = outbox if outbox is not None else _Memory({})
        self.secret = secret
        self._client = client
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._callbacks: set[asyncio.Task[Any]] = set()
        self.sent = 0
        self.failures = 0

    def publish(self, kind: str, data: dict[str, Any], url: str | None, callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
        """Never waits: the event is queued for `url` (if any) and handed to `callbacks`."""
        event = {"id": f"evt_{uuid.uuid4().hex}", "type": kind, "created_at": time.time(), "data": data}
        for callback in callbacks:
            self._spawn_callback(callback, event)
        if url:
            task = asyncio.get_running_loop().create_task(self._enqueue(event, url), name=f"event:{kind}")
            self._callbacks.add(task)
            task.add_done_callback(self._callbacks.discard)
        return event

    async def _enqueue(self, event: dict[str, Any], url: str) -> None:
        body = json.dumps(event, separators=(",", ":"), default=str)
        for attempt in range(5):  # a store that is down for a moment: try again before giving up
            try:
                await self.outbox.add(event["id"], event["type"], url, body, time.time())
                break
            except Exception as exc:
                log.error("event %s could not be kept (attempt %d): %s", event["type"], attempt + 1, type(exc).__name__)
                await asyncio.sleep(0.5 * 2**attempt)
        else:
            return
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._deliver_forever(), name="event-delivery")

    def _spawn_callback(self, callback: Callback, event: dict[str, Any]) -> None:
        async def run() -> None:
            try:
                result = callback(event)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("the agent's %s callback raised", event["type"])

        task = asyncio.get_running_loop().create_task(run(), name=f"callback:{event['type']}")
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)

    def start(self) -> None:
        """Deliver what an earlier run of the server left undelivered."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._deliver_forever(), name="event-delivery")

    async def close(self) -> None:
        tasks = [t for t in [self._task, *self._callbacks] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    async def _deliver_forever(self) -> None:
        client = self._client = self._client or http_client(10.0)
        while True:
            try:
                for stored in await self.outbox.due(time.time()):
                    await self._deliver(client, stored)
                next_at = await self.outbox.next_due()
            except Exception as exc:  # the store is down: try again later
                log.error("event delivery paused: %s", type(exc).__name__)
                next_at = None
            wait = POLL_S if next_at is None else min(POLL_S, max(0.0, next_at - time.time()))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _deliver(self, client: httpx.AsyncClient, stored: StoredEvent) -> None:
        body = stored.body.encode()
        timestamp = str(int(time.time()))
        headers = {"content-type": "application/json", "Idempotency-Key": stored.id, "X-Telephony-Timestamp": timestamp}
        if self.secret:
            headers["X-Telephony-Signature"] = signature(self.secret, timestamp, body)
        try:
            response = await client.post(stored.url, content=body, headers=headers)
            error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        now = time.time()
        if error is None:
            self.sent += 1
            await self.outbox.delivered(stored.id, now)
            return
        self.failures += 1
        attempts = stored.attempts + 1
        created = json.loads(stored.body).get("created_at", now)
        if now - float(created) > GIVE_UP_AFTER_S:
            log.error("event %s %s given up after a day: %s", stored.type, stored.id, error)
            await self.outbox.failed(stored.id, attempts, float("inf"), error)
            return
        log.warning("event %s not delivered (%s); retrying in %.0f s", stored.type, error, backoff_s(attempts))
        await self.outbox.failed(stored.id, attempts, now + backoff_s(attempts), error)
