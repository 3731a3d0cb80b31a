"""Whole calls, offline: Twilio emulator -> our server -> Gemini emulator, over real sockets."""

from __future__ import annotations

import asyncio
import base64
import json
import os

import httpx
import numpy as np
import pytest
import websockets

from telephony.testing.gemini_live import REALISTIC, GeminiLiveEmulator
from telephony.testing.twilio_media import StreamTarget, TwilioMediaEmulator

from conftest import ACCOUNT_SID, AUTH_TOKEN, FIXTURES, offline_stack


@pytest.mark.parametrize("fixture", ["one_sentence", "barge_in", "dtmf", "hang_up"])
@pytest.mark.parametrize("profile", ["kind", "realistic"])
async def test_every_fixture_replays_and_the_caller_hears_the_agent(fixture, profile):
    realism = REALISTIC if profile == "realistic" else None
    async with GeminiLiveEmulator(speed=4.0, realism=realism) as gemini, offline_stack(gemini) as stack:
        result = await stack.replay(fixture)
        await _check_the_caller_heard_the_agent(stack, result)


async def _check_the_caller_heard_the_agent(stack, result):
    heard = np.frombuffer(result.heard_pcm(), dtype="<i2").astype(float)
    assert result.heard_seconds > 0.5
    assert np.sqrt(np.mean(heard**2)) > 100, "what the caller heard is not silence"
    sizes = [len(base64.b64decode(m.data["media"]["payload"])) for m in result.media()]
    assert all(0 < size <= 800 for size in sizes) and max(sizes) > 160, "a batch's frames go out together, up to 100 ms"
    (record,) = stack.records()
    assert record.call_sid == result.call_sid
    assert record.frames_out * 160 >= sum(sizes)
    assert any(line.speaker == "agent" for line in record.transcript)


async def test_barge_in_clears_twilio_and_nothing_stale_follows(stack):
    result = await stack.replay("barge_in")
    connection = stack.gemini.connections[0]
    assert connection.interruptions == 1
    assert len(result.clears) == 1
    clear_at = result.monotonic(result.clears[0])
    first_reply, second_reply = connection.reply_started_at[:2]
    assert first_reply < clear_at < second_reply
    after_clear = [m for m in result.media() if result.monotonic(m.at_s) > clear_at]
    assert after_clear, "the agent answered the interruption"
    assert all(result.monotonic(m.at_s) >= second_reply for m in after_clear), "stale audio after clear"
    (record,) = stack.records()
    assert record.interruptions == 1
    assert len(record.interrupted_to_clear_ms) == 1 and record.interrupted_to_clear_ms.max < 50


async def test_marks_are_echoed_and_tracked(stack):
    result = await stack.replay("one_sentence")
    (record,) = stack.records()
    sent_marks = [m.data["mark"]["name"] for m in result.received if m.event == "mark"]
    assert sent_marks and set(sent_marks) == set(result.marks_echoed)
    # Everything the agent said fit before the caller hung up, so all of it was heard.
    assert record.agent_audio_heard_ms == pytest.approx(record.agent_audio_ms, abs=25)


CALL_TASKS = {"twilio-writer", "twilio-reader", "gemini->call", "gemini-supervisor", "gemini-send", "gemini-receive"}
"""The tasks one call's driver and Gemini supervisor run (named where they are created)."""


async def test_stop_ends_the_gemini_session_and_every_task(stack):
    replay = asyncio.create_task(stack.replay("hang_up"))
    during: set[str] = set()
    while not CALL_TASKS <= during:  # every task of the call is seen running while it lasts
        assert not replay.done(), f"never seen running during the call: {CALL_TASKS - during}"
        during = {task.get_name() for task in asyncio.all_tasks()}
        await asyncio.sleep(0.01)
    await replay
    assert stack.gemini.connections[0].close_code == 1000
    after = {task.get_name() for task in asyncio.all_tasks()}
    assert not CALL_TASKS & after and not any(name.startswith("tool:") for name in after), "the call's tasks outlived it"
    assert not stack.app.state.active_calls
    (record,) = stack.records()
    assert record.end_reason == "caller hung up"


async def test_dtmf_digits_reach_gemini_as_text(stack):
    await stack.replay("dtmf")
    texts = stack.gemini.connections[0].texts
    assert [t[-2] for t in texts] == ["4", "2", "#"]
    (record,) = stack.records()
    assert [line.text for line in record.transcript if line.speaker == "keypad"] == ["4", "2", "#"]


