"""Where Gemini is configured: the SDK client and the Live session's setup.

Every call opens its own Live session from an `AgentOptions` (model, voice, instructions,
turn-taking, tools), which may be overridden per call (voice, instructions, VAD) by the
call's Stream parameters. This module knows google-genai and its own options only; the
app-wide settings are turned into these in `telephony.web.composition`.
"""

from __future__ import annotations

import ssl
import warnings
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

from google import genai
from google.genai import types

from telephony.gemini.catalog import language_name
from telephony.gemini.models import FamilyRules, ThinkingLevel, ToolBehavior, rules_for

# google-genai subclasses aiohttp's ClientSession for its REST calls, which aiohttp warns about
# on first use, in the middle of a call's analysis: nothing a user can act on.
warnings.filterwarnings("ignore", message="Inheritance class AiohttpClientSession", category=DeprecationWarning)

INPUT_MIME_TYPE = "audio/pcm;rate=16000"


class StartSensitivity(str, Enum):
    HIGH = "START_SENSITIVITY_HIGH"
    LOW = "START_SENSITIVITY_LOW"


class EndSensitivity(str, Enum):
    HIGH = "END_SENSITIVITY_HIGH"
    LOW = "END_SENSITIVITY_LOW"


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
        StartSensitivity.HIGH,
        EndSensitivity.LOW,
        40,
        500,
        "catches short, quiet answers; tolerates half-second pauses; replies after ~0.5 s of silence",
    ),
    # Snappy turn-taking for quick exchanges: replies sooner, but callers who pause to think
    # get interrupted, and background noise may start turns.
    "responsive": VadPreset(
        StartSensitivity.HIGH,
        EndSensitivity.HIGH,
        20,
        300,
        "fastest replies (~0.3 s); cuts off callers who pause; noise may trigger turns",
    ),
    # For callers reading out numbers or addresses, or who speak slowly: waits a full second
    # and ignores short noises, at the cost of slower replies and missed one-word answers.
    "patient": VadPreset(
        StartSensitivity.LOW,
        EndSensitivity.LOW,
        100,
        1000,
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
    """A declaration's `behavior`, where set, is the tool's wish; unset means the family's
    default (see `telephony.gemini.models`)."""
    thinking_level: ThinkingLevel = ThinkingLevel.LOW
    """Extended Thinking only (it refuses a setup without one); never sent to other families."""

    @property
    def rules(self) -> FamilyRules:
        """What this agent's model family takes and does (`telephony.gemini.models`)."""
        return rules_for(self.model)

    def tool_behavior(self, name: str) -> ToolBehavior:
        """How the model will wait for tool `name` on this family (as declared in the setup)."""
        rules = self.rules
        declared = next((d.behavior for d in self.tools if d.name == name), None)
        if not rules.declares_behavior:
            return ToolBehavior.BLOCKING
        wanted = ToolBehavior(declared.value) if declared is not None else rules.default_tool_behavior
        if wanted is ToolBehavior.BLOCKING and not rules.accepts_blocking:
            return ToolBehavior.NON_BLOCKING
        return wanted

    def with_overrides(self, **changes: Any) -> AgentOptions:
        """A copy with some fields changed (per-call overrides)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def with_vad_preset(self, name: str) -> AgentOptions:
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


def make_client(
    *,
    api_key: str | None = None,
    vertex_project: str | None = None,
    vertex_location: str | None = None,
    base_url: str | None = None,
    ca_file: Path | None = None,
    websocket_deflate: bool = False,
    ping_interval_s: float = 20.0,
    ping_timeout_s: float = 60.0,
) -> genai.Client:
    """The google-genai client: Developer API with a key, or Vertex AI with project+location.

    `base_url` points the SDK elsewhere (the local emulator, a proxy, a regional endpoint).
    With an API key the SDK always speaks wss://, so an emulator serves TLS and `ca_file`
    names the CA to trust for it.

    Keepalive: websockets' default closes a connection whose pong takes over 20 s, and the
    service's pongs have been measured at 8-30 s under load (a healthy, busy session would be
    cut with 1011 "keepalive ping timeout"); `ping_timeout_s` defaults to 60 s.
    """
    http_options: dict[str, Any] = {}
    if base_url:
        http_options["base_url"] = base_url
    # The SDK hands `async_client_args` that `websockets.connect` knows (and only those) to the
    # Live socket. Without `compression`, websockets offers permessage-deflate, which costs
    # CPU on every 20 ms message for base64 audio that hardly compresses.
    socket_args: dict[str, Any] = {"ping_interval": ping_interval_s, "ping_timeout": ping_timeout_s}
    if not websocket_deflate:
        socket_args["compression"] = None
    if ca_file:
        socket_args["ssl"] = ssl.create_default_context(cafile=str(ca_file))
    if socket_args:
        http_options["async_client_args"] = socket_args
    options = types.HttpOptions(**http_options) if http_options else None
    if api_key is None and vertex_project:
        return genai.Client(vertexai=True, project=vertex_project, location=vertex_location or "us-central1", http_options=options)
    if api_key is None:
        raise ValueError("no Gemini credentials: an API key, or a Vertex AI project")
    return genai.Client(api_key=api_key, http_options=options)


TOOL_CALL_CAP = (
    "Never make more than two function calls in a row without saying something to the caller. "
    "When a function's result says there is nothing (status no_results), tell the caller instead of calling it again."
)
"""Appended to the instructions on 3.8, which may sweep a tool two to five times in silence
when a result says nothing useful (Vertex AI's 3.8 migration guide asks for this rule)."""
LANGUAGE_RULE = "Speak {name} ({code}) with the caller, unless they ask for another language."
"""Native-audio models take no `languageCode` (the service refuses it, or ignores it): the
language is steered through the instructions, as Google's Live guides say."""


def system_instruction(options: AgentOptions) -> str:
    """The agent's instructions plus the rules its model family needs."""
    parts = [options.instructions]
    if options.language_code:
        parts.append(LANGUAGE_RULE.format(name=language_name(options.language_code), code=options.language_code))
    if options.tools and options.rules.tool_call_cap:
        parts.append(TOOL_CALL_CAP)
    return "\n\n".join(part for part in parts if part)


def declarations_for(options: AgentOptions) -> list[types.FunctionDeclaration]:
    """The tools as this family must see them: every declaration states its behaviour (3.8
    would otherwise make a tool meant to block NON_BLOCKING), none where the family takes no
    `behavior` (3.1), never BLOCKING where it is refused (Extended Thinking: a user's tool
    declared BLOCKING there is refused at startup; the built-in ones fall back)."""
    declared = []
    for declaration in options.tools:
        behavior = options.tool_behavior(str(declaration.name)) if options.rules.declares_behavior else None
        declared.append(declaration.model_copy(update={"behavior": types.Behavior(behavior.value) if behavior else None}))
    return declared


def build_live_config(options: AgentOptions, resume_handle: str | None = None, seed_history: bool = False) -> types.LiveConnectConfig:
    """The Live session setup for a phone call: audio out, transcripts both ways,
    resumable, compressed context (no 15-minute audio limit), and phone-tuned VAD; only the
    fields the model's family takes (a refused field is a closed socket at setup).

    `seed_history`: this fresh session will be given the conversation so far (3.x wants
    `historyConfig` for that)."""
    rules = options.rules
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
    thinking = (
        types.ThinkingConfig(thinking_level=types.ThinkingLevel(options.thinking_level.value)) if rules.thinking_level_required else None
    )
    history = types.HistoryConfig(initial_history_in_client_content=True) if seed_history and rules.seeds_with_history_config else None
    return types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        speech_config=types.SpeechConfig(
            voice_config=types.VoiceConfig(prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name=options.voice)),
        ),
        system_instruction=types.Content(role="user", parts=[types.Part(text=system_instruction(options))]),
        tools=[types.Tool(function_declarations=declarations_for(options))] if options.tools else None,
        thinking_config=thinking,
        history_config=history,
        input_audio_transcription=types.AudioTranscriptionConfig(),
        output_audio_transcription=types.AudioTranscriptionConfig(),
        session_resumption=types.SessionResumptionConfig(handle=resume_handle),
        context_window_compression=types.ContextWindowCompressionConfig(sliding_window=types.SlidingWindow()),
        realtime_input_config=types.RealtimeInputConfig(automatic_activity_detection=activity),
    )


def make_text_client(
    *,
    api_key: str | None = None,
    vertex_project: str | None = None,
    vertex_location: str | None = None,
    base_url: str | None = None,
    ca_file: Path | None = None,
) -> genai.Client:
    """A google-genai client for generateContent (post-call analysis, a test judge), with
    the Live client's credentials and endpoint. The SDK's REST client is aiohttp when
    installed (it takes a CA as `ssl`) or httpx (as `verify`); each drops the other's key."""
    options: dict[str, Any] = {}
    if base_url:
        options["base_url"] = base_url
    if ca_file:
        context = ssl.create_default_context(cafile=str(ca_file))
        options["async_client_args"] = {"ssl": context, "verify": context}
        options["client_args"] = {"verify": context}
    http_options = types.HttpOptions(**options) if options else None
    if api_key is not None:
        return genai.Client(api_key=api_key, http_options=http_options)
    if vertex_project:
        return genai.Client(vertexai=True, project=vertex_project, location=vertex_location or "us-central1", http_options=http_options)
    raise ValueError("no Gemini credentials: an API key, or a Vertex AI project")
