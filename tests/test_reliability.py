"""Faults, bad input, limits and shutdown: the caller keeps a working call, or a clean end."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telephony.gemini.events import ResumptionHandle, SessionClosed
from telephony.gemini.resilient import Reconnected, ResilientGeminiSession, RetryPolicy
from telephony.gemini.session import GeminiLiveSession
from telephony.logs import JsonFormatter
from telephony.testing.call_fixture import read_fixture
from telephony.testing.gemini_live import Faults, GeminiLiveEmulator
from telephony.testing.twilio_media import TwilioMediaEmulator
from telephony.web.composition import agent_options_from, gemini_client_from

from conftest import FIXTURES, emulator_settings, free_port, offline_stack, until_a_call_is_live, until_served, wait_until_healthy


async def test_1011_mid_reply_resumes_with_the_handle_and_the_call_goes_on():
    # Reply 1 runs from ~4.0 s of call time; the server fails with 1011 at 4.6 s. At 2x (not
    # 4x) the caller's second question has time to be answered before they hang up, even on a
    # busy machine.
    gemini = GeminiLiveEmulator(speed=2.0, faults=Faults(close_after_s=4.6, close_code=1011))
    async with gemini, offline_stack(gemini) as stack:
        result = await stack.replay("barge_in", speed=2.0)
        (record,) = stack.records()
    first, second = gemini.connections
    assert first.close_code == 1011
    assert second.resumed_handle in first.handles_issued
    assert record.reconnects == 1 and record.end_reason == "caller hung up"
    # The caller's second question was answered over the new connection, and heard.
    assert second.replies_finished >= 1
    assert result.media_seconds(after_s=7.0) > 1.0
    assert any("Continue your answer" in text for text in second.texts), "the cut-off reply is taken up again, not left in silence"


async def test_go_away_switches_connection_at_the_end_of_the_sentence():
    # Emulator and caller at 2x: the goAway keeps its place in the call however slow the set-up.
    gemini = GeminiLiveEmulator(speed=2.0, faults=Faults(go_away_after_s=4.4, go_away_time_left_s=8.0))
    async with gemini, offline_stack(gemini) as stack:
        result = await stack.replay("barge_in", speed=2.0)
        (record,) = stack.records()
    first, second = gemini.connections
    assert first.close_code == 1000, "we closed the old connection before its deadline"
    assert second.resumed_handle is not None
    assert record.reconnects == 1 and record.errors == []
    assert result.media_seconds(after_s=7.0) > 1.0


async def test_failed_recovery_plays_the_apology_and_ends_the_call():
    # At 2x (emulator and caller alike, so the close still comes at 4.6 s of call time): the
    # 4.5 s apology is heard out before the recorded hang-up at 13 s, even on a busy machine.
    gemini = GeminiLiveEmulator(speed=2.0, faults=Faults(close_after_s=4.6, refuse_after_connections=1))
    async with gemini, offline_stack(gemini, gemini_reconnect_buffer_seconds=0.3, gemini_open_timeout_seconds=0.3) as stack:
        result = await stack.replay("barge_in", speed=2.0)
        (record,) = stack.records()
    assert gemini.refused >= 2, "tried again, with backoff, for as long as the caller's audio is held"
    assert record.end_reason.startswith("gemini failed")
    assert any(line.speaker == "system" and "apology" in line.text for line in record.transcript)
    apology_s = result.media_seconds(after_s=4.6)
    assert apology_s >= 4.5, "the whole apology was sent"
    assert result.close_code == 1000
    assert not result.caller_hung_up, "the server ended the call before the caller did"


async def test_reconnects_switched_off_end_the_call_with_the_apology_at_the_first_drop():
    gemini = GeminiLiveEmulator(speed=4.0, faults=Faults(close_after_s=4.6, close_code=1011))
    async with gemini, offline_stack(gemini, gemini_reconnects_per_call=0) as stack:
        result = await stack.replay("barge_in")
        (record,) = stack.records()
    assert len(gemini.connections) == 1, "no reconnect was tried"
    assert record.end_reason.startswith("gemini failed") and "switched off" in record.end_reason
    assert any(line.speaker == "system" and "apology" in line.text for line in record.transcript)
    assert result.close_code == 1000


@pytest.mark.parametrize(
    "gemini_kwargs,retried",
    [({"faults": Faults(refuse_after_connections=0)}, True), ({"api_key": "the-right-key"}, False)],
    ids=["gemini-down", "bad-api-key"],
)
async def test_gemini_unreachable_at_call_start_gets_the_whole_apology(gemini_kwargs, retried):
    gemini = GeminiLiveEmulator(speed=4.0, **gemini_kwargs)
    async with gemini, offline_stack(gemini, gemini_open_timeout_seconds=1.0) as stack:
        result = await stack.replay("one_sentence", speed=2.0)  # 1 s of tries + a 5 s apology fit before the hang-up
        (record,) = stack.records()
    assert record.end_reason.startswith("gemini unavailable")
    assert (gemini.refused > 1) is retried and gemini.connections == [], "a bad key (403) is not retried"
    assert result.heard_seconds >= 5.0, "the whole spoken apology was played before hanging up"
    assert not result.caller_hung_up and result.close_code == 1000


async def test_caller_audio_queued_behind_a_send_goes_in_fewer_messages_with_the_same_bytes():
    """What waits in the outbox (here: queued before the connection opened, as after a
    reconnect or on a loop that is behind) goes as half-second messages, in order, whole."""
    from telephony.gemini.messages import CallerAudio

    gemini = GeminiLiveEmulator(speed=4.0)
    gemini.record_messages = gemini.record_timings = True
    async with gemini:
        client = gemini_client_from(emulator_settings(gemini))
        session = ResilientGeminiSession(lambda: GeminiLiveSession(client, agent_options_from(emulator_settings(gemini))), RetryPolicy())
        blocks = [CallerAudio(bytes([n]) * 640) for n in range(30)]  # 600 ms
        for block in blocks:
            session.send(block)
        await session.open()
        for _ in range(200):
            if gemini.connections and gemini.connections[0].audio_in_bytes >= 30 * 640:
                break
            await asyncio.sleep(0.01)
        session.send(CallerAudio(b"\x7f" * 640))  # nothing waits now: it goes alone
        for _ in range(200):
            if gemini.connections[0].audio_in_bytes >= 31 * 640:
                break
            await asyncio.sleep(0.01)
        await session.close()
    (connection,) = gemini.connections
    assert bytes(connection.caller_audio) == b"".join(block.pcm16k for block in blocks) + b"\x7f" * 640
    assert len(connection.audio_received_at) == 3, "16000 bytes, the 3200 left, then the late block alone"


async def test_a_refused_handle_gives_a_fresh_session_with_the_same_configuration():
    gemini = GeminiLiveEmulator(speed=4.0, faults=Faults(close_after_s=2.0, close_code=1011))
    async with gemini:
        settings = emulator_settings(gemini)
        options = agent_options_from(settings).with_overrides(instructions="You are the same agent.")
        client = gemini_client_from(settings)
        session = ResilientGeminiSession(lambda: GeminiLiveSession(client, options), RetryPolicy(first_delay_s=0.01))
        await session.open()
        outcome = None
        async with contextlib.aclosing(session.events()) as events:
            async for event in events:
                if isinstance(event, ResumptionHandle):
                    session.handle = "forgotten-by-the-service"  # as if it had expired
                elif isinstance(event, (Reconnected, SessionClosed)):
                    outcome = event
                    break
        await session.close()
    assert isinstance(outcome, Reconnected) and not outcome.resumed and outcome.attempts == 2
    first, refused, fresh = gemini.connections
    assert refused.setup["session_resumption"]["handle"] == "forgotten-by-the-service" and refused.close_code == 1007
    assert fresh.resumed_handle is None
    assert fresh.setup["system_instruction"] == first.setup["system_instruction"]
    assert fresh.setup["generation_config"] == first.setup["generation_config"]


async def test_every_log_line_of_a_call_is_json_with_both_sids_and_no_secret_or_audio(caplog):
    # A 1011 mid-call makes the Gemini layer log its reconnect: those lines must carry the
    # call's SIDs too, or an operator cannot tell which call lost its agent.
    gemini = GeminiLiveEmulator(speed=4.0, faults=Faults(close_after_s=4.6, close_code=1011))
    async with gemini, offline_stack(gemini) as stack:
        with caplog.at_level(logging.INFO, logger="telephony"):
            result = await stack.replay("barge_in")
        secrets = [stack.settings.twilio_auth_token.get_secret_value(), stack.settings.gemini_api_key.get_secret_value()]
    formatter = JsonFormatter()
    lines = [json.loads(formatter.format(record)) for record in caplog.records]
    call_lines = [line for line in lines if line["logger"].startswith(("telephony.call", "telephony.gemini"))]
    assert any("reconnect" in line["msg"] for line in call_lines), "the reconnect was logged"
    missing = [line["msg"] for line in call_lines if (line.get("call_sid"), line.get("stream_sid")) != (result.call_sid, result.stream_sid)]
    assert not missing, f"lines without the call's SIDs: {missing}"
    text = "\n".join(formatter.format(record) for record in caplog.records)
    payloads = [json.loads(m.text)["media"]["payload"] for m in read_fixture(FIXTURES / "barge_in.jsonl") if m.event == "media"]
    assert not [s for s in secrets if s and s in text], "a secret reached the log"
    assert not any(p in text for p in payloads[100:110]), "caller audio reached the log"


def _media_json(payload: str, stream: str = "MZ" + "a" * 32) -> str:
    return json.dumps(
        {"event": "media", "sequenceNumber": "9", "streamSid": stream, "media": {"chunk": "1", "timestamp": "20", "payload": payload}}
    )


def bad_messages():
    good = read_fixture(FIXTURES / "hang_up.jsonl")[5].text
    return st.one_of(
        st.text(max_size=300),
        st.binary(max_size=300),
        st.builds(json.dumps, st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=20), max_size=5)),
        st.builds(lambda e: json.dumps({"event": e}), st.sampled_from(["media", "start", "mark", "dtmf", "stop", "clear", "x"])),
        st.builds(_media_json, st.text(alphabet="ABCD+/=!", max_size=40)),
        st.builds(_media_json, st.just("/w==" * 3000)),
        st.builds(lambda i, c: good[:i] + c + good[i + 1 :], st.integers(0, len(good) - 1), st.characters()),
        st.just(json.dumps({"event": "dtmf", "sequenceNumber": "1", "streamSid": "MZ1", "dtmf": {"digit": "99"}})),
    )


def generate(strategy, count: int) -> list:
    found: list = []

    @settings(max_examples=count, database=None, derandomize=True, suppress_health_check=list(HealthCheck), deadline=None)
    @given(strategy)
    def collect(value):
        found.append(value)

    collect()
    return found


async def test_fuzzed_sockets_never_hurt_a_concurrent_good_call(caplog):
    messages = generate(bad_messages(), 3000)
    async with offline_stack(validate_signatures=False) as stack:
        url = stack.base_url.replace("http", "ws") + "/media-stream"

        async def fuzz(batch: list, with_start: bool) -> bool:
            """True when the server cut the socket before the whole batch was sent."""
            start_lines = [line.text for line in read_fixture(FIXTURES / "hang_up.jsonl")[:2]]
            try:
                async with websockets.connect(url) as ws:
                    if with_start:
                        for line in start_lines:
                            await ws.send(line)
                    for message in batch:
                        await ws.send(message)
                        await asyncio.sleep(0)
                    await asyncio.sleep(0.2)
                    await ws.send("{}")  # the server closed in the meantime?
            except websockets.exceptions.ConnectionClosed:
                return True
            return False

        good_call = asyncio.create_task(stack.replay("one_sentence", speed=4))
        batches = [messages[i : i + 150] for i in range(0, len(messages), 150)]
        with caplog.at_level(logging.WARNING):
            cut = await asyncio.gather(*(fuzz(batch, i % 4 != 0) for i, batch in enumerate(batches)))
            result = await good_call
            async with httpx.AsyncClient() as client:
                health = await client.get(stack.base_url + "/healthz")
                metrics = (await client.get(stack.base_url + "/metrics")).text
    good = [r for r in stack.records() if r.call_sid == result.call_sid][0]
    assert good.end_reason == "caller hung up" and good.malformed == 0
    assert result.heard_seconds > 2.0
    assert health.status_code == 200
    assert "telephony_malformed_messages_total" in metrics
    assert not [r for r in caplog.records if r.getMessage() == "call failed"], "an exception escaped a call"
    malformed = sum(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("telephony_malformed_messages_total"))
    assert malformed >= len(batches), "the fuzz messages reached the bridge and were counted"
    assert all(cut), "every flood of bad messages was cut off (a burst over the per-second limit closes the socket)"


async def test_metrics_count_calls_frames_and_latencies(stack):
    await stack.replay("barge_in")
    async with httpx.AsyncClient() as client:
        text = (await client.get(stack.base_url + "/metrics")).text
    values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line and not line.startswith("#")}
    assert values['telephony_calls_total{outcome="completed"}'] == 1
    sent = sum(1 for m in read_fixture(FIXTURES / "barge_in.jsonl") if m.event == "media")
    assert values["telephony_frames_in_total"] == sent
    assert values["telephony_frames_out_total"] > 100
    assert values["telephony_interrupted_to_clear_seconds_count"] == 1
    assert values["telephony_gemini_chunk_to_twilio_frame_seconds_count"] > 10
    assert values["telephony_active_calls"] == 0


async def test_a_held_event_loop_shows_as_loop_lag_at_metrics(stack):
    """An event loop held past its timers makes every call's frames wait as long: the first
    sign of too many calls on one process, so operators see it before callers hear it."""

    def lags(text: str) -> dict[str, float]:
        prefix = "telephony_event_loop_lag_seconds_bucket"
        return {line.split('le="')[1].split('"')[0]: float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix)}

    async with httpx.AsyncClient() as client:
        await asyncio.sleep(0.35)  # a few samples of an idle loop
        idle = lags((await client.get(stack.base_url + "/metrics")).text)
        time.sleep(0.4)  # what a blocking call in a tool or a CPU-bound burst does
        await asyncio.sleep(0.25)
        held = lags((await client.get(stack.base_url + "/metrics")).text)
    # The sample asleep when the loop was held woke 0.3-0.4 s late (its own 0.1 s sleep ran inside the hold).
    assert idle["+Inf"] >= 2, f"the loop is sampled: {idle}"
    late = (held["+Inf"] - held["0.25"]) - (idle["+Inf"] - idle["0.25"])
    assert late >= 1 and held["+Inf"] - held["0.5"] == idle["+Inf"] - idle["0.5"], f"one sample 0.3-0.4 s late: {idle} -> {held}"


async def test_calls_beyond_capacity_hear_the_busy_message():
    async with offline_stack(max_concurrent_calls=1) as stack:
        first = asyncio.create_task(stack.replay("one_sentence"))
        await until_a_call_is_live(stack, first)
        with pytest.raises(ValueError, match="no <Connect><Stream>"):
            await TwilioMediaEmulator(FIXTURES / "hang_up.jsonl", auth_token="test-auth-token").answer(stack.webhook)
        async with httpx.AsyncClient() as client:
            ready = await client.get(stack.base_url + "/readyz")
        await first
    assert ready.status_code == 503 and ready.json()["reason"] == "at_capacity"


async def test_idle_and_over_long_calls_are_ended():
    async with offline_stack(validate_signatures=False, idle_timeout_seconds=0.5) as stack:
        url = stack.base_url.replace("http", "ws") + "/media-stream"
        silent = TwilioMediaEmulator(read_fixture(FIXTURES / "hang_up.jsonl")[:2], linger_s=10)
        result = await silent.play(url)
        (record,) = stack.records()
    assert record.end_reason.startswith("nothing from Twilio") and result.close_code == 1000
    async with offline_stack(validate_signatures=False, max_call_seconds=1.0) as stack:
        result = await TwilioMediaEmulator(FIXTURES / "one_sentence.jsonl").play(stack.base_url.replace("http", "ws") + "/media-stream")
        (record,) = stack.records()
    assert "limit" in record.end_reason
    assert any(line.speaker == "system" for line in record.transcript), "a goodbye was played"
    assert not result.caller_hung_up, "ended by the server before the caller hung up"


@pytest.mark.parametrize("drain_seconds,expect", [(30, "caller hung up"), (0.5, "server shutting down")])
async def test_sigterm_drains_live_calls(drain_seconds, expect, tmp_path):
    port = free_port()
    env = dict(os.environ, TELEPHONY_VALIDATE_SIGNATURES="false", TELEPHONY_PORT=str(port), TELEPHONY_DRAIN_SECONDS=str(drain_seconds))
    server = subprocess.Popen(
        [sys.executable, "-m", "telephony", "serve", "--emulate-gemini", "--call-log", str(tmp_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_until_healthy(base, process=server)
        async with httpx.AsyncClient() as client:
            call = asyncio.create_task(TwilioMediaEmulator(FIXTURES / "hang_up.jsonl", speed=1.0).call(base + "/twiml"))
            await until_served(base, call)
            server.send_signal(signal.SIGTERM)
            await until_served(base, call, "/readyz", check=lambda r: r.status_code == 503)
            ready = await client.get(base + "/readyz")
            busy = await client.post(base + "/twiml", data={"CallSid": "CA" + "9" * 32})
            result = await call
        await asyncio.to_thread(server.wait, 30)
    finally:
        if server.poll() is None:
            server.kill()
    assert ready.status_code == 503 and ready.json()["reason"] == "draining"
    assert "<Say>" in busy.text and "<Stream" not in busy.text
    (entry,) = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert entry["end_reason"] == expect
    if expect == "server shutting down":
        assert any(line["speaker"] == "system" for line in entry["transcript"])
    assert result.heard_seconds > 1.0
    assert server.returncode == 0, "a clean drain exits 0, not by the signal (143)"
