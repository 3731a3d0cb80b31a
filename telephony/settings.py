"""Settings: one pydantic object, read once from the environment and passed down.

Environment variables are prefixed `TELEPHONY_` (e.g. `TELEPHONY_PUBLIC_URL`), except the
usual credentials, which keep their common names: `GEMINI_API_KEY` (or `GOOGLE_API_KEY`),
`TWILIO_ACCOUNT_SID`, `TWILIO_AUTH_TOKEN`. Secrets are `SecretStr`, so they never print.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from telephony.gemini import catalog
from telephony.gemini.config import EndSensitivity, StartSensitivity
from telephony.gemini.models import ThinkingLevel, model_warning


class Settings(BaseSettings):
    """Everything the service can be told. Defaults run a real call with only keys set."""

    # populate_by_name: code (tests, embedding apps) may pass field names as well as the env aliases;
    # env_ignore_empty: `FOO=` in a shell or .env means unset, not an empty key.
    model_config = SettingsConfigDict(
        env_prefix="TELEPHONY_", env_file=".env", extra="ignore", populate_by_name=True, env_ignore_empty=True
    )

    # --- Gemini Live -----------------------------------------------------------------------
    gemini_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("GEMINI_API_KEY", "GOOGLE_API_KEY", "TELEPHONY_GEMINI_API_KEY"),
        description="Gemini Developer API key (or GOOGLE_API_KEY)",
    )
    gemini_base_url: str | None = Field(None, description="Live API endpoint override (emulator, proxy)")
    gemini_ca_file: Path | None = Field(None, description="CA bundle to trust for gemini_base_url (emulator)")
    gemini_browser_base_url: str | None = Field(
        None, description="where the browser phone's direct mode reaches Gemini (default: gemini_base_url)"
    )
    gemini_ping_interval_seconds: float = Field(
        20.0, gt=0, le=300, description="keepalive ping on the Gemini socket every this many seconds"
    )
    gemini_ping_timeout_seconds: float = Field(
        60.0, gt=0, le=600, description="close the Gemini socket if a pong takes longer (the service's take 8-30 s)"
    )
    extra_voices: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="voice names to accept beyond the built-in list (comma-separated)"
    )
    extra_languages: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="language codes to accept beyond the built-in list (comma-separated)"
    )
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
    model: str | None = Field(
        None,
        description=f"Gemini Live model; default {catalog.DEFAULT_MODEL['developer']} on both backends. Every family "
        "(3.8 Live, 3.8 Live Extended Thinking, 3.1 Flash Live, 2.5 native audio) is handled as it behaves "
        "(telephony/gemini/models.py); a retired id or one of the other backend is refused at startup",
    )
    thinking_level: ThinkingLevel = Field(
        ThinkingLevel.LOW,
        description="Extended Thinking's effort: LOW, MEDIUM or HIGH (its setup needs one; other models get none)",
    )
    voice: str = Field("Kore", description="prebuilt voice (case-sensitive; one of the 30 in telephony/gemini/catalog.py)")
    instructions: str = Field(
        "You are a friendly, concise phone assistant. Speak in short sentences; the caller is on a phone.",
        description="the agent's system instruction",
    )
    instructions_file: Path | None = Field(None, description="read the system instruction from this file instead")
    language_code: str | None = Field(
        None,
        description="speech language, e.g. en-US (default: the model chooses); native-audio models take no language code, "
        "so it is written into the instructions",
    )
    # Gemini's voice activity detection, tuned for phone audio: see VAD_PRESETS in
    # telephony/gemini/config.py for what each preset trades. The vad_* fields below are
    # used when vad_preset is "custom".
    vad_preset: str = Field(
        "phone", description='turn-taking preset: phone, responsive, patient or custom (see "Quiet callers and turn-taking")'
    )
    vad_disabled: bool = Field(False, description="True: Gemini's VAD is off; our local voice detection sends activityStart/activityEnd")
    vad_start_sensitivity: StartSensitivity = Field(StartSensitivity.HIGH, description="custom VAD: START_SENSITIVITY_HIGH or _LOW")
    vad_end_sensitivity: EndSensitivity = Field(EndSensitivity.LOW, description="custom VAD: END_SENSITIVITY_HIGH or _LOW")
    vad_prefix_padding_ms: int = Field(40, ge=0, le=2000, description="custom VAD: speech needed before a start is committed")
    vad_silence_duration_ms: int = Field(500, ge=0, le=10000, description="custom VAD: silence that ends the caller's turn")
    caller_agc: bool = Field(True, description="bring quiet callers up to speech level before Gemini")
    audio_kernels: Literal["auto", "python"] = Field(
        "auto",
        description="auto: the caller's gain control and both resamplers run in C where the install built "
        "telephony/audio/_kernels.c (a C compiler was found), else in Python; python: always in Python and numpy "
        "(the same sound, more CPU)",
    )

    agent: str | None = Field(None, description="your agent: module:attribute (an Agent, a list, or a selector) or agent.toml")
    tool_signing_secret: SecretStr | None = Field(
        None, description="signs requests to HTTP tools (X-Telephony-Signature: sha256=HMAC of the body)"
    )
    analysis_model: str = Field(
        "gemini-3.6-flash", min_length=1, description="the text model of post-call analysis (agents with `analysis`)"
    )
    events_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="receives call.started, call.ended and call.analysis_ready as signed JSON POSTs (retried until taken)",
    )
    events_secret: SecretStr | None = Field(
        None, description="signs events: X-Telephony-Signature: sha256=HMAC of '<X-Telephony-Timestamp>.<body>'"
    )
    tool_filler_seconds: float = Field(
        1.0, ge=0, le=30, description="a tool still running after this long: the caller hears a soft hold tone (0: silence)"
    )

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
    public_url: str | None = Field(None, description="https://host as Twilio reaches us (signatures are checked against it)")
    validate_signatures: bool = Field(True, description="False only for local development")
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="addresses whose X-Forwarded-Host/Proto are believed (comma-separated; * for any) when TELEPHONY_PUBLIC_URL is not set",
    )

    # --- Server ----------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0 in a container)")
    port: int = Field(8080, ge=0, le=65535, description="port to listen on")
    workers: int = Field(1, ge=0, le=64, description="server processes on one port (telephony serve; 0: one per core)")
    max_concurrent_calls: int = Field(
        40, ge=1, description="beyond this, callers hear the busy message (one process carries 30-40: bench load)"
    )
    stream_token_seconds: float = Field(
        30.0, ge=5, le=600, description="a media stream must open this soon after the webhook answered (its token is single-use)"
    )
    max_call_seconds: float = Field(
        1800.0, gt=0, description="calls are ended politely after this long (the agent tells the caller a minute before)"
    )
    silence_reprompt_seconds: float = Field(
        10.0, ge=0, description="a caller silent this long on their turn is checked on by the agent (0: never)"
    )
    silence_hangup_seconds: float = Field(
        10.0, ge=0, description="still silent this long after the check-in: the agent says goodbye, reason `silence` (0: never)"
    )
    idle_timeout_seconds: float = Field(15.0, gt=0, description="end a call when Twilio sends nothing this long")
    drain_seconds: float = Field(
        300.0, ge=0, description="on SIGTERM, how long live calls may go on; those still up hear a goodbye that ends by then"
    )
    media_rate_limit: float = Field(
        1.25,
        ge=1.0,
        le=100,
        description="caller audio accepted at up to this multiple of real time; not checked with signatures off "
        "(local replays run at --speed N)",
    )
    header_timeout_seconds: float = Field(
        10.0, gt=0, le=120, description="a client must send its request headers (and a webhook its body) within this long"
    )
    max_connections_per_client: int = Field(
        200,
        ge=1,
        description="open connections one client address may hold (Twilio's own come from a few addresses); "
        "past it, one still sending its headers gives way",
    )
    caller_audio_block_ms: int = Field(
        20, ge=20, le=200, multiple_of=20, description="caller audio sent to Gemini in blocks of this many ms"
    )
    caller_quiet_block_ms: int = Field(
        200,
        ge=20,
        le=200,
        multiple_of=20,
        description="while the caller is quiet and owed no answer, their audio goes to Gemini in blocks of up to "
        "this many ms; a loud frame or one of speech goes at once with what waited, and after they spoke every 20 ms goes at once "
        "(fewer messages, no delay to speech or to the end of their turn); 20 = off",
    )
    playout_lead_ms: int = Field(
        300, ge=60, le=5000, description="agent audio sent ahead of what Twilio confirmed played; the rest is held for barge-in"
    )
    barge_in_min_speech_ms: int = Field(
        300, ge=0, le=3000, description="caller speech this long over agent audio cuts the agent off (0: leave it to Gemini)"
    )
    stall_seconds: float = Field(
        2.0,
        ge=0,
        le=30,
        description="the model silent this long after the caller's words (or mid-sentence) is a stall: nudged, then a resumed "
        "connection, then a fresh session, a step a second, with the hold tone meanwhile (0: off; healthy first audio is 0.6-1 s)",
    )
    stall_step_seconds: float = Field(1.0, gt=0, le=30, description="how long each stall recovery step waits for the agent's voice")
    stall_tone_seconds: float = Field(
        6.0, gt=0, le=60, description="agent audio this long with no transcript is not speech (a degenerate tone): cut, and recovered"
    )
    stalls_per_call: int = Field(3, ge=0, le=100, description="stalls a call recovers from; the next ends it with an apology")
    goodbye_grace_seconds: float = Field(
        3.0, ge=0, le=30, description="after end_call, how long the agent may stay quiet before its goodbye starts"
    )
    tool_timeout_seconds: float = Field(30.0, gt=0, le=600, description="a tool that takes longer answers the model with an error")
    gemini_reconnects_per_call: int = Field(
        10, ge=0, le=100, description="Gemini connections one call may go through before it apologises and ends"
    )
    gemini_open_timeout_seconds: float = Field(
        5.0, gt=0, le=30, description="how long a caller may wait for Gemini at call start (every try, set-up included): then the apology"
    )
    gemini_reconnect_buffer_seconds: float = Field(
        10.0, ge=0, le=60, description="caller audio held while reconnecting, and how long a reconnect keeps trying"
    )
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    log_format: str = Field("auto", description="auto (plain on a terminal, JSON otherwise), plain or json")
    log_phone_numbers: bool = Field(False, description="log callers' numbers in full (default: masked, e.g. +1******4567)")
    data_dir: Path = Field(Path("data"), description="where the default SQLite call history (and recordings) live")
    database_url: SecretStr | None = Field(
        None,
        description="call history database: sqlite:///path.db, postgresql://user:pass@host/db, or off "
        "(memory only; default: DATA_DIR/telephony.db)",
    )
    record_audio: bool = Field(False, description="keep a stereo WAV of every call (caller left, agent right)")
    recordings_dir: Path | None = Field(None, description="where recordings go (default: DATA_DIR/recordings)")
    recording_retention_days: float = Field(30.0, gt=0, description="recordings older than this are deleted")
    recording_notice: bool = Field(False, description='with recordings on, callers first hear "This call may be recorded."')
    dashboard_credentials: SecretStr | None = Field(
        None, description="user:password for /calls, /api/calls and /phone from anywhere but this machine"
    )
    token_prices: str | None = Field(None, description="JSON of USD per million tokens by kind (see telephony/gemini/pricing.py)")
    call_log_dir: Path | None = Field(None, description="one JSON line per call is appended here")
    record_dir: Path | None = Field(None, description="inbound Twilio messages of each call, as fixtures")

    @field_validator("thinking_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("transfer_numbers", "extra_voices", "extra_languages", "trusted_proxies", mode="before")
    @classmethod
    def _split_numbers(cls, value: object) -> object:
        if isinstance(value, str):
            return [n.strip() for n in value.split(",") if n.strip()]
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value.upper()

    @field_validator("log_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value.lower() not in ("auto", "plain", "json"):
            raise ValueError("must be auto, plain or json")
        return value.lower()

    @field_validator("public_url")
    @classmethod
    def _usable_public_url(cls, value: str | None) -> str | None:
        """https://host[/prefix]: a trailing slash would make Twilio call //twiml."""
        if not value:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s):// address, e.g. https://voice.example.com")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query or fragment (Twilio signs the exact URL)")
        route = parts.path.rstrip("/").rsplit("/", 1)[-1]
        if route in ("twiml", "media-stream", "status", "amd"):
            base = value.strip().rstrip("/")[: -len(route) - 1]
            raise ValueError(f"ends with /{route}: give the server's address ({base}); the routes are added to it")
        return value.strip().rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: SecretStr | None) -> SecretStr | None:
        """Else SQLAlchemy's error, with a traceback, at the first use (the URL may hold a password: not repeated)."""
        if value is None:
            return None
        url = value.get_secret_value().strip()
        scheme = url.split("://", 1)[0] if "://" in url else ""
        if url != "off" and scheme.split("+", 1)[0] not in ("sqlite", "postgresql") and scheme != "postgres":
            raise ValueError("must be off, sqlite:///path/to/calls.db or postgresql://user:password@host/db")
        return SecretStr(url)

    def call_history_problem(self) -> str | None:
        """A SQLite call history whose directory cannot be made, in one line (None: fine)."""
        url = self.call_history_url
        if not url.startswith("sqlite") or ":memory:" in url or ":///" not in url:
            return None
        directory = Path(url.split(":///", 1)[1]).parent
        try:  # made now, as the store would (asking os.access instead is wrong for root)
            directory.mkdir(parents=True, exist_ok=True)
        except OSError:
            setting = "TELEPHONY_DATABASE_URL" if self.database_url is not None else "TELEPHONY_DATA_DIR"
            return f"{setting}: cannot make the call history's directory {directory}: give a writable path"
        return None

    @field_validator("twilio_account_sid")
    @classmethod
    def _account_sid_shape(cls, value: str | None) -> str | None:
        """A wrong SID otherwise surfaces as a connection error to Twilio, much later."""
        if value and not re.fullmatch(r"AC[0-9a-f]{32}", value.strip()):
            raise ValueError("must be AC and 32 hex digits (the Account SID on the Twilio console's dashboard)")
        return value.strip() if value else None

    @field_validator("instructions_file")
    @classmethod
    def _readable_instructions(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is {'a directory' if value.is_dir() else 'not there'}: give a text file")
        return value

    @field_validator("gemini_ca_file")
    @classmethod
    def _usable_ca_file(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        if not value.is_file():
            raise ValueError(f"{value} is {'a directory' if value.is_dir() else 'not there'}: give a PEM file of CA certificates")
        try:
            ssl.create_default_context(cafile=str(value))
        except (ssl.SSLError, OSError, ValueError):
            raise ValueError(f"{value} holds no PEM CA certificate") from None
        return value

    @field_validator("vad_preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        if value not in ("phone", "responsive", "patient", "custom"):
            raise ValueError("vad_preset must be phone, responsive, patient or custom")
        return value

    # Refused at startup what the service would refuse at every call's setup (each on its
    # own, so that every problem is reported at once).
    @field_validator("voice")
    @classmethod
    def _known_voice(cls, value: str, info: ValidationInfo) -> str:
        problem = catalog.voice_problem(value, info.data.get("extra_voices") or ())
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("language_code")
    @classmethod
    def _known_language(cls, value: str | None, info: ValidationInfo) -> str | None:
        problem = catalog.language_problem(value, info.data.get("extra_languages") or ()) if value else None
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("model")
    @classmethod
    def _model_of_this_backend(cls, value: str | None, info: ValidationInfo) -> str | None:
        vertex = info.data.get("gemini_api_key") is None and bool(info.data.get("vertex_project"))
        problem = catalog.model_problem(value, vertex) if value else None
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _read_instructions_file(self) -> Settings:
        if self.instructions_file is not None:
            try:
                self.instructions = self.instructions_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"TELEPHONY_INSTRUCTIONS_FILE: cannot read {self.instructions_file}: {exc.strerror or exc}") from exc
        return self

    @property
    def uses_vertex(self) -> bool:
        """Vertex AI when a project is set and no API key is: with both, the API key wins
        (see `startup_warnings`)."""
        return self.gemini_api_key is None and bool(self.vertex_project)

    @property
    def call_history_url(self) -> str:
        """Where calls are kept: TELEPHONY_DATABASE_URL, else a SQLite file in the data dir ("off": nowhere)."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'telephony.db').resolve()}"

    @property
    def gemini_model(self) -> str:
        """The model calls use: the configured one, else the default of the backend in use."""
        return self.model or catalog.default_model(self.uses_vertex)

    def serve_problems(self, gemini_emulated: bool = False) -> list[str]:
        """What makes `telephony serve` refuse to start (and `check` fail), one line each."""
        problems = []
        if not gemini_emulated and self.gemini_api_key is None and not self.vertex_project:
            problems.append(
                "GEMINI_API_KEY: not set (nor GOOGLE_CLOUD_PROJECT for Vertex AI); set one, "
                "or run offline with `telephony serve --emulate-gemini`"
            )
        if self.validate_signatures and self.twilio_auth_token is None:
            problems.append(
                "TWILIO_AUTH_TOKEN: not set, so Twilio's request signatures cannot be checked; set it, "
                "or for local development only set TELEPHONY_VALIDATE_SIGNATURES=false"
            )
        if self.public_url and self.public_url.startswith("http://") and not _is_loopback(self.public_url):
            problems.append(
                f"TELEPHONY_PUBLIC_URL: {self.public_url} is plain http; Twilio opens media streams only over wss://, "
                "so put the server behind HTTPS (a tunnel or proxy) and use its https:// address"
            )
        if (history := self.call_history_problem()) is not None:
            problems.append(history)
        return problems

    def startup_warnings(self) -> list[str]:
        """What works, but probably not as meant; said once at startup and by `check`."""
        warnings = []
        if (about_model := model_warning(self.gemini_model)) is not None:
            warnings.append(f"TELEPHONY_MODEL: {about_model}")
        if not self.public_url and self.validate_signatures and not self.trusted_proxies:
            warnings.append(
                "TELEPHONY_PUBLIC_URL is not set: signatures are checked against the Host header of each request, "
                "which fails behind a proxy or tunnel; set it to the https:// address Twilio calls"
            )
        token = self.twilio_auth_token.get_secret_value() if self.twilio_auth_token is not None else None
        if token is not None and not re.fullmatch(r"[0-9a-f]{32}", token):
            warnings.append(
                f"TWILIO_AUTH_TOKEN: is {len(token)} characters; Twilio's are 32 hex digits (the Auth Token on the console's "
                "dashboard, not an API key secret): signatures will not match"
            )
        if self.gemini_api_key is not None and self.vertex_project:
            warnings.append(
                "both GEMINI_API_KEY and GOOGLE_CLOUD_PROJECT are set: using the Gemini Developer API with the key "
                "(unset GEMINI_API_KEY to use Vertex AI)"
            )
        return warnings


def _is_loopback(url: str) -> bool:
    return host_is_loopback(urlsplit(url).hostname or "")


def host_is_loopback(host: str) -> bool:
    """localhost, 127.x or ::1: nothing outside this machine reaches it."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ConfigError(ValueError):
    """Settings that cannot work: `problems` holds one line each, naming the environment
    variable and what to do; no value is ever included (it may be a secret)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def env_name(field: str) -> str:
    """The environment variable a user sets for a Settings field."""
    info = Settings.model_fields.get(field)
    if info is None and field.isupper():
        return field  # pydantic names the alias the value came in by: it is the variable itself
    alias = info.validation_alias if info is not None else None
    choices = getattr(alias, "choices", None)
    return str(choices[0]) if choices else f"TELEPHONY_{field.upper()}"


def load_settings(**overrides: Any) -> Settings:
    """Read the settings (environment, .env, then `overrides`); raises `ConfigError` with
    every problem at once, never pydantic's report (which repeats the input, secrets too)."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems: list[str] = []
        for error in exc.errors(include_input=False, include_url=False, include_context=False):
            message = str(error["msg"]).removeprefix("Value error, ")
            location = error.get("loc") or ()
            for line in message.splitlines():
                problems.append(f"{env_name(str(location[0]))}: {line}" if location else line)
        raise ConfigError(problems) from None
