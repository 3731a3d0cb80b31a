"""Call history that lasts: SQLite and a real PostgreSQL, restarts, two instances, a database
outage mid-call, and the stereo recording's channels against what the emulators sent."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
import wave

import httpx
import numpy as np
import pytest

from telephony.audio.mulaw import decode_mulaw
from telephony.testing.call_fixture import caller_audio
from telephony.testing.demo import DemoModel, demo_agent
from telephony.testing.gemini_live import GeminiLiveEmulator, Realism
from telephony.testing.twilio_media import TwilioMediaEmulator

from conftest import AUTH_TOKEN, FIXTURES, offline_stack, until_a_call_is_live

USAGE_ONLY = Realism(
    lead_s=60.0,
    fragment_transcripts=False,
    late_input_transcript=False,
    tool_speech_delay_s=(0.0, 0.0),
    check_setup=False,
    unknown_message=False,
)


async def get(stack, path: str, **kwargs) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(stack.base_url + path, **kwargs)


async def flushed(stack) -> None:
    assert await stack.app.state.voice.writer.flush(), "the store caught up"


async def demo_call(stack):
    return await stack.replay("barge_in")


async def test_a_call_its_turns_tools_and_usage_outlive_the_server(tmp_path):
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    gemini = GeminiLiveEmulator(DemoModel(), speed=4.0, realism=USAGE_ONLY)
    async with gemini:
        async with offline_stack(gemini, agent=demo_agent, database_url=url) as stack:
            result = await demo_call(stack)
            await flushed(stack)
        async with offline_stack(gemini, agent=demo_agent, database_url=url) as restarted:  # a new process, same file
            call = (await get(restarted, f"/api/calls/{result.call_sid}")).json()
            listing = (await get(restarted, "/api/calls", params={"number": "0100001"})).json()
            page = await get(restarted, f"/calls/{result.call_sid}", headers={"accept": "text/html"})
            dashboard = await get(restarted, "/calls")
    assert call["finished"] and call["outcome"] == "completed" and call["agent"] == "demo"
    speakers = [line["speaker"] for line in call["transcript"]]
    assert "caller" in speakers and "agent" in speakers and "tool" in speakers
    assert any(line["interrupted"] for line in call["transcript"]), "the barge-in is kept"
    (tool,) = call["tool_calls"]
    assert tool["name"] == "opening_hours" and tool["arguments"] == {"day": "weekend"} and tool["duration_ms"] is not None
    assert call["usage"]["prompt_tokens"] > 0 and call["usage"]["response_tokens"] > 0 and call["cost_usd"] > 0
    assert listing["total"] == 1 and listing["calls"][0]["call_sid"] == result.call_sid
    assert page.status_code == 200 and "opening_hours" in page.text and "<svg" in page.text
    assert dashboard.status_code == 200 and result.call_sid in dashboard.text


async def test_a_shutdown_right_after_a_call_still_writes_its_record(tmp_path):
    # The record is queued for the store's writer when the call ends; a server stopped then (a
    # drain's last call, the test kit's Conversation leaving) must write it before it is gone.
    # Another client holds SQLite's write lock until shortly after the shutdown began.
    path = tmp_path / "calls.db"
    gemini = GeminiLiveEmulator(DemoModel(), speed=4.0, realism=USAGE_ONLY)
    async with gemini:
        async with offline_stack(gemini, agent=demo_agent, database_url=f"sqlite:///{path}") as stack:
            other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            other.execute("BEGIN IMMEDIATE")
            result = await demo_call(stack)
            while result.call_sid not in stack.app.state.voice.recent_calls:  # ended: its record is queued
                await asyncio.sleep(0.005)
            threading.Timer(0.5, other.rollback).start()
        rows = sqlite3.connect(path).execute("SELECT ended_at FROM calls WHERE call_sid = ?", (result.call_sid,)).fetchall()
    other.close()
    assert len(rows) == 1 and rows[0][0] is not None, "the finished call was written before the server stopped"


async def test_a_database_outage_mid_call_disturbs_nothing_and_the_record_lands_later(postgres):
    async with GeminiLiveEmulator(speed=4.0) as gemini:
        async with offline_stack(gemini, database_url=postgres.url) as stack:
            await get(stack, "/api/calls")  # the schema is in place
            call = asyncio.create_task(stack.replay("barge_in"))
            await until_a_call_is_live(stack, call)
            await asyncio.to_thread(postgres.stop, "immediate")
            result = await call
            writer = stack.app.state.voice.writer
            assert writer.backlog >= 1, "the record waits for the database"
            errors_during = await get(stack, "/metrics")
            await asyncio.to_thread(postgres.start)
            await flushed(stack)
            stored = (await get(stack, f"/api/calls/{result.call_sid}")).json()
    assert result.close_code == 1000 and result.caller_hung_up and len(result.clears) == 1, "the call went on as normal"
    assert "telephony_store_errors_total" in errors_during.text
    assert stored["finished"] and stored["interruptions"] == 1


async def test_a_call_arriving_while_the_database_is_down_is_answered_and_a_replay_still_refused_here(postgres, caplog):
    """The shared claims cannot be taken: the caller is answered anyway (a call never waits on
    the history store), and this process's own single-use token still refuses a replay."""
    caplog.set_level(logging.INFO, logger="telephony")  # whatever an earlier test left
    async with GeminiLiveEmulator(speed=4.0) as gemini, offline_stack(gemini, database_url=postgres.url) as stack:
        await get(stack, "/api/calls")  # the schema is in place
        await asyncio.to_thread(postgres.stop, "immediate")
        caller = TwilioMediaEmulator(FIXTURES / "hang_up.jsonl", speed=4.0, auth_token=AUTH_TOKEN)
        target = await caller.answer(stack.webhook)
        started = time.monotonic()
        result = await caller.play(target)
        took = time.monotonic() - started
        replay = await TwilioMediaEmulator(FIXTURES / "hang_up.jsonl", speed=4.0, auth_token=AUTH_TOKEN).play(target)
        metrics = (await get(stack, "/metrics")).text
        await asyncio.to_thread(postgres.start)
    assert result.close_code == 1000 and result.heard_seconds > 0.5, "answered without the store"
    assert replay.close_code == 1008 and replay.heard_seconds == 0
    assert len(gemini.connections) == 1
    assert took < 20, f"the call waited on the dead store ({took:.1f} s)"
    warned = [r.getMessage() for r in caplog.records if "shared store" in r.getMessage()]
    assert warned and "this process only" in warned[0], warned
    assert "telephony_store_errors_total" in metrics


