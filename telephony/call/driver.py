"""The thin asyncio driver around the call core: the only code of a call that awaits.

It owns one task per job and nothing else decides: a Twilio reader, ONE Twilio writer (an
outbound queue: nobody else sends on the socket), the Gemini session's supervisor, one task
per running tool, and a timer set to the core's next deadline. Every input goes straight
into the `Call` core and the actions it returns are carried out without waiting: queued for
the writer, queued for Gemini, a task started or cancelled. `run()` returns once the core
says the call is over, after every task it started has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

from telephony.call.core import (
    Call,
    CancelTools,
    CloseStream,
    OpenAgent,
    RestartAgent,
    RunTool,
    SendGemini,
    SendTwilio,
    Settle,
)
from telephony.call.keeping import CallKeeping
from telephony.call.keypad import KeypadResult, KeypadRules
from telephony.call.outbound import OutboundQueue
from telephony.call.plan import SettingsAgent, conversation_so_far, plan_call
from telephony.call.record import CallRecord
from telephony.call.services import CallServices, TwilioConnection
from telephony.call.tool_api import CallAgent, CallTool, ToolOutcome
from telephony.gemini.events import AgentAudio, Interrupted, ToolCall
from telephony.gemini.messages import UserTurn
from telephony.gemini.resilient import ResilientGeminiSession
from telephony.gemini.session import GeminiSessionError
from telephony.live_objects import track
from telephony.logs import CallLogger
from telephony.twilio.media_streams import Outbound, start_of

log = logging.getLogger("telephony.call")

KEYPAD_GRACE_S = 3.0
"""Key presses wait this long for a keypad tool call before they are told to the model."""
WRITER_FLUSH_S = 2.0
"""At the end of a call, how long queued messages (a last goodbye frame) may take to go out."""
METRICS_EVERY_S = 0.25
"""The core's counts become Prometheus metrics this often during a call (and at its end)."""


