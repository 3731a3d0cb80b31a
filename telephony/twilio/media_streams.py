"""Twilio Media Streams wire format: pydantic models for what Twilio sends and builders for
what we send back. No I/O here; the call core and the Twilio emulator both use it.

Inbound (Twilio -> us): connected, start, media, mark, dtmf, stop. Numbers such as
sequenceNumber, chunk and timestamp arrive as JSON strings and are parsed to int.
Outbound (us -> Twilio): media, mark, clear.

`parse_message` accepts unknown events (returned as `UnknownEvent`, for the caller to log)
and raises `TwilioProtocolError`, and only that, for anything malformed.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from enum import Enum
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    TypeAdapter,
    ValidationError,
)

TOKEN_PARAMETER = "token"
"""The `<Stream>` `<Parameter>` that carries a stream's single-use token (never logged or kept)."""


class Outbound(str, Enum):
    """The three messages we send on a Media Streams socket."""

    MEDIA = "media"
    MARK = "mark"
    CLEAR = "clear"


MAX_MESSAGE_BYTES = 64 * 1024
"""Largest inbound frame we accept. Real frames are ~400 bytes (a 20 ms media frame);
`start` with many custom parameters stays far below this."""

MULAW_ENCODING = "audio/x-mulaw"
MULAW_RATE = 8000


class TwilioProtocolError(ValueError):
    """A Media Streams message that cannot be understood (bad JSON, fields, base64, size)."""


