"""The composition root: the one place where `Settings` become the objects that do the work.

Everything below this (the call core, the Gemini layer, the protocol modules) takes plain
options and never sees the app-wide settings; the app, the CLI and `telephony check` build
what they need here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from google import genai

from telephony.agents.agent import AgentBook
from telephony.call.core import CallConfig
from telephony.call.services import CallServices, load_prompt
from telephony.call.silence import SilenceRules
from telephony.call.stall import StallRules
from telephony.call.tool_api import CallTool
from telephony.gemini.config import AgentOptions, make_client, make_text_client
from telephony.gemini.resilient import RetryPolicy
from telephony.gemini.session import GeminiLiveSession
from telephony.metrics import Metrics
from telephony.settings import Settings
from telephony.store.wav_file import open_recording

PROMPTS = ("apology_trouble", "apology_closing", "recording_notice")


def agent_options_from(settings: Settings) -> AgentOptions:
    """The agent every call starts from (per-call parameters may override parts of it)."""
    options = AgentOptions(
        model=settings.gemini_model,
        voice=settings.voice,
        instructions=settings.instructions,
        language_code=settings.language_code,
        vad_disabled=settings.vad_disabled,
        start_sensitivity=settings.vad_start_sensitivity,
        end_sensitivity=settings.vad_end_sensitivity,
        prefix_padding_ms=settings.vad_prefix_padding_ms,
        silence_duration_ms=settings.vad_silence_duration_ms,
        thinking_level=settings.thinking_level,
    )
    return options.with_vad_preset(settings.vad_preset)


def gemini_client_from(settings: Settings) -> genai.Client:
    """The google-genai client; raises ValueError (a one-line message) without credentials."""
    if settings.gemini_api_key is None and not settings.vertex_project:
        raise ValueError(
            "no Gemini credentials: set GEMINI_API_KEY (or GOOGLE_API_KEY), or "
            "GOOGLE_CLOUD_PROJECT for Vertex AI; for offline use run the emulator "
            "(`telephony emulate gemini`) and set TELEPHONY_GEMINI_BASE_URL"
        )
    return make_client(
        api_key=settings.gemini_api_key.get_secret_value() if settings.gemini_api_key else None,
        vertex_project=settings.vertex_project,
        vertex_location=settings.vertex_location,
        base_url=settings.gemini_base_url,
        ca_file=settings.gemini_ca_file,
        websocket_deflate=settings.gemini_websocket_deflate,
        ping_interval_s=settings.gemini_ping_interval_seconds,
        ping_timeout_s=settings.gemini_ping_timeout_seconds,
    )


def text_client_from(settings: Settings) -> genai.Client:
    """The generateContent client (post-call analysis, a test's judge) with the Live client's
    credentials and endpoint; raises ValueError (one line) without credentials."""
    return make_text_client(
        api_key=settings.gemini_api_key.get_secret_value() if settings.gemini_api_key else None,
        vertex_project=settings.vertex_project,
        vertex_location=settings.vertex_location,
        base_url=settings.gemini_base_url,
        ca_file=settings.gemini_ca_file,
    )


def call_config_from(settings: Settings, admit_stream: Callable[[str, str | None], tuple[str, str] | None] | None) -> CallConfig:
    """The per-call rules of the call core."""
    return CallConfig(
        prompts={name: load_prompt(name) for name in PROMPTS},
        admit_stream=admit_stream,
        caller_agc=settings.caller_agc,
        audio_in_python=settings.audio_kernels == "python",
        caller_block_bytes=settings.caller_audio_block_ms * 32,
        caller_quiet_block_bytes=settings.caller_quiet_block_ms * 32,  # never below the block: CallerAudioPath
        manual_activity=settings.vad_disabled,
        activity_silence_ms=settings.vad_silence_duration_ms,
        playout_lead_ms=settings.playout_lead_ms,
        barge_in_min_speech_ms=settings.barge_in_min_speech_ms,
        goodbye_grace_s=settings.goodbye_grace_seconds,
        hold_after_s=settings.tool_filler_seconds,
        stall=StallRules(
            answer_s=settings.stall_seconds,
            step_s=settings.stall_step_seconds,
            hold_after_s=settings.stall_seconds,
            tone_ms=settings.stall_tone_seconds * 1000,
            max_per_call=settings.stalls_per_call,
        ),
        idle_timeout_s=settings.idle_timeout_seconds,
        max_call_s=settings.max_call_seconds,
        silence=SilenceRules(reprompt_s=settings.silence_reprompt_seconds, hang_up_s=settings.silence_hangup_seconds),
        log_phone_numbers=settings.log_phone_numbers,
        record_audio=settings.record_audio,
        recording_notice=settings.recording_notice,
        # Production streams come from Twilio in real time; a development server (signatures
        # off) is fed by replays at any speed.
        media_rate_limit=settings.media_rate_limit if settings.validate_signatures else float("inf"),
    )


def call_services_from(
    settings: Settings,
    *,
    open_gemini: Callable[[AgentOptions], GeminiLiveSession],
    admit_stream: Callable[[str, str | None], tuple[str, str] | None] | None,
    agents: AgentBook,
    builtin_tools: Callable[[tuple[str, ...]], list[CallTool]],
    metrics: Metrics,
) -> CallServices:
    """What every call of this server gets: its rules, its agent, Gemini, tools, recordings."""
    recordings_dir = (settings.recordings_dir or settings.data_dir / "recordings") if settings.record_audio else None
    return CallServices(
        open_gemini=open_gemini,
        agent_options=agent_options_from(settings),
        call_config=call_config_from(settings, admit_stream),
        agents=agents,
        builtin_tools=builtin_tools,
        greeting=settings.greeting,
        metrics=metrics,
        retry_policy=RetryPolicy(
            open_timeout_s=settings.gemini_open_timeout_seconds,
            max_reconnects=settings.gemini_reconnects_per_call,
            buffer_seconds=settings.gemini_reconnect_buffer_seconds,
            switched_off_by="TELEPHONY_GEMINI_RECONNECTS_PER_CALL=0",
        ),
        recordings_dir=recordings_dir,
        open_recording=functools.partial(open_recording, recordings_dir) if recordings_dir is not None else None,
        tool_timeout_s=settings.tool_timeout_seconds,
        extra_voices=tuple(settings.extra_voices),
        call_log_dir=settings.call_log_dir,
        record_dir=settings.record_dir,
    )
