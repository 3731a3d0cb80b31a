"""Talk to your agent in a browser, through the phone path.

    GET  /phone          the softphone page (static assets in the package: no CDN)
    POST /phone/session  a call for this page: a CallSid and a short-lived single-use token
    WS   /phone/socket   the page's call: the Twilio Media Streams protocol, spoken by the page

The page captures the microphone with an AudioWorklet, resamples it to 8 kHz and mu-law
encodes it, and speaks Media Streams (`connected`, `start`, `media`, `mark` echoes, `stop`)
over the socket, so the server runs the very same call as for a phone (one `CallDriver`,
the same transcoders, barge-in, tools and records) and the page plays what a caller hears.
A "wideband" page sends 16 kHz linear PCM instead (`audio/l16` at 16000 Hz), to compare.

Who may: the page and the session need a local request or the dashboard credentials; the
socket needs the session's token (bound to its CallSid, expiring in a minute, single-use),
checked before the upgrade is accepted, so no Gemini session opens without one. It is never
a way around Twilio's signatures: the Twilio stream endpoint is untouched.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Awaitable, Callable
from importlib import resources

from fastapi import APIRouter, Request, Response, WebSocket
from fastapi.responses import HTMLResponse, JSONResponse

from telephony.call.driver import CallDriver
from telephony.call.services import CallServices
from telephony.twilio.signatures import CallTokens
from telephony.web.socket_adapter import StarletteTwilioConnection

log = logging.getLogger(__name__)

PROTOCOL = "telephony-phone"
SESSION_SECONDS = 60.0
"""A page's token must open its socket this soon."""
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".png": "image/png"}


def static_asset(name: str) -> bytes | None:
    folder = resources.files("telephony.web.dashboard") / "static"
    candidate = folder / name
    if "/" in name or "\\" in name or name.startswith(".") or not candidate.is_file():
        return None
    return candidate.read_bytes()


def add_browser_phone(
    routes: APIRouter,
    *,
    services: CallServices,
    agent_names: Callable[[], list[str]],
    may_use: Callable[[Request], bool],
    refused: Callable[[], Response],
    admit: Callable[[str], tuple[str, str] | None],
    carry: Callable[[CallDriver], Awaitable[None]],
    secret: bytes,
    mint_gemini_token: Callable[[str | None], Awaitable[dict[str, object]]] | None = None,
) -> None:
    """The softphone's routes, on the voice router (they follow its prefix)."""
    tokens = CallTokens(b"telephony-browser-phone:" + secret, ttl_s=SESSION_SECONDS)

    @routes.get("/phone")
    async def phone_page(request: Request) -> Response:
        if not may_use(request):
            return refused()
        page = static_asset("phone.html") or b""
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    @routes.get("/phone/static/{name}")
    async def phone_static(name: str, request: Request) -> Response:
        if not may_use(request):
            return refused()
        body = static_asset(name)
        if body is None:
            return JSONResponse({"detail": "not found"}, 404)
        kind = STATIC_TYPES.get(name[name.rfind(".") :], "application/octet-stream")
        return Response(body, media_type=kind, headers={"Cache-Control": "no-cache"})

    @routes.post("/phone/session")
    async def phone_session(request: Request) -> Response:
        if not may_use(request):
            return refused()
        call_sid = "CA" + secrets.token_hex(16)
        base = request.url.path.rsplit("/phone/session", 1)[0]
        scheme = "wss" if request.url.scheme == "https" else "ws"
        return JSONResponse(
            {
                "callSid": call_sid,
                "streamSid": "MZ" + secrets.token_hex(16),
                "token": tokens.issue(call_sid),
                "socket": f"{scheme}://{request.url.netloc}{base}/phone/socket?callSid={call_sid}",
                "agents": agent_names(),
                "expiresInSeconds": SESSION_SECONDS,
            },
            headers={"Cache-Control": "no-store"},
        )

    @routes.post("/api/gemini-token")
    async def gemini_token(request: Request) -> Response:
        """A single-use ephemeral Gemini token for the page's "Direct to Gemini" mode."""
        if not may_use(request):
            return refused()
        if mint_gemini_token is None:
            return JSONResponse({"detail": "ephemeral tokens need the Gemini Developer API (an API key), not Vertex AI"}, 400)
        try:
            body = await mint_gemini_token(request.query_params.get("agent"))
        except Exception as exc:  # the service refused or is unreachable: say which, never the key
            log.warning("minting an ephemeral Gemini token failed: %s", type(exc).__name__)
            return JSONResponse({"detail": f"the Gemini service did not mint a token ({type(exc).__name__})"}, 502)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    @routes.websocket("/phone/socket")
    async def phone_socket(websocket: WebSocket) -> None:
        # The token rides in the WebSocket subprotocol list, not the URL, so no access log keeps it.
        call_sid = websocket.query_params.get("callSid", "")
        offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",")]
        token = next((p.removeprefix("token.") for p in offered if p.startswith("token.")), None)
        problem = tokens.redeem(call_sid, token) if call_sid.startswith("CA") and PROTOCOL in offered else "no token"
        if problem is not None:
            await websocket.close(code=1008)  # before accept: the page gets HTTP 403, nothing opens
            return

        def admit_this_stream(sid: str, _: str | None) -> tuple[str, str] | None:
            if sid != call_sid:
                return "bad_token", "the stream's CallSid is not the one its token was issued for"
            return admit(sid)  # the token was redeemed at the upgrade; one stream per CallSid as for Twilio

        config = dataclasses.replace(services.call_config, admit_stream=admit_this_stream, media_rate_limit=1.5, accept_wideband=True)
        await websocket.accept(subprotocol=PROTOCOL)
        # Its token was redeemed at the upgrade, here: no Twilio stream token to claim across processes.
        await carry(CallDriver(StarletteTwilioConnection(websocket), dataclasses.replace(services, call_config=config, before_start=None)))
