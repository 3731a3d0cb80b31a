"""Misbehaviour to inject into the Gemini Live emulator (faults, the realistic profile, silent
stalls), and what it saw of each connection, for tests to inspect."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from telephony.gemini.models import MODELS
from telephony.testing.scripted_model import INPUT_RATE


@dataclass
class EphemeralToken:
    """One token minted by `POST /v1alpha/auth_tokens`."""

    name: str
    uses: int
    expire_at: float
    new_session_until: float
    setup: dict[str, Any] | None
    used: int = 0


def _rfc3339(value: Any) -> float | None:
    if not value:
        return None
    import datetime as dt

    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


@dataclass
class Faults:
    """Misbehaviour to inject, counted in seconds from a connection's setupComplete (or its
    first tool call: `from_tool_call`).

    Faults apply to connection numbers in `connections` (1-based; default: the first only),
    so that a reconnect finds a healthy server.
    """

    close_after_s: float | None = None
    close_code: int = 1011
    close_reason: str = "emulator: injected close"
    """The real service's words, e.g. 1008 "Operation is not implemented, or supported, or
    enabled." or 1000 with no reason at all."""
    drop_after_s: float | None = None
    """Abort the TCP connection without a close frame (the client sees 1006)."""
    from_tool_call: bool = False
    """Count `close_after_s`, `drop_after_s` and `go_away_after_s` from the connection's first
    tool call instead of its setupComplete: a fault while a tool runs, however late a busy
    machine makes the call come."""
    go_away_after_s: float | None = None
    go_away_time_left_s: float = 2.0
    reply_delay_s: float = 0.0
    refuse_after_connections: int | None = None
    """Accept this many connections in all, then refuse every new one (HTTP 503)."""
    connections: set[int] = field(default_factory=lambda: {1})
    setup_delay_s: float = 0.0
    """Answer `setupComplete` this late on the connections in `setup_delay_connections`
    (a slow reconnect: what the call sends meanwhile must wait, not be lost)."""
    setup_delay_connections: set[int] = field(default_factory=lambda: {2})
    refuse_resumption: bool = False
    """Refuse every resumption handle at setup (1007), as the service often does after a
    backend failure: the client must fall back to a fresh session."""
    session_deadline_s: float | None = None
    """Close at this session age with 1011 "Deadline expired" and refuse its handles after
    (3.8's 58-minute close; counted on the emulator's `session_age_speed` clock)."""
    stall: str | None = None
    """Stall on the caller turns in `stall_turns` (see `STALL_KINDS`), the socket open."""
    stall_turns: set[int] = field(default_factory=lambda: {1})
    """Which caller turns stall (1-based, counted over the emulator's whole life)."""


@dataclass(frozen=True)
class Realism:
    """What the real service does that a kind emulator would not (see the shared notes
    "gemini-reality"). `REALISTIC` switches all of it on."""

    lead_s: float = 30.0
    """Replies are generated this far ahead of real time: whole answers arrive in a burst,
    so `interrupted` comes only while still generating and buffered audio is ours to cut."""
    fragment_transcripts: bool = True
    """Transcripts arrive as sub-word fragments ("Hel", "lo")."""
    late_input_transcript: bool = True
    """The caller's transcript arrives after the agent's reply has begun."""
    tool_speech_delay_s: tuple[float, float] = (0.5, 3.0)
    """Silence between a tool response and the speech that follows it."""
    usage_metadata: bool = True
    check_setup: bool = True
    """Refuse an unknown model or voice at setup by closing the socket, as the service does."""
    unknown_message: bool = True
    """Send, once per connection, a message with only a field the SDK does not know."""
    stall_rate: float = 0.0
    """The share of caller turns on which the model stalls (a kind picked at random), as
    deployed calls on 3.1 were reported to (python-genai #2117); 0: never."""
    seed: int = 7


REALISTIC = Realism()
KNOWN_MODELS = tuple(model.id for model in MODELS if not model.retired)
"""The ids the service serves today (a retired or unknown id is refused at setup)."""
FILLER_TEXT = "One moment, let me check that."
STALL_KINDS = {
    "empty_turn": "turnComplete with nothing in it; a nudge on the session gets the answer (python-genai #2117)",
    "no_answer": "the caller transcribed, then nothing; the session is wedged until a new connection (examples #48)",
    "mid_sentence": "the reply stops part-way with no turnComplete; a nudge gets the rest (pipecat #4633)",
    "phantom_interrupt": "interrupted with the caller silent, then nothing; wedged (python-genai #2333)",
    "tone": "tone-like audio with no transcript, on and on; wedged (python-genai #2715)",
}
"""How the emulated model can go silent with its socket open, and what brings it back."""


def fragments(text: str, rng: random.Random) -> list[str]:
    """Cut `text` into the sub-word pieces the service sends (1-4 characters each)."""
    pieces, i = [], 0
    while i < len(text):
        size = rng.randint(1, 4)
        pieces.append(text[i : i + size])
        i += size
    return pieces


@dataclass
class ConnectionLog:
    """What one connection did, for tests to inspect."""

    number: int
    path: str
    websocket_extensions: str = ""
    """The client's Sec-WebSocket-Extensions offer (e.g. permessage-deflate), "" for none."""
    token: str | None = None
    """The ephemeral token a constrained session was opened with."""
    setup: dict[str, Any] = field(default_factory=dict)
    resumed_handle: str | None = None
    audio_in_bytes: int = 0
    caller_audio: bytearray = field(default_factory=bytearray)
    """All caller audio received, 16 kHz PCM (only with `record_messages`)."""
    texts: list[str] = field(default_factory=list)
    turns: int = 0
    replies_started: int = 0
    replies_finished: int = 0
    interruptions: int = 0
    tool_calls_cancelled: list[str] = field(default_factory=list)
    """Ids sent in toolCallCancellation (tool calls of a reply the caller interrupted)."""
    tool_responses: list[dict[str, Any]] = field(default_factory=list)
    audio_received_at: list[float] = field(default_factory=list)
    """time.monotonic() of every caller audio chunk (only with `record_timings`)."""
    audio_sent_at: list[float] = field(default_factory=list)
    """time.monotonic() of every agent audio chunk sent (only with `record_timings`)."""
    interrupted_sent_at: list[float] = field(default_factory=list)
    reply_started_at: list[float] = field(default_factory=list)
    """time.monotonic() when each reply began streaming (after any tool calls)."""
    handles_issued: list[str] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    family: str = ""
    """The model family whose behaviour this connection had (`telephony.gemini.models.Family`)."""
    fillers: int = 0
    """Fillers spoken while a NON_BLOCKING call ran or before background work."""
    filler_audio_ms: float = 0.0
    """The fillers' audio on the wire: a reply's audio beyond its words (a cancelled filler
    counts what was sent of it)."""
    messages: list[dict[str, Any]] = field(default_factory=list)
    """Every server message sent on this connection (only with `record_messages`)."""
    client_messages: list[dict[str, Any]] = field(default_factory=list)
    """Every client message but audio (only with `record_messages`)."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """Client content taken in as initial history (3.x `historyConfig`) or without a turn end."""

    @property
    def audio_in_seconds(self) -> float:
        return self.audio_in_bytes / 2 / INPUT_RATE
