"""How the emulated model speaks on the wire: audio chunks faster than real time (never more
than `lead_s` ahead of playout) with their transcript pieces, and the end of the turn as the
session's model family sends it (3.x bundles it into the last chunk). A part of the emulated
session (`emulated_session`), kept apart from what the model decides to say."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from telephony.testing.gemini_faults import ConnectionLog, fragments
from telephony.testing.scripted_model import OUTPUT_RATE, Reply

if TYPE_CHECKING:
    from telephony.testing.model_profiles import ModelProfile

OUTPUT_MIME_TYPE = "audio/pcm;rate=24000"


class Speaking:
    if TYPE_CHECKING:  # what the session gives this part
        emulator: Any
        conn: ConnectionLog
        profile: ModelProfile

        async def send(self, message: dict[str, Any]) -> None: ...

    async def _stream_only(self, reply: Reply) -> None:
        """Audio (and its transcript, if any) with no end of turn: a stalled reply."""
        if reply.audio24k is None:
            return
        pcm = reply.audio24k.astype("<i2").tobytes()
        step = OUTPUT_RATE * 2 * self.emulator.chunk_ms // 1000
        start = time.monotonic()
        said = [reply.transcript] if reply.transcript else []
        for offset in range(0, len(pcm), step):
            due = start + (offset / 2 / OUTPUT_RATE - self.emulator.lead_s) / self.emulator.speed
            if (delay := due - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            content: dict[str, Any] = {
                "modelTurn": {
                    "parts": [
                        {
                            "inlineData": {
                                "mimeType": OUTPUT_MIME_TYPE,
                                "data": base64.b64encode(pcm[offset : offset + step]).decode("ascii"),
                            }
                        }
                    ]
                }
            }
            if said:
                content["outputTranscription"] = {"text": said.pop()}
            await self.send({"serverContent": content})

    async def _transcript(self, kind: str, text: str) -> None:
        """A transcript, whole (kind) or in sub-word fragments (realistic)."""
        realism = self.emulator.realism
        pieces = fragments(text, self.emulator._rng) if realism is not None and realism.fragment_transcripts else [text]
        for piece in pieces:
            await self.send({"serverContent": {kind: {"text": piece}}})

    async def _stream(
        self, audio24k: np.ndarray | None, transcript: str, late_input: str | None = None, status: str | None = None, filler: bool = False
    ) -> None:
        """Speech and its transcript, faster than real time, then the end of the turn. 3.x
        bundles: the last chunk carries the turn's end in the same message. A `filler`'s
        audio is counted as sent (`ConnectionLog.filler_audio_ms`) once it is on the wire."""
        realism = self.emulator.realism
        rng = self.emulator._rng
        bundle = self.profile.bundles_parts
        said = fragments(transcript, rng) if realism is not None and realism.fragment_transcripts else [transcript]
        said = [piece for piece in said if piece]
        last: dict[str, Any] | None = None
        last_ms = 0.0
        if audio24k is not None and len(audio24k):
            pcm = audio24k.astype("<i2").tobytes()
            step = OUTPUT_RATE * 2 * self.emulator.chunk_ms // 1000
            start = time.monotonic()
            speed = self.emulator.speed
            for offset in range(0, len(pcm), step):
                # Faster than real time, but never more than `lead_s` ahead of playout.
                due = start + (offset / 2 / OUTPUT_RATE - self.emulator.lead_s) / speed
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                audio = pcm[offset : offset + step]
                chunk_ms = len(audio) / (OUTPUT_RATE * 2 / 1000)
                chunk = base64.b64encode(audio).decode("ascii")
                content: dict[str, Any] = {"modelTurn": {"parts": [{"inlineData": {"mimeType": OUTPUT_MIME_TYPE, "data": chunk}}]}}
                if said:  # one transcript piece rides with each chunk, as the service does
                    content["outputTranscription"] = {"text": said.pop(0)}
                if late_input is not None and bundle:  # the caller's words, transcribed after the reply began
                    content["inputTranscription"] = {"text": late_input}
                    late_input = None
                if bundle and offset + step >= len(pcm) and not said:
                    last, last_ms = content, chunk_ms  # sent with the turn's end
                    break
                if self.emulator.record_timings:
                    self.conn.audio_sent_at.append(time.monotonic())
                await self.send({"serverContent": content})
                if filler:
                    self.conn.filler_audio_ms += chunk_ms
                if late_input is not None:
                    await self._transcript("inputTranscription", late_input)
                    late_input = None
        for piece in said:
            await self.send({"serverContent": {"outputTranscription": {"text": piece}}})
        if late_input is not None:
            await self._transcript("inputTranscription", late_input)
        if last is not None and self.emulator.record_timings:
            self.conn.audio_sent_at.append(time.monotonic())
        await self._end_turn(last, status)
        if filler:
            self.conn.filler_audio_ms += last_ms

    async def _end_turn(self, content: dict[str, Any] | None = None, status: str | None = None) -> None:
        end: dict[str, Any] = {"generationComplete": True, "turnComplete": True}
        if status is not None:
            end["interactionStatus"] = status
        if content is not None or self.profile.bundles_parts:
            await self.send({"serverContent": {**(content or {}), **end}})
        else:
            await self.send({"serverContent": {"generationComplete": True}})
            await self.send({"serverContent": {k: v for k, v in end.items() if k != "generationComplete"}})
        realism = self.emulator.realism
        if realism is not None and realism.usage_metadata:
            usage = {
                "promptTokenCount": 250 + 32 * self.conn.turns,
                "responseTokenCount": 60,
                "totalTokenCount": 310 + 32 * self.conn.turns,
            }
            if self.profile.rules.thinking_level_required:
                usage["thoughtsTokenCount"] = 120
            await self.send({"usageMetadata": usage})
