"""Dial-out and the agent's call-control tools, against a local Twilio REST stand-in."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest
from rich.console import Console

from telephony import Agent
from telephony.testing.answering_machine import answering_machine, post_answered_by
from telephony.testing.call_fixture import CallFixtureBuilder, FixtureMessage, parse_fixture_lines, read_fixture
from telephony.testing.gemini_live import EmulatedToolCall, GeminiLiveEmulator, Reply, ScriptedAgent, tone24k
from telephony.testing.model_script import ScriptedModel
from telephony.testing.twilio_media import TwilioMediaEmulator
from telephony.testing.twilio_rest import FakeTwilioRest
from telephony.twilio.dial import DialRequest, follow_call, place_call
from telephony.twilio.signatures import TwilioSignatures

from conftest import ACCOUNT_SID, AUTH_TOKEN, FIXTURES, offline_stack

TRANSFER_TO = "+15550001111"


@contextlib.asynccontextmanager
async def stack_with(agent, fake: FakeTwilioRest | None = None, **settings):
    fake = fake or FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN)
    async with fake.running(), GeminiLiveEmulator(agent, speed=4.0) as gemini:
        async with offline_stack(gemini, twilio_api_base=fake.base_url, transfer_numbers=[TRANSFER_TO], **settings) as stack:
            stack.rest = fake
            yield stack


def tool_reply(name: str, args: dict | None = None, seconds: float = 1.0) -> Reply:
    return Reply(audio24k=tone24k(seconds), transcript=f"({name})", tool_calls=(EmulatedToolCall(name, args or {}),))


def caller_stays_on_the_line(fixture: str, extra_s: float = 10.0) -> list[FixtureMessage]:
    """The recorded call with its hang-up moved later, so that only the server can end it in time."""
    messages = read_fixture(FIXTURES / f"{fixture}.jsonl")
    return [replace(m, at_ms=m.at_ms + int(extra_s * 1000)) if m.event == "stop" else m for m in messages]


async def test_end_call_hangs_up_only_after_the_goodbye_was_heard():
    async with stack_with(ScriptedAgent([tool_reply("end_call", {"reason": "done"}, seconds=1.0)])) as stack:
        result = await stack.replay(caller_stays_on_the_line("one_sentence"), speed=1.0)  # real time: margin for slow machines
        (record,) = stack.records()
    (hang_up,) = stack.rest.updates(result.call_sid)
    assert hang_up.form == {"Status": "completed"}
    goodbye_heard_at = result.monotonic(result.mark_echo_times[-1])
    assert hang_up.at >= goodbye_heard_at, "completed before the goodbye's mark came back"
    assert result.heard_seconds == pytest.approx(1.0, abs=0.05)
    assert record.end_reason == "agent ended the call"
    assert not result.caller_hung_up, "the server ended the call before the caller hung up"
    assert stack.gemini.connections[0].tool_responses[0]["name"] == "end_call"


async def test_end_call_closes_the_stream_while_caller_audio_is_still_arriving():
    # On Python 3.11, asyncio.wait_for swallows a cancellation that lands as its inner
    # receive completes: with a media frame every 5 ms (speed 4) the caller pump missed the
    # end of the call about half the time and kept the line open until the caller hung up.
    for _ in range(6):
        async with stack_with(ScriptedAgent([tool_reply("end_call", {"reason": "done"}, seconds=0.5)])) as stack:
            result = await stack.replay(caller_stays_on_the_line("one_sentence"), speed=4.0)
            (record,) = stack.records()
        assert record.end_reason == "agent ended the call"
        assert not result.caller_hung_up, "the stream stayed open after the agent ended the call"


async def test_a_caller_who_talks_over_the_goodbye_is_not_hung_up_on():
    # "Bye!" - "Wait, one more thing": Gemini cancels the interrupted turn's end_call.
    agent = ScriptedAgent([tool_reply("end_call", {"reason": "done"}, seconds=4.0)])
    async with stack_with(agent) as stack:
        result = await stack.replay("barge_in")
        (record,) = stack.records()
    conn = stack.gemini.connections[0]
    assert conn.interruptions == 1 and len(conn.tool_calls_cancelled) == 1
    assert stack.rest.updates(result.call_sid) == [], "the call was not completed through REST"
    assert record.end_reason == "caller hung up" and result.caller_hung_up


async def test_transfer_call_redirects_to_the_configured_number():
    agent = ScriptedAgent([tool_reply("transfer_call", {"to": TRANSFER_TO}, seconds=0.3)])
    async with stack_with(agent) as stack:
        result = await stack.replay("one_sentence")
    (redirect,) = stack.rest.updates(result.call_sid)
    assert "<Dial>" + TRANSFER_TO + "</Dial>" in redirect.form["Twiml"]
    response = stack.gemini.connections[0].tool_responses[0]["response"]
    assert response == {"result": f"transferred to {TRANSFER_TO}", "status": "ok", "retryable": False}  # BLOCKING: no scheduling
    declared = stack.gemini.connections[0].setup["tools"][0]["function_declarations"]
    transfer = next(d for d in declared if d["name"] == "transfer_call")
    assert transfer["parameters"]["properties"]["to"]["enum"] == [TRANSFER_TO]


async def test_transfer_to_an_unlisted_number_is_refused_without_rest():
    async with stack_with(ScriptedAgent([tool_reply("transfer_call", {"to": "+19005550000"})])) as stack:
        # The caller stays on: under a loaded suite the recorded hang-up came before the
        # tool's answer reached Gemini (once in six full runs).
        await stack.replay(caller_stays_on_the_line("one_sentence", extra_s=4.0))
    assert "error" in stack.gemini.connections[0].tool_responses[0]["response"]
    assert stack.rest.updates() == []


async def test_rest_failure_is_reported_to_the_model_and_the_call_stays_up():
    fake = FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN, fail_updates_with=(500, 20500))
    async with stack_with(ScriptedAgent([tool_reply("transfer_call", {"to": TRANSFER_TO})]), fake) as stack:
        # At 2x the caller's 6 s of silence after speaking (3 s here) hold the whole second of
        # the reply even when the failed REST call and the reply are slow on a busy machine.
        result = await stack.replay("one_sentence", speed=2.0)
        (record,) = stack.records()
    assert "failed" in stack.gemini.connections[0].tool_responses[0]["response"]["error"]
    assert record.end_reason == "caller hung up"
    assert result.heard_seconds == pytest.approx(1.0, abs=0.05), "the agent went on talking"


def goertzel_db(samples: np.ndarray, freq: float, rate: int = 8000) -> float:
    t = np.arange(len(samples)) / rate
    return 20 * np.log10(abs(np.sum(samples * np.exp(-2j * np.pi * freq * t))) / len(samples) + 1e-9)


def detect_dtmf(pcm: np.ndarray) -> str:
    from telephony.audio.dtmf import FREQUENCIES

    digits, previous = [], None
    blocks = [pcm[i : i + 400].astype(float) for i in range(0, len(pcm) - 400, 400)]  # 50 ms blocks
    loudest = max((np.sqrt(np.mean(block**2)) for block in blocks), default=0.0)
    for block in blocks:
        # A block that holds only the edge of a tone smears its frequencies (a neighbour key wins):
        # only blocks mostly inside a tone count, wherever the tones fall on the timeline.
        if np.sqrt(np.mean(block**2)) < max(300.0, 0.6 * loudest):
            previous = None
            continue
        digit = max(FREQUENCIES, key=lambda d: goertzel_db(block, FREQUENCIES[d][0]) + goertzel_db(block, FREQUENCIES[d][1]))
        if digit != previous:
            digits.append(digit)
        previous = digit
    return "".join(digits)


async def test_send_dtmf_plays_the_keys_into_the_call():
    agent = ScriptedAgent([Reply(tool_calls=(EmulatedToolCall("send_dtmf", {"digits": "12#"}),))])
    async with stack_with(agent) as stack:
        result = await stack.replay("one_sentence")
    assert stack.gemini.connections[0].tool_responses[0]["response"] == {"result": "pressed 12#", "status": "ok", "retryable": False}
    assert detect_dtmf(np.frombuffer(result.heard_pcm(), dtype="<i2")) == "12#"


async def test_greeting_makes_the_agent_speak_first():
    agent = ScriptedAgent([Reply(audio24k=tone24k(0.5), transcript="Hello!")], respond_to_text=True)
    # A caller who waits, silent, for 3 s: however long the session takes to open on a busy
    # machine, nothing of theirs can cut the greeting (a caller speaking at 0.5 s did).
    quiet = CallFixtureBuilder("waits").silence(3000).stop()
    messages = parse_fixture_lines(quiet.lines())
    async with stack_with(agent, greeting="Greet the caller.") as stack:
        result = await stack.replay(messages, speed=1.0)
    assert stack.gemini.connections[0].texts == ["Greet the caller."]
    assert agent.turns[0].text == "Greet the caller."
    assert result.media() and result.heard_seconds >= 0.45, "the agent spoke first, and the caller heard the greeting whole"


async def test_dial_places_the_call_with_per_call_settings_and_follows_its_status(tmp_path):
    async with stack_with(ScriptedAgent([])) as stack:
        settings = stack.settings.model_copy(update={"twilio_api_base": stack.rest.base_url})
        request = DialRequest(
            to="+15557654321", from_="+15550000000", server=stack.base_url, voice="Puck", instructions="Be brief.", greeting="Say hi."
        )
        call_sid = await place_call(settings, request)
        (create,) = stack.rest.requests
        assert create.form["To"] == "+15557654321" and create.form["From"] == "+15550000000"
        assert create.form["StatusCallback"] == stack.base_url + "/status"
        # Answering machines are detected while the call runs (a person waits for nothing), to the end of the greeting.
        assert create.form["MachineDetection"] == "DetectMessageEnd" and create.form["AsyncAmd"] == "true"
        assert create.form["AsyncAmdStatusCallback"] == stack.base_url + "/amd"
        url = create.form["Url"]
        assert parse_qs(urlsplit(url).query) == {"voice": ["Puck"], "instructions": ["Be brief."], "greeting": ["Say hi."]}

        # Twilio answers: it posts the status callbacks and fetches the TwiML at Url.
        signer = TwilioSignatures(AUTH_TOKEN)
        status_url = stack.base_url + "/status"

        async def post_status(status: str) -> int:
            form = {"CallSid": call_sid, "CallStatus": status, "AccountSid": ACCOUNT_SID}
            async with httpx.AsyncClient() as client:
                response = await client.post(status_url, data=form, headers={"X-Twilio-Signature": signer.sign(status_url, form)})
            return response.status_code

        console = Console(record=True, width=100)
        follower = asyncio.create_task(follow_call(settings, stack.base_url, call_sid, console, timeout_s=30))
        assert await post_status("ringing") == 204
        emulator = TwilioMediaEmulator(FIXTURES / "hang_up.jsonl", speed=4, auth_token=AUTH_TOKEN, call_sid=call_sid)
        target = await emulator.answer(url, {"Direction": "outbound-api"})
        assert target.parameters["voice"] == "Puck" and target.parameters["instructions"] == "Be brief."
        assert await post_status("in-progress") == 204
        await emulator.play(target)
        assert await post_status("completed") == 204
        assert await follower == "completed"
        async with httpx.AsyncClient() as client:
            unsigned = await client.post(status_url, data={"CallSid": call_sid, "CallStatus": "completed"})
    setup = stack.gemini.connections[0].setup
    assert setup["generation_config"]["speech_config"]["voice_config"]["prebuilt_voice_config"]["voice_name"] == "Puck"
    assert setup["system_instruction"]["parts"][0]["text"].split("\n\n")[0] == "Be brief."
    assert stack.gemini.connections[0].texts == ["Say hi."]
    assert unsigned.status_code == 403
    shown = console.export_text()
    assert "ringing" in shown and "completed" in shown


async def test_an_answering_machine_gets_the_agents_message_after_its_beep_over_the_phone_path():
    agent = Agent("clinic", instructions="You remind patients of appointments.", voicemail_instructions="remind them of Friday")
    model = ScriptedModel([])  # it answers the voicemail nudge with a message (model_script.NUDGE_REPLIES)
    call_sid = "CA" + "7" * 32
    async with GeminiLiveEmulator(model, speed=2.0) as gemini, offline_stack(gemini, agent=agent) as stack:
        machine = TwilioMediaEmulator(answering_machine(greeting_s=3.0), speed=2.0, auth_token=AUTH_TOKEN, call_sid=call_sid)
        call = asyncio.create_task(machine.call(stack.webhook))
        # Twilio reports once the greeting and its beep (3.7-4.1 s) are over and the machine records (silence).
        while machine.call_time() < 5.0:
            await asyncio.sleep(0.02)
        assert await post_answered_by(stack.base_url, call_sid, "machine_end_beep", AUTH_TOKEN) == 204
        result = await asyncio.wait_for(call, 60)
        (record,) = stack.records()
    assert record.answered_by == "machine_end_beep" and record.voicemail_left and record.outcome == "voicemail"
    assert result.close_code == 1000 and not result.caller_hung_up, "we hung up, after the message"
    assert result.media_seconds(after_s=5.0) > 3.0, "the machine recorded the agent's whole message"
    assert any("Leave a voicemail message: remind them of Friday" in t for t in gemini.connections[0].texts)
