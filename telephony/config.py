"""Settings: one pydantic object, read once from the environment and passed down.

Environment variables are prefixed `TELEPHONY_` (e.g. `TELEPHONY_PUBLIC_URL`), except the
usual credentials, which keep their common names: `GEMINI_API_KEY` (or `GOOGLE_API_KEY`),
`TWILIO_ACCOUNT_SID`, `TWILIO_AUTH_TOKEN`. Secrets are `SecretStr`, so they never print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from telephony.gemini.config import EndSensitivity, StartSensitivity

DEFAULT_MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"


class Settings(BaseSettings):
    """Everything the service can be told. Defaults run a real call with only keys set."""

    # populate_by_name: code (tests, embedding apps) may pass field names as well as the env aliases.
    model_config = SettingsConfigDict(env_prefix="TELEPHONY_", env_file=".env", extra="ignore", populate_by_name=True)

    # --- Gemini Live -----------------------------------------------------------------------
    gemini_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("GEMINI_API_KEY", "GOOGLE_API_KEY", "TELEPHONY_GEMINI_API_KEY"),
        description="Gemini Developer API key (or GOOGLE_API_KEY)",
    )
    gemini_base_url: str | None = Field(None, description="Live API endpoint override (emulator, proxy)")
    gemini_ca_file: Path | None = Field(None, description="CA bundle to trust for gemini_base_url (emulator)")
    gemini_websocket_deflate: bool = Field(
        False, description="offer permessage-deflate on the Gemini socket (CPU on every message, little gain on audio)"
    )
    vertex_project: str | None = Field(
        None,
        validation_alias=AliasChoices("GOOGLE_CLOUD_PROJECT", "TELEPHONY_VERTEX_PROJECT"),
        description="Vertex AI project (instead of an API key; uses application default credentials)",
    )
    vertex_location: str | None = Field(
        None,
        validation_alias=AliasChoices("GOOGLE_CLOUD_LOCATION", "TELEPHONY_VERTEX_LOCATION"),
        description="Vertex AI region (default us-central1)",
    )
    model: str = Field(DEFAULT_MODEL, description="Gemini Live model (a native-audio one)")
    voice: str = Field("Kore", description="prebuilt voice: Kore, Puck, Charon, Aoede, Fenrir, ...")
    instructions: str = Field(
        "You are a friendly, concise phone assistant. Speak in short sentences; the caller is on a phone.",
        description="the agent's system instruction",
    )
    instructions_file: Path | None = Field(None, description="read the system instruction from this file instead")
    language_code: str | None = Field(None, description="speech language, e.g. en-US (default: the model chooses)")
    # Gemini's voice activity detection, tuned for phone audio: see VAD_PRESETS in
    # telephony/gemini/config.py for what each preset trades. The vad_* fields below are
    # used when vad_preset is "custom".
    vad_preset: str = Field("phone", description="turn-taking preset: phone, responsive, patient or custom")
    vad_disabled: bool = Field(False, description="True: send activityStart/activityEnd ourselves")
    vad_start_sensitivity: StartSensitivity = Field(StartSensitivity.HIGH, description="custom VAD: START_SENSITIVITY_HIGH or _LOW")
    vad_end_sensitivity: EndSensitivity = Field(EndSensitivity.LOW, description="custom VAD: END_SENSITIVITY_HIGH or _LOW")
    vad_prefix_padding_ms: int = Field(40, ge=0, le=2000, description="custom VAD: speech needed before a start is committed")
    vad_silence_duration_ms: int = Field(500, ge=0, le=10000, description="custom VAD: silence that ends the caller's turn")
    caller_agc: bool = Field(True, description="bring quiet callers up to speech level before Gemini")

    # --- Twilio ----------------------------------------------------------------------------
    twilio_account_sid: str | None = Field(
        None,
        validation_alias=AliasChoices("TWILIO_ACCOUNT_SID", "TELEPHONY_TWILIO_ACCOUNT_SID"),
        description="for dial-out, hang-up and transfers (REST)",
    )
    twilio_auth_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("TWILIO_AUTH_TOKEN", "TELEPHONY_TWILIO_AUTH_TOKEN"),
        description="checks X-Twilio-Signature on every webhook and stream, and signs REST calls",
    )
    twilio_api_base: str | None = Field(None, description="Twilio REST API base URL override (tests, proxies)")
    from_number: str | None = Field(
        None, validation_alias=AliasChoices("TWILIO_PHONE_NUMBER", "TELEPHONY_FROM_NUMBER"), description="caller ID for dial-out"
    )
    transfer_numbers: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="numbers the agent may transfer callers to (comma-separated)"
    )
    greeting: str | None = Field(None, description="if set, the agent speaks first: a prompt such as 'Greet the caller.'")
    public_url: str | None = Field(None, description="https://host as Twilio reaches us")
    validate_signatures: bool = Field(True, description="False only for local development")

    # --- Server ----------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0 in a container)")
    port: int = Field(8080, ge=0, le=65535, description="port to listen on")
    max_concurrent_calls: int = Field(
        40, ge=1, description="beyond this, callers hear the busy message (one process carries 30-40: bench load)"
    )
    max_call_seconds: float = Field(3600.0, gt=0, description="calls are ended politely after this long")
    idle_timeout_seconds: float = Field(15.0, gt=0, description="end a call when Twilio sends nothing this long")
    drain_seconds: float = Field(300.0, ge=0, description="on SIGTERM, how long live calls may go on")
    caller_audio_block_ms: int = Field(
        20, ge=20, le=200, multiple_of=20, description="caller audio sent to Gemini in blocks of this many ms"
    )
    playout_lead_ms: int = Field(
        300, ge=60, le=5000, description="agent audio sent ahead of what Twilio confirmed played; the rest is held for barge-in"
    )
    barge_in_min_speech_ms: int = Field(
        300, ge=0, le=3000, description="caller speech this long over agent audio cuts the agent off (0: leave it to Gemini)"
    )
    goodbye_grace_seconds: float = Field(
        3.0, ge=0, le=30, description="after end_call, how long the agent may stay quiet before its goodbye starts"
    )
    tool_timeout_seconds: float = Field(30.0, gt=0, le=600, description="a tool that takes longer answers the model with an error")
    gemini_reconnect_attempts: int = Field(5, ge=0, le=20, description="tries per Gemini (re)connect, with backoff")
    gemini_reconnect_buffer_seconds: float = Field(10.0, ge=0, le=60, description="caller audio held while reconnecting")
    call_log_dir: Path | None = Field(None, description="one JSON line per call is appended here")
    record_dir: Path | None = Field(None, description="inbound Twilio messages of each call, as fixtures")

    @field_validator("transfer_numbers", mode="before")
    @classmethod
    def _split_numbers(cls, value: object) -> object:
        if isinstance(value, str):
            return [n.strip() for n in value.split(",") if n.strip()]
        return value

    @field_validator("vad_preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        if value not in ("phone", "responsive", "patient", "custom"):
            raise ValueError("vad_preset must be phone, responsive, patient or custom")
        return value

    @model_validator(mode="after")
    def _read_instructions_file(self) -> Settings:
        if self.instructions_file is not None:
            try:
                self.instructions = self.instructions_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"cannot read instructions_file {self.instructions_file}: {exc}") from exc
        return self

    @property
    def uses_vertex(self) -> bool:
        """Vertex AI when a project is set and no API key is."""
        return self.gemini_api_key is None and bool(self.vertex_project)
