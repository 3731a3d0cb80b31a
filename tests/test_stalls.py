"""Silent stalls through the whole phone path: the emulated model goes quiet with its socket
open, in each way the real service has been seen to, and the caller is answered anyway."""

from __future__ import annotations

from dataclasses import replace

import pytest

from telephony.testing.call_fixture import read_fixture
from telephony.testing.gemini_live import STALL_KINDS, Faults, GeminiLiveEmulator, Reply, ScriptedAgent, tone24k

from conftest import FIXTURES, offline_stack

ANSWERED_BY = {"empty_turn": "nudge", "mid_sentence": "nudge", "no_answer": "resume", "phantom_interrupt": "resume", "tone": "resume"}


def caller_waits_on_the_line(extra_s: float = 24.0):
    messages = read_fixture(FIXTURES / "one_sentence.jsonl")
    return [replace(m, at_ms=m.at_ms + int(extra_s * 1000)) if m.event == "stop" else m for m in messages]


@pytest.mark.parametrize("kind", sorted(STALL_KINDS))
async def test_a_stalled_model_is_brought_back_and_the_caller_hears_the_answer(kind):
    answer = Reply(audio24k=tone24k(1.0, 660.0), transcript="We are open until six.")
    async with GeminiLiveEmulator(ScriptedAgent([answer]), speed=4.0, faults=Faults(stall=kind)) as gemini:
        async with offline_stack(gemini, stall_seconds=2.0) as stack:
            result = await stack.replay(caller_waits_on_the_line())
            (record,) = stack.records()
            metrics = stack.app.state.voice.metrics.render().decode()
    assert gemini.stalls == [kind]
    (stall,) = record.stalls
    assert stall["kind"] == kind and stall["answered_at"] == ANSWERED_BY[kind]
    assert stall["silence_ms"] is not None and stall["silence_ms"] < 4000, "answered within 4 s of the caller's last word"
    assert record.outcome == "completed" and result.caller_hung_up, "the call went on"
    heard_answer = sum(len(frame) for at, frame in result.played) / 8000
    assert heard_answer >= 0.99, "the answer (and for a cut reply, its rest) was heard"
    assert any(line.speaker == "system" and "went silent" in line.text for line in record.transcript)
    assert f'telephony_gemini_stalls_total{{kind="{kind}",step="nudge"}} 1.0' in metrics
    if ANSWERED_BY[kind] == "resume":
        assert len(gemini.connections) == 2 and gemini.connections[1].resumed_handle
    if kind == "tone":
        assert result.clears, "the tone was cut off"


async def test_a_healthy_call_is_never_nudged():
    answers = [Reply(audio24k=tone24k(1.0), transcript="Hello."), Reply(audio24k=tone24k(1.0), transcript="Sunday: closed.")]
    async with GeminiLiveEmulator(ScriptedAgent(answers), speed=4.0) as gemini:
        async with offline_stack(gemini, stall_seconds=2.0) as stack:
            await stack.replay("barge_in")
            (record,) = stack.records()
    assert record.stalls == [] and gemini.stalls == []
    assert not any("caller is waiting" in text for text in gemini.connections[0].texts)