async def test_unsigned_or_wrongly_signed_webhooks_are_refused(stack):
    form = {"CallSid": "CA" + "1" * 32, "From": "+1555", "To": "+1666"}
    async with httpx.AsyncClient() as client:
        unsigned = await client.post(stack.webhook, data=form)
        wrong = await client.post(stack.webhook, data=form, headers={"X-Twilio-Signature": "bm90IGl0"})
    assert unsigned.status_code == wrong.status_code == 403
    assert "Stream" not in unsigned.text


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_oversized_webhook_bodies_are_refused_before_they_are_read(stack, chunked):
    # Twilio's forms are a few kB; a body without Content-Length (chunked) must be capped too.
    body = b"CallSid=CA" + b"1" * 32 + b"&Junk=" + b"x" * (2 * 1024 * 1024)

    async def chunks():
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    async with httpx.AsyncClient() as client:
        response = await client.post(
            stack.webhook,
            content=chunks() if chunked else body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 413


async def test_unsigned_websocket_is_refused_before_any_gemini_session(stack):
    url = stack.base_url.replace("http", "ws") + "/media-stream"
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        async with websockets.connect(url):
            pass
    assert refused.value.response.status_code == 403
    emulator = TwilioMediaEmulator(FIXTURES / "hang_up.jsonl", auth_token="some-other-token")
    with pytest.raises(websockets.exceptions.InvalidStatus):
        await emulator.play(url)
    assert stack.gemini.connections == []


async def test_signed_stream_with_a_forged_token_is_closed_without_gemini(stack):
    url = stack.base_url.replace("http", "ws") + "/media-stream"
    emulator = TwilioMediaEmulator(FIXTURES / "hang_up.jsonl", speed=8, auth_token=AUTH_TOKEN)
    result = await emulator.play(StreamTarget(url=url, parameters={"token": "forged"}, call_sid="CA" + "2" * 32))
    assert result.close_code == 1008
    assert result.media() == []
    assert stack.gemini.connections == []


async def test_recorded_call_replays_to_the_same_transcript(tmp_path):
    async with offline_stack(record_dir=tmp_path) as stack:
        first = await stack.replay("barge_in")
        recording = tmp_path / f"{first.call_sid}.jsonl"
        assert recording.exists()
        second = await stack.replay(recording)
        original, replayed = stack.records()
    assert second.call_sid != first.call_sid

    # Where a barge-in cuts the agent off depends on the machine's load, not on the recording:
    # a cut line is compared as cut.
    def said(record):
        return [(line.speaker, "(cut off)" if line.interrupted else line.text) for line in record.transcript]

    assert said(replayed) == said(original)
    lines = recording.read_text().splitlines()
    assert json.loads(lines[0])["event"] == "connected" and json.loads(lines[-1])["event"] == "stop"


async def test_call_log_gets_one_json_line_per_call(tmp_path):
    async with offline_stack(call_log_dir=tmp_path) as stack:
        await stack.replay("hang_up")
    (line,) = (tmp_path / "calls.jsonl").read_text().splitlines()
    entry = json.loads(line)
    assert entry["end_reason"] == "caller hung up"
    assert entry["transcript"] and entry["chunk_to_frame_ms"]["n"] > 0
    assert "token" not in entry["parameters"]


async def test_call_history_needs_credentials_unless_the_request_is_local(stack):
    import httpx

    result = await stack.replay("hang_up", speed=8)
    proxied = {"X-Forwarded-For": "203.0.113.9"}  # as through a tunnel on this host: not local
    async with httpx.AsyncClient() as client:
        for path in (f"/calls/{result.call_sid}", f"/api/calls/{result.call_sid}", "/api/calls", "/calls"):
            anonymous = await client.get(stack.base_url + path, headers=proxied)
            wrong = await client.get(stack.base_url + path, headers=proxied, auth=(stack.settings.twilio_account_sid, "guess"))
            assert (anonymous.status_code, wrong.status_code) == (401, 401), path
        allowed = await client.get(f"{stack.base_url}/calls/{result.call_sid}", headers=proxied, auth=(ACCOUNT_SID, AUTH_TOKEN))
        local = await client.get(f"{stack.base_url}/calls/{result.call_sid}")
    assert allowed.status_code == 200 and allowed.json()["call_sid"] == result.call_sid
    assert local.status_code == 200, "a request from this machine needs no credentials"


async def test_twiml_answer_connects_a_stream_with_parameters(stack):
    emulator = TwilioMediaEmulator(FIXTURES / "hang_up.jsonl", auth_token=AUTH_TOKEN)
    target = await emulator.answer(stack.webhook, {"From": "+15551230000"})
    assert target.url == stack.base_url.replace("http", "ws") + "/media-stream"
    assert target.parameters["caller"] == "+15551230000"
    issued, _, mac = target.parameters["token"].partition(".")
    assert int(issued, 16) > 0 and len(mac) == 32


async def test_healthz(stack):
    import httpx

    async with httpx.AsyncClient() as client:
        response = await client.get(stack.base_url + "/healthz")
    assert response.json() == {"status": "ok", "active_calls": 0, "pid": os.getpid()}, "the pid says which worker answered"
