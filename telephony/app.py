"""The HTTP side: Twilio's voice webhook, the Media Streams WebSocket, health.

    POST /twiml          Twilio voice webhook -> TwiML <Connect><Stream> to /media-stream
    WS   /media-stream   one CallBridge per Twilio stream
    GET  /healthz        liveness
    GET  /calls/{sid}    a recent call's record (transcript, timings); needs the Twilio
                         credentials as HTTP basic auth unless signature checks are off

Requests from Twilio are signature-checked unless `validate_signatures` is switched off for
local development; refusals are a 403 and one log line.
"""

from __future__ import annotations

import base64
import collections
import hmac
import logging
import secrets
from collections.abc import Callable

from fastapi import FastAPI, HTTPException, Request, Response, WebSocket
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketState

from telephony import __version__
from telephony.bridge import CallBridge, CallServices
from telephony.call_record import CallRecord
from telephony.config import Settings
from telephony.gemini.config import AgentOptions, make_client
from telephony.gemini.session import GeminiLiveSession
from telephony.security import TOKEN_PARAMETER, CallTokens, TwilioSignatures, public_base_url, secret_from, websocket_url
from telephony.twiml import connect_stream

log = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 64 * 1024
RECENT_CALLS = 100


class StarletteTwilioConnection:
    """Adapts Starlette's WebSocket to the bridge's `TwilioConnection`."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.closed = False

    async def receive(self) -> str | bytes | None:
        if self.closed:
            return None
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            self.closed = True
            return None
        text = message.get("text")
        return text if text is not None else message.get("bytes")

    async def send(self, text: str) -> None:
        if self.closed:
            return
        try:
            await self.websocket.send_text(text)
        except Exception:  # the caller hung up mid-send: the receive side will see it
            self.closed = True

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.websocket.client_state == WebSocketState.CONNECTED and self.websocket.application_state == WebSocketState.CONNECTED:
            self.closed = True
            await self.websocket.close(code, reason)


def create_app(
    settings: Settings,
    *,
    open_gemini: Callable[[AgentOptions], GeminiLiveSession] | None = None,
) -> FastAPI:
    """Build the service from settings. Raises ValueError for a setup that cannot work."""
    auth_token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else None
    signatures: TwilioSignatures | None = None
    if settings.validate_signatures:
        if not auth_token:
            raise ValueError(
                "TWILIO_AUTH_TOKEN is not set, so Twilio's request signatures cannot be checked. "
                "Set it, or for local development only set TELEPHONY_VALIDATE_SIGNATURES=false."
            )
        signatures = TwilioSignatures(auth_token)
    tokens = CallTokens(secret_from(auth_token, secrets.token_bytes(32)))
    if open_gemini is None:
        client = make_client(settings)

        def open_gemini(options: AgentOptions) -> GeminiLiveSession:
            return GeminiLiveSession(client, options)

    recent: collections.OrderedDict[str, CallRecord] = collections.OrderedDict()

    def remember(record: CallRecord) -> None:
        if record.call_sid:
            recent[record.call_sid] = record
            while len(recent) > RECENT_CALLS:
                recent.popitem(last=False)

    services = CallServices(
        open_gemini=open_gemini,
        agent_options=AgentOptions.from_settings(settings),
        call_tokens=tokens if signatures is not None else None,
        call_log_dir=settings.call_log_dir,
        record_dir=settings.record_dir,
        on_call_end=remember,
    )
    app = FastAPI(title="telephony", version=__version__, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.services = services
    app.state.active_calls = set()
    app.state.recent_calls = recent

    def base_url(request: Request | WebSocket) -> str:
        return public_base_url(settings.public_url, request.headers, request.url.scheme, request.url.netloc)

    @app.get("/healthz")
    async def healthz() -> dict[str, object]:
        return {"status": "ok", "active_calls": len(app.state.active_calls)}

    @app.post("/twiml")
    async def twiml(request: Request) -> Response:
        if int(request.headers.get("content-length") or 0) > MAX_WEBHOOK_BYTES:
            raise HTTPException(413, "webhook body too large")
        form = {k: str(v) for k, v in (await request.form()).items()}
        public = base_url(request)
        if signatures is not None:
            url = public + request.url.path + (f"?{request.url.query}" if request.url.query else "")
            if not signatures.webhook_ok(url, form, request.headers.get("x-twilio-signature")):
                log.warning("webhook refused: bad or missing X-Twilio-Signature", extra={"call_sid": form.get("CallSid")})
                raise HTTPException(403, "invalid Twilio signature")
        call_sid = form.get("CallSid")
        if not call_sid:
            raise HTTPException(400, "CallSid is required")
        parameters = {"caller": form.get("From", ""), "called": form.get("To", ""), TOKEN_PARAMETER: tokens.issue(call_sid)}
        body = connect_stream(websocket_url(public, "/media-stream"), parameters)
        log.info("incoming call answered", extra={"call_sid": call_sid, "direction": form.get("Direction")})
        return Response(body, media_type="application/xml")

    @app.websocket("/media-stream")
    async def media_stream(websocket: WebSocket) -> None:
        if signatures is not None:
            url = websocket_url(base_url(websocket), websocket.url.path)
            if not signatures.websocket_ok(url, websocket.headers.get("x-twilio-signature")):
                log.warning("media stream refused: bad or missing X-Twilio-Signature")
                await websocket.close(code=1008)  # before accept: the client gets HTTP 403
                return
        await websocket.accept()
        bridge = CallBridge(StarletteTwilioConnection(websocket), services)
        app.state.active_calls.add(bridge)
        try:
            await bridge.run()
        finally:
            app.state.active_calls.discard(bridge)

    @app.get("/calls/{call_sid}")
    async def call_record(call_sid: str, request: Request) -> JSONResponse:
        if signatures is not None and not _basic_auth_ok(request, settings.twilio_account_sid or "", auth_token or ""):
            return JSONResponse({"detail": "Twilio account SID and auth token required"}, 401, {"WWW-Authenticate": "Basic"})
        record = recent.get(call_sid)
        if record is None:
            raise HTTPException(404, "no recent call with that SID")
        return JSONResponse(record.summary() | {"transcript_text": record.transcript_text()})

    return app


def _basic_auth_ok(request: Request, user: str, password: str) -> bool:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic ") or not password:
        return False
    try:
        given_user, _, given_password = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    return hmac.compare_digest(given_user, user) and hmac.compare_digest(given_password, password)
