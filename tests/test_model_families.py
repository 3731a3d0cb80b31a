"""Every Live model family through the whole phone path: the emulator behaves like the family
the server's configured model belongs to, and each scenario must sound right to the caller.

Each cell of the matrix (family x scenario) is a real call: Twilio Media Streams emulator ->
our server -> the real google-genai SDK -> the Gemini Live emulator with that family's
profile. What the caller heard is measured at the Twilio emulator (frames played, marks
echoed); `make test` prints the matrix at the end (conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

import pytest

from telephony import Agent
from telephony.gemini.models import Family
from telephony.testing.call_fixture import read_fixture
from telephony.testing.gemini_live import EmulatedToolCall, Faults, GeminiLiveEmulator, Reply, ScriptedAgent, tone24k
from telephony.testing.twilio_rest import FakeTwilioRest

from conftest import ACCOUNT_SID, AUTH_TOKEN, FIXTURES, family_cell, offline_stack

MODELS = {
    Family.NATIVE_AUDIO_25: "gemini-2.5-flash-native-audio-preview-12-2025",
    Family.FLASH_LIVE_31: "gemini-3.1-flash-live-preview",
    Family.LIVE_38: "gemini-3.8-live",
    Family.LIVE_38_THINKING: "gemini-3.8-live-extended-thinking",
}
FAMILIES = pytest.mark.parametrize("family", list(MODELS), ids=[f.value for f in MODELS])
TRANSFER_TO = "+15550001111"
FILLER_S = 0.8  # the emulator profile's filler (model_profiles.ModelProfile.filler_s)


@contextlib.asynccontextmanager
async def family_stack(
    family: Family, model_agent, agent: Agent | None = None, faults: Faults | None = None, speed: float = 4.0, **settings
):
    rest = FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN)
    emulator = GeminiLiveEmulator(model_agent, speed=speed, faults=faults, session_age_speed=settings.pop("session_age_speed", 1.0))
    async with rest.running(), emulator as gemini:
        async with offline_stack(gemini, agent=agent, model=MODELS[family], twilio_api_base=rest.base_url, **settings) as stack:
            stack.rest = rest
            yield stack


def cell(family: Family, scenario: str, heard_s: float, note: str) -> None:
    family_cell(family.value, scenario, f"{heard_s:.2f} s: {note}")


def caller_waits(fixture: str, seconds: float):
    """The recorded call with the caller silent for `seconds` after the stream starts."""
    messages = read_fixture(FIXTURES / f"{fixture}.jsonl")
    return [m if m.event in ("connected", "start") else replace(m, at_ms=m.at_ms + int(seconds * 1000)) for m in messages]


def caller_stays(fixture: str, extra_s: float = 10.0):
    messages = read_fixture(FIXTURES / f"{fixture}.jsonl")
    return [replace(m, at_ms=m.at_ms + int(extra_s * 1000)) if m.event == "stop" else m for m in messages]


def lookup_reply() -> Reply:
    """The model looks order 7 up, then says it shipped."""
    return Reply(audio24k=tone24k(1.0), transcript="It shipped.", tool_calls=(EmulatedToolCall("find_order", {"order": "7"}),))


def lookup_agent(behavior: str | None, seconds: float = 1.5) -> Agent:
    agent = Agent("shop", instructions="You help callers with their orders.")

    @agent.tool(behavior=behavior)
    async def find_order(order: str) -> dict:
        """Find an order.

        Args:
            order: The order number.
        """
        await asyncio.sleep(seconds)
        return {"order": order, "state": "shipped"}

    return agent


@FAMILIES
async def test_greeting(family):
    model = ScriptedAgent([Reply(audio24k=tone24k(0.3), transcript="Hello!")], respond_to_text=True)
    async with family_stack(family, model, greeting="Greet the caller.") as stack:
        result = await stack.replay(caller_waits("one_sentence", 4.0))
    conn = stack.gemini.connections[0]
    assert conn.family == family.value
    assert "Greet the caller." in conn.texts, "the greeting reached the model"
    assert result.heard_seconds == pytest.approx(0.3, abs=0.05), "the greeting, whole, before the caller said a word"
    how = "clientContent" if family is Family.NATIVE_AUDIO_25 else "realtime text"
    cell(family, "greeting", result.heard_seconds, f"the greeting, whole (sent as {how})")


@FAMILIES
async def test_blocking_tool(family):
    if family is Family.LIVE_38_THINKING:
        with pytest.raises(ValueError, match="declared blocking"):
            Agent("shop", model=MODELS[family], tools=[lookup_agent("blocking").tools["find_order"]])
        family_cell(family.value, "blocking tool", "refused at startup (naming the tool): ET takes NON_BLOCKING only")
        return
    model = ScriptedAgent(
        [Reply(audio24k=tone24k(1.0), transcript="It shipped.", tool_calls=(EmulatedToolCall("find_order", {"order": "7"}),))]
    )
    async with family_stack(family, model, agent=lookup_agent("blocking")) as stack:
        result = await stack.replay(caller_stays("one_sentence", 4.0))
    conn = stack.gemini.connections[0]
    declared = conn.setup["tools"][0]["function_declarations"][-1]
    assert declared.get("behavior") == (None if family is Family.FLASH_LIVE_31 else "BLOCKING")
    (response,) = conn.tool_responses
    assert "scheduling" not in response, "a BLOCKING call's result has no scheduling"
    assert response["response"]["status"] == "ok"
    assert conn.fillers == 0, "the model waited in silence"
    # 1.5 s of tool: the hold tone from 1 s, then the answer.
    assert result.heard_seconds >= 1.0 + 0.2
    cell(family, "blocking tool", result.heard_seconds, "hold tone while the tool ran, then the answer")


@FAMILIES
async def test_non_blocking_tool_with_the_model_talking(family):
    model = ScriptedAgent(
        [Reply(audio24k=tone24k(1.0), transcript="It shipped.", tool_calls=(EmulatedToolCall("find_order", {"order": "7"}),))]
    )
    async with family_stack(family, model, agent=lookup_agent("non_blocking")) as stack:
        result = await stack.replay(caller_stays("one_sentence", 4.0))
        (record,) = stack.records()
    conn = stack.gemini.connections[0]
    (response,) = conn.tool_responses
    if family is Family.FLASH_LIVE_31:  # synchronous tools only: no behavior declared, none honoured
        assert conn.fillers == 0 and "scheduling" not in response
        note = "3.1 runs every tool blocking: hold tone, then the answer"
    else:
        assert conn.fillers == 1, "the model kept talking while the tool ran"
        if family is Family.LIVE_38_THINKING:
            assert "scheduling" not in response and "scheduling" not in response["response"], "ET refuses scheduling"
        else:
            assert response["scheduling"] == "WHEN_IDLE"
        assert result.heard_seconds >= FILLER_S + 1.0 - 0.05, "the filler and the answer, both heard"
        note = "filler, then the answer (hold tone only into the silence between)"
    assert record.tool_calls[0].name == "find_order"
    cell(family, "non-blocking tool", result.heard_seconds, note)


@FAMILIES
async def test_barge_in_during_a_tool(family):
    model = ScriptedAgent(
        [Reply(audio24k=tone24k(1.0), transcript="It shipped.", tool_calls=(EmulatedToolCall("find_order", {"order": "7"}),))]
    )
    behavior = None if family is not Family.NATIVE_AUDIO_25 else "non_blocking"
    async with family_stack(family, model, agent=lookup_agent(behavior, seconds=6.0)) as stack:
        result = await stack.replay("barge_in")
        (record,) = stack.records()
    conn = stack.gemini.connections[0]
    assert conn.interruptions == 1 and len(conn.tool_calls_cancelled) == 1, "the caller's words voided the turn's call"
    assert conn.tool_responses == [], "a cancelled tool's result is never sent"
    assert record.end_reason == "caller hung up"
    cell(family, "barge-in during a tool", result.heard_seconds, f"cut at once ({len(result.clears)} clear), call went on")


@FAMILIES
async def test_end_call_with_a_goodbye(family):
    goodbye = Reply(audio24k=tone24k(1.0), transcript="Goodbye!", tool_calls=(EmulatedToolCall("end_call", {"reason": "done"}),))
    async with family_stack(family, ScriptedAgent([goodbye])) as stack:
        result = await stack.replay(caller_stays("one_sentence"), speed=1.0 if family is Family.LIVE_38_THINKING else 4.0)
        (record,) = stack.records()
    (hang_up,) = stack.rest.updates(result.call_sid)
    assert record.end_reason == "agent ended the call" and not result.caller_hung_up
    assert hang_up.at >= result.monotonic(result.mark_echo_times[-1]), "hung up only after the last audio was heard"
    expected = 1.0 + (FILLER_S if family is Family.LIVE_38_THINKING else 0.0)
    assert result.heard_seconds == pytest.approx(expected, abs=0.06), "the whole goodbye was heard"
    note = (
        "filler + IN_PROGRESS, goodbye + IDLE, heard whole, then hang-up"
        if family is Family.LIVE_38_THINKING
        else "goodbye whole, then hang-up"
    )
    cell(family, "end_call + goodbye", result.heard_seconds, note)


@FAMILIES
async def test_transfer(family):
    announce = Reply(
        audio24k=tone24k(0.5), transcript="Transferring you now.", tool_calls=(EmulatedToolCall("transfer_call", {"to": TRANSFER_TO}),)
    )
    async with family_stack(family, ScriptedAgent([announce]), transfer_numbers=[TRANSFER_TO]) as stack:
        result = await stack.replay("one_sentence")
    (redirect,) = stack.rest.updates(result.call_sid)
    assert f"<Dial>{TRANSFER_TO}</Dial>" in redirect.form["Twiml"]
    conn = stack.gemini.connections[0]
    assert conn.tool_responses[0]["response"]["status"] == "ok"
    if family is Family.LIVE_38_THINKING:  # the announcement (its filler) is heard before the redirect
        assert redirect.at >= result.monotonic(result.mark_echo_times[0])
    cell(family, "transfer", result.heard_seconds, "redirected to the configured number")


@FAMILIES
async def test_go_away_mid_answer(family):
    answer = Reply(audio24k=tone24k(3.0), transcript="Our opening hours are nine to five.")
    faults = Faults(go_away_after_s=4.0, go_away_time_left_s=8.0)
    # At 2x, emulator and caller alike (the goAway still comes 4 s of call time after the set-up,
    # mid-answer): at 4x a set-up slowed by a busy machine moved it before the answer began.
    async with family_stack(family, ScriptedAgent([answer]), faults=faults, speed=2.0) as stack:
        result = await stack.replay(caller_stays("one_sentence", 2.0), speed=2.0)
        (record,) = stack.records()
    assert len(stack.gemini.connections) == 2 and stack.gemini.connections[1].resumed_handle, "switched with the handle"
    assert result.heard_seconds == pytest.approx(3.0, abs=0.06), "the answer was heard whole across the switch"
    assert record.reconnects == 1
    cell(family, "goAway", result.heard_seconds, "answer whole, then a resumed connection")


@FAMILIES
async def test_the_58_minute_close_and_a_refused_resume(family):
    # 3.8 closes sessions at exactly 58:00 with 1011 and then refuses their resumption (1007);
    # the emulator's session clock runs 58 minutes in about a second of this call.
    model = ScriptedAgent([Reply(audio24k=tone24k(0.5), transcript="Yes?"), Reply(audio24k=tone24k(1.0), transcript="Sunday: closed.")])
    faults = Faults(session_deadline_s=58 * 60.0)
    async with family_stack(family, model, faults=faults, session_age_speed=58 * 60.0 / 4.6) as stack:
        result = await stack.replay(caller_stays("barge_in", 2.0))
        (record,) = stack.records()
    first, refused, fresh = stack.gemini.connections
    assert first.close_code == 1011 and "Deadline expired" in first.close_reason
    assert refused.close_code == 1007, "the resume was refused"
    assert fresh.resumed_handle is None and fresh.history, "a fresh session, seeded with the conversation"
    assert ("history_config" in fresh.setup) == (family is not Family.NATIVE_AUDIO_25)
    assert record.reconnects == 1 and record.outcome == "completed"
    assert result.heard_seconds >= 1.0, "the fresh session answered the caller"
    cell(family, "58:00 close, resume refused", result.heard_seconds, "fresh session seeded with history answered")


@FAMILIES
async def test_refused_setup_fields(family):
    """What the service refuses per family, and that our setup never sends it."""
    from google import genai

    from telephony.gemini.config import AgentOptions, build_live_config

    async with GeminiLiveEmulator(speed=4.0) as emulator:
        client = genai.Client(api_key="offline", http_options=emulator.client_http_options())
        ours = build_live_config(AgentOptions(model=MODELS[family], voice="Kore", instructions="Hi.", language_code="de-DE"))
        async with client.aio.live.connect(model=MODELS[family], config=ours):
            pass  # accepted
        assert "language_code" not in emulator.connections[-1].setup["generation_config"]["speech_config"]
        assert "German" in emulator.connections[-1].setup["system_instruction"]["parts"][0]["text"]
        if family in (Family.LIVE_38, Family.LIVE_38_THINKING):
            from google.genai import errors

            with pytest.raises(errors.APIError) as refused:
                async with client.aio.live.connect(model=MODELS[family], config=ours.model_copy(update={"enable_affective_dialog": True})):
                    pass
            assert refused.value.code == 1007


@pytest.mark.parametrize("scheduling", ["silent", "interrupt"])
async def test_a_non_blocking_result_is_used_as_the_tool_schedules_it(scheduling):
    agent = Agent("shop", instructions="You help callers with their orders.")

    @agent.tool(scheduling=scheduling)
    async def note_interest(topic: str) -> str:
        """Note what the caller is interested in.

        Args:
            topic: What they asked about.
        """
        return "noted"

    spoken = Reply(audio24k=tone24k(1.0), transcript="Noted!", tool_calls=(EmulatedToolCall("note_interest", {"topic": "shoes"}),))
    async with family_stack(Family.LIVE_38, ScriptedAgent([spoken]), agent=agent) as stack:
        result = await stack.replay(caller_stays("one_sentence", 2.0))
    (response,) = stack.gemini.connections[0].tool_responses
    assert response["scheduling"] == scheduling.upper() and response["response"]["scheduling"] == scheduling.upper()
    if scheduling == "silent":
        assert result.heard_seconds == pytest.approx(FILLER_S, abs=0.05), "known, not announced: only the filler was said"
    else:
        assert result.heard_seconds >= 1.0, "the answer was said at once"
