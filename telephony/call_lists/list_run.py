"""Dial a call list (`telephony dial --list FILE.csv`): at most `concurrency` calls at a time,
at most `calls_per_second` new ones, busy and unanswered numbers tried again after a delay,
nobody called in their quiet hours, and every step kept (`telephony.store.list_calls`) before
it is taken, so that a run stopped with Ctrl-C resumes without calling anyone twice: a row
whose call was placed is followed, never dialled again.

Each call is followed on our server (`GET /calls/{sid}`: Twilio's status callbacks, then the
call's record) for its outcome: answered, voicemail, machine, busy, no-answer, failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx

from telephony.call_lists.list_file import ListRow, QuietHours
from telephony.http_client import http_client
from telephony.settings import Settings
from telephony.store.list_calls import ListEntry, ListProgress
from telephony.twilio.dial import FINAL_STATUSES, DialRequest, place_call
from telephony.twilio.rest import TwilioRestError

RETRYABLE = frozenset({"busy", "no-answer"})


@dataclass(frozen=True)
class ListOptions:
    concurrency: int = 5
    calls_per_second: float = 1.0
    retries: int = 2
    """Further tries of a busy or unanswered number."""
    retry_delay_s: float = 300.0
    quiet_hours: QuietHours | None = None
    call_timeout_s: float = 3600.0
    record_wait_s: float = 20.0
    """After the final status: how long the call's record may take to reach the server's history."""
    poll_s: float = 1.0


def outcome_of(status: str, body: dict[str, Any]) -> str:
    if status != "completed":
        return status
    answered_by = str(body.get("answered_by") or "")
    if body.get("voicemail_left"):
        return "voicemail"
    if answered_by.startswith("machine") or answered_by == "fax":
        return "machine"
    return "answered"


class ListRun:
    def __init__(
        self,
        settings: Settings,
        template: DialRequest,
        progress: ListProgress,
        options: ListOptions,
        on_change: Callable[[ListEntry, str], None] = lambda entry, what: None,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.settings = settings
        self.template = template
        self.progress = progress
        self.options = options
        self.on_change = on_change
        self.now = now
        self._next_dial_at = 0.0
        self.entries: dict[str, ListEntry] = {}
        """Every row's entry so far (also when the run was stopped)."""
        self._auth: tuple[str, str] | None = None
        if settings.twilio_account_sid and settings.twilio_auth_token is not None:
            self._auth = (settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value())

    async def run(self, rows: list[ListRow]) -> dict[str, ListEntry]:
        """Every row's entry once all are done (or the run is cancelled: what was kept stays)."""
        entries = self.entries = await self.progress.load()
        waiting: list[tuple[ListRow, ListEntry]] = []
        running: dict[asyncio.Task[None], tuple[ListRow, ListEntry]] = {}
        for row in rows:
            entry = entries.setdefault(row.key, ListEntry(row.key, row.line, row.number))
            if entry.state == "dialing" and entry.call_sid:
                running[asyncio.create_task(self._follow(entry))] = (row, entry)
                self.on_change(entry, "following a call placed before the run stopped")
            elif entry.state == "dialing":  # stopped while Twilio was asked: it may ring, so never again
                entry.state, entry.outcome = "unknown", "unknown"
                await self.progress.save(entry)
                self.on_change(entry, "skipped: the run stopped while this call was being placed")
            elif entry.state in ("new", "retry") or (entry.outcome == "failed" and entry.call_sid is None):
                waiting.append((row, entry))  # never placed before (Twilio refused or unreachable): safe to try
            else:
                self.on_change(entry, "done before")
        try:
            while waiting or running:
                now = time.time()
                for row, entry in [(r, e) for r, e in waiting if (e.next_at or 0) <= now]:
                    if len(running) >= self.options.concurrency:
                        break
                    if (later := self._quiet_until(row)) is not None:
                        entry.next_at = later
                        self.on_change(entry, f"quiet hours: waiting until {dt.datetime.fromtimestamp(later):%H:%M}")
                        continue
                    waiting.remove((row, entry))
                    await self._pace()
                    running[asyncio.create_task(self._call(row, entry))] = (row, entry)
                if running:
                    finished, _ = await asyncio.wait(running, timeout=0.2)
                    for task in finished:
                        row, entry = running.pop(task)
                        task.result()
                        if entry.state == "retry":
                            waiting.append((row, entry))
                elif waiting:
                    soonest = min((e.next_at or 0) for _, e in waiting)
                    await asyncio.sleep(min(max(0.05, soonest - time.time()), 1.0))
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        return entries

    async def _keep(self, entry: ListEntry) -> None:
        """Save, even when the run is being stopped at this moment (the CallSid must not be lost)."""
        try:
            await self.progress.save(entry)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await self.progress.save(entry)
            raise

    def _quiet_until(self, row: ListRow) -> float | None:
        if self.options.quiet_hours is None:
            return None
        allowed = self.options.quiet_hours.next_call_time(self.now(), row.timezone)
        return allowed.timestamp() if allowed is not None else None

    async def _pace(self) -> None:
        wait = self._next_dial_at - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._next_dial_at = max(time.monotonic(), self._next_dial_at) + 1.0 / self.options.calls_per_second

    async def _call(self, row: ListRow, entry: ListEntry) -> None:
        state, next_at = entry.state, entry.next_at
        entry.attempts += 1
        entry.state, entry.call_sid, entry.next_at = "dialing", None, None
        try:
            await self.progress.save(entry)  # before Twilio is asked: a stop from here on never dials again
        except asyncio.CancelledError:  # stopped before Twilio was asked: as if never started
            entry.attempts -= 1
            entry.state, entry.next_at = state, next_at
            with contextlib.suppress(Exception):
                await self.progress.save(entry)
            raise
        settings: dict[str, Any] = dict(row.settings)
        request = replace(self.template, to=row.number, context=row.context(), **settings)
        placing = asyncio.ensure_future(place_call(self.settings, request))
        try:
            entry.call_sid = await asyncio.shield(placing)
        except asyncio.CancelledError:  # stopped while Twilio was asked: learn the CallSid, so that a resumed run follows it
            with contextlib.suppress(Exception):
                entry.call_sid = await placing
                await self.progress.save(entry)
            raise
        except (TwilioRestError, ValueError) as exc:
            entry.state, entry.outcome, entry.summary = "done", "failed", str(exc)
            await self.progress.save(entry)
            self.on_change(entry, f"not placed: {exc}")
            return
        await self._keep(entry)
        self.on_change(entry, f"calling ({entry.call_sid})")
        await self._follow(entry)

    async def _follow(self, entry: ListEntry) -> None:
        assert entry.call_sid is not None
        url = f"{self.template.server.rstrip('/')}/calls/{entry.call_sid}"
        status, body = "unknown", {}
        deadline = time.monotonic() + self.options.call_timeout_s
        async with http_client(10) as client:
            while time.monotonic() < deadline:
                body = await self._read(client, url)
                statuses = body.get("statuses") or []
                status = next((s.get("CallStatus", "") for s in reversed(statuses) if s.get("CallStatus") in FINAL_STATUSES), "")
                if status:
                    break
                await asyncio.sleep(self.options.poll_s)
            if status == "completed":  # the record follows the last status callback by a moment
                until = time.monotonic() + self.options.record_wait_s
                while not body.get("finished") and time.monotonic() < until:
                    await asyncio.sleep(self.options.poll_s)
                    body = await self._read(client, url)
        entry.outcome = outcome_of(status or "unknown", body)
        entry.answered_by = str(body.get("answered_by") or "") or None
        entry.voicemail_left = bool(body.get("voicemail_left"))
        entry.duration_s = _duration(body)
        analysis = body.get("analysis")
        entry.summary = str(analysis.get("summary")) if isinstance(analysis, dict) and analysis.get("summary") else None
        retry = entry.outcome in RETRYABLE and entry.attempts <= self.options.retries
        entry.state = "retry" if retry else "done"
        entry.next_at = time.time() + self.options.retry_delay_s if retry else None
        await self.progress.save(entry)
        self.on_change(entry, f"{entry.outcome}{', will try again' if retry else ''}")

    async def _read(self, client: httpx.AsyncClient, url: str) -> dict[str, Any]:
        try:
            response = await client.get(url, auth=self._auth, headers={"accept": "application/json"})
        except httpx.HTTPError:
            return {}
        return response.json() if response.status_code == 200 else {}


def _duration(body: dict[str, Any]) -> float | None:
    statuses: list[dict[str, str]] = body.get("statuses") or []
    billed = next((float(s["CallDuration"]) for s in reversed(statuses) if s.get("CallDuration")), None)
    return billed if billed is not None else body.get("duration_s")
