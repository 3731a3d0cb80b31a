"""Conversation tests: what the caller says, turn by turn, and what your agent did about it.

    from telephony.testing import Conversation, ModelStep

    async def test_booking():
        model = [ModelStep(say="Which day?"), ModelStep(tool="free_slots", args={"day": "friday"}, say="Nine or eleven.")]
        async with Conversation(agent, model) as call:
            await call.caller("I'd like an appointment.")
            turn = await call.caller("Friday, please.")
        assert turn.tool_calls[0].name == "free_slots" and "eleven" in turn.said

Offline, nothing is mocked: your `Agent` (its tools, timeouts, call control) runs in our
server, a caller dials it through the Twilio Media Streams emulator, and the Gemini Live
emulator plays the model, following `model`: at the caller's n-th turn it does the n-th step
(calls the tools, awaits their results, says the words). The caller's lines travel the whole
phone path as speech (espeak-ng where installed, otherwise a stand-in signal with the rhythm
of speech), so transcoding, turn-taking, barge-in, tools and records are exercised.

It runs `speed` times faster than real time, and loses nothing to it: each `caller()` returns
only once the model has finished its reply to that line (a slow tool is waited for) and the
caller has heard all of it. `with Conversation(...)` (no `async`) works in plain sync tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from telephony.testing.agent_turn import AgentTurn
from telephony.testing.caller_line import CallerLine
from telephony.testing.caller_speech import caller_speech_mulaw, speech_like
from telephony.testing.gemini_live import GeminiLiveEmulator
from telephony.testing.model_script import ModelStep, ScriptedModel
from telephony.testing.real_model import agent_acted, real_gemini_requested, real_settings, reply_settled
from telephony.testing.sync_conversation import SyncConversation, _LoopThread
from telephony.testing.text_model import SchemaFiller, TextModel
from telephony.testing.twilio_media import TwilioMediaEmulator
from telephony.testing.twilio_rest import FakeTwilioRest

if TYPE_CHECKING:
    from telephony.agents.agent import Agent
    from telephony.call.record import CallRecord, ToolRecord

TURN_TIMEOUT_S = 60.0
"""The most one `caller()` waits (wall time) for the agent's reply to be finished and heard."""


