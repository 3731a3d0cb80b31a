"""`telephony bench stalls`: what the caller hears when the model goes silent, socket open.

For each stall kind (`testing.gemini_live.STALL_KINDS`) and for healthy calls, `calls` calls at
real time against a server in its own process and a realistic Gemini emulator that stalls on
every call's question. Measured on the wire at the Twilio emulator: the silence from the end
of the caller's question to the first frame of agent audio they heard (the hold tone while a
stall lasts is not counted as an answer: the silence ends with the agent's voice), and, from
the emulator, which step brought the model back: a nudge on the same connection, a resumed
connection, or a fresh session. A second part runs healthy calls on each model family's
realistic profile and counts nudges: any nudge there is a false recovery.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from telephony.audio.mulaw import decode_mulaw
from telephony.bench.load import _instructions, _Server, percentiles
from telephony.call.core import STALL_NUDGE
from telephony.gemini.models import Family
from telephony.testing.call_fixture import CallFixtureBuilder, FixtureMessage, caller_audio, parse_fixture_lines
from telephony.testing.gemini_live import REALISTIC, STALL_KINDS, ConnectionLog, Faults, GeminiLiveEmulator, Reply, ScriptedAgent, tone24k
from telephony.testing.twilio_media import ReplayResult, TwilioMediaEmulator

ANSWER_HZ = 660.0
ANSWER_S = 1.5
ANSWER_FRAMES = int(ANSWER_S / 0.02) - 2  # a frame or two at each edge may not count as voice
FAMILY_MODELS = {
    Family.NATIVE_AUDIO_25: "gemini-2.5-flash-native-audio-preview-12-2025",
    Family.FLASH_LIVE_31: "gemini-3.1-flash-live-preview",
    Family.LIVE_38: "gemini-3.8-live",
    Family.LIVE_38_THINKING: "gemini-3.8-live-extended-thinking",
}


@dataclass
class StallFigures:
    kind: str
    calls: int
    answered: int
    silence_s: dict[str, float | None]
    """The silence the caller sat through between the end of their question and the end of
    the answer (the time it took, less the answer's own length): a stalled reply's gap too."""
    answered_by: dict[str, int]
    """Recovery step that brought the model back -> calls."""
    errors: int


@dataclass
class FalseRecoveries:
    family: str
    calls: int
    nudged_calls: int
    errors: int


def _question_call(name: str) -> tuple[list[FixtureMessage], float]:
    """A caller asks one question (the recorded one) and waits 8 s on the line."""
    from telephony.bench.load import FIXTURE

    audio = np.frombuffer(decode_mulaw(caller_audio(FIXTURE)), dtype="<i2")
    question = audio[: int(3.6 * 8000)]
    builder = CallFixtureBuilder(name, {"caller": "+15550100001", "called": "+15550100002"})
    builder.silence(400).speech(question).silence(8000).stop()
    loud = np.flatnonzero(np.abs(question.astype(np.int32)) > 500)
    speech_end_s = 0.4 + (loud[-1] + 1) / 8000 if len(loud) else 0.4
    return parse_fixture_lines(builder.lines()), speech_end_s


def _is_agent_voice(frame: bytes) -> bool:
    """The answer (660 Hz), not the hold tone or silence: ~26 zero crossings in 20 ms."""
    pcm = np.frombuffer(decode_mulaw(frame), dtype="<i2").astype(np.int32)
    if np.abs(pcm).max() < 500:
        return False
    crossings = int(np.count_nonzero(np.diff(np.sign(pcm)) != 0))
    return 20 <= crossings <= 32


def _agent() -> ScriptedAgent:
    return ScriptedAgent([Reply(audio24k=tone24k(ANSWER_S, ANSWER_HZ), transcript="We are open until six.")])


def _connections_by_call(gemini: GeminiLiveEmulator) -> dict[str, list[ConnectionLog]]:
    """Each call's connections, by the instructions that name it (`?instructions=stall-N`)."""
    by_call: dict[str, list[ConnectionLog]] = {}
    for conn in gemini.connections:
        by_call.setdefault(_instructions(conn.setup).split("\n\n")[0], []).append(conn)
    return by_call


def _step(connections: list[ConnectionLog]) -> str:
    if len(connections) > 1:
        return "resume" if connections[-1].resumed_handle else "fresh"
    return "nudge" if any(STALL_NUDGE in text for text in connections[0].texts) else "none"


async def _calls(gemini: GeminiLiveEmulator, calls: int, model: str | None = None) -> list[ReplayResult | BaseException]:
    extra = {"TELEPHONY_MODEL": model} if model else {}
    server = _Server(gemini, calls, "uvloop", extra_env=extra)
    try:
        await server.wait_ready()

        async def one(index: int) -> ReplayResult:
            await asyncio.sleep(index * 0.2)
            messages, _ = _question_call(f"bench-stall-{index}")
            caller = TwilioMediaEmulator(messages, auth_token=server.auth_token)
            target = await caller.answer(server.url + f"/twiml?instructions=stall-{index}", {"CallSid": f"CA{index:032x}"})
            return await asyncio.wait_for(caller.play(target), 60)

        return await asyncio.gather(*(one(i) for i in range(calls)), return_exceptions=True)
    finally:
        server.stop()


async def run_stall_kind(kind: str | None, calls: int = 10) -> StallFigures:
    """`calls` calls whose model stalls in this way on the question (None: healthy)."""
    _, speech_end_s = _question_call("x")
    faults = Faults(stall=kind, stall_turns=set(range(1, calls + 1)), connections=set(range(1, 10 * calls)))
    async with GeminiLiveEmulator(_agent, faults=faults, realism=REALISTIC) as gemini:
        results = await _calls(gemini, calls)
    by_call = _connections_by_call(gemini)
    silences: list[float] = []
    answered_by: dict[str, int] = {}
    for index, result in enumerate(results):
        if not isinstance(result, ReplayResult):
            continue
        frames = [(at + i / 8000, chunk[i : i + 160]) for at, chunk in result.played for i in range(0, len(chunk), 160)]
        voice = sorted(at for at, frame in frames if at > speech_end_s and _is_agent_voice(frame))
        if len(voice) >= ANSWER_FRAMES:  # the whole answer was heard: the rest of the time was silence (or hold tone)
            silences.append(voice[ANSWER_FRAMES - 1] + 0.02 - speech_end_s - ANSWER_S)
        step = _step(by_call.get(f"stall-{index}", [])) if by_call.get(f"stall-{index}") else "lost"
        answered_by[step] = answered_by.get(step, 0) + 1
    ok = [r for r in results if isinstance(r, ReplayResult)]
    return StallFigures(kind or "no stall", calls, len(silences), percentiles(silences), answered_by, len(results) - len(ok))


async def run_false_recoveries(family: Family, calls: int = 100, at_once: int = 25) -> FalseRecoveries:
    """Healthy calls on a family's realistic profile: how many were nudged (should be none)."""
    nudged = errors = 0
    done = 0
    while done < calls:
        batch = min(at_once, calls - done)
        async with GeminiLiveEmulator(_agent, realism=replace(REALISTIC, seed=done + 1)) as gemini:
            results = await _calls(gemini, batch, FAMILY_MODELS[family])
        errors += sum(not isinstance(r, ReplayResult) for r in results)
        by_call = _connections_by_call(gemini)
        nudged += sum(any(STALL_NUDGE in t for c in conns for t in c.texts) for conns in by_call.values())
        done += batch
    return FalseRecoveries(family.value, calls, nudged, errors)


def kinds() -> list[str | None]:
    return [None, *sorted(STALL_KINDS)]


def figures_as_dict(figures: list[StallFigures], healthy: list[FalseRecoveries]) -> dict[str, Any]:
    return {"stalls": [asdict(f) for f in figures], "false_recoveries": [asdict(h) for h in healthy]}
