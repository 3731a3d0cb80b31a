"""What the real Gemini Live service does that a kind emulator would not, and that calls
survive it: mid-call closes of every kind, refused resumptions, unknown voices, sub-word and
late transcripts, unknown server messages, backend-specific model ids."""

from __future__ import annotations

import contextlib
import logging

import pytest

from telephony.gemini import catalog
from telephony.gemini.events import OutputTranscript, SessionClosed
from telephony.gemini.session import GeminiLiveSession, GeminiSessionError
from telephony.settings import ConfigError, load_settings
from telephony.testing.call_fixture import speech_onsets_s
from telephony.testing.gemini_live import REALISTIC, Faults, GeminiLiveEmulator, Reply, ScriptedAgent, tone24k
from telephony.testing.twilio_media import TwilioMediaEmulator
from telephony.web.composition import agent_options_from, gemini_client_from

from conftest import FIXTURES, emulator_settings, offline_stack

QUESTION, FOLLOW_UP = speech_onsets_s(FIXTURES / "barge_in.jsonl")[:2]


def two_answers() -> ScriptedAgent:
    return ScriptedAgent(
        [
            Reply(audio24k=tone24k(0.6), transcript="We open at nine.", heard="When do you open?"),
            Reply(audio24k=tone24k(1.0), transcript="On Sunday we open at ten.", heard="I meant Sunday."),
        ]
    )


@pytest.mark.parametrize(
    "faults,resumed",
    [
        (Faults(close_after_s=4.8, close_code=1000, close_reason=""), True),
        (Faults(close_after_s=4.8, close_code=1008, close_reason="Operation is not implemented, or supported, or enabled."), True),
        (Faults(close_after_s=4.8, close_code=1011, close_reason="Internal error occurred."), True),
        (Faults(close_after_s=4.8, close_code=1011, close_reason="Internal error occurred.", refuse_resumption=True), False),
    ],
    ids=["1000-no-reason", "1008-not-implemented", "1011-resumed", "1011-resume-refused"],
)
async def test_a_call_survives_every_mid_call_close_and_the_caller_is_answered_after_it(faults, resumed):
    # The first answer is over by 4.8 s (call time); the caller's follow-up comes at ~5 s.
    # Emulator and caller at 2x: the close keeps its place in the call however slow the set-up.
    async with GeminiLiveEmulator(two_answers(), speed=2.0, faults=faults, realism=REALISTIC) as gemini:
        async with offline_stack(gemini) as stack:
            result = await stack.replay("barge_in", speed=2.0)
            (record,) = stack.records()
    first, *_, last = gemini.connections
    assert first.close_code == faults.close_code
    assert record.reconnects == 1 and record.end_reason == "caller hung up", record.errors
    assert (last.resumed_handle is not None) is resumed
    assert last.replies_finished >= 1, "the follow-up was answered on the new connection"
    heard_after = [at for at, _ in result.played if at > FOLLOW_UP]
    assert heard_after, "and the caller heard the answer"
    if not resumed:  # a fresh session is told the conversation so far
        (history,) = [t for t in last.texts if "When do you open?" in t]
        assert "We open at nine." in history


async def test_the_server_close_reason_is_kept_not_lost_in_the_sdk_exception():
    faults = Faults(close_after_s=1.0, close_code=1008, close_reason="Operation is not implemented, or supported, or enabled.")
    async with GeminiLiveEmulator(speed=4.0, faults=faults) as gemini:
        settings = emulator_settings(gemini)
        session = GeminiLiveSession(gemini_client_from(settings), agent_options_from(settings))
        await session.open()
        async with contextlib.aclosing(session.events()) as events:
            closed = [event async for event in events if isinstance(event, SessionClosed)]
        await session.close()
    assert closed == [SessionClosed(1008, "Operation is not implemented, or supported, or enabled.")]


async def test_an_unknown_voice_is_refused_at_setup_with_the_services_reason():
    async with GeminiLiveEmulator(speed=4.0, realism=REALISTIC) as gemini:
        settings = emulator_settings(gemini)
        session = GeminiLiveSession(gemini_client_from(settings), agent_options_from(settings).with_overrides(voice="kore"))
        with pytest.raises(GeminiSessionError) as refused:
            await session.open()
    assert refused.value.code == 1008 and "voice kore is not available" in str(refused.value)


async def test_an_unknown_voice_per_call_falls_back_to_the_agents_and_the_call_is_answered(caplog):
    async with GeminiLiveEmulator(two_answers(), speed=4.0, realism=REALISTIC) as gemini:
        async with offline_stack(gemini, voice="Puck") as stack:
            caller = TwilioMediaEmulator(
                FIXTURES / "one_sentence.jsonl", speed=4.0, auth_token=stack.settings.twilio_auth_token.get_secret_value()
            )
            with caplog.at_level(logging.WARNING, logger="telephony"):
                result = await caller.call(stack.webhook + "?voice=kore")
    (connection,) = gemini.connections
    assert connection.setup["generation_config"]["speech_config"]["voice_config"]["prebuilt_voice_config"]["voice_name"] == "Puck"
    assert result.heard_seconds > 0.5
    assert any("per-call voice ignored" in r.getMessage() and "did you mean 'Kore'" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "heard,said",
    [
        ("I'd like to book a table for two, please.", "Of course! For which day would you like the table?"),
        ("明日の予約をお願いします。", "かしこまりました。何時がよろしいですか？"),
    ],
    ids=["english", "japanese"],
)
async def test_sub_word_and_late_transcripts_come_out_whole_and_in_order(heard, said):
    # Realistic: both transcripts arrive in 1-4 character fragments, and the caller's only
    # after the agent's answer has begun. Joined as sent: no spaces added (Japanese has none).
    agent = ScriptedAgent([Reply(audio24k=tone24k(1.5), transcript=said, heard=heard)])
    async with GeminiLiveEmulator(agent, speed=4.0, realism=REALISTIC) as gemini:
        async with offline_stack(gemini) as stack:
            await stack.replay("one_sentence")
            (record,) = stack.records()
    assert [(line.speaker, line.text) for line in record.transcript] == [("caller", heard), ("agent", said)]


