"""The composition root: the one place where `Settings` become the objects that do the work.

Everything below this (the call core, the Gemini layer, the protocol modules) takes plain
options and never sees the app-wide settings; the app, the CLI and `telephony check` build
what they need here.
"""

from __future__ import annotations

from collections.abc import Callable

from google import genai

from telephony.call.core import CallConfig
from telephony.call.driver import load_prompt
from telephony.call.stall import StallRules
from telephony.config import Settings
from telephony.gemini.config import AgentOptions, make_client

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


def call_config_from(settings: Settings, admit_stream: Callable[[str, str | None], tuple[str, str] | None] | None) -> CallConfig:
    """The per-call rules of the call core."""
    return CallConfig(
        prompts={name: load_prompt(name) for name in PROMPTS},
        admit_stream=admit_stream,
        caller_agc=settings.caller_agc,
        caller_block_bytes=settings.caller_audio_block_ms * 32,
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
        log_phone_numbers=settings.log_phone_numbers,
        record_audio=settings.record_audio,
        recording_notice=settings.recording_notice,
        # Production streams come from Twilio in real time; a development server (signatures
        # off) is fed by replays at any speed.
        media_rate_limit=settings.media_rate_limit if settings.validate_signatures else float("inf"),
    )
