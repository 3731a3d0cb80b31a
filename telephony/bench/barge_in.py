"""`telephony bench barge-in`: the caller talks over agent audio that is already buffered.

The real service generates a reply far faster than real time, so by the time a caller talks
over it the whole answer may have been sent: Gemini then never says `interrupted` (it is not
generating any more), and only our own voice detection can cut the agent off. This bench
makes exactly that happen - the Gemini emulator sends each 8 s answer at once - and measures
on the wire, at the Twilio emulator: from the moment it sent the first frame of the caller's
interrupting words to the moment our `clear` arrived. Calls run concurrently against a
server in its own process, started a little apart; the same load is run with local barge-in
off (`TELEPHONY_BARGE_IN_MIN_SPEECH_MS=0`) for comparison.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from telephony.audio.mulaw import decode_mulaw
from telephony.bench.load import FIXTURE, _Server, percentiles
from telephony.testing.call_fixture import read_fixture, speech_onsets_s
from telephony.testing.gemini_live import GeminiLiveEmulator, Reply, ScriptedAgent, tone24k
from telephony.testing.twilio_media import ReplayResult, TwilioMediaEmulator


@dataclass
class BargeInFigures:
    calls: int
    min_speech_ms: int
    cleared_calls: int
    caller_to_clear_ms: dict[str, float | None]
    """First frame of the caller's interrupting words sent -> Twilio `clear` received."""
    old_reply_heard_after_barge_in_ms: dict[str, float | None]
    """Agent audio the caller still heard after starting to talk (what `clear` could not undo)."""
    errors: int


OLD_REPLY_HZ, NEW_REPLY_HZ = 440.0, 880.0


def _agent() -> ScriptedAgent:
    """A long first answer and a short second one, told apart by their pitch on the wire."""
    return ScriptedAgent(
        [Reply(audio24k=tone24k(8.0, OLD_REPLY_HZ), transcript="A long answer."), Reply(audio24k=tone24k(1.0, NEW_REPLY_HZ))]
    )


def _is_old_reply(frame: bytes) -> bool:
    """A frame of the 440 Hz answer (about 18 zero crossings in 20 ms; the 880 Hz one has 35)."""
    pcm = np.frombuffer(decode_mulaw(frame), dtype="<i2").astype(np.int32)
    if np.abs(pcm).max() < 500:
        return False
    crossings = int(np.count_nonzero(np.diff(np.sign(pcm)) != 0))
    return crossings < 26


async def run_barge_in(calls: int = 10, min_speech_ms: int = 300, loop: str = "uvloop") -> BargeInFigures:
    messages = read_fixture(FIXTURE)
    onset_s = speech_onsets_s(FIXTURE)[1]
    onset_frame = round(onset_s / 0.02)
    async with GeminiLiveEmulator(_agent, lead_s=60.0) as gemini:
        server = _Server(gemini, calls, loop, extra_env={"TELEPHONY_BARGE_IN_MIN_SPEECH_MS": str(min_speech_ms)})
        try:
            await server.wait_ready()

            async def one_call(index: int) -> ReplayResult:
                await asyncio.sleep(index * 0.25)
                emulator = TwilioMediaEmulator(messages, auth_token=server.auth_token, record_sends=True)
                target = await emulator.answer(server.url + "/twiml", {"CallSid": f"CA{index:032x}"})
                return await asyncio.wait_for(emulator.play(target), 60)

            results = await asyncio.gather(*(one_call(i) for i in range(calls)), return_exceptions=True)
        finally:
            server.stop()
    latencies, heard_after = [], []
    ok = [r for r in results if isinstance(r, ReplayResult)]
    for result in ok:
        if onset_frame >= len(result.media_sent_at):
            continue
        spoke_at = result.media_sent_at[onset_frame]
        if result.clears:
            latencies.append((result.clears[0] - spoke_at) * 1000)
        heard_after.append(sum(len(frame) for at, frame in result.played if at >= spoke_at and _is_old_reply(frame)) / 8)
    return BargeInFigures(
        calls=calls,
        min_speech_ms=min_speech_ms,
        cleared_calls=len(latencies),
        caller_to_clear_ms=percentiles(latencies),
        old_reply_heard_after_barge_in_ms=percentiles(heard_after),
        errors=len(results) - len(ok),
    )


def figures_as_dict(figures: BargeInFigures) -> dict[str, Any]:
    return asdict(figures)
