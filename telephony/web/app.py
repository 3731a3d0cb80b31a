"""The HTTP side: Twilio's voice webhook, the Media Streams WebSocket, health.

    POST /twiml          Twilio voice webhook -> TwiML <Connect><Stream> to /media-stream
    WS   /media-stream   one call (telephony.call: core + driver) per Twilio stream
    GET  /healthz        liveness
    GET  /readyz         readiness: 503 while draining (SIGTERM) or at capacity
    GET  /metrics        Prometheus metrics
    POST /status         Twilio call status callback (dial-out progress)
    POST /amd            Twilio's answering-machine detection result (dial-out, warm transfers)
    POST /transfer-leg   a warm transfer's person answered -> TwiML to /transfer-stream
    WS   /transfer-stream  their stream: the briefing, their yes or no
    GET  /calls          the calls dashboard (HTML): live calls and the history
    GET  /calls/{sid}    one call: a page for a browser, else JSON (record and statuses)
    GET  /calls/{sid}/recording.wav   its stereo recording, when recordings are on
    GET  /api/calls      the history as JSON (?number=&since=&until=&page=)
    GET  /api/calls/{sid}  one call as JSON
                         (call history needs the dashboard credentials, or the Twilio account
                         SID and auth token, as HTTP basic auth unless the request is local)

Requests from Twilio are signature-checked unless `validate_signatures` is switched off for
local development; refusals are a 403 and one log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response, WebSocket
from fastapi.responses import JSONResponse
from google import genai
from prometheus_client import CONTENT_TYPE_LATEST

from telephony import __version__
from telephony.agents.agent import Agent, AgentBook, AgentSelector, IncomingCall, Refuse
from telephony.agents.call_control import CallControl
from telephony.agents.warm_transfer import WarmTransfers
from telephony.call.driver import CallDriver
from telephony.call.services import CallServices
from telephony.gemini.config import AgentOptions
from telephony.gemini.ephemeral import mint_token
from telephony.gemini.pricing import prices
from telephony.gemini.session import GeminiLiveSession
from telephony.metrics import Metrics, sample_loop_lag
from telephony.settings import Settings
from telephony.store import CallStore, StoreWriter
from telephony.store.outbox import EventOutbox
from telephony.twilio.rest import TwilioRest
from telephony.twilio.signatures import TOKEN_PARAMETER, CallTokens, TwilioSignatures, public_base_url, secret_from, websocket_url
from telephony.twilio.twiml import busy, connect_stream, say_and_hang_up
from telephony.web.browser_phone import add_browser_phone
from telephony.web.composition import call_services_from, gemini_client_from
from telephony.web.dashboard.access import DashboardAccess
from telephony.web.dashboard.routes import add_dashboard
from telephony.web.events import EventPublisher
from telephony.web.socket_adapter import StarletteTwilioConnection
from telephony.web.transfer_leg import add_transfer_routes
from telephony.web.voice_service import RECENT_CALLS, STATUSES_PER_CALL, VoiceService

log = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 64 * 1024
WEBHOOK_BODY_TIMEOUT_S = 10.0
"""A webhook body must arrive within this long (Twilio sends it at once; a slow client is cut)."""
PER_CALL_PARAMETERS = ("voice", "instructions", "greeting", "vad", "context")
MAX_PARAMETER_CHARS = 4000
STORE_WRITE_AT_SHUTDOWN_S = 5.0
"""At shutdown, the call store gets this long to take the records still queued (the last
calls' ends, written a moment after them); past it they are logged as lost, one line."""


class VoiceRouter(APIRouter):
    """The service's routes, to include in any FastAPI app under any prefix; `.service`
    holds its state (live calls, records, draining)."""

    service: VoiceService


def router(
    settings: Settings,
    *,
    agent: Agent | AgentSelector | Iterable[Agent] | None = None,
    open_gemini: Callable[[AgentOptions], GeminiLiveSession] | None = None,
) -> VoiceRouter:
    """The voice service as an APIRouter, for your own FastAPI app:

        app.include_router(telephony.router(settings, agent=my_agent), prefix="/voice")

    Point your Twilio number's voice webhook at https://host/voice/twiml; the stream URL,
    the status callbacks and every signature check follow the prefix. `agent`: one Agent,
    several (chosen by `telephony dial --agent NAME`), or a selector that picks one per
    incoming call. Raises ValueError for a setup that cannot work.
    """
    auth_token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else None
    signatures: TwilioSignatures | None = None
    if settings.validate_signatures:
        if not auth_token:
            raise ValueError(
                "TWILIO_AUTH_TOKEN is not set, so Twilio's request signatures cannot be checked. "
                "Set it, or for local development only set TELEPHONY_VALIDATE_SIGNATURES=false."
            )
        signatures = TwilioSignatures(auth_token)
    tokens = CallTokens(secret_from(auth_token, secrets.token_bytes(32)), ttl_s=settings.stream_token_seconds)
    phone_secret = secrets.token_bytes(32)
    stream_tokens = tokens if signatures is not None else None
    if open_gemini is None:
        client = gemini_client_from(settings)

        def open_gemini(options: AgentOptions) -> GeminiLiveSession:
            return GeminiLiveSession(client, options)

    metrics = Metrics()
    rest = (
        TwilioRest(settings.twilio_account_sid, auth_token, api_base=settings.twilio_api_base)
        if settings.twilio_account_sid and auth_token
        else None
    )
    agents = AgentBook(agent)
    service: VoiceService
    services: CallServices
    warm = (
        WarmTransfers(
            rest,
            open_gemini,
            options_for=lambda parameters: (
                agents.named(parameters.get("agent")).options(services.agent_options).with_overrides(voice=parameters.get("voice"))
            ),
            public_base=lambda: service.public_base,
        )
        if rest is not None
        else None
    )
    services = call_services_from(
        settings,
        open_gemini=open_gemini,
        admit_stream=lambda sid, token: service.admit_stream(sid, token, stream_tokens),
        agents=agents,
        builtin_tools=CallControl(rest, settings.transfer_numbers, warm).tools,
        metrics=metrics,
    )
    database_url = settings.call_history_url
    price_table = prices(settings.token_prices)
    writer: StoreWriter | None = None
    if database_url != "off":  # off: memory only (the last 100 calls of this process)
        writer = StoreWriter(CallStore(database_url), metrics, statuses_per_call=STATUSES_PER_CALL)
        writer.prices = price_table
    service = VoiceService(settings, services, rest, writer)
    service.agents, service.prices, service.transfers = agents, price_table, warm
    if warm is not None and service.relay is not None and writer is not None:  # a person's leg may reach another instance
        from telephony.store.transfer_legs import TransferLegs

        warm.shared, warm.pass_on = TransferLegs(writer.store), service.pass_on
    secret = settings.events_secret.get_secret_value().encode() if settings.events_secret else None
    publisher = service.events = EventPublisher(EventOutbox(writer.store) if writer is not None else None, secret)
    services.on_call_end = service.remember
    services.on_call_start = service.call_started
    services.early_answered_by = service.take_early_answered_by
    services.before_start = lambda sid, parameters: service.before_start(sid, parameters, stream_tokens)
    statuses = service.call_statuses
    # Streams that have not (yet) sent a valid `start`: cheap, closed within the start timeout,
    # and capped so that a flood of them cannot exhaust descriptors.
    pending_cap = max(20, 2 * settings.max_concurrent_calls)

    @contextlib.asynccontextmanager
    async def delivering_events(app: Any) -> AsyncIterator[None]:
        """Events an earlier run left undelivered go out from the start; the rest on shutdown."""
        if settings.events_url or any(a.events_url for a in agents.by_name.values()):
            publisher.start()
        lag = asyncio.create_task(sample_loop_lag(metrics.event_loop_lag.observe), name="event-loop-lag")
        try:
            yield
        finally:
            lag.cancel()
            await asyncio.gather(lag, return_exceptions=True)
            analyses = list(service.analyses)  # a shutdown does not wait for a model to answer
            for task in analyses:
                task.cancel()
            await asyncio.gather(*analyses, return_exceptions=True)
            if service.relay is not None:
                await service.relay.close()
            await publisher.close()
            if writer is not None:  # the last calls' records (a drain ends them just before this)
                await writer.close(STORE_WRITE_AT_SHUTDOWN_S)

    routes = VoiceRouter(lifespan=delivering_events)
    routes.service = service

    def base_url(request: Request | WebSocket) -> str:
        peer = request.client.host if request.client else None
        return public_base_url(settings.public_url, request.headers, request.url.scheme, request.url.netloc, peer, settings.trusted_proxies)

    @routes.get("/healthz")
    async def healthz() -> dict[str, object]:
        return {"status": "ok", "active_calls": service.live_calls, "pid": os.getpid()}  # pid: which worker answered

    @routes.get("/readyz")
    async def readyz() -> JSONResponse:
        reason = service.can_take_call()
        body = {"ready": reason is None, "active_calls": service.live_calls, "reason": reason}
        return JSONResponse(body, status_code=200 if reason is None else 503)

    @routes.get("/metrics")
    async def metrics_endpoint() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def signed_form(request: Request, what: str) -> dict[str, str]:
        """The form Twilio posted, once its size and `X-Twilio-Signature` check out.

        The body is read up to MAX_WEBHOOK_BYTES whether or not it declares its length (a
        chunked body has none), so a hostile POST costs us 64 kB at most.
        """
        if int(request.headers.get("content-length") or 0) > MAX_WEBHOOK_BYTES:
            raise HTTPException(413, f"{what} body too large")
        body = bytearray()
        try:
            async with asyncio.timeout(WEBHOOK_BODY_TIMEOUT_S):
                async for chunk in request.stream():
                    body += chunk
                    if len(body) > MAX_WEBHOOK_BYTES:
                        raise HTTPException(413, f"{what} body too large")
        except TimeoutError:
            raise HTTPException(408, f"{what} body too slow") from None
        form = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
        if signatures is not None:
            url = base_url(request) + request.url.path + (f"?{request.url.query}" if request.url.query else "")
            if not signatures.webhook_ok(url, form, request.headers.get("x-twilio-signature")):
                log.warning("%s refused: bad or missing X-Twilio-Signature", what, extra={"call_sid": form.get("CallSid")})
                metrics.refused.labels("bad_signature").inc()
                raise HTTPException(403, "invalid Twilio signature")
        return form

    @routes.post("/twiml")
    async def twiml(request: Request) -> Response:
        form = await signed_form(request, "webhook")
        public = base_url(request)
        call_sid = form.get("CallSid")
        if not call_sid:
            raise HTTPException(400, "CallSid is required")
        refusal = service.can_take_call()
        if refusal is not None:
            metrics.refused.labels(refusal).inc()
            log.warning("call turned away: %s", refusal, extra={"call_sid": call_sid})
            return Response(busy(), media_type="application/xml")
        incoming = IncomingCall(call_sid, form.get("From", ""), form.get("To", ""), form.get("Direction", ""))
        chosen = await agents.choose(incoming, asked_for=request.query_params.get("agent"))
        if isinstance(chosen, Refuse):
            log.info("call refused by the agent selector", extra={"call_sid": call_sid})
            return Response(say_and_hang_up(chosen.message), media_type="application/xml")
        parameters = {
            "caller": incoming.from_number,
            "called": incoming.to_number,
            "direction": incoming.direction,
            "agent": chosen.name,
            TOKEN_PARAMETER: tokens.issue(call_sid),
        }
        # Per-call agent settings (from `telephony dial`) ride in the signed webhook URL.
        for name in PER_CALL_PARAMETERS:
            value = request.query_params.get(name)
            if value:
                parameters[name] = value[:MAX_PARAMETER_CHARS]
        # The stream sits beside this webhook, whatever prefix the router is mounted under.
        service.public_base = public + request.url.path.rsplit("/", 1)[0]
        stream_path = request.url.path.rsplit("/", 1)[0] + "/media-stream"
        service.stream_expected(call_sid, settings.stream_token_seconds)
        body = connect_stream(websocket_url(public, stream_path), parameters)
        log.info("incoming call answered", extra={"call_sid": call_sid, "direction": incoming.direction, "agent": chosen.name})
        return Response(body, media_type="application/xml")

    async def refused_unsigned(websocket: WebSocket, what: str) -> bool:
        """True when the stream was not signed by Twilio, and is now closed (before accept:
        the client gets HTTP 403)."""
        if signatures is None:
            return False
        url = websocket_url(base_url(websocket), websocket.url.path)
        if signatures.websocket_ok(url, websocket.headers.get("x-twilio-signature")):
            return False
        log.warning("%s refused: bad or missing X-Twilio-Signature", what)
        await websocket.close(code=1008)
        return True

    @routes.websocket("/media-stream")
    async def media_stream(websocket: WebSocket) -> None:
        if await refused_unsigned(websocket, "media stream"):
            return
        if len(service.active_calls) - service.live_calls >= pending_cap:
            metrics.refused.labels("socket_cap").inc()
            log.warning("media stream refused: %d streams open without a call", len(service.active_calls) - service.live_calls)
            await websocket.close(code=1013)
            return
        await websocket.accept()
        call = CallDriver(StarletteTwilioConnection(websocket), services)
        if service.turning_away:
            call.turn_away("server shutting down", prompt="apology_closing")
        await service.carry(call)

    @routes.post("/status")
    async def status_callback(request: Request) -> Response:
        form = await signed_form(request, "status callback")
        call_sid = form.get("CallSid", "")
        if not call_sid:
            raise HTTPException(400, "CallSid is required")
        entry: dict[str, str] = {k: form[k] for k in ("CallStatus", "Timestamp", "CallDuration", "SequenceNumber") if k in form}
        kept = statuses.setdefault(call_sid, [])
        if len(kept) >= STATUSES_PER_CALL:
            metrics.refused.labels("status_flood").inc()
            return Response(status_code=204)
        kept.append(entry)
        if writer is not None:
            writer.put_status(call_sid, entry)
        statuses.move_to_end(call_sid)
        while len(statuses) > RECENT_CALLS:
            statuses.popitem(last=False)
        log.info("call status %s", form.get("CallStatus"), extra={"call_sid": call_sid})
        if warm is None or not warm.status(call_sid, form.get("CallStatus", "")):
            await service.pass_on(call_sid, "status", form.get("CallStatus", "")[:32])  # a transfer leg elsewhere
        return Response(status_code=204)

    @routes.post("/amd")
    async def machine_detection(request: Request) -> Response:
        """Twilio's asynchronous answering-machine detection for an outbound call (`telephony dial`)."""
        form = await signed_form(request, "answering machine detection")
        call_sid, answered_by = form.get("CallSid", ""), form.get("AnsweredBy", "")
        if not call_sid or not answered_by or len(answered_by) > 40:
            raise HTTPException(400, "CallSid and AnsweredBy are required")
        if warm is not None and warm.answered_by(call_sid, answered_by):
            log.info("transfer answered by %s", answered_by, extra={"call_sid": call_sid})
            return Response(status_code=204)
        live = service.machine_detected(call_sid, answered_by)
        if not live:  # its stream may be (or start) on another worker or instance
            await service.pass_on(call_sid, "answered_by", answered_by)
        log.info("answered by %s%s", answered_by, "" if live else " (before its stream)", extra={"call_sid": call_sid})
        return Response(status_code=204)

    if warm is not None:
        add_transfer_routes(routes, warm, signed_form, base_url, refused_unsigned)

    access = DashboardAccess(settings, auth_token, metrics)
    may_see_history, refused = access.allows, access.refused

    @functools.cache
    def minting_client() -> genai.Client:
        """Made on first use: a server whose calls use a test double may never mint."""
        return gemini_client_from(settings)

    async def mint_for_browser(agent_name: str | None) -> dict[str, object]:
        agent = agents.named(agent_name)
        options = agent.options(services.agent_options)
        token = await mint_token(minting_client(), options)
        return {
            "token": token.name,
            "model": token.model,
            "expiresAt": token.expires_at.isoformat(),
            "baseUrl": settings.gemini_browser_base_url or settings.gemini_base_url,
            "agent": agent.name,
        }

    add_browser_phone(
        routes,
        services=services,
        agent_names=lambda: list(agents.by_name) or [agents.default.name],
        may_use=may_see_history,
        refused=refused,
        admit=lambda call_sid: service.admit_stream(call_sid, None, None),
        carry=service.carry,
        secret=secret_from(auth_token, phone_secret),
        mint_gemini_token=None if settings.uses_vertex else mint_for_browser,
    )

    add_dashboard(routes, service=service, writer=writer, price_table=price_table, access=access)

    return routes


def create_app(
    settings: Settings,
    *,
    agent: Agent | AgentSelector | Iterable[Agent] | None = None,
    open_gemini: Callable[[AgentOptions], GeminiLiveSession] | None = None,
) -> FastAPI:
    """The whole service as an app: `router()` at the root. Raises ValueError for a setup
    that cannot work."""
    routes = router(settings, agent=agent, open_gemini=open_gemini)
    app = FastAPI(title="telephony", version=__version__, docs_url=None, redoc_url=None)
    app.include_router(routes)
    service = routes.service
    app.state.voice = service
    app.state.settings = settings
    app.state.services = service.services
    app.state.active_calls = service.active_calls
    app.state.recent_calls = service.recent_calls
    app.state.call_statuses = service.call_statuses
    app.state.metrics = service.metrics
    app.state.rest = service.rest
    return app


GOODBYE_MARGIN_S = 0.5
"""Time for the hang-up after the drain's apology has played (its last mark back, the close)."""


async def drain_calls(app: FastAPI, drain_seconds: float, poll_s: float = 0.1) -> None:
    """Graceful shutdown: take no new calls, let live ones finish, then end the rest politely
    (a short spoken apology, then hang up), all within `drain_seconds`: the apology starts
    early enough to be heard whole by then (a platform kills at its own deadline: Cloud Run
    10 s after SIGTERM; an apology begun at the drain's end was cut by the kill)."""
    service: VoiceService = app.state.voice
    service.draining = True
    active = service.active_calls
    log.warning("draining: %d live call(s), up to %.0f s", len(active), drain_seconds)
    goodbye_s = len(service.services.call_config.prompts.get("apology_closing", b"")) / 8000 + GOODBYE_MARGIN_S
    deadline = time.monotonic() + max(0.0, drain_seconds - goodbye_s)
    # A caller answered just before the signal is on their way: their stream is served too.
    while (active or service.streams_awaited()) and time.monotonic() < deadline:
        await asyncio.sleep(poll_s)
    service.turning_away = True
    if active:
        log.warning("drain time over: ending %d call(s)", len(active))
        for call in list(active):
            call.end_call("server shutting down", prompt="apology_closing")
        deadline = time.monotonic() + 15
        while active and time.monotonic() < deadline:
            await asyncio.sleep(poll_s)
