"""Conversation tests (telephony.testing.Conversation): a user's agent, its own tools, the
caller's lines as speech through the whole phone path, offline and faster than real time."""

import asyncio
import time

import pytest

from telephony import Agent
from telephony.testing import Conversation, ModelStep

from helpers.slow_link import SlowLink

TRANSFER_TO = "+15550001111"


def clinic_agent() -> Agent:
    agent = Agent("front-desk", instructions="You book appointments for Maple Clinic.")

    @agent.tool
    async def free_slots(day: str) -> list[str]:
        """The free appointment times on a day.

        Args:
            day: The day of the week.
        """
        await asyncio.sleep(1.5)  # a slow back office: its result must not be lost
        return ["09:00", "11:30"] if day == "friday" else []

    @agent.tool
    def book(day: str, time: str) -> dict:
        """Book an appointment.

        Args:
            day: The day of the week.
            time: The time, HH:MM.
        """
        return {"booked": f"{day} {time}", "reference": "MC-1042"}

    return agent


async def test_a_three_turn_conversation_with_a_slow_tool_runs_offline_and_loses_nothing():
    model = [
        ModelStep(say="Sure. Which day suits you?"),
        ModelStep(tool="free_slots", args={"day": "friday"}, say="On Friday I have nine or half past eleven."),
        ModelStep(tool="book", args={"day": "friday", "time": "11:30"}, say="Booked: Friday at half past eleven."),
    ]
    started = time.monotonic()
    async with Conversation(clinic_agent(), model) as call:
        first = await call.caller("Hello, I would like an appointment.")
        second = await call.caller("Friday, please.")
        third = await call.caller("Half past eleven.")
    took_s = time.monotonic() - started
    assert first.tool_calls == [] and "Which day" in first.said
    (slots,) = second.tool_calls
    assert slots.name == "free_slots" and slots.arguments == {"day": "friday"}
    assert slots.response["result"] == ["09:00", "11:30"], "the slow tool's result came back, not a timeout"
    assert slots.duration_ms is not None and slots.duration_ms >= 1500
    assert "half past eleven" in second.said
    (booking,) = third.tool_calls
    assert booking.response["reference"] == "MC-1042" and "Booked" in third.said
    speakers = [speaker for speaker, _ in call.transcript]
    assert speakers.count("caller") == 3 and ("caller", "Friday, please.") in call.transcript
    assert call.ended and call.end_reason == "caller hung up"
    print(f"three-turn conversation with a 1.5 s tool: {took_s:.2f} s")


def test_a_sync_test_sees_the_agent_hang_up_after_its_goodbye():
    model = [ModelStep(say="Goodbye, and thank you for calling.", tool="end_call", args={"reason": "done"})]
    with Conversation(clinic_agent(), model) as call:
        turn = call.caller("That is all, thanks. Bye.")
        assert turn.tool_calls[0].name == "end_call"
        call.hang_up()
    assert call.ended and call.end_reason == "agent ended the call"
    assert "Goodbye" in call.transcript[-1][1] or any("Goodbye" in text for _, text in call.transcript)


async def test_a_transfer_is_made_through_twilio_and_reported():
    model = [ModelStep(say="Let me put you through.", tool="transfer_call", args={"to": TRANSFER_TO})]
    async with Conversation(clinic_agent(), model, transfer_numbers=[TRANSFER_TO]) as call:
        turn = await call.caller("Can I speak to a nurse?")
    assert turn.tool_calls[0].response == {"result": f"transferred to {TRANSFER_TO}"}
    assert call.transferred_to == TRANSFER_TO


def test_a_built_in_tool_named_as_a_tool_is_one_clear_error():
    expected = r"not 'end_call' \(end_call, transfer_call, warm_transfer, send_dtmf are chosen with builtin_tools"
    with pytest.raises(ValueError, match=expected):
        Agent("desk", tools=["end_call"])


async def test_a_line_after_the_call_ended_says_so():
    model = [ModelStep(say="Bye.", tool="end_call")]
    async with Conversation(clinic_agent(), model) as call:
        await call.caller("Bye.")
        await call.hang_up()
        with pytest.raises(AssertionError, match="the call has ended"):
            await call.caller("Hello?")


async def test_a_caller_who_goes_silent_is_checked_on_then_the_call_ends_for_silence():
    agent = clinic_agent()
    # The server's time rules run on its own clock (real time), the call at 8x: 1 s is 8 s of the call.
    async with Conversation(agent, [ModelStep(say="Which day suits you?")], silence_reprompt_seconds=1, silence_hangup_seconds=1) as call:
        await call.caller("I'd like an appointment.")
        await call.stay_silent(60)
    assert call.ended and call.end_reason.startswith("the caller said nothing"), call.end_reason
    said = [text for speaker, text in call.transcript if speaker == "agent"]
    assert said == ["Which day suits you?", "Hello, are you still there?", "I will let you go now. Goodbye!"], said


def look_up_agent(takes_s: float) -> Agent:
    """An agent whose one tool, `look_up`, takes `takes_s` seconds (wall time)."""
    agent = Agent("slow", instructions="You look things up.")

    @agent.tool
    async def look_up(what: str) -> dict:
        """Look something up, slowly.

        Args:
            what: What to look up.
        """
        await asyncio.sleep(takes_s)
        return {"found": what}

    return agent


LOOK_UP_MODEL = [ModelStep(tool="look_up", args={"what": "the order"}, say="Found it.")]


async def test_a_caller_silent_while_a_slow_tool_runs_is_not_checked_on():
    agent, model = look_up_agent(3.0), LOOK_UP_MODEL  # the tool takes three times the check-in time
    async with Conversation(agent, model, silence_reprompt_seconds=1, silence_hangup_seconds=1) as call:
        turn = await call.caller("Can you look my order up?")
        said = [text for speaker, text in call.transcript if speaker in ("agent", "tool")]
    assert turn.tool_calls[0].response == {"found": "the order"} and turn.said.endswith("Found it.")
    # A check-in may come a second after the answer (the caller stays silent), never before it.
    answered = said.index("Found it.")
    assert not any("still there" in text for text in said[:answered]), said


async def test_the_answer_after_a_filler_is_waited_for_when_it_reaches_the_server_late():
    # Regression (CI, 2026-12-05): the filler the model speaks while a NON_BLOCKING tool runs
    # counted as the reply's audio, so `caller()` returned once the emulator had sent the
    # answer, before the server had read it. A far-away model makes that gap certain.
    agent, model = look_up_agent(0.5), LOOK_UP_MODEL
    async with SlowLink(delay_s=0.4) as link:
        conversation = Conversation(agent, model, gemini_base_url=f"https://127.0.0.1:{link.port}")
        link.target = lambda: ("127.0.0.1", conversation.gemini.port)
        async with conversation as call:
            turn = await call.caller("Can you look my order up?")
            assert call.gemini.connections[0].fillers == 1, "the model spoke a filler while the tool ran"
    assert link.connections >= 1
    assert turn.said.endswith("Found it."), turn