class CallDriver:
    """Runs one Twilio stream's call: `await CallDriver(socket, services).run()`."""

    def __init__(self, twilio: TwilioConnection, services: CallServices) -> None:
        self.twilio = twilio
        self.services = services
        self.metrics = services.metrics
        self._log = CallLogger(log)
        self._loop = asyncio.get_running_loop()
        self.core = Call(services.call_config, self._loop.time(), logger=self._log)
        track(self)
        track(self.core)
        self.gemini: ResilientGeminiSession | None = None
        self.keeping = CallKeeping(services, self._log)
        self._outbound = OutboundQueue()  # for the one writer; a clear jumps it
        self._outbound_ready = asyncio.Event()
        self._outbound_sent = asyncio.Event()
        """Set by the writer whenever the queue is empty (the end of a call waits on it)."""
        self._done = asyncio.Event()
        self._close: CloseStream = CloseStream(1000, "call ended")
        self._tasks: set[asyncio.Task[Any]] = set()
        self._running_tools: dict[str, asyncio.Task[None]] = {}
        self.agent: CallAgent = SettingsAgent()
        self._call_tools: dict[str, CallTool] = {}
        self._waiters: dict[int, asyncio.Future[Any]] = {}
        self._tokens = itertools.count(1)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._metrics_due = 0.0

    @property
    def record(self) -> CallRecord:
        return self.core.record

    @property
    def tools_running(self) -> int:
        """Tool tasks still running, with what a tool does after its result (a hang-up)."""
        return len(self._running_tools)

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self) -> CallRecord:
        """Serve the call until it ends; returns its record. Never raises for a bad call."""
        self.metrics.active_calls.inc()
        writer = asyncio.create_task(self._write_twilio(), name="twilio-writer")
        self._spawn(self._read_twilio(), "twilio-reader")
        self._schedule_tick()
        try:
            await self._done.wait()
        finally:
            await self._finish(writer)
            self.metrics.active_calls.dec()
        return self.record

    def turn_away(self, reason: str, prompt: str) -> None:
        """Take no call on this stream: the caller hears `prompt`, then it closes."""
        self._feed(lambda now: self.core.turn_away(reason, prompt, now))

    def answered_by(self, kind: str) -> None:
        """Twilio's answering-machine detection for this call (`AnsweredBy`: human, machine_end_beep, ...)."""
        self._feed(self.core.answered_by, kind)

    def end_call(self, reason: str, prompt: str | None = None) -> None:
        """End the call from the server's side (drain, shutdown), after `prompt` if given."""
        self._feed(lambda now: self.core.request_end("ended_by_server", reason, now, prompt=prompt))

    # --- the tool-facing handle (telephony.call.tool_api.CallHandle) ------------------------

    @property
    def call_sid(self) -> str | None:
        return self.record.call_sid

    @property
    def stream_sid(self) -> str | None:
        return self.record.stream_sid

    @property
    def parameters(self) -> dict[str, str]:
        return self.record.parameters

    @property
    def log(self) -> CallLogger:
        return self._log

    async def play_audio(self, mulaw: bytes, timeout: float = 30.0) -> bool:
        return await self._wait(lambda token, now: self.core.play_audio(mulaw, token, now), timeout) is True

    async def wait_until_heard(self, timeout: float = 30.0) -> bool:
        return await self._wait(self.core.wait_heard, timeout) is True

    async def wait_for_goodbye(self, grace_s: float | None = None, timeout: float = 30.0) -> bool:
        return await self._wait(lambda token, now: self.core.watch_goodbye(token, now, grace_s), timeout) is True

    def moving_off(self, reason: str | None) -> None:
        self._feed(lambda now: self.core.moving_off(reason))

    async def collect_keypad(self, rules: KeypadRules) -> KeypadResult:
        result = await self._wait(lambda token, now: self.core.collect_keypad(token, rules, now), rules.timeout_s + 5)
        return result if isinstance(result, KeypadResult) else KeypadResult(0, None, "no answer from the call")

    # --- feeding the core -----------------------------------------------------------------

    def _feed(self, give: Callable[..., None], *args: Any) -> None:
        """Give the core one input (`give(*args, now)`), then carry out what it decided."""
        try:
            give(*args, self._loop.time())
        except Exception:  # a bug in one call must never take others down
            self._log.exception("call core failed")
            self._fail()
            return
        self._execute()

    def _fail(self) -> None:
        """A bug in this call (the core or one of its tasks): end it with 1011, once."""
        self.core.record.end_reason = self.core.record.end_reason or "internal error"
        self.core.outcome = "error"
        self._close = CloseStream(1011, "internal error")
        self._done.set()

    def _execute(self) -> int:
        """Carry out the core's actions; returns how many media frames went to the writer."""
        media = 0
        for action in self.core.take_actions():
            if isinstance(action, SendTwilio):
                self._outbound.push(action.kind, action.text)
                self._outbound_ready.set()
                media += action.kind is Outbound.MEDIA
            elif isinstance(action, SendGemini):
                if self.gemini is not None:
                    self.gemini.send(action.message)
            elif isinstance(action, Settle | KeypadResult):
                waiter = self._waiters.get(action.token)
                if waiter is not None and not waiter.done():
                    waiter.set_result(action.ok if isinstance(action, Settle) else action)
            elif isinstance(action, RunTool):
                task = self._spawn(self._run_tool(action.call), f"tool:{action.call.name}")
                self._running_tools[action.call.id] = task
                task.add_done_callback(functools.partial(self._tool_done, action.call.id))
            elif isinstance(action, CancelTools):
                for call_id in action.ids:
                    tool = self._running_tools.get(call_id)
                    if tool is not None:
                        tool.cancel()
            elif isinstance(action, OpenAgent):
                self._open_agent(action.parameters)
            elif isinstance(action, RestartAgent):
                if self.gemini is not None:
                    self.gemini.restart(action.reason, fresh=action.fresh)
            elif isinstance(action, CloseStream):
                self._close = action
                self._done.set()
        if self._loop.time() >= self._metrics_due and self.core.tally:
            self._publish_metrics()
        self._schedule_tick()
        return media

    def _publish_metrics(self) -> None:
        """What the core counted, as Prometheus metrics: at most every `METRICS_EVERY_S` of
        a call and at its end (a scrape comes every few seconds; a per-frame publish cost 3 %
        of the server's CPU in its counters' locks and label look-ups)."""
        self._metrics_due = self._loop.time() + METRICS_EVERY_S
        self.metrics.publish(*self.core.tally.take())

    def _schedule_tick(self) -> None:
        deadline = self.core.next_deadline()
        if deadline is None or deadline >= self._timer_at:
            return  # the timer already set fires first; its tick reschedules
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        self._feed(self.core.tick)

    # --- tasks ----------------------------------------------------------------------------

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _tool_done(self, call_id: str, task: asyncio.Task[None]) -> None:
        if self._running_tools.get(call_id) is task:
            del self._running_tools[call_id]

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error("call task %s failed: %r", task.get_name(), task.exception())
            if not self.core.ended:
                self._fail()

    async def _read_twilio(self) -> None:
        core = self.core
        while not core.ended:
            raw = await self.twilio.receive()
            if raw is None:
                self._feed(core.twilio_closed)
                return
            self.keeping.frame(raw)
            if not core.admitted and self.services.before_start is not None and (start := start_of(raw)) is not None:
                self._feed(core.shared_admission, await self.services.before_start(*start))
            self._feed(core.twilio_frame, raw)

    async def _write_twilio(self) -> None:
        """The one writer of the Twilio socket; says when it has sent everything queued."""
        while True:
            while not self._outbound:
                self._outbound_sent.set()
                self._outbound_ready.clear()
                await self._outbound_ready.wait()
            self._outbound_sent.clear()
            await self.twilio.send(self._outbound.pop())

    def _open_agent(self, parameters: dict[str, str]) -> None:
        record = self.record  # the core has bound the call's logger to its SIDs at `start`
        if self.keeping.started(record, recording=self.core.out.stereo is not None):
            self._spawn(self._write_recording(), "recording")
        plan = plan_call(
            parameters,
            agents=self.services.agents,
            builtin_tools=self.services.builtin_tools,
            base=self.services.agent_options,
            greeting=self.services.greeting,
            extra_voices=self.services.extra_voices,
            logger=self._log,
        )
        self.agent, self._call_tools, options = plan.agent, plan.tools, plan.options
        self._feed(self.core.use_limits, self.agent.call_limits)
        if record.call_sid and (kind := self.services.early_answered_by(record.call_sid)) is not None:
            self.answered_by(kind)
        if any(getattr(tool, "keypad", None) for tool in self._call_tools.values()):
            self._feed(self.core.expect_keypad, KEYPAD_GRACE_S)
        open_gemini = self.services.open_gemini  # not `self`: the session would point back at its driver
        self.gemini = ResilientGeminiSession(
            lambda: open_gemini(options),
            self.services.retry_policy,
            self._log,
            history=lambda: conversation_so_far(record),
        )
        if plan.greeting:
            self.gemini.send(UserTurn(plan.greeting))  # queued: it goes first, once the session is up
        self._spawn(self._run_agent(self.gemini), "gemini->call")

    async def _run_agent(self, gemini: ResilientGeminiSession) -> None:
        try:
            await gemini.open()
        except GeminiSessionError as exc:
            self._feed(self.core.agent_failed, str(exc))
            return
        self._feed(self.core.agent_ready)
        record = self.record
        async for event in gemini.events():
            started = time.perf_counter()
            self._feed(self.core.gemini_event, event)
            if isinstance(event, (AgentAudio, Interrupted)):
                # Inside our code only; the wire-level figures come from `telephony bench`.
                elapsed = time.perf_counter() - started
                if isinstance(event, Interrupted) and record.interruptions:
                    record.interrupted_to_clear_ms.append(elapsed * 1000)
                    self.metrics.interrupted_to_clear.observe(elapsed)
                elif isinstance(event, AgentAudio):
                    record.chunk_to_frame_ms.append(elapsed * 1000)
                    self.metrics.chunk_to_frame.observe(elapsed)
            if self.core.ended:
                return

    async def _write_recording(self, every_s: float = 1.0) -> None:
        """Hand what the core recorded to the keeping, once a second."""
        while True:
            await asyncio.sleep(every_s)
            await self.keeping.audio(self.core.take_recording())

    async def _run_tool(self, call: ToolCall) -> None:
        tool = self._call_tools.get(call.name)
        timeout_s = (tool.timeout_s if tool else None) or self.agent.tool_timeout_s or self.services.tool_timeout_s
        started = time.perf_counter()  # (the hold tone for a slow tool is the core's deadline)
        try:
            if tool is None:
                outcome = ToolOutcome({"error": f"unknown tool {call.name!r}", "status": "unknown_tool"})
            else:
                async with asyncio.timeout(timeout_s):
                    outcome = await tool.handler(self, call)
        except TimeoutError:
            outcome = ToolOutcome({"error": f"the tool did not answer within {timeout_s:g} s", "status": "timeout", "retryable": True})
        except Exception as exc:  # a failing tool is reported to the model, never fatal
            self._log.exception("tool %s raised", call.name)
            outcome = ToolOutcome({"error": f"{type(exc).__name__}: {exc}"})
        took_ms = (time.perf_counter() - started) * 1000
        error = outcome.response.get("error")
        level = logging.WARNING if error else logging.INFO
        self._log.log(level, "tool %s %s in %.0f ms", call.name, "failed" if error else "ok", took_ms, extra={"tool_error": error})
        scheduling = outcome.scheduling or (tool.scheduling if tool is not None else None)
        accepted = self.core.tool_finished(call, outcome.response, self._loop.time(), duration_ms=took_ms, scheduling=scheduling)
        self._execute()
        if accepted and outcome.then is not None:
            try:
                await outcome.then()
            except Exception:
                self._log.exception("tool %s failed after its response", call.name)

    async def _wait(self, register: Callable[[int, float], None], timeout: float) -> Any:
        """The value the core settles `token` with: True/False (`Settle`), or a `KeypadResult`."""
        token = next(self._tokens)
        waiter: asyncio.Future[Any] = self._loop.create_future()
        self._waiters[token] = waiter
        try:
            self._feed(lambda now: register(token, now))
            async with asyncio.timeout(timeout):
                return await waiter
        except TimeoutError:
            return False
        finally:
            self._waiters.pop(token, None)
            self.core.forget(token)

    # --- the end --------------------------------------------------------------------------

    async def _finish(self, writer: asyncio.Task[None]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_result(False)
        if self.gemini is not None:
            await self.gemini.close()
            if self.gemini.dropped_audio_bytes:
                self.metrics.dropped_audio_ms.labels("gemini_reconnect").inc(self.gemini.dropped_audio_bytes / 32)
        if self._outbound and not writer.done():  # the last frames (a goodbye's tail) go out
            self._outbound_sent.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(WRITER_FLUSH_S):
                    await self._outbound_sent.wait()
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        # The record is complete and stored before the socket closes, so that whoever sees
        # the call end (Twilio, a replay, a test) can read it at once.
        record = self.record
        record.ended_at = time.time()
        record.agent_audio_heard_ms = self.core.playout.heard_ms
        record.end_reason = record.end_reason or "twilio socket closed"
        record.outcome = self.core.outcome
        await self.keeping.ended(record, self.core.admitted, self.core.take_recording())
        with contextlib.suppress(Exception):
            await self.twilio.close(self._close.code, self._close.reason)
        self._publish_metrics()  # what the last moments counted
        if record.call_sid:
            self.metrics.calls.labels(self.core.outcome).inc()
            self._log.info(
                "call ended",
                extra={"reason": record.end_reason, "frames_in": record.frames_in, "frames_out": record.frames_out},
            )
