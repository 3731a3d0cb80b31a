"""The calls dashboard and the call history API, as routes on the service's router.

    GET /calls                        live calls and the history (HTML)
    GET /calls/{sid}                  one call: a page for a browser, else JSON
    GET /calls/{sid}/recording.wav    its stereo recording, when recordings are on
    GET /api/calls, /api/calls/{sid}  the same as JSON

Each needs `DashboardAccess` (a local request, or the dashboard credentials). A call is
answered from this instance's own record first (complete the moment the call ends), else
from the store, so that another instance's calls show too.
"""

from __future__ import annotations

import datetime
import logging
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from telephony.gemini.pricing import estimated_cost_usd
from telephony.store import CallQuery, StoreWriter
from telephony.store.database import PAGE_SIZE
from telephony.store.writer import call_row
from telephony.web.dashboard import pages
from telephony.web.dashboard.access import DashboardAccess

log = logging.getLogger("telephony.web.app")


def add_dashboard(
    routes: APIRouter, *, service: Any, writer: StoreWriter | None, price_table: dict[str, float], access: DashboardAccess
) -> None:
    """`service`: the app's VoiceService (its live calls, recent records and statuses)."""
    services = service.services
    recent = service.recent_calls
    statuses = service.call_statuses
    may_see_history, refused = access.allows, access.refused

    def base_path(request: Request, marker: str) -> str:
        return request.url.path.rsplit(marker, 1)[0]

    async def one_call(call_sid: str) -> dict[str, object] | None:
        """This instance's own record first (complete the moment the call ends), else the store."""
        record = recent.get(call_sid) or next(
            (c.record for c in list(service.active_calls) if c.core.admitted and c.record.call_sid == call_sid), None
        )
        stored: dict[str, object] | None = None
        try:
            stored = await writer.store.call(call_sid) if writer is not None else None
        except Exception as exc:  # the store is down: what this instance knows still answers
            log.warning("call store unavailable for a read: %s", type(exc).__name__)
        statuses_here = statuses.get(call_sid, [])
        if record is None and stored is None and not statuses_here:
            return None
        body: dict[str, object] = dict(stored or {"call_sid": call_sid})
        if record is not None:
            finished = record.ended_at is not None
            body |= record.summary() | {"transcript_text": record.transcript_text(), "finished": finished}
            body |= {"cost_usd": estimated_cost_usd(record.usage, price_table)}
        seen = {(s.get("CallStatus"), s.get("SequenceNumber")) for s in statuses_here}
        from_store: list[dict[str, str]] = list((stored or {}).get("statuses") or [])  # type: ignore[call-overload]
        merged = list(statuses_here) + [s for s in from_store if (s.get("CallStatus"), s.get("SequenceNumber")) not in seen]
        body["statuses"] = merged
        body.setdefault("call_sid", call_sid)
        return body

    async def call_response(call_sid: str, request: Request, page: bool) -> Response:
        """One call, as a page for a browser (`page` and it accepts HTML) or as JSON."""
        if not may_see_history(request):
            return refused()
        body = await one_call(call_sid)
        if body is None:
            raise HTTPException(404, "no call with that SID")
        if page and "text/html" in request.headers.get("accept", ""):
            base = base_path(request, f"/calls/{call_sid}")
            recording = f"{base}/calls/{call_sid}/recording.wav" if body.get("recording") else None
            return HTMLResponse(pages.call_page(body, recording, base))
        return JSONResponse(jsonable_encoder(body))

    @routes.get("/calls/{call_sid}")
    async def call_record(call_sid: str, request: Request) -> Response:
        return await call_response(call_sid, request, page=True)

    @routes.get("/api/calls/{call_sid}")
    async def api_call(call_sid: str, request: Request) -> Response:
        return await call_response(call_sid, request, page=False)

    @routes.get("/calls/{call_sid}/recording.wav")
    async def recording(call_sid: str, request: Request) -> Response:
        if not may_see_history(request):
            return refused()
        body = await one_call(call_sid)
        path = Path(str(body.get("recording"))) if body and body.get("recording") else None
        directory = services.recordings_dir
        if path is None or directory is None or not path.is_file() or directory.resolve() not in path.resolve().parents:
            raise HTTPException(404, "no recording of that call here")
        return FileResponse(path, media_type="audio/wav")

    async def history(request: Request) -> tuple[list[dict[str, object]], int, dict[str, str], int]:
        query = {k: v for k, v in request.query_params.items() if k in ("number", "since", "until") and v}
        try:
            page = max(1, int(request.query_params.get("page", "1")))
            since = _day(query.get("since"))
            until = _day(query.get("until"), next_day=True)
        except ValueError:
            raise HTTPException(400, "since/until are dates (YYYY-MM-DD), page a number") from None
        if writer is None:  # memory only: this process's recent calls
            found = [call_row(r, r.outcome, price_table)[0] for r in reversed(recent.values())]
            number = query.get("number")
            found = [row for row in found if not number or number in f"{row['from_number']} {row['to_number']}"]
            return found[(page - 1) * PAGE_SIZE : page * PAGE_SIZE], len(found), query, page
        rows, total = await writer.store.calls(CallQuery(number=query.get("number"), since=since, until=until, page=page))
        return rows, total, query, page

    @routes.get("/api/calls")
    async def api_calls(request: Request) -> Response:
        if not may_see_history(request):
            return refused()
        rows, total, _, page = await history(request)
        return JSONResponse(jsonable_encoder({"calls": rows, "total": total, "page": page, "page_size": PAGE_SIZE}))

    @routes.get("/calls")
    async def calls_dashboard(request: Request) -> Response:
        if not may_see_history(request):
            return refused()
        rows, total, query, page = await history(request)
        now = time.time()
        live = [
            {
                "call_sid": call.record.call_sid,
                "from_number": call.record.parameters.get("caller"),
                "to_number": call.record.parameters.get("called"),
                "agent": call.record.parameters.get("agent"),
                "seconds": now - call.record.started_at,
            }
            for call in list(service.active_calls)
            if call.core.admitted
        ]
        return HTMLResponse(pages.calls_page(rows, total, live, query, page, PAGE_SIZE, base_path(request, "/calls")))


def _day(value: str | None, next_day: bool = False) -> float | None:
    """A YYYY-MM-DD date as a UTC epoch (the start of the day, or of the next)."""
    if not value:
        return None
    day = datetime.date.fromisoformat(value)
    if next_day:
        day += datetime.timedelta(days=1)
    return datetime.datetime.combine(day, datetime.time(), datetime.UTC).timestamp()
