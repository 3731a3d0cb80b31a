"""Warm transfer: the built-in `warm_transfer(to, summary)` tool hands the caller to a person
who knows what the call is about, or brings the caller back to the agent if they cannot take it.

1. The agent tells the caller; once that was heard, the caller stays on our media stream and
   hears the hold tone (the core's tone for a slow tool: never silence). Their leg never moves
   until a person has said yes, so it cannot drop during the hand-off.
2. While the person's phone rings (Twilio REST, with answering-machine detection), the
   briefing is spoken in the agent's own voice by a short Live session of its own: the
   model's summary of the call, then "press 1 or say hello to take the call, 2 to decline".
3. The person's leg opens its own stream (`/transfer-stream`, `telephony.web.transfer_leg`):
   they hear the briefing; their keys, their voice, a machine result, a hang-up or the
   status callbacks decide (`telephony.call.transfer_answer`).
4. Yes: the person's call, then the caller's, are redirected into one Twilio `<Conference>`
   (each ends it on leaving), and the caller's stream ends. Anything else: the person's leg
   is hung up, the hold tone stops, and the model is told what happened, in words it can
   pass on, with the caller still on the line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from google.genai import types

from telephony.audio.transcode import GeminiToCaller
from telephony.call.tool_api import CallHandle, ToolOutcome
from telephony.call.transfer_answer import WHAT_HAPPENED, Answer, TransferAnswer
from telephony.gemini.config import AgentOptions
from telephony.gemini.events import AgentAudio, SessionClosed, TurnComplete
from telephony.gemini.messages import UserTurn
from telephony.gemini.session import GeminiLiveSession, GeminiSessionError
from telephony.twilio.rest import TwilioRest, TwilioRestError
from telephony.twilio.twiml import conference

if TYPE_CHECKING:
    from telephony.store.transfer_legs import SharedLeg, TransferLegs

log = logging.getLogger(__name__)

TRANSFER_PARAMETER = "transfer"
"""The person's stream names its transfer with this custom parameter (an unguessable id)."""
RING_S = 25
"""How long the person's phone rings before Twilio gives up (no-answer)."""
LEG_GRACE_S = 15.0
"""Beyond the ring time: how long we wait for Twilio's word on a call that never connected."""
BRIEFING_TIMEOUT_S = 20.0
MAX_SUMMARY_CHARS = 600
READ_ALOUD = "Read this aloud, word for word, and say nothing else: "
READER_INSTRUCTIONS = (
    "You read short messages aloud on the phone to a colleague, in a calm and clear voice. "
    "Say exactly the words you are given and nothing else."
)
TOOL_TIMEOUT_S = RING_S + LEG_GRACE_S + BRIEFING_TIMEOUT_S + 40.0
"""The tool's own limit: ringing, the briefing, the person's answer, and the joining."""
STORE_TIMEOUT_S = 2.0
"""The most a transfer waits on the shared store (it is down: the transfer goes on here alone)."""
LEG_CONNECTED = "transfer_leg"
"""Signal kind, person's leg -> the caller's instance: their stream began elsewhere."""
LEG_ANSWERED = "transfer_answer"
"""Signal kind, person's leg -> the caller's instance: what they answered (an `Answer` value)."""


def briefing_text(summary: str) -> str:
    return f"Hello, I have a caller on hold for you. {summary.strip()} Press 1 or say hello to take the call, or press 2 to decline."


def declaration(numbers: list[str]) -> types.FunctionDeclaration:
    return types.FunctionDeclaration(
        name="warm_transfer",
        description=(
            "Hand the caller to a person who first hears your summary of the call. Tell the caller first that you "
            "are putting them through and that they will hear a hold tone. If the person cannot take the call, you "
            "get the caller back with what happened."
        ),
        behavior=types.Behavior.BLOCKING,
        parameters=types.Schema(
            type=types.Type.OBJECT,
            properties={
                "to": types.Schema(type=types.Type.STRING, enum=numbers, description="Number of the person."),
                "summary": types.Schema(
                    type=types.Type.STRING,
                    description="Two or three sentences for the person: who is calling, what they want, what was done so far.",
                ),
            },
            required=["to", "summary"],
        ),
    )