async def test_a_server_message_the_sdk_cannot_read_is_skipped_and_the_session_goes_on():
    # REALISTIC sends one message with only a field google-genai does not know (it raises
    # TypeError inside receive()); the next messages must still arrive.
    agent = ScriptedAgent([Reply(transcript="Hello!")], respond_to_text=True)
    async with GeminiLiveEmulator(agent, speed=4.0, realism=REALISTIC) as gemini:
        settings = emulator_settings(gemini)
        session = GeminiLiveSession(gemini_client_from(settings), agent_options_from(settings))
        await session.open()
        await session.send_client_text("Hi")
        said = ""
        async with contextlib.aclosing(session.events()) as events:
            async for event in events:
                if isinstance(event, OutputTranscript):
                    said += event.text
                if said == "Hello!" or isinstance(event, SessionClosed):
                    break
        await session.close()
    assert said == "Hello!"


def test_model_defaults_and_checks_per_backend():
    developer = load_settings(_env_file=None, gemini_api_key="k")
    vertex = load_settings(_env_file=None, vertex_project="my-project")
    assert developer.gemini_model == "gemini-3.8-live", "3.8 Live, stable since 2026-09-15, on both backends"
    assert vertex.gemini_model == "gemini-3.8-live"
    assert agent_options_from(vertex).model == "gemini-3.8-live"
    with pytest.raises(ConfigError) as wrong:
        load_settings(_env_file=None, vertex_project="my-project", model="gemini-2.5-flash-native-audio-preview-12-2025")
    assert wrong.value.problems == [
        "TELEPHONY_MODEL: 'gemini-2.5-flash-native-audio-preview-12-2025' is not served on Vertex AI; on Vertex AI use 'gemini-3.8-live'"
    ]
    with pytest.raises(ConfigError) as vertex_id:
        load_settings(_env_file=None, gemini_api_key="k", model="gemini-live-2.5-flash-native-audio")
    assert vertex_id.value.problems == [
        "TELEPHONY_MODEL: 'gemini-live-2.5-flash-native-audio' is a Vertex AI model id; with an API key use 'gemini-3.8-live'"
    ]
    with pytest.raises(ConfigError) as retired:
        load_settings(_env_file=None, gemini_api_key="k", model="models/gemini-2.0-flash-live-001")
    assert retired.value.problems == ["TELEPHONY_MODEL: 'gemini-2.0-flash-live-001' was shut down on 2025-12-09; use 'gemini-3.8-live'"]
    unknown = load_settings(_env_file=None, gemini_api_key="k", model="gemini-3.9-live-preview")
    assert unknown.gemini_model == "gemini-3.9-live-preview", "new models pass: they appear before our table knows them"
    assert any("not one we know: calls use the rules of 3.8 Live" in w for w in unknown.startup_warnings())
    legacy = load_settings(_env_file=None, gemini_api_key="k", model="gemini-3.1-flash-live-preview")
    assert any("legacy preview" in w for w in legacy.startup_warnings())
    both = load_settings(_env_file=None, vertex_project="my-project", gemini_api_key="k")
    assert not both.uses_vertex and any("using the Gemini Developer API" in w for w in both.startup_warnings())


def test_voice_and_language_are_checked_at_startup_with_every_problem_at_once():
    with pytest.raises(ConfigError) as bad:
        load_settings(_env_file=None, voice="kore", language_code="ja_jp", gemini_api_key="AIza-not-in-any-message")
    assert bad.value.problems == [
        "TELEPHONY_VOICE: unknown voice 'kore': did you mean 'Kore'?",
        "TELEPHONY_LANGUAGE_CODE: unsupported language code 'ja_jp': did you mean 'ja-JP'?",
    ]
    assert "AIza" not in str(bad.value)
    assert load_settings(_env_file=None, voice="Nova", extra_voices="Nova").voice == "Nova", "new voices can be allowed"


def test_the_gemini_socket_keepalive_tolerates_the_services_slow_pongs():
    settings = load_settings(_env_file=None, gemini_api_key="k")
    args = gemini_client_from(settings)._api_client._http_options.async_client_args
    assert args["ping_timeout"] == 60.0 and args["ping_interval"] == 20.0


def test_newer_models_get_the_greeting_as_realtime_text():
    assert catalog.greets_with_client_content("gemini-2.5-flash-native-audio-preview-12-2025")
    assert not catalog.greets_with_client_content("models/gemini-3-flash-live")