class Conversation:
    """One phone call to `agent`, driven line by line. See the module's docstring."""

    def __init__(
        self,
        agent: Agent,
        model: Sequence[ModelStep] = (),
        *,
        opening: ModelStep | None = None,
        speed: float = 8.0,
        transfer_numbers: Sequence[str] = (),
        real: bool | None = None,
        direction: str = "inbound",
        text_model: TextModel | None = None,
        **settings: Any,
    ) -> None:
        """`model`: a step per caller turn (offline); `opening`: what the model says first
        when the agent has a greeting; `speed`: how much faster than real time the call
        runs (offline); `real`: against the real Gemini Live model (default: when
        `TELEPHONY_TEST_REAL_GEMINI` is set; the model steps are then ignored and the call
        runs in real time); `direction`: the call's direction as the webhook says it (the
        call history shows eval runs as `eval`); `settings`: any `Settings` field for the
        server (e.g. `barge_in_min_speech_ms`, or `database_url` to keep the call)."""
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.agent = agent
        self.real = real_gemini_requested() if real is None else real
        self.direction = direction
        self.text_model = text_model
        """Offline: what answers text requests (post-call analysis); default `SchemaFiller`."""
        self.speed = 1.0 if self.real else speed
        self.model = ScriptedModel(model, opening)
        self.transfer_numbers = list(transfer_numbers)
        self.settings = settings
        self.record: CallRecord | None = None
        """The call's record (transcript, tools, timings), once it has ended."""
        self.rest = FakeTwilioRest("AC" + "0" * 32, secrets.token_hex(16))
        self._stack = contextlib.AsyncExitStack()
        self._line = CallerLine(self.rest.account_sid)
        """The caller's side of the stream: what they say, press, and when."""
        self.gemini: GeminiLiveEmulator | None = None
        self._caller: TwilioMediaEmulator | None = None
        self._call: asyncio.Task[Any] | None = None
        self._app: Any = None
        self._thread: _LoopThread | None = None

    # --- async use ------------------------------------------------------------------------

    async def __aenter__(self) -> Conversation:
        from telephony import create_app
        from telephony.settings import Settings
        from telephony.web.server import running_server

        try:
            await self._stack.enter_async_context(self.rest.running())
            fields: dict[str, Any] = {
                "twilio_account_sid": self.rest.account_sid,
                "twilio_auth_token": self.rest.auth_token,
                "twilio_api_base": self.rest.base_url,
                "transfer_numbers": self.transfer_numbers,
                "media_rate_limit": self.speed * 1.5,
                "database_url": "sqlite:///:memory:",
            }
            if self.real:
                settings = real_settings(fields | self.settings)
            else:
                emulator = GeminiLiveEmulator(self.model, speed=self.speed, text_model=self.text_model or SchemaFiller())
                gemini = await self._stack.enter_async_context(emulator)
                self.gemini = gemini
                fields |= {"gemini_api_key": "offline", "gemini_base_url": gemini.base_url, "gemini_ca_file": gemini.ca_file}
                fields["stall_seconds"] = 0.0  # a script may leave the model silent on purpose
                settings = Settings(_env_file=None, **(fields | self.settings))
            self._app = create_app(settings, agent=self.agent)
            base = await self._stack.enter_async_context(running_server(self._app))
            settings.public_url = base
            self._caller = TwilioMediaEmulator([], speed=self.speed, auth_token=self.rest.auth_token)
            self._caller.live = self._line.frames(self._caller)
            self._call = asyncio.create_task(self._dial(f"{base}/twiml"))
            await self._until(lambda: self._driver() is not None and self._driver().core.state.value == "active", "the call to be up")
            if self.real and getattr(self.agent, "greeting", None):
                await self._until_settled(0, 0, since_s=0.0)
            elif self.model.opening is not None and not self.real:  # the agent speaks first: its greeting is heard
                await self._until(lambda: self.model.replies >= 1, "the model to greet the caller")
                await self._until_answered(1)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.hang_up()
        finally:
            await self._stack.aclose()

    async def caller(self, text: str, keypad: str = "") -> AgentTurn:
        """The caller says `text` (then presses the `keypad` keys, e.g. "1234#"); returns once
        the agent's reply has been made and heard."""
        if self._call is None:
            raise RuntimeError("use the conversation inside `async with Conversation(...)`")
        if self._call.done():
            raise AssertionError(f"the call has ended ({self._end_reason()}): the caller cannot say {text!r}")
        record = self._live_record()
        lines_before, tools_before = len(record.transcript), len(record.tool_calls)
        replies_before = self.model.replies
        self.model.lines.append(text)
        mulaw, speech_s = caller_speech_mulaw(text)
        lines_sent = len(self._line.started_s)
        await self._line.queue.put((mulaw, speech_s))
        if keypad:
            await self._line.queue.put(keypad)
        if self.real:
            caller = self._caller
            assert caller is not None
            spoken = lambda: len(self._line.started_s) > lines_sent and caller.call_time() >= self._line.ends_s  # noqa: E731
            await self._until(lambda: spoken() or self._call.done(), f"the caller to say {text!r}")
            await self._until_settled(lines_before, tools_before, since_s=caller.call_time())
        else:
            await self._until(lambda: self.model.replies > replies_before or self._call.done(), f"the model to hear {text!r}")
            await self._until_answered(self.model.replies)
        said = " ".join(line.text.strip() for line in record.transcript[lines_before:] if line.speaker == "agent")
        return AgentTurn(said=said, tool_calls=list(record.tool_calls[tools_before:]), response_ms=self._response_ms(speech_s))

    def _response_ms(self, speech_s: float) -> float | None:
        return self.first_audio_after_ms(self._line.started_s[-1] + speech_s if self._line.started_s else None)

    # --- for a caller that is not line by line (a simulated caller) -----------------------

    def call_time(self) -> float:
        """Seconds of call time since the stream opened."""
        return self._caller.call_time() if self._caller is not None else 0.0

    def played_between(self, start_s: float, end_s: float) -> bytes:
        """The mu-law the caller's phone played between two call times."""
        player = self._caller.player if self._caller is not None else None
        return player.played_between(start_s, end_s) if player is not None else b""

    def speak_audio(self, mulaw: bytes) -> None:
        """Caller audio (8 kHz mu-law) down the line, after what is queued already."""
        self._line.queue.put_nowait((mulaw, len(mulaw) / 8000))

    def first_audio_after_ms(self, spoke_until_s: float | None) -> float | None:
        """From `spoke_until_s` (call seconds) to the first agent audio at the phone."""
        player = self._caller.player if self._caller is not None else None
        if player is None or spoke_until_s is None:
            return None
        first = next((at for at in player.arrivals if at >= spoke_until_s), None)
        return None if first is None else round((first - spoke_until_s) * 1000, 1)

    async def until_reply_settled(self, lines_before: int, tools_before: int, since_s: float) -> None:
        """Until the real model's reply is finished: it acted since, then went quiet."""
        await self._until_settled(lines_before, tools_before, since_s)

    async def stay_silent(self, seconds: float) -> None:
        """The caller says nothing for `seconds` of call time (or until the call ends)."""
        until = self.call_time() + seconds
        await self._until(lambda: self.call_time() >= until or self.ended, f"{seconds:g} s of the caller's silence")

    async def hang_up(self) -> CallRecord | None:
        """The caller hangs up (if the call is still on); returns the call's record."""
        if self._call is None:
            return self.record
        if not self._call.done():
            await self._line.queue.put(None)
        await asyncio.wait_for(asyncio.shield(self._call), TURN_TIMEOUT_S)
        result = self._call.result()
        self.record = self._app.state.recent_calls.get(result.call_sid) if self._app is not None else None
        return self.record

    # --- what happened --------------------------------------------------------------------

    @property
    def transcript(self) -> list[tuple[str, str]]:
        """(speaker, text) of every line so far: caller, agent, tool, keypad, system."""
        return [(line.speaker, line.text.strip()) for line in self._any_record().transcript]

    @property
    def current_record(self) -> CallRecord:
        """The call's record as it stands (live), or as it ended."""
        return self._any_record()

    @property
    def tool_calls(self) -> list[ToolRecord]:
        return list(self._any_record().tool_calls)

    @property
    def server_settings(self) -> Any:
        """The `Settings` of the server the call is made to."""
        if self._app is None:
            raise RuntimeError("use the conversation inside `async with Conversation(...)`")
        return self._app.state.settings

    @property
    def ended(self) -> bool:
        """The call is over (the agent hung up, or the caller did)."""
        return self._call is not None and self._call.done()

    @property
    def end_reason(self) -> str:
        return self._end_reason()

    @property
    def transferred_to(self) -> str | None:
        """The number the agent transferred the call to (through Twilio's REST API), if any."""
        for update in self.rest.updates():
            twiml = update.form.get("Twiml", "")
            if "<Dial>" in twiml:
                return twiml.split("<Dial>", 1)[1].split("</Dial>", 1)[0]
        return None

    # --- sync use -------------------------------------------------------------------------

    def __enter__(self) -> SyncConversation:
        self._thread = _LoopThread()
        self._thread.run(self.__aenter__())
        return SyncConversation(self, self._thread)

    def __exit__(self, *exc: object) -> None:
        assert self._thread is not None
        try:
            self._thread.run(self.__aexit__(*exc))
        finally:
            self._thread.stop()

    # --- inside ---------------------------------------------------------------------------

    async def _dial(self, webhook_url: str) -> Any:
        assert self._caller is not None
        target = await self._caller.answer(webhook_url, {"Direction": self.direction})
        return await self._caller.play(target)

    def _driver(self) -> Any:
        calls = self._app.state.voice.active_calls if self._app is not None else set()
        return next(iter(calls), None)

    def _live_record(self) -> CallRecord:
        driver = self._driver()
        if driver is None:
            raise AssertionError(f"the call has ended ({self._end_reason()})")
        record: CallRecord = driver.record
        return record

    def _any_record(self) -> CallRecord:
        driver = self._driver()
        if driver is not None:
            return driver.record
        if self.record is None and self._call is not None and self._call.done() and self._app is not None:
            self.record = self._app.state.recent_calls.get(self._call.result().call_sid)
        if self.record is None:
            raise AssertionError("no call has been made")
        return self.record

    def _end_reason(self) -> str:
        with contextlib.suppress(AssertionError):
            return self._any_record().end_reason or ""
        return ""

    async def _until_answered(self, replies: int) -> None:
        """Until the model has finished `replies` replies and the caller has heard them all."""

        def finished() -> bool:
            if self._call is None or self._call.done():
                return True
            assert self.gemini is not None
            done = sum(c.replies_finished for c in self.gemini.connections)
            driver = self._driver()
            if driver is None:
                return False
            core, record = driver.core, driver.record
            # Every reply's audio, the fillers' included (a filler can be longer than the
            # answer: counting it as the answer returned before the answer had arrived).
            owed_ms = self.model.owed_audio_ms + sum(c.filler_audio_ms for c in self.gemini.connections)
            arrived = record.agent_audio_ms >= owed_ms - 1 and len(record.tool_calls) >= self.model.owed_tool_results
            quiet = core.playout.idle and not core.turn.open and not core.tools.running
            return done >= replies and arrived and quiet and not driver.tools_running  # (a hang-up after a goodbye included)

        await self._until(finished, "the agent's reply to be finished and heard")

    async def _until_settled(self, lines_before: int, tools_before: int, since_s: float) -> None:
        """Until the real model's reply is finished (`real_model`): it acted, then went quiet."""
        caller = self._caller
        assert caller is not None
        quiet_since: float | None = None

        def settled() -> bool:
            nonlocal quiet_since
            driver = self._driver()
            if self._call is None or self._call.done():
                return True
            if driver is None:
                return False
            now = caller.call_time()
            core = driver.core
            quiet = core.playout.idle and not core.turn.open and not core.tools.running and not driver.tools_running
            quiet_since = (quiet_since if quiet_since is not None else now) if quiet else None
            acted, after_tool = agent_acted(driver.record, lines_before, tools_before)
            return quiet and reply_settled(acted, after_tool, now - (quiet_since or now), now - since_s)

        await self._until(settled, "the agent's reply to be finished and heard")

    async def expect_said(self, *criteria: str, turn: AgentTurn | None = None) -> None:
        """Assert what the agent said (in `turn`, or in the whole call so far). Offline each
        criterion is words the agent said (case ignored); against the real model a Gemini
        judge decides each criterion ("asks for the tracking number") from the transcript.
        Raises AssertionError naming the criteria not met, with the judge's reasons."""
        from telephony.testing.judge import expect_said

        settings = self.server_settings if self.real else None
        await expect_said(settings, self.transcript, criteria, turn.said if turn is not None else None)

    async def _until(self, condition: Any, what: str) -> None:
        deadline = time.monotonic() + TURN_TIMEOUT_S
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {TURN_TIMEOUT_S:.0f} s for {what}; transcript so far: {self._safe_transcript()}")
            await asyncio.sleep(0.005)

    def _safe_transcript(self) -> list[tuple[str, str]]:
        with contextlib.suppress(AssertionError):
            return self.transcript
        return []


__all__ = ["AgentTurn", "Conversation", "ModelStep", "SyncConversation", "caller_speech_mulaw", "speech_like"]
