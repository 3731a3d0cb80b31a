"""What one server holds across its calls: the calls in progress (one live stream per
CallSid), recent records and status callbacks, the call history writer, recordings' clean-up,
and whether it is draining. The routes (`app`) ask it; one per `router()`."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any

from telephony.agents.agent import AgentBook, IncomingCall
from telephony.agents.analysis import Analysis
from telephony.agents.warm_transfer import WarmTransfers
from telephony.call.driver import CallDriver
from telephony.call.record import CallRecord
from telephony.call.services import CallServices
from telephony.gemini.analysis import AnalysisError, analyze_call
from telephony.settings import Settings
from telephony.store import StoreWriter
from telephony.store.claims import StreamClaims
from telephony.store.signals import CallSignal, CallSignals
from telephony.store.wav_file import delete_old_recordings
from telephony.twilio.rest import TwilioRest
from telephony.twilio.signatures import TOKEN_PARAMETER, CallTokens
from telephony.web import event_data
from telephony.web.composition import text_client_from
from telephony.web.events import EventPublisher
from telephony.web.signal_relay import SignalRelay

log = logging.getLogger("telephony.web.app")

RECENT_CALLS = 100
STATUSES_PER_CALL = 50
CLAIM_TIMEOUT_S = 2.0
"""The longest a stream start waits on the shared store for its claims: past it (or with the
store down) the call goes on, checked by this process alone, rather than the caller waiting."""
"""A call has a handful of status callbacks; more are replays, and are not kept."""


class VoiceService:
    """What one server holds across calls: the calls in progress, recent records and
    statuses, and whether it is draining. One per `router()`."""

    def __init__(self, settings: Settings, services: CallServices, rest: TwilioRest | None, writer: StoreWriter | None = None) -> None:
        self.settings = settings
        self.writer = writer
        """Call history writes (never awaited by a call); None: memory only."""
        self._last_cleanup = 0.0
        self.services = services
        self.rest = rest
        self.metrics = services.metrics
        self.active_calls: set[CallDriver] = set()
        """Every open media stream, admitted or not yet (for the drain)."""
        self.live_call_sids: set[str] = set()
        """CallSids of admitted streams: a second stream for one of them is refused."""
        shared = writer is not None and (settings.workers != 1 or writer.store.kind == "postgresql")
        self.claims: StreamClaims | None = StreamClaims(writer.store) if writer is not None and shared else None
        """The same refusals across workers (more than one process on a SQLite file) and
        instances (PostgreSQL), in the shared store; one process alone needs only its own."""
        self.relay: SignalRelay | None = SignalRelay(CallSignals(self.claims.store), self._waiting_for, self._act) if self.claims else None
        """Twilio's callbacks for calls carried elsewhere passed on, and those for ours taken."""
        self.transfers: WarmTransfers | None = None
        """Warm transfers in progress here (set by the app): their person's callbacks too."""
        self.claimed: set[str] = set()
        """CallSids this process claimed in the store (released when their call ends)."""
        self.recent_calls: collections.OrderedDict[str, CallRecord] = collections.OrderedDict()
        self.call_statuses: collections.OrderedDict[str, list[dict[str, str]]] = collections.OrderedDict()
        self.events: EventPublisher | None = None
        """Call events to the user's systems and the agents' callbacks (`telephony.web.events`)."""
        self.agents: AgentBook | None = None
        self.prices: dict[str, float] | None = None
        self.early_answered_by: collections.OrderedDict[str, str] = collections.OrderedDict()
        """Answering-machine results that came before their call's stream (a few, briefly)."""
        self.analyses: set[asyncio.Task[None]] = set()
        """Post-call analyses under way (`telephony.agents.analysis`)."""
        self._text: Any = None
        self.public_base: str | None = settings.public_url.rstrip("/") if settings.public_url else None
        """Where Twilio reaches this router (from the last voice webhook): for warm transfers."""
        self.draining = False
        self.awaited_streams: collections.OrderedDict[str, float] = collections.OrderedDict()
        """CallSid -> when its stream, answered for by the webhook, stops being expected."""
        self.turning_away = False
        """Past the drain deadline: a stream that still arrives hears the closing message."""

    @property
    def live_calls(self) -> int:
        """Calls past a valid `start`: sockets that never send one do not hold a call slot."""
        return len(self.live_call_sids)

    async def before_start(self, call_sid: str, parameters: dict[str, str], tokens: CallTokens | None) -> tuple[str, str] | None:
        """A stream's `start`, before the call reads it: the agent it names found here (a
        selector's, chosen on another worker or instance), then the shared claims."""
        if self.agents is not None:
            call = IncomingCall(call_sid, parameters.get("caller", ""), parameters.get("called", ""), parameters.get("direction", ""))
            await self.agents.recall(parameters.get("agent"), call)
        return await self.claim_stream(call_sid, parameters.get(TOKEN_PARAMETER), tokens)

    async def claim_stream(self, call_sid: str, token: str | None, tokens: CallTokens | None) -> tuple[str, str] | None:
        """Before `start` reaches the call: in the shared store, the stream token is spent and
        the CallSid taken, wherever the stream landed (None: both are this stream's). Only a
        token issued for this CallSid may claim anything, so a forged `start` blocks nobody."""
        if self.claims is None:
            return None
        now = time.time()
        wanted: list[tuple[str, float]] = []
        if tokens is not None:
            if (problem := tokens.check(call_sid, token)) is not None:
                return "bad_token", problem
            assert token is not None
            wanted.append((f"token:{token}", tokens.expires_at(token)))
        wanted.append((f"call:{call_sid}", now + self.settings.max_call_seconds + 300))
        try:
            async with asyncio.timeout(CLAIM_TIMEOUT_S):
                held = await self.claims.claim(wanted, now)
        except Exception as exc:  # the store is down or slow: the caller is answered anyway
            self.metrics.store_errors.inc()
            log.warning(
                "shared store unreachable at stream start (%s): its token and CallSid are checked in this process only",
                type(exc).__name__,
                extra={"call_sid": call_sid},
            )
            return None
        if held is not None and held.startswith("token:"):
            return "bad_token", "stream token already used (a replayed stream, on this or another worker or instance)"
        if held is not None:
            return "duplicate_stream", "a stream for this CallSid is already live (on this or another worker or instance)"
        self.claimed.add(call_sid)
        return None

    def stream_expected(self, call_sid: str, within_s: float) -> None:
        """The webhook answered with a stream: it should start within `within_s` (its token's
        life). A drain waits for it, so that a caller answered just before a SIGTERM is served."""
        self.awaited_streams[call_sid] = time.monotonic() + within_s
        while len(self.awaited_streams) > RECENT_CALLS:
            self.awaited_streams.popitem(last=False)

    def streams_awaited(self) -> int:
        """Streams answered for that have neither started nor run out of time."""
        now = time.monotonic()
        for call_sid in [sid for sid, until in self.awaited_streams.items() if until <= now]:
            del self.awaited_streams[call_sid]
        return len(self.awaited_streams)

    def admit_stream(self, call_sid: str, token: str | None, tokens: CallTokens | None) -> tuple[str, str] | None:
        """At `start`: one stream per CallSid, with a fresh single-use token (when signed)."""
        self.awaited_streams.pop(call_sid, None)
        if call_sid in self.live_call_sids:
            return "duplicate_stream", "a stream for this CallSid is already live"
        if tokens is not None and (problem := tokens.redeem(call_sid, token)):
            return "bad_token", problem
        self.live_call_sids.add(call_sid)
        if self.relay is not None:
            self.relay.wake()
        return None

    async def carry(self, call: CallDriver) -> None:
        """Run one stream's call, counted while it lasts; its CallSid is free again after."""
        self.active_calls.add(call)
        try:
            await call.run()
        finally:
            self.active_calls.discard(call)
            if call.core.admitted and call.record.call_sid:
                self.live_call_sids.discard(call.record.call_sid)
            sid = call.record.call_sid
            if sid in self.claimed and self.claims is not None:
                self.claimed.discard(sid)
                try:
                    await self.claims.release(f"call:{sid}")
                except Exception as exc:  # the store is down: the claim expires by itself
                    log.warning("could not release the call's claim: %s", type(exc).__name__, extra={"call_sid": sid})

    def remember(self, record: CallRecord) -> None:
        if record.call_sid:
            self.recent_calls[record.call_sid] = record
            while len(self.recent_calls) > RECENT_CALLS:
                self.recent_calls.popitem(last=False)
            if self.writer is not None and record.parameters:
                self.writer.put_call(record, record.outcome or "completed")
            if record.parameters:
                self.publish("call.ended", event_data.call_ended(record, self.settings.public_url, self.prices), record)
                agent = self.agents.named(record.parameters.get("agent")) if self.agents is not None else None
                if agent is not None and agent.analysis is not None and record.transcript:
                    task = asyncio.get_running_loop().create_task(self._analyze(record, agent.analysis), name="analysis")
                    self.analyses.add(task)
                    task.add_done_callback(self.analyses.discard)
        self._clean_up_recordings()

    async def _analyze(self, record: CallRecord, analysis: Analysis) -> None:
        """After the call: its analysis, kept with it, shown, and sent as `call.analysis_ready`."""
        model = analysis.model or self.settings.analysis_model
        try:
            result = await analyze_call(self._text_client(), model, record.transcript_text(), analysis.success, analysis.fields_schema())
        except (AnalysisError, ValueError) as exc:
            log.warning("post-call analysis failed: %s", exc, extra={"call_sid": record.call_sid})
            return
        record.analysis = result
        if self.writer is not None and record.call_sid:
            self.writer.put_annotation(record.call_sid, "analysis", result)
        self.publish("call.analysis_ready", {"call_sid": record.call_sid, "analysis": result}, record)

    def _text_client(self) -> Any:
        if self._text is None:
            self._text = text_client_from(self.settings)
        return self._text

    def call_started(self, record: CallRecord) -> None:
        if self.writer is not None:
            self.writer.put_call(record, None)
        self.publish("call.started", event_data.call_started(record), record)

    def publish(self, kind: str, data: dict[str, object], record: CallRecord) -> None:
        """An event of this call, to its agent's URL (or the server's) and callbacks."""
        if self.events is None:
            return
        agent = self.agents.named(record.parameters.get("agent")) if self.agents is not None else None
        url = (agent.events_url if agent is not None else None) or self.settings.events_url
        callbacks = agent.callbacks.get(kind, []) if agent is not None else []
        if url or callbacks:
            self.events.publish(kind, dict(data), url, callbacks)

    def _clean_up_recordings(self) -> None:
        directory = self.services.recordings_dir
        if directory is None or time.monotonic() - self._last_cleanup < 3600:
            return
        self._last_cleanup = time.monotonic()
        days = self.settings.recording_retention_days
        task = asyncio.get_running_loop().run_in_executor(None, delete_old_recordings, directory, days * 86400)
        task.add_done_callback(lambda done: done.exception())  # a full disk is logged by the next write

    def machine_detected(self, call_sid: str, kind: str) -> bool:
        """Twilio's `AnsweredBy` for a call: to its live stream, else kept for when it starts."""
        for call in self.active_calls:
            if call.record.call_sid == call_sid and call.core.admitted:
                if call.record.answered_by != kind:  # once: kept early here and passed on too
                    call.answered_by(kind)
                return True
        self.early_answered_by[call_sid] = kind
        while len(self.early_answered_by) > RECENT_CALLS:
            self.early_answered_by.popitem(last=False)
        return False

    def _waiting_for(self) -> list[str]:
        return [*self.live_call_sids, *(self.transfers.by_person_call if self.transfers is not None else ())]

    def _act(self, signal: CallSignal) -> bool:
        """A callback another process received for a call (or transfer leg) of ours."""
        if signal.kind == "answered_by":
            if self.transfers is not None and self.transfers.answered_by(signal.call_sid, signal.value):
                return True
            return self.machine_detected(signal.call_sid, signal.value)
        if signal.kind == "status" and self.transfers is not None:
            return self.transfers.status(signal.call_sid, signal.value)
        if self.transfers is not None:  # a person's leg of ours, run by another instance
            return self.transfers.from_elsewhere(signal.call_sid, signal.kind, signal.value)
        return False

    async def pass_on(self, call_sid: str, kind: str, value: str) -> None:
        """A callback for a call not carried here: to the process that carries it, if any."""
        if self.relay is not None and call_sid not in self.live_call_sids:
            await self.relay.pass_on(CallSignal(call_sid, kind, value))

    def take_early_answered_by(self, call_sid: str) -> str | None:
        return self.early_answered_by.pop(call_sid, None)

    def can_take_call(self) -> str | None:
        """None when a new call is welcome, else why not."""
        if self.draining:
            return "draining"
        if self.live_calls >= self.settings.max_concurrent_calls:
            return "at_capacity"
        return None
