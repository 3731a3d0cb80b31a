"""The real google-genai Live client against the local emulator, over real TLS sockets."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from google.genai import types

from telephony.gemini import (
    AgentAudio,
    GeminiSessionError,
    GoAway,
    InputTranscript,
    Interrupted,
    OutputTranscript,
    ResumptionHandle,
    SessionClosed,
    ToolCall,
    TurnComplete,
)
from telephony.gemini.session import GeminiLiveSession
from telephony.testing.gemini_live import EmulatedToolCall, Faults, GeminiLiveEmulator, Reply, ScriptedAgent, tone24k
from telephony.web.composition import agent_options_from, gemini_client_from

from conftest import emulator_settings, open_session, speak_fixture


async def collect(session, until=lambda events: False, timeout=15.0):
    events = []

    async def run():
        async for event in session.events():
            events.append(event)
            if until(events):
                return

    await asyncio.wait_for(run(), timeout)
    return events


async def test_sdk_sends_speech_and_hears_the_echo(gemini_emulator):
    session = await open_session(gemini_emulator)
    try:
        receiver = asyncio.create_task(collect(session, lambda ev: isinstance(ev[-1], TurnComplete)))
        await speak_fixture(session, "one_sentence")
        events = await receiver
    finally:
        await session.close()
    setup = gemini_emulator.connections[0].setup
    assert setup["model"] == "models/gemini-3.8-live"
    assert setup["generation_config"]["speech_config"]["voice_config"]["prebuilt_voice_config"]["voice_name"] == "Kore"
    assert "input_audio_transcription" in setup and "session_resumption" in setup
    audio = np.frombuffer(b"".join(e.pcm24k for e in events if isinstance(e, AgentAudio)), dtype="<i2")
    said = gemini_emulator.connections[0]
    # The echo is as long as the sentence the caller said (2-4 s), and not silent.
    assert 2.0 < len(audio) / 24000 < 4.5
    assert np.sqrt(np.mean(audio.astype(float) ** 2)) > 500
    assert any(isinstance(e, InputTranscript) for e in events)
    assert any(isinstance(e, OutputTranscript) and "echo" in e.text for e in events)
    assert said.audio_in_seconds == pytest.approx(9.8, abs=0.1)


@pytest.mark.parametrize("deflate", [False, True], ids=["default-no-deflate", "deflate-on"])
async def test_the_gemini_socket_offers_deflate_only_when_asked(gemini_emulator, deflate):
    # Deflate on base64 audio cost ~7 % of the server's CPU for little saving (bench load).
    settings = emulator_settings(gemini_emulator, gemini_websocket_deflate=deflate)
    session = GeminiLiveSession(gemini_client_from(settings), agent_options_from(settings))
    await session.open()
    await session.close()
    (conn,) = gemini_emulator.connections
    assert ("permessage-deflate" in conn.websocket_extensions) is deflate
    assert conn.setup, "the session itself worked"


async def test_talking_over_the_reply_interrupts_it(gemini_emulator):
    session = await open_session(gemini_emulator)
    try:
        receiver = asyncio.create_task(collect(session, lambda ev: any(isinstance(e, Interrupted) for e in ev)))
        await speak_fixture(session, "barge_in", speed=3.0)
        events = await receiver
    finally:
        await session.close()
    index = next(i for i, e in enumerate(events) if isinstance(e, Interrupted))
    assert any(isinstance(e, AgentAudio) for e in events[:index]), "audio of the first reply came before"
    assert gemini_emulator.connections[0].interruptions == 1


async def test_tool_call_round_trips_and_the_reply_continues():
    agent = ScriptedAgent([Reply(audio24k=tone24k(0.3), transcript="booked", tool_calls=(EmulatedToolCall("book", {"day": "Tuesday"}),))])
    async with GeminiLiveEmulator(agent) as emulator:
        session = await open_session(emulator)
        try:
            speaker = asyncio.create_task(speak_fixture(session, "one_sentence", speed=8))
            events = []
            async for event in session.events():
                events.append(event)
                if isinstance(event, ToolCall):
                    assert event.name == "book" and event.args == {"day": "Tuesday"}
                    await session.send_tool_response(event.id, event.name, {"confirmed": True})
                if isinstance(event, TurnComplete):
                    break
        finally:
            speaker.cancel()
            await session.close()
    # 3.8 runs an undeclared tool NON_BLOCKING: its result says when to use it (WHEN_IDLE by default).
    assert emulator.connections[0].tool_responses[0]["response"] == {"confirmed": True, "scheduling": "WHEN_IDLE"}
    assert any(isinstance(e, AgentAudio) for e in events)


@pytest.mark.parametrize("faults,code", [(Faults(close_after_s=0.3, close_code=1011), 1011), (Faults(drop_after_s=0.3), 1006)])
async def test_server_faults_surface_as_a_retryable_close(faults, code):
    async with GeminiLiveEmulator(faults=faults) as emulator:
        session = await open_session(emulator)
        events = await collect(session, lambda ev: isinstance(ev[-1], SessionClosed))
        await session.close()
    assert events[-1] == SessionClosed(code=code, reason=events[-1].reason)
    assert events[-1].retryable


async def test_faults_timed_from_a_tool_call_never_made_leave_the_session_deadline_as_it_was():
    faults = Faults(close_after_s=0.1, from_tool_call=True, session_deadline_s=0.3)
    async with GeminiLiveEmulator(faults=faults) as emulator:
        session = await open_session(emulator)
        events = await collect(session, lambda ev: isinstance(ev[-1], SessionClosed))
        await session.close()
    assert events[-1].code == 1011 and "Deadline expired" in events[-1].reason, events[-1]


async def test_go_away_is_announced_with_the_time_left():
    async with GeminiLiveEmulator(faults=Faults(go_away_after_s=0.2, go_away_time_left_s=0.5)) as emulator:
        session = await open_session(emulator)
        events = await collect(session, lambda ev: isinstance(ev[-1], SessionClosed))
        await session.close()
    go_away = next(e for e in events if isinstance(e, GoAway))
    assert go_away.time_left_s == pytest.approx(0.5)
    assert events[-1].code == 1011


async def test_resumption_handle_is_accepted_on_reconnect(gemini_emulator):
    first = await open_session(gemini_emulator)
    events = await collect(first, lambda ev: isinstance(ev[-1], ResumptionHandle))
    await first.close()
    handle = events[-1].handle
    assert events[-1].resumable
    resumed = await open_session(gemini_emulator, resume_handle=handle)
    await resumed.close()
    assert gemini_emulator.connections[-1].resumed_handle == handle


async def test_unknown_resumption_handle_is_a_fatal_setup_error(gemini_emulator):
    with pytest.raises(GeminiSessionError) as error:
        await open_session(gemini_emulator, resume_handle="made-up")
    assert error.value.code == 1007
    assert not SessionClosed(error.value.code, "").retryable


async def test_text_input_and_manual_activity_reach_the_server():
    async with GeminiLiveEmulator(ScriptedAgent([Reply(audio24k=tone24k(0.2))])) as gemini_emulator:
        await _text_and_manual_activity(gemini_emulator)


async def _text_and_manual_activity(gemini_emulator):
    session = await open_session(gemini_emulator, vad_disabled=True)
    try:
        await session.send_text("4")
        await session.send_activity_start()
        await speak_fixture(session, "hang_up", speed=20)
        await session.send_activity_end()
        events = await collect(session, lambda ev: isinstance(ev[-1], TurnComplete))
    finally:
        await session.close()
    connection = gemini_emulator.connections[0]
    assert connection.texts == ["4"]
    assert connection.setup["realtime_input_config"]["automatic_activity_detection"]["disabled"] is True
    assert any(isinstance(e, AgentAudio) for e in events)


async def test_tool_declarations_reach_the_setup(gemini_emulator):
    tool = types.FunctionDeclaration(name="end_call", description="Hang up politely.")
    session = await open_session(gemini_emulator, tools=(tool,))
    await session.close()
    declared = gemini_emulator.connections[0].setup["tools"][0]["function_declarations"]
    assert declared[0]["name"] == "end_call"


async def test_requests_to_other_paths_or_without_the_key_are_refused():
    import websockets

    async with GeminiLiveEmulator(api_key="right") as emulator:
        with pytest.raises(GeminiSessionError):
            await open_session(emulator)  # sends "offline-test-key"
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            async with websockets.connect(f"wss://127.0.0.1:{emulator.port}/elsewhere", ssl=emulator.client_ssl_context()):
                pass
        assert refused.value.response.status_code == 404


async def test_cancelling_a_call_while_gemini_is_connecting_cancels_it_rather_than_failing_it(tmp_path):
    # A caller who hangs up during the Live setup cancels the call's task. That must stay a
    # cancellation: turned into a retryable "connection lost" it made the call retry Gemini.
    async def never_answer(reader, writer):
        await reader.read()  # until the client goes away
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with GeminiLiveEmulator() as gemini:  # only for its CA file
        settings = emulator_settings(gemini, gemini_base_url=f"https://127.0.0.1:{port}")
        session = GeminiLiveSession(gemini_client_from(settings), agent_options_from(settings))
        opening = asyncio.create_task(session.open())
        await asyncio.sleep(0.2)  # connected, waiting for a TLS handshake that never comes
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening
    server.close()
    await server.wait_closed()


async def test_our_audio_message_is_byte_for_byte_what_the_sdk_sends():
    """The leaner send path (telephony.gemini.session.audio_message) writes exactly what
    google-genai's send_realtime_input would, for any audio."""
    import random

    from google.genai import live, types

    from telephony.gemini.config import INPUT_MIME_TYPE
    from telephony.gemini.session import audio_message

    class Recorder:
        def __init__(self) -> None:
            self.sent: list[str] = []

        async def send(self, message: str) -> None:
            self.sent.append(message)

    class DeveloperApi:
        vertexai = False

    sdk = live.AsyncSession.__new__(live.AsyncSession)
    sdk._api_client, sdk._ws = DeveloperApi(), Recorder()
    rng = random.Random(1)
    chunks = [b"", bytes(640), b"\xff\xfe\xfb" * 7, *(rng.randbytes(rng.choice([2, 638, 640, 3200])) for _ in range(200))]
    for chunk in chunks:
        await sdk.send_realtime_input(audio=types.Blob(data=chunk, mime_type=INPUT_MIME_TYPE))
    assert sdk._ws.sent == [audio_message(chunk) for chunk in chunks]


async def test_the_emulator_hears_audio_sent_the_lean_way(gemini_emulator):
    from conftest import open_session

    session = await open_session(gemini_emulator)
    await session.send_audio(bytes(3200))
    await asyncio.sleep(0.2)
    await session.close()
    assert gemini_emulator.connections[0].audio_in_bytes == 3200
