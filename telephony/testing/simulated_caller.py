"""A simulated caller for evals against the real model: a second Gemini Live session that is
given a persona (who the caller is, what they want) and talks to your agent over the phone
path: it hears what the caller's phone plays (8 kHz mu-law, gaps and cut-offs included) and
its voice goes down the line as the caller's audio.

It stops at `max_turns` caller turns (once the agent has answered the last), at `max_seconds`
of call time, when the agent ends the call, or when both sides have been silent for a while.
Offline (the emulated model), scenarios give the caller's lines instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from telephony.audio.transcode import CallerToGemini, GeminiToCaller
from telephony.testing.agent_turn import AgentTurn

if TYPE_CHECKING:
    from telephony.testing.conversation import Conversation

PERSONA_INSTRUCTIONS = """You are a person making a phone call to a business; a voice agent answers.
Stay in this role for the whole call: {persona}
Speak as a caller does on the phone: briefly, one thing at a time, and wait for the answer.
Never say that you are an AI or a simulation. When you have what you called for, say goodbye."""
KICK_OFF = "(The call has connected and no one has spoken yet. Speak first, as the caller.)"
HEAR_CHUNK_S = 0.1
"""How much of what the phone played goes to the persona at a time."""
BOTH_SILENT_S = 10.0
"""A call where nobody has said anything for this long (call seconds) is over."""


async def simulated_caller(call: Conversation, persona: str, *, max_turns: int = 8, max_seconds: float = 120.0) -> list[AgentTurn]:
    """Let a persona talk to the agent of `call` (a real-model `Conversation`); returns what
    the agent did after each of the persona's turns."""
    if not call.real:
        raise ValueError("a persona needs the real model: offline, give the caller's lines")
    from google.genai import types

    from telephony.web.composition import gemini_client_from

    settings = call.server_settings
    client = gemini_client_from(settings)  # the agent's own connection settings
    config = types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        system_instruction=PERSONA_INSTRUCTIONS.format(persona=persona.strip()),
        output_audio_transcription=types.AudioTranscriptionConfig(),
    )
    persona_state = _Persona(call)
    async with client.aio.live.connect(model=settings.gemini_model, config=config) as session:
        if not getattr(call.agent, "greeting", None):
            await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text=KICK_OFF)]), turn_complete=True)
        tasks = [asyncio.create_task(persona_state.hear(session)), asyncio.create_task(persona_state.speak(session, max_turns))]
        try:
            await persona_state.until_done(max_turns, max_seconds)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return persona_state.turns()


class _Persona:
    def __init__(self, call: Conversation) -> None:
        self.call = call
        self.turns_said = 0
        self.speaking_until_s = 0.0
        """When the persona's audio queued so far will have gone down the line (call seconds)."""
        self.spoke_until: list[float] = []
        self.last_sound_s = 0.0

    def _now(self) -> float:
        return self.call.call_time()

    async def hear(self, session: Any) -> None:
        """What the phone plays, at its pace, to the persona (16 kHz PCM)."""
        from google.genai import types

        to_persona = CallerToGemini()
        heard_until = self._now()
        while True:
            await asyncio.sleep(HEAR_CHUNK_S / self.call.speed)
            now = self._now()
            mulaw = self.call.played_between(heard_until, now)
            heard_until = now
            if mulaw.strip(b"\xff"):
                self.last_sound_s = now
            pcm = to_persona.process(mulaw)
            if pcm:
                await session.send_realtime_input(audio=types.Blob(data=pcm, mime_type="audio/pcm;rate=16000"))

    async def speak(self, session: Any, max_turns: int) -> None:
        """The persona's voice down the line as the caller's audio; counts its turns."""
        to_line = GeminiToCaller()
        while True:
            async for message in session.receive():
                content = message.server_content
                if content is None:
                    continue
                for part in (content.model_turn.parts or []) if content.model_turn else []:
                    if part.inline_data and part.inline_data.data and self.turns_said < max_turns:
                        self._queue(b"".join(to_line.process(part.inline_data.data)))
                if content.turn_complete or content.interrupted:
                    self._queue(b"".join(to_line.flush()))
                    if content.turn_complete and self.speaking_until_s > (self.spoke_until[-1] if self.spoke_until else 0.0):
                        self.turns_said += 1
                        self.spoke_until.append(self.speaking_until_s)

    def _queue(self, mulaw: bytes) -> None:
        if not mulaw:
            return
        start = max(self._now(), self.speaking_until_s)
        self.speaking_until_s = start + len(mulaw) / 8000
        self.last_sound_s = self.speaking_until_s
        self.call.speak_audio(mulaw)

    async def until_done(self, max_turns: int, max_seconds: float) -> None:
        while True:
            await asyncio.sleep(0.05)
            now = self._now()
            if self.call.ended or now >= max_seconds:
                return
            if now - max(self.last_sound_s, self.speaking_until_s) >= BOTH_SILENT_S:
                return
            if self.turns_said >= max_turns and now > self.speaking_until_s:
                with contextlib.suppress(AssertionError):
                    await self.call.until_reply_settled(0, 0, since_s=self.speaking_until_s)
                return

    def turns(self) -> list[AgentTurn]:
        """The agent's words and tools after each caller turn, from the call's record."""
        record = self.call.current_record
        caller_at = [line.at_ms for line in record.transcript if line.speaker == "caller"] or [0]
        bounds = [*caller_at[1:], 1 << 62]
        result = []
        for index, (start, end) in enumerate(zip(caller_at, bounds, strict=True)):
            said = " ".join(line.text.strip() for line in record.transcript if line.speaker == "agent" and start <= line.at_ms < end)
            tools = [tool for tool in record.tool_calls if start <= tool.at_ms < end]
            spoke_until = self.spoke_until[index] if index < len(self.spoke_until) else None
            result.append(AgentTurn(said=said, tool_calls=tools, response_ms=self.call.first_audio_after_ms(spoke_until)))
        return result