async def test_the_recording_has_the_caller_left_and_the_agent_right_on_the_calls_timeline(tmp_path):
    async with GeminiLiveEmulator(speed=2.0) as gemini:
        async with offline_stack(gemini, record_audio=True, recordings_dir=tmp_path) as stack:
            emulator = TwilioMediaEmulator(FIXTURES / "barge_in.jsonl", speed=2.0, auth_token=AUTH_TOKEN)
            result = await emulator.call(stack.webhook)
            (record,) = stack.records()
            wav = await get(stack, f"/calls/{result.call_sid}/recording.wav")
    with wave.open(record.recording) as file:
        assert (file.getnchannels(), file.getframerate(), file.getsampwidth()) == (2, 8000, 2)
        stereo = np.frombuffer(file.readframes(file.getnframes()), dtype="<i2").reshape(-1, 2).astype(np.float64)
    assert wav.status_code == 200 and wav.content[:4] == b"RIFF"
    said = np.frombuffer(decode_mulaw(caller_audio(FIXTURES / "barge_in.jsonl")), dtype="<i2").astype(np.float64)
    heard = np.frombuffer(result.heard_pcm(), dtype="<i2").astype(np.float64)
    left, right = stereo[:, 0], stereo[:, 1]
    n = min(len(left), len(said))
    assert np.allclose(left[:n], said[:n], atol=2), "the left channel is exactly what the caller said, from the start"
    lag_ms = best_lag_ms(right, heard)
    assert abs(lag_ms) < 120, f"the agent channel is {lag_ms:.0f} ms off what the caller heard"
    assert energy(right) > 0 and energy(left) > 0


def energy(signal: np.ndarray) -> float:
    return float(np.sqrt(np.mean(signal**2))) if len(signal) else 0.0


def best_lag_ms(recorded: np.ndarray, reference: np.ndarray, max_lag_ms: int = 500) -> float:
    """Where `reference` sits in `recorded`, by cross-correlation (positive: recorded later)."""
    n = min(len(recorded), len(reference))
    a, b = recorded[:n] - recorded[:n].mean(), reference[:n] - reference[:n].mean()
    spectrum = np.fft.irfft(np.fft.rfft(a, 2 * n) * np.conj(np.fft.rfft(b, 2 * n)))
    lags = np.concatenate([spectrum[-max_lag_ms * 8 :], spectrum[: max_lag_ms * 8 + 1]])
    return (int(np.argmax(lags)) - max_lag_ms * 8) / 8


async def test_the_dashboard_renders_in_a_real_browser(tmp_path):
    from helpers.browser import chromium, keep_screenshot
    from helpers.browser import unavailable as no_browser

    if reason := no_browser():
        pytest.skip(reason)
    speed = 1.0 if os.environ.get("TELEPHONY_UPDATE_SCREENSHOTS") else 4.0  # the README's picture: a call in real time
    gemini = GeminiLiveEmulator(DemoModel(), speed=speed, realism=USAGE_ONLY)
    async with gemini, offline_stack(gemini, agent=demo_agent, record_audio=True, recordings_dir=tmp_path) as stack:
        result = await stack.replay("barge_in", speed=speed)
        await flushed(stack)
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1100, "height": 1000})
            await page.goto(stack.base_url + "/calls")
            listed = await page.get_by_role("link", name=result.call_sid).count()
            await page.get_by_role("link", name=result.call_sid).click()
            await page.wait_for_selector("svg[aria-label='call timeline']")
            transcript = await page.locator("table").nth(0).inner_text()
            audio_ok = await page.evaluate("document.querySelector('audio') !== null")
            png = await page.screenshot(full_page=True)
            keep_screenshot(png, "dashboard-call.png")
            stranger = await browser.new_page(extra_http_headers={"X-Forwarded-For": "203.0.113.9"})
            response = await stranger.request.get(stack.base_url + "/calls")
    assert listed == 1
    assert "opening_hours" in transcript and "(interrupted)" in transcript
    assert audio_ok, "the recording is on the page"
    assert response.status == 401, "from anywhere else, the dashboard needs its credentials"
