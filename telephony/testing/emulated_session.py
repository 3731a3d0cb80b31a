"""One connection of the Gemini Live emulator: the setup, then caller audio in and the
model's replies out, as the session's model family would give them (`model_profiles`), with
its faults and stalls."""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import itertools
import json
import logging
import time
from typing import Any

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from telephony.gemini.models import Family, ToolBehavior
from telephony.testing.emulated_setup import receive_setup
from telephony.testing.emulated_speech import Speaking
from telephony.testing.gemini_faults import FILLER_TEXT, STALL_KINDS, ConnectionLog, Faults
from telephony.testing.gemini_wire import EnergyVad, decode_bytes_field, normalize_keys
from telephony.testing.model_profiles import (
    DEADLINE_CLOSE_REASON,
    ModelProfile,
    profile_for,
    tool_response_refusal,
)
from telephony.testing.scripted_model import INPUT_RATE, CallerTurn, EmulatedToolCall, Reply, tone24k

log = logging.getLogger("telephony.testing.gemini_live")
OUTPUT_MIME_TYPE = "audio/pcm;rate=24000"


class _EmulatedSession(Speaking):
    """One connection: setup, then caller audio in, agent replies out."""

    def __init__(self, emulator: Any, ws: ServerConnection, conn: ConnectionLog) -> None:
        self.emulator, self.ws, self.conn = emulator, ws, conn
        self.agent = emulator._agent_of_connection[conn.number] = emulator.agent_for_connection()
        self.faults = emulator.faults if conn.number in emulator.faults.connections else Faults()
        self.reply_task: asyncio.Task[None] | None = None
        self.tool_waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.reply_tool_ids: list[str] = []  # tool calls of the reply being spoken
        self._tool_called = asyncio.Event()
        self.vad: EnergyVad | None = None
        self.manual_activity: list[np.ndarray] | None = None
        self.resumable = False
        self.send_lock = asyncio.Lock()
        self._ids = itertools.count(1)
        self.profile: ModelProfile = profile_for(emulator.model or "")
        self.declared: dict[str, str | None] = {}
        """Tool name -> declared behaviour (None: the family's default)."""
        self.awaiting_history = False
        """3.x with `historyConfig`: client content is initial history until `turnComplete`."""
        self.agent_reply: asyncio.Task[None] | None = None
        """The task speaking the mind's latest answer to a caller's turn."""
        self.reply_said = False
        """Something of the reply being given (audio or a tool call) has gone out."""
        self.wedged = False
        """A stall that only a new connection gets past: this one hears nothing more."""
        self.owed: list[CallerTurn | Reply] = emulator._owed_by_connection.setdefault(conn.number, [])
        """What this session (and the ones resuming it) owes the caller after a stall."""

    async def send(self, message: dict[str, Any]) -> None:
        async with self.send_lock:
            if self.emulator.record_messages:
                self.conn.messages.append(message)
            await self.ws.send(json.dumps(message))
            if "modelTurn" in (message.get("serverContent") or {}) or "toolCall" in message:
                self.reply_said = True

    async def run(self) -> None:
        setup = await receive_setup(self)
        if setup is None:
            return
        faults = self.emulator.faults
        if faults.setup_delay_s and self.conn.number in faults.setup_delay_connections:
            await asyncio.sleep(faults.setup_delay_s / self.emulator.speed)
        await self.send({"setupComplete": {}})
        realism = self.emulator.realism
        if realism is not None and realism.unknown_message:
            await self.send({"serverCapabilities": {"someFutureField": True}})  # unknown to the SDK
        fault_task = asyncio.create_task(self._inject_faults())
        try:
            async for raw in self.ws:
                if isinstance(raw, bytes):
                    raw = raw.decode("utf-8", "replace")
                try:
                    message = normalize_keys(json.loads(raw))
                except json.JSONDecodeError:
                    await self.ws.close(1007, "invalid JSON")
                    return
                await self._dispatch(message)
        finally:
            fault_task.cancel()
            if self.reply_task is not None:
                unsaid = self.reply_task is self.agent_reply and not self.reply_task.done() and not self.reply_said
                self.reply_task.cancel()
                take_back = getattr(self.agent, "take_back", None)
                if unsaid and take_back is not None:
                    take_back()  # the connection died before a word of it: the model will answer again

    async def _dispatch(self, message: dict[str, Any]) -> None:
        if self.emulator.record_messages and not (message.get("realtime_input") or {}).get("audio"):
            self.conn.client_messages.append(message)
        realtime = message.get("realtime_input")
        if isinstance(realtime, dict):
            await self._realtime_input(realtime)
        content = message.get("client_content")
        if isinstance(content, dict):
            turns = content.get("turns") or []
            if self.profile.family is not Family.NATIVE_AUDIO_25 and any(not t.get("role") for t in turns):
                await self.ws.close(1007, "Request contains an invalid argument.")  # a turn without a role, on 3.x
                return
            if self.awaiting_history or not content.get("turn_complete"):
                self.conn.history.extend(turns)  # taken in; no answer
                seeded = " ".join(p["text"] for t in turns for p in t.get("parts") or [] if p.get("text"))
                if seeded:
                    self.conn.texts.append(seeded)
                if content.get("turn_complete"):
                    self.awaiting_history = False
                heard_history = getattr(self.agent, "heard_history", None)
                if heard_history is not None:  # a script goes on where the conversation is
                    heard_history(sum(1 for t in self.conn.history if t.get("role") == "model"))
                return
            texts = [p.get("text", "") for t in turns for p in t.get("parts") or []]
            text = " ".join(t for t in texts if t)
            if text:
                self.conn.texts.append(text)
                await self._caller_turn(CallerTurn(index=self.conn.turns, text=text))
        response = message.get("tool_response")
        if isinstance(response, dict):
            for item in response.get("function_responses") or []:
                refusal = tool_response_refusal(item, self.profile)
                if refusal is not None:
                    await self.ws.close(1007, refusal)
                    return
                self.conn.tool_responses.append(item)
                waiter = self.tool_waiters.pop(str(item.get("id")), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(item)

    async def _realtime_input(self, realtime: dict[str, Any]) -> None:
        audio = realtime.get("audio") or next(iter(realtime.get("media_chunks") or []), None)
        if isinstance(audio, dict) and audio.get("data"):
            try:
                pcm = decode_bytes_field(audio["data"])
            except (binascii.Error, ValueError):
                await self.ws.close(1007, "audio.data is not base64")
                return
            self.conn.audio_in_bytes += len(pcm)
            if self.emulator.record_messages:
                self.conn.caller_audio += pcm
            if self.emulator.record_timings:
                self.conn.audio_received_at.append(time.monotonic())
            samples = np.frombuffer(pcm[: len(pcm) & ~1], dtype="<i2")
            if self.vad is not None:
                for kind, utterance in self.vad.feed(samples):
                    if kind == "start":
                        await self._caller_started()
                    elif utterance is not None and len(utterance):
                        await self._caller_turn(CallerTurn(index=self.conn.turns, audio16k=utterance))
            elif self.manual_activity is not None:
                self.manual_activity.append(samples)
        if realtime.get("activity_start") is not None:
            self.manual_activity = []
            await self._caller_started()
        if realtime.get("activity_end") is not None and self.manual_activity is not None:
            utterance = np.concatenate(self.manual_activity) if self.manual_activity else np.zeros(0, np.int16)
            self.manual_activity = None
            await self._caller_turn(CallerTurn(index=self.conn.turns, audio16k=utterance))
        if realtime.get("audio_stream_end") and self.vad is not None and self.vad.speaking:
            await self._caller_turn(CallerTurn(index=self.conn.turns, audio16k=self.vad.finish()))
        text = realtime.get("text")
        if isinstance(text, str) and text:
            self.conn.texts.append(text)
            await self._caller_turn(CallerTurn(index=self.conn.turns, text=text), interrupt=False)

    async def _caller_started(self) -> None:
        """Barge-in: caller speech while a reply is still being generated interrupts it."""
        if self.wedged:
            return
        if self.reply_task is not None and not self.reply_task.done():
            self.reply_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reply_task
            self.conn.interruptions += 1
            self.conn.interrupted_sent_at.append(time.monotonic())
            await self.send({"serverContent": {"interrupted": True}})
            if self.reply_tool_ids:  # as the service does: the interrupted turn's calls are void
                self.conn.tool_calls_cancelled += self.reply_tool_ids
                await self.send({"toolCallCancellation": {"ids": list(self.reply_tool_ids)}})
                self.reply_tool_ids = []

    async def _caller_turn(self, turn: CallerTurn, interrupt: bool = True) -> None:
        if self.wedged:
            return
        self.conn.turns += 1
        if turn.text is not None and self.owed:  # a nudge: what was owed is said now
            owed = self.owed.pop(0)
            reply = owed if isinstance(owed, Reply) else self.agent.reply(owed)
            if reply is not None:
                self.reply_task = asyncio.create_task(self._speak(reply))
            return
        if turn.text is not None and self.conn.history and self.conn.replies_started == 0 and self.emulator.stalls:
            # A fresh session seeded with the conversation answers the caller's last words
            # when asked to (after a stall nothing else brought back).
            last = next(
                (p.get("text", "") for t in reversed(self.conn.history) if t.get("role") == "user" for p in t.get("parts") or []), ""
            )
            reply = self.agent.reply(CallerTurn(index=self.conn.turns, audio16k=np.zeros(INPUT_RATE // 10, np.int16), text=last))
            if reply is not None:
                self.reply_task = asyncio.create_task(self._speak(reply))
            return
        if turn.audio16k is not None:
            self.emulator.caller_turns += 1
            kind = self._stall_kind()
            if kind is not None:
                await self._stall(kind, turn)
                return
        reply = self.agent.reply(turn)
        heard = None
        if turn.audio16k is not None:
            heard = (reply.heard if reply is not None else None) or f"[caller spoke {turn.seconds:.2f} s]"
        realism = self.emulator.realism
        late = heard is not None and reply is not None and realism is not None and realism.late_input_transcript
        if heard is not None and not late:
            await self._transcript("inputTranscription", heard)
        if reply is None:
            return
        if interrupt:
            await self._caller_started()
        elif self.reply_task is not None and not self.reply_task.done():
            return  # text while the agent talks: heard, but it does not cut the reply
        self.reply_task = self.agent_reply = asyncio.create_task(self._speak(reply, heard if late else None))

    def _stall_kind(self) -> str | None:
        if self.faults.stall is not None and self.emulator.caller_turns in self.faults.stall_turns:
            return self.faults.stall
        realism = self.emulator.realism
        if realism is not None and realism.stall_rate and self.emulator._rng.random() < realism.stall_rate:
            return self.emulator._rng.choice(sorted(STALL_KINDS))
        return None

    async def _stall(self, kind: str, turn: CallerTurn) -> None:
        """Go silent as the real service has been seen to (`STALL_KINDS`), socket open."""
        self.emulator.stalls.append(kind)
        await self._transcript("inputTranscription", f"[caller spoke {turn.seconds:.2f} s]")  # Gemini has the words
        if kind == "empty_turn":
            await self.send({"serverContent": {"turnComplete": True}})
        elif kind == "phantom_interrupt":  # a moment after the caller's words, with them silent
            await asyncio.sleep(0.5 / self.emulator.speed)
            await self.send({"serverContent": {"interrupted": True}})
        elif kind == "mid_sentence":
            reply = self.agent.reply(turn)
            if reply is not None and reply.audio24k is not None:
                cut = len(reply.audio24k) * 2 // 5
                first = Reply(audio24k=reply.audio24k[:cut], transcript=reply.transcript[: len(reply.transcript) // 2])
                rest = Reply(audio24k=reply.audio24k[cut:], transcript=reply.transcript[len(reply.transcript) // 2 :])
                self.owed.append(rest)
                self.reply_task = asyncio.create_task(self._stream_only(first))
            return
        elif kind == "tone":
            self.reply_task = asyncio.create_task(self._stream_only(Reply(audio24k=tone24k(14.0, 180.0, dbfs=-20.0))))
        self.owed.append(turn)
        self.wedged = kind in ("no_answer", "phantom_interrupt", "tone")

    async def _speak(self, reply: Reply, late_input: str | None = None) -> None:
        """One reply, as the session's model family would give it: BLOCKING calls awaited in
        silence first; NON_BLOCKING ones with the model talking meanwhile and the result
        used as its `scheduling` says; on Extended Thinking a filler, an IN_PROGRESS turn,
        the background calls, then the answer and IDLE."""
        self.conn.replies_started += 1
        self.reply_said = False
        self.reply_tool_ids = []
        if self.faults.reply_delay_s:
            await asyncio.sleep(self.faults.reply_delay_s / self.emulator.speed)
        profile = self.profile
        background = [c for c in reply.tool_calls if profile.tool_behavior(self.declared.get(c.name)) is ToolBehavior.NON_BLOCKING]
        blocking = [c for c in reply.tool_calls if c not in background]
        for call in blocking:
            await self._tool_result(await self._send_tool_call(call))
        speak_answer = True
        if background and profile.rules.split_turns:
            await self._stream(self._filler(reply), reply.filler or FILLER_TEXT, late_input, status="IN_PROGRESS", filler=True)
            late_input = None
            waiters = [await self._send_tool_call(call) for call in background]
            for waiter in waiters:
                await self._tool_result(waiter)
        elif background:
            waiters = [await self._send_tool_call(call) for call in background]
            filler = asyncio.create_task(self._stream(self._filler(reply), reply.filler or FILLER_TEXT, late_input, filler=True))
            late_input = None
            try:
                results = [await self._tool_result(waiter) for waiter in waiters]
                schedules = {self._scheduling(result) for result in results}
                if "INTERRUPT" in schedules and not (self.vad is not None and self.vad.speaking):
                    filler.cancel()  # stop talking and answer now (3.8 waits while the caller speaks)
                    await asyncio.gather(filler, return_exceptions=True)
                    if filler.cancelled():
                        await self._end_turn()  # the filler's turn, cut short
                else:
                    await filler  # WHEN_IDLE: once the filler is said
                speak_answer = schedules != {"SILENT"}
            finally:
                filler.cancel()
        if speak_answer:
            delay_s = reply.speech_delay_s
            realism = self.emulator.realism
            if delay_s is None:
                delay_s = self.emulator._rng.uniform(*realism.tool_speech_delay_s) if realism is not None and reply.tool_calls else 0.0
            if delay_s:
                await asyncio.sleep(delay_s / self.emulator.speed)
            self.conn.reply_started_at.append(time.monotonic())
            final = "IDLE" if profile.rules.split_turns else None
            await self._stream(reply.audio24k, reply.transcript, late_input, status=final)
        self.conn.replies_finished += 1
        if self.resumable:
            handle = self.emulator._issue_handle(self.conn, self.conn.turns)
            await self.send({"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}})

    def _filler(self, reply: Reply) -> np.ndarray:
        self.conn.fillers += 1
        return tone24k(self.profile.filler_s, freq_hz=330.0)

    @staticmethod
    def _scheduling(result: dict[str, Any] | None) -> str:
        if not result:
            return "WHEN_IDLE"
        return str(result.get("scheduling") or (result.get("response") or {}).get("scheduling") or "WHEN_IDLE")

    async def _send_tool_call(self, call: EmulatedToolCall) -> asyncio.Future[dict[str, Any]]:
        call_id = f"call-{self.conn.number}-{next(self._ids)}"
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.tool_waiters[call_id] = waiter
        self.reply_tool_ids.append(call_id)
        await self.send({"toolCall": {"functionCalls": [{"id": call_id, "name": call.name, "args": call.args}]}})
        self._tool_called.set()
        return waiter

    async def _tool_result(self, waiter: asyncio.Future[dict[str, Any]]) -> dict[str, Any] | None:
        try:
            async with asyncio.timeout(30):
                return await waiter
        except TimeoutError:
            log.warning("emulator: no tool response")
            return None

    async def _inject_faults(self) -> None:
        faults = self.faults
        with contextlib.suppress(ConnectionClosed, asyncio.CancelledError):
            if self.resumable:  # a handle is available from the start, as with the real service
                handle = self.emulator._issue_handle(self.conn, self.conn.turns)
                await self.send({"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}})
            deadline_s = faults.session_deadline_s
            realism = self.emulator.realism
            if deadline_s is None and realism is not None:
                deadline_s = self.profile.session_deadline_s
            deadline_at = None if deadline_s is None else deadline_s / self.emulator.session_age_speed
            plan = [
                (faults.go_away_after_s, "go_away"),
                (faults.close_after_s, "close"),
                (faults.drop_after_s, "drop"),
                (deadline_at, "deadline"),
            ]
            start = time.monotonic()
            speed = self.emulator.speed
            if faults.from_tool_call and any(at is not None for at, kind in plan if kind != "deadline"):
                # The session deadline still counts from setup: wait for the tool call only until then.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._tool_called.wait(), None if deadline_at is None else deadline_at / speed)
                called = time.monotonic()
                plan = [(at if kind == "deadline" or at is None else at + (called - start) * speed, kind) for at, kind in plan]
            due = sorted((at, kind) for at, kind in plan if at is not None)
            for at, kind in due:
                await asyncio.sleep(max(0.0, start + at / speed - time.monotonic()))
                if kind == "go_away":
                    await self.send({"goAway": {"timeLeft": f"{faults.go_away_time_left_s:g}s"}})
                    await asyncio.sleep(faults.go_away_time_left_s / speed)
                    await self.ws.close(1011, "deadline expired (after goAway)")
                    return
                if kind == "close":
                    await self.ws.close(faults.close_code, faults.close_reason)
                    return
                if kind == "drop":
                    self.ws.transport.abort()
                    return
                if kind == "deadline":  # 3.8 at 58:00: closed, and its handles refused after
                    self.emulator._deadline_handles.update(self.conn.handles_issued)
                    await self.ws.close(1011, DEADLINE_CLOSE_REASON)
                    return