def _decode_base64(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise ValueError("payload must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"payload is not valid base64: {exc}") from None


Base64Audio = Annotated[
    bytes,
    BeforeValidator(_decode_base64),
    PlainSerializer(lambda b: base64.b64encode(b).decode("ascii"), return_type=str),
]
"""Audio bytes on the wire as standard base64; decoded on parse, encoded on dump."""

StreamSid = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,128}$")]
"""Twilio stream SIDs look like MZ + 32 hex digits; anything outside this set is refused so
that outbound messages can be built without JSON escaping."""

NumericString = Annotated[int, PlainSerializer(lambda n: str(n), return_type=str)]
"""Twilio sends counters as strings ("1"); parsed to int, written back as strings."""


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    def to_json(self) -> str:
        """The message exactly as it goes on the wire (camelCase keys, no nulls)."""
        return self.model_dump_json(by_alias=True, exclude_none=True)


# --- inbound -----------------------------------------------------------------------------


class Connected(_Wire):
    event: Literal["connected"] = "connected"
    protocol: str = "Call"
    version: str = "1.0.0"


class MediaFormat(_Wire):
    encoding: str = MULAW_ENCODING
    sample_rate: int = Field(MULAW_RATE, alias="sampleRate")
    channels: int = 1


class StartDetails(_Wire):
    account_sid: str = Field(alias="accountSid")
    call_sid: str = Field(alias="callSid")
    stream_sid: str = Field(alias="streamSid")
    tracks: list[str] = Field(default_factory=lambda: ["inbound"])
    custom_parameters: dict[str, str] = Field(default_factory=dict, alias="customParameters")
    media_format: MediaFormat = Field(default_factory=MediaFormat, alias="mediaFormat")


class Start(_Wire):
    event: Literal["start"] = "start"
    sequence_number: NumericString = Field(alias="sequenceNumber")
    stream_sid: StreamSid = Field(alias="streamSid")
    start: StartDetails


class MediaDetails(_Wire):
    track: str = "inbound"
    chunk: NumericString
    timestamp: NumericString
    payload: Base64Audio


class Media(_Wire):
    event: Literal["media"] = "media"
    sequence_number: NumericString = Field(alias="sequenceNumber")
    stream_sid: StreamSid = Field(alias="streamSid")
    media: MediaDetails


class MarkDetails(_Wire):
    name: str


class Mark(_Wire):
    event: Literal["mark"] = "mark"
    sequence_number: NumericString | None = Field(None, alias="sequenceNumber")
    stream_sid: str = Field(alias="streamSid")
    mark: MarkDetails


class DtmfDetails(_Wire):
    track: str = "inbound_track"
    digit: str = Field(min_length=1, max_length=1)


class Dtmf(_Wire):
    event: Literal["dtmf"] = "dtmf"
    sequence_number: NumericString = Field(alias="sequenceNumber")
    stream_sid: str = Field(alias="streamSid")
    dtmf: DtmfDetails


class StopDetails(_Wire):
    account_sid: str = Field(alias="accountSid")
    call_sid: str = Field(alias="callSid")


class Stop(_Wire):
    event: Literal["stop"] = "stop"
    sequence_number: NumericString = Field(alias="sequenceNumber")
    stream_sid: str = Field(alias="streamSid")
    stop: StopDetails


class UnknownEvent(_Wire):
    """An event this version does not know; logged and ignored, never fatal."""

    model_config = ConfigDict(extra="allow", frozen=True)
    event: str


_KNOWN_EVENTS = {"connected", "start", "media", "mark", "dtmf", "stop"}


def _event_tag(value: Any) -> str | None:
    event = value.get("event") if isinstance(value, dict) else getattr(value, "event", None)
    if not isinstance(event, str):
        return None
    return event if event in _KNOWN_EVENTS else "unknown"


InboundMessage = Annotated[
    Annotated[Connected, Tag("connected")]
    | Annotated[Start, Tag("start")]
    | Annotated[Media, Tag("media")]
    | Annotated[Mark, Tag("mark")]
    | Annotated[Dtmf, Tag("dtmf")]
    | Annotated[Stop, Tag("stop")]
    | Annotated[UnknownEvent, Tag("unknown")],
    Discriminator(
        _event_tag,
        custom_error_type="missing_event",
        custom_error_message="no string 'event' field",
    ),
]

_inbound = TypeAdapter(InboundMessage)
_media = TypeAdapter(Media)
_MEDIA_FIRST = ('{"event":"media"', b'{"event":"media"')
"""How Twilio writes each of its 50 media frames a second: compact JSON, `event` first."""


def parse_message(raw: str | bytes) -> Connected | Start | Media | Mark | Dtmf | Stop | UnknownEvent:
    """Parse one inbound text frame. Raises `TwilioProtocolError` if it is malformed."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise TwilioProtocolError(f"message of {len(raw)} bytes exceeds {MAX_MESSAGE_BYTES}")
    if raw.startswith(_MEDIA_FIRST[1]) if isinstance(raw, bytes) else raw.startswith(_MEDIA_FIRST[0]):
        # A media frame, validated as one (2.5 us, against 4.2 us through the union and its
        # discriminator); anything it refuses goes the general way, which says what is wrong.
        with contextlib.suppress(ValidationError):
            return _media.validate_json(raw)
    try:
        return _inbound.validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise TwilioProtocolError(f"malformed Media Streams message at {where}: {first['msg']}") from None


def media_payload(raw: str, stream_sid: str) -> bytes | None:
    """The audio of a well-formed media frame for `stream_sid`, read the short way; None for
    anything else, which `parse_message` then reads (and words the error of).

    This runs 50 times a second per call: orjson and a strict base64 decode take about a
    third of the time of `parse_message`'s validation. It accepts only what `parse_message`
    accepts as a `Media` for that stream with that payload (a property test holds them to
    it), so nothing malformed gets through the short way.
    """
    if not stream_sid or len(raw) > MAX_MESSAGE_BYTES:
        return None
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(message) is not dict or message.get("event") != "media" or message.get("streamSid") != stream_sid:
        return None
    media = message.get("media")
    if type(media) is not dict or not _counter(message.get("sequenceNumber")):
        return None
    if not (_counter(media.get("chunk")) and _counter(media.get("timestamp")) and type(media.get("track", "")) is str):
        return None
    encoded = media.get("payload")
    if type(encoded) is not str:
        return None
    try:
        return binascii.a2b_base64(encoded, strict_mode=True)  # what b64decode(validate=True) does
    except (binascii.Error, ValueError):
        return None


def _counter(value: Any) -> bool:
    """One of Twilio's counters, as it sends them: a short string of ASCII digits."""
    return type(value) is str and 0 < len(value) <= 18 and value.isascii() and value.isdigit()


WIDEBAND_ENCODING = "audio/x-l16"
"""16 kHz mono PCM16, little-endian: what the browser phone's "wideband" switch sends (never Twilio)."""
WIDEBAND_RATE = 16000


def check_media_format(start: Start, allow_wideband: bool = False) -> bool:
    """Refuse a stream that is not 8 kHz mono mu-law (Twilio documents only that format);
    with `allow_wideband`, 16 kHz linear PCM too. Returns True for wideband."""
    fmt = start.start.media_format
    if allow_wideband and (fmt.encoding, fmt.sample_rate, fmt.channels) == (WIDEBAND_ENCODING, WIDEBAND_RATE, 1):
        return True
    if (fmt.encoding, fmt.sample_rate, fmt.channels) != (MULAW_ENCODING, MULAW_RATE, 1):
        raise TwilioProtocolError(
            f"unsupported media format {fmt.encoding} {fmt.sample_rate} Hz x{fmt.channels}; expected {MULAW_ENCODING} {MULAW_RATE} Hz mono"
        )
    return False


# --- outbound ----------------------------------------------------------------------------


class OutboundMediaDetails(_Wire):
    payload: Base64Audio


class OutboundMedia(_Wire):
    event: Literal["media"] = "media"
    stream_sid: str = Field(alias="streamSid")
    media: OutboundMediaDetails


class OutboundMark(_Wire):
    event: Literal["mark"] = "mark"
    stream_sid: str = Field(alias="streamSid")
    mark: MarkDetails


class Clear(_Wire):
    event: Literal["clear"] = "clear"
    stream_sid: str = Field(alias="streamSid")


def media_message(stream_sid: str, mulaw: bytes) -> str:
    """Outbound audio for the caller: one mu-law 8 kHz frame."""
    # Hand-built: this runs 50 times a second per call, and the shape is fixed and
    # ASCII-safe (stream SIDs are [A-Za-z0-9]; base64 has no quotes).
    payload = base64.b64encode(mulaw).decode("ascii")
    return f'{{"event":"media","streamSid":"{stream_sid}","media":{{"payload":"{payload}"}}}}'


def mark_message(stream_sid: str, name: str) -> str:
    """Ask Twilio to echo `name` once everything sent before it has been played."""
    return OutboundMark(stream_sid=stream_sid, mark=MarkDetails(name=name)).to_json()


def clear_message(stream_sid: str) -> str:
    """Empty Twilio's playback buffer now (barge-in)."""
    return Clear(stream_sid=stream_sid).to_json()


def start_of(raw: str | bytes) -> tuple[str, dict[str, str]] | None:
    """(CallSid, custom parameters) of a `start` message, read before the call core reads it
    (to ask the shared store first, and to find the agent it names); None for anything else,
    malformed starts included (the core refuses those as it refuses every malformed message)."""
    if '"start"' not in (raw if isinstance(raw, str) else raw.decode("utf-8", "replace")):
        return None
    try:
        message = json.loads(raw)
        details = message["start"] if message.get("event") == "start" else None
        if not details:
            return None
        parameters = details.get("customParameters") or {}
        return str(details["callSid"]), {str(k): str(v) for k, v in parameters.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