@dataclass
class PendingTransfer:
    id: str
    to: str
    caller_call_sid: str
    briefing: asyncio.Task[bytes]
    """The spoken briefing, mu-law 8 kHz (made while the person's phone rings)."""
    answer: TransferAnswer = field(default_factory=TransferAnswer)
    decided: asyncio.Event = field(default_factory=asyncio.Event)
    person_call_sid: str | None = None
    leg_connected: bool = False
    on_decided: Callable[[Answer], None] | None = None
    """A leg run for a transfer on another instance: its answer goes back there."""

    def settle(self, answer: Answer | None) -> None:
        if answer is not None:
            self.decided.set()
            if self.on_decided is not None:
                self.on_decided(answer)


class WarmTransfers:
    """The server's warm transfers in progress: found by their id (the person's stream), and by
    the person's CallSid (status and machine-detection callbacks)."""

    def __init__(
        self,
        rest: TwilioRest,
        open_gemini: Callable[[AgentOptions], GeminiLiveSession],
        options_for: Callable[[dict[str, str]], AgentOptions],
        public_base: Callable[[], str | None],
        ring_s: int = RING_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rest = rest
        self.open_gemini = open_gemini
        self.options_for = options_for
        self.public_base = public_base
        self.ring_s = ring_s
        self.clock = clock
        self.pending: dict[str, PendingTransfer] = {}
        self.by_person_call: dict[str, PendingTransfer] = {}
        self.shared: TransferLegs | None = None
        """Several instances: transfers are kept in the store too, for the person's leg to find."""
        self.pass_on: Callable[[str, str, str], Awaitable[None]] | None = None
        """(CallSid, kind, value) to the instance carrying that call (`VoiceService.pass_on`)."""
        self._background: set[asyncio.Task[None]] = set()

    # --- what the person's leg and Twilio's callbacks tell us --------------------------------

    def leg(self, transfer_id: str, person_call_sid: str) -> PendingTransfer | None:
        """The transfer a person's stream belongs to (None: unknown, over, or another call's)."""
        pending = self.pending.get(transfer_id)
        if pending is None or pending.decided.is_set() or pending.leg_connected:
            return None
        if pending.person_call_sid not in (None, person_call_sid):
            return None
        pending.person_call_sid = person_call_sid
        pending.leg_connected = True
        self.by_person_call[person_call_sid] = pending
        pending.answer.connected(self.clock())
        return pending

    def status(self, call_sid: str, status: str) -> bool:
        pending = self.by_person_call.get(call_sid)
        if pending is None:
            return False
        pending.settle(pending.answer.status(status, self.clock()))
        return True

    def answered_by(self, call_sid: str, kind: str) -> bool:
        pending = self.by_person_call.get(call_sid)
        if pending is None:
            return False
        pending.settle(pending.answer.answered_by(kind, self.clock()))
        return True

    def from_elsewhere(self, person_call_sid: str, kind: str, value: str) -> bool:
        """What another instance, which the person's leg reached, passed on (`LEG_CONNECTED`,
        `LEG_ANSWERED`); False when no transfer here waits on that leg."""
        pending = self.by_person_call.get(person_call_sid)
        if pending is None:
            return False
        now = self.clock()
        if kind == LEG_CONNECTED:
            pending.leg_connected = True
            pending.answer.connected(now)
        elif kind == LEG_ANSWERED:
            try:
                answer = Answer(value)
            except ValueError:
                return False
            pending.settle(pending.answer.answered_elsewhere(answer, now))
        else:
            return False
        return True

    # --- the person's leg, reaching this instance for a transfer on another ----------------

    async def known_elsewhere(self, transfer_id: str) -> bool:
        """A transfer another instance runs (its person's `/transfer-leg` landed here)."""
        return await self._shared_leg(transfer_id) is not None

    async def leg_from_elsewhere(self, transfer_id: str, person_call_sid: str) -> PendingTransfer | None:
        """The person's stream for a transfer another instance runs: this instance plays them
        the briefing (from the store) and judges their answer, which goes back there."""
        shared = await self._shared_leg(transfer_id)
        pass_on = self.pass_on  # logs and gives up by itself when the store is down
        if shared is None or pass_on is None:
            return None
        briefing = asyncio.create_task(self._stored_briefing(transfer_id, shared), name="stored-briefing")
        pending = PendingTransfer(transfer_id, "", shared.caller_call_sid, briefing, person_call_sid=person_call_sid, leg_connected=True)
        pending.on_decided = lambda answer: self._in_background(pass_on(person_call_sid, LEG_ANSWERED, answer.value))
        pending.answer.connected(self.clock())
        await pass_on(person_call_sid, LEG_CONNECTED, "connected")
        return pending

    async def _shared_leg(self, transfer_id: str) -> SharedLeg | None:
        if self.shared is None or not transfer_id:
            return None
        try:
            async with asyncio.timeout(STORE_TIMEOUT_S):
                return await self.shared.get(transfer_id)
        except Exception as exc:  # noqa: BLE001 - the store is down: the leg is not ours to run
            log.warning("could not look up a transfer in the shared store: %s", type(exc).__name__)
            return None

    async def _stored_briefing(self, transfer_id: str, shared: SharedLeg) -> bytes:
        """The briefing the carrying instance is making, once it is in the store."""
        while shared.briefing is None:
            if shared.failure is not None:
                raise GeminiSessionError(shared.failure)
            await asyncio.sleep(0.25)
            found = await self._shared_leg(transfer_id)
            if found is None:
                raise GeminiSessionError("the transfer ended on its instance")
            shared = found
        return shared.briefing

    def _in_background(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _share(self, pending: PendingTransfer) -> None:
        """Keep the transfer in the store, then its briefing once spoken (or why it failed)."""
        assert self.shared is not None
        try:
            async with asyncio.timeout(STORE_TIMEOUT_S):
                await self.shared.put(pending.id, pending.caller_call_sid, time.time())
            try:
                audio, failure = await asyncio.shield(pending.briefing), None
            except asyncio.CancelledError:
                if not pending.briefing.cancelled():
                    raise
                return
            except Exception as exc:  # noqa: BLE001 - the leg elsewhere gives up with this
                audio, failure = None, f"the briefing could not be made: {type(exc).__name__}"
            async with asyncio.timeout(STORE_TIMEOUT_S):
                await self.shared.briefed(pending.id, audio, failure)
        except Exception as exc:  # noqa: BLE001 - the store is down: a leg elsewhere cannot be briefed
            log.warning("could not keep the warm transfer in the shared store: %s", type(exc).__name__)

    async def _unshare(self, transfer_id: str) -> None:
        assert self.shared is not None
        with contextlib.suppress(Exception):
            async with asyncio.timeout(STORE_TIMEOUT_S):
                await self.shared.remove(transfer_id)

    # --- the tool -------------------------------------------------------------------------

    async def transfer(self, call: CallHandle, to: str, summary: str) -> ToolOutcome:
        base = self.public_base()
        if base is None or not call.call_sid:
            return ToolOutcome({"error": "a warm transfer needs the server's public URL (TELEPHONY_PUBLIC_URL); offer a message instead"})
        summary = " ".join(summary.split())[:MAX_SUMMARY_CHARS] or "A caller would like to speak with you."
        briefing = asyncio.create_task(self._speak(briefing_text(summary), self.options_for(call.parameters)), name="briefing")
        pending = PendingTransfer(secrets.token_urlsafe(16), to, call.call_sid, briefing)
        self.pending[pending.id] = pending
        sharing = asyncio.create_task(self._share(pending), name="share-transfer") if self.shared is not None else None
        try:
            return await self._run(call, pending, base)
        finally:
            briefing.cancel()
            if briefing.done() and not briefing.cancelled():
                briefing.exception()  # seen here if no leg came to hear it
            self.pending.pop(pending.id, None)
            if pending.person_call_sid:
                self.by_person_call.pop(pending.person_call_sid, None)
            if sharing is not None:
                sharing.cancel()
                self._in_background(self._unshare(pending.id))

    async def _run(self, call: CallHandle, pending: PendingTransfer, base: str) -> ToolOutcome:
        inbound = call.parameters.get("direction", "inbound") == "inbound"
        our_number = call.parameters.get("called" if inbound else "caller", "")
        try:
            pending.person_call_sid = await self.rest.dial(
                to=pending.to,
                from_=our_number,
                url=f"{base}/transfer-leg?{TRANSFER_PARAMETER}={pending.id}",
                status_callback=f"{base}/status",
                events=("initiated", "ringing", "answered", "completed"),
                timeout_s=self.ring_s,
                machine_callback=f"{base}/amd",
            )
        except TwilioRestError as exc:
            call.log.error("warm transfer to %s could not be placed: %s", pending.to, exc)
            return ToolOutcome({"error": f"the call to {pending.to} could not be placed; the caller is still with you"})
        self.by_person_call[pending.person_call_sid] = pending
        call.log.info("warm transfer: calling %s", pending.to, extra={"person_call_sid": pending.person_call_sid})
        answer = await self.wait_for_answer(pending)
        if answer is Answer.ACCEPTED and await self._join(call, pending):
            return ToolOutcome({"result": WHAT_HAPPENED[Answer.ACCEPTED].format(who=pending.to)})
        if pending.answer.answer is Answer.ACCEPTED:
            answer = Answer.HUNG_UP
        with contextlib.suppress(TwilioRestError):
            await self.rest.hang_up(pending.person_call_sid)
        said = WHAT_HAPPENED[answer].format(who=pending.to)
        call.log.info("warm transfer not made: %s", answer.value)
        return ToolOutcome(
            {
                "result": f"{said[0].upper()}{said[1:]} The caller is back with you and heard only the hold tone: "
                "tell them, and offer another way to help (take a message, a call back)."
            }
        )

    async def wait_for_answer(self, pending: PendingTransfer) -> Answer:
        """Until the person's answer is decided, keeping its time limits (the ring here, the
        reply after the briefing on whichever instance carries their leg)."""
        started = self.clock()
        while not pending.decided.is_set():
            now = self.clock()
            pending.settle(pending.answer.tick(now))
            if not pending.leg_connected and now - started > self.ring_s + LEG_GRACE_S:
                pending.settle(pending.answer.gave_up(now, f"rang for {self.ring_s} s with no answer"))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    await pending.decided.wait()
        assert pending.answer.answer is not None
        return pending.answer.answer

    async def _join(self, call: CallHandle, pending: PendingTransfer) -> bool:
        """The person first (they wait a moment in the room), then the caller."""
        room = f"transfer-{pending.id}"
        assert pending.person_call_sid is not None
        try:
            await self.rest.redirect(pending.person_call_sid, conference(room))
        except TwilioRestError as exc:
            call.log.warning("warm transfer: the person left before joining: %s", exc)
            return False
        call.moving_off(f"warm transfer to {pending.to}")
        try:
            await self.rest.redirect(pending.caller_call_sid, conference(room))
        except TwilioRestError as exc:
            call.moving_off(None)
            call.log.error("warm transfer: the caller could not be joined: %s", exc)
            return False
        call.log.info("warm transfer made", extra={"to": pending.to, "person_call_sid": pending.person_call_sid})
        return True

    async def _speak(self, text: str, options: AgentOptions) -> bytes:
        """The briefing in the agent's voice: a Live session of its own reads it aloud."""
        reader = options.with_overrides(instructions=READER_INSTRUCTIONS, tools=())
        session = self.open_gemini(reader)
        out = GeminiToCaller()
        frames: list[bytes] = []
        try:
            async with asyncio.timeout(BRIEFING_TIMEOUT_S):
                await session.open()
                await session.send(UserTurn(READ_ALOUD + text))
                async for event in session.events():
                    if isinstance(event, AgentAudio):
                        frames.extend(out.process(event.pcm24k))
                    elif isinstance(event, TurnComplete) and frames or isinstance(event, SessionClosed):
                        break
        finally:
            await session.close()
        frames.extend(out.flush())
        if not frames:
            raise GeminiSessionError("the briefing came back without audio")
        return b"".join(frames)
