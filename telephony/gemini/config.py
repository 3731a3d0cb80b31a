"""Where Gemini is configured: the SDK client and the Live session's setup.

Every call opens its own Live session from an `AgentOptions`, which starts from `Settings`
and may be overridden per call (voice, instructions, VAD) by the call's Stream parameters.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field, replace
from typing import Any

from google import genai
from google.genai import types

from telephony.config import EndSensitivity, Settings, StartSensitivity

INPUT_MIME_TYPE = "audio/pcm;rate=16000"


@dataclass(frozen=True)
class VadPreset:
    start: StartSensitivity
    end: EndSensitivity
    prefix_padding_ms: int
    silence_duration_ms: int
    trade: str


VAD_PRESETS: dict[str, VadPreset] = {
    # The default for phone calls: short answers ("yes", "no", a digit) start a turn even
    # when quiet, and a caller may pause half a second mid-sentence without being cut off.
    "phone": VadPreset(
        StartSensitivity.HIGH, EndSensitivity.LOW, 40, 500,
        "catches short, quiet answers; tolerates half-second pauses; replies after ~0.5 s of silence",
    ),
    # Snappy turn-taking for quick exchanges: replies sooner, but callers who pause to think
    # get interrupted, and background noise may start turns.
    "responsive": VadPreset(
        StartSensitivity.HIGH, EndSensitivity.HIGH, 20, 300,
        "fastest replies (~0.3 s); cuts off callers who pause; noise may trigger turns",
    ),
    # For callers reading out numbers or addresses, or who speak slowly: waits a full second
    # and ignores short noises, at the cost of slower replies and missed one-word answers.
    "patient": VadPreset(
        StartSensitivity.LOW, EndSensitivity.LOW, 100, 1000,
        "lets callers pause for a second (dictating numbers); slower replies; may miss a soft 'yes'",
    ),
}


@dataclass(frozen=True)
class AgentOptions:
    """What one call's agent is: model, voice, instructions, turn-taking, tools."""

    model: str
    voice: str
    instructions: str
    language_code: str | None = None
    vad_disabled: bool = False
    start_sensitivity: StartSensitivity = StartSensitivity.HIGH
    end_sensitivity: EndSensitivity = EndSensitivity.LOW
    prefix_padding_ms: int = 40
    silence_duration_ms: int = 500
    tools: tuple[types.FunctionDeclaration, ...] = field(default_factory=tuple)

    @classmethod
    def from_settings(cls, settings: Settings) -> "AgentOptions":
        return cls._from_fields(settings).with_vad_preset(settings.vad_preset)

    @classmethod
    def _from_fields(cls, settings: Settings) -> "AgentOptions":
        return cls(
            model=settings.model,
            voice=settings.voice,
            instructions=settings.instructions,
            language_code=settings.language_code,
            vad_disabled=settings.vad_disabled,
            start_sensitivity=settings.vad_start_sensitivity,
            end_sensitivity=settings.vad_end_sensitivity,
            prefix_padding_ms=settings.vad_prefix_padding_ms,
            silence_duration_ms=settings.vad_silence_duration_ms,
        )

    def with_overrides(self, **changes: Any) -> "AgentOptions":
        """A copy with some fields changed (per-call overrides)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def with_vad_preset(self, name: str) -> "AgentOptions":
        """A copy using one of `VAD_PRESETS`; raises ValueError for an unknown name."""
        if name == "custom":
            return self
        preset = VAD_PRESETS.get(name)
        if preset is None:
            raise ValueError(f"unknown VAD preset {name!r}; choose one of {', '.join([*VAD_PRESETS, 'custom'])}")
        return replace(
            self,
            start_sensitivity=preset.start,
            end_sensitivity=preset.end,
            prefix_padding_ms=preset.prefix_padding_ms,
            silence_duration_ms=preset.silence_duration_ms,
        )


def make_client(settings: Settings) -> genai.Client:
    """The google-genai client: Developer API with a key, or Vertex AI with project+location.

    `settings.gemini_base_url` points the SDK elsewhere (the local emulator, a proxy, a
    regional endpoint). With an API key the SDK always speaks wss://, so an emulator serves
    TLS and `settings.gemini_ca_file` names the CA to trust for it.
    """
    http_options: dict[str, Any] = {}
    if settings.gemini_base_url:
        http_options["base_url"] = settings.gemini_base_url
    # The SDK hands `async_client_args` that `websockets.connect` knows (and only those) to the
    # Live socket. Without `compression`, websockets offers permessage-deflate, which costs
    # CPU on every 20 ms message for base64 audio that hardly compresses.
    socket_args: dict[str, Any] = {} if settings.gemini_websocket_deflate else {"compression": None}
    if settings.gemini_ca_file:
        socket_args["ssl"] = ssl.create_default_context(cafile=str(settings.gemini_ca_file))
    if socket_args:
        http_options["async_client_args"] = socket_args
    options = types.HttpOptions(**http_options) if http_options else None
    if settings.uses_vertex:
        return genai.Client(
            vertexai=True,
            project=settings.vertex_project,
            location=settings.vertex_location or "us-central1",
            http_options=options,
        )
    if settings.gemini_api_key is None:
        raise ValueError(
            "no Gemini credentials: set GEMINI_API_KEY (or GOOGLE_API_KEY), or "
            "GOOGLE_CLOUD_PROJECT for Vertex AI; for offline use run the emulator "
            "(`telephony emulate gemini`) and set TELEPHONY_GEMINI_BASE_URL"
        )
    return genai.Client(api_key=settings.gemini_api_key.get_secret_value(), http_options=options)


def build_live_config(options: AgentOptions, resume_handle: str | None = None) -> types.LiveConnectConfig:
    """The Live session setup for a phone call: audio out, transcripts both ways,
    resumable, compressed context (no 15-minute audio limit), and phone-tuned VAD."""
    if options.vad_disabled:
        activity = types.AutomaticActivityDetection(disabled=True)
    else:
        activity = types.AutomaticActivityDetection(
            disabled=False,
            start_of_speech_sensitivity=types.StartSensitivity(options.start_sensitivity.value),
            end_of_speech_sensitivity=types.EndSensitivity(options.end_sensitivity.value),
            prefix_padding_ms=options.prefix_padding_ms,
            silence_duration_ms=options.silence_duration_ms,
        )
    return types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        speech_config=types.SpeechConfig(
            voice_config=types.VoiceConfig(prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name=options.voice)),
            language_code=options.language_code,
        ),
        system_instruction=types.Content(role="user", parts=[types.Part(text=options.instructions)]),
        tools=[types.Tool(function_declarations=list(options.tools))] if options.tools else None,
        input_audio_transcription=types.AudioTranscriptionConfig(),
        output_audio_transcription=types.AudioTranscriptionConfig(),
        session_resumption=types.SessionResumptionConfig(handle=resume_handle),
        context_window_compression=types.ContextWindowCompressionConfig(sliding_window=types.SlidingWindow()),
        realtime_input_config=types.RealtimeInputConfig(automatic_activity_detection=activity),
    )
