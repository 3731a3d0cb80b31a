"""A local Gemini Live (BidiGenerateContent) server that the real google-genai SDK talks to.

It accepts the SDK's WebSocket at the real path, checks the `setup` message, answers
`setupComplete`, hears the caller with a simple energy VAD, and lets a pluggable agent reply
with 24 kHz PCM sent faster than real time, as the real service does. Caller speech during an
unfinished reply interrupts it (`serverContent.interrupted`). Faults can be injected for
reliability tests: close with 1011, drop the TCP connection (1006 for the client), send
`goAway`, delay replies, refuse new connections. Resumption handles are issued after every
turn and accepted on reconnect.

The SDK always speaks wss:// when it has an API key, so the emulator serves TLS with a
throw-away CA made at start (`trustme`); `client_http_options()` gives the SDK what it needs:

    async with GeminiLiveEmulator(EchoAgent()) as emulator:
        client = genai.Client(api_key="offline", http_options=emulator.client_http_options())
        async with client.aio.live.connect(model="...", config=...) as session: ...

Wire facts (google-genai 3.6.1): client messages mix camelCase and snake_case keys, so every
key is accepted in both spellings; bytes arrive as URL-safe base64 without padding; answers
go out in camelCase as the real service writes them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import itertools
import json
import logging
import random
import re
import secrets
import ssl
import tempfile
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import trustme
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from telephony.audio.wav import read_wav, resample_whole
from telephony.gemini.catalog import VOICES
from telephony.gemini.models import MODELS, Family, ToolBehavior
from telephony.testing.model_profiles import (
    DEADLINE_CLOSE_REASON,
    NO_ANSWER,
    ModelProfile,
    profile_for,
    setup_refusal,
    tool_response_refusal,
)

log = logging.getLogger(__name__)

INPUT_RATE = 16000
OUTPUT_RATE = 24000
OUTPUT_MIME_TYPE = "audio/pcm;rate=24000"
_PATH = re.compile(
    r"^/+ws/(google\.ai\.generativelanguage\.[A-Za-z0-9]+\.GenerativeService\.BidiGenerateContent(Constrained)?"
    r"|google\.cloud\.aiplatform\.[A-Za-z0-9]+\.LlmBidiService/BidiGenerateContent)(\?.*)?$"
)
# User data that must keep its keys as written (tool arguments and results, schemas).
_OPAQUE_KEYS = {"args", "response", "parameters", "parameters_json_schema", "response_json_schema"}


# --- what agents see and say --------------------------------------------------------------


@dataclass(frozen=True)
class CallerTurn:
    """What the caller just said: an utterance (16 kHz int16) or text."""

    index: int
    audio16k: np.ndarray | None = None
    text: str | None = None

    @property
    def seconds(self) -> float:
        return 0.0 if self.audio16k is None else len(self.audio16k) / INPUT_RATE


@dataclass(frozen=True)
class EmulatedToolCall:
    """A function call the agent makes; the reply continues once the client answers it."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """One agent turn: tool calls first (each awaited), then speech with its transcript."""

    audio24k: np.ndarray | None = None
    transcript: str = ""
    tool_calls: tuple[EmulatedToolCall, ...] = ()
    speech_delay_s: float | None = None
    """Silence before the speech starts, after the tool calls were answered (native-audio
    models often wait 0.5 s to several seconds after a tool response). None: 0, or a
    random 0.5-3 s after tool calls with the realistic profile."""
    heard: str | None = None
    """The inputTranscription for the caller turn this replies to (default: a description
    of the caller's audio)."""
    filler: str | None = None
    """What the model says while a NON_BLOCKING call runs (3.8) or before its background
    work (Extended Thinking); default: the profile's filler."""

    @property
    def seconds(self) -> float:
        return 0.0 if self.audio24k is None else len(self.audio24k) / OUTPUT_RATE


class Agent(Protocol):
    """Decides what the emulated model says. Return None to stay silent."""

    def reply(self, turn: CallerTurn) -> Reply | None: ...


class EchoAgent:
    """The classic telephony echo test: says back whatever the caller said."""

    def reply(self, turn: CallerTurn) -> Reply | None:
        if turn.audio16k is None or len(turn.audio16k) == 0:
            return None
        audio = resample_whole(turn.audio16k, INPUT_RATE, OUTPUT_RATE)
        return Reply(audio24k=audio, transcript=f"[echo of {turn.seconds:.2f} s]")


def tone24k(seconds: float, freq_hz: float = 440.0, dbfs: float = -12.0) -> np.ndarray:
    """A plain tone at 24 kHz, handy as scripted agent speech."""
    t = np.arange(int(OUTPUT_RATE * seconds)) / OUTPUT_RATE
    return np.rint(32767 * 10 ** (dbfs / 20) * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


class ScriptedAgent:
    """Replies with the given replies in order, one per caller turn; silent when done.

    `replies` items may be `Reply` objects or paths of WAV files (any rate, resampled).
    """

    def __init__(self, replies: Sequence[Reply | str | Path], respond_to_text: bool = False) -> None:
        self._replies = [self._load(r) for r in replies]
        self._next = 0
        self.respond_to_text = respond_to_text
        self.turns: list[CallerTurn] = []

    @staticmethod
    def _load(item: Reply | str | Path) -> Reply:
        if isinstance(item, Reply):
            return item
        samples, rate = read_wav(item)
        return Reply(audio24k=resample_whole(samples, rate, OUTPUT_RATE), transcript=Path(item).stem)

    def reply(self, turn: CallerTurn) -> Reply | None:
        self.turns.append(turn)
        if turn.audio16k is None and not self.respond_to_text:
            return None
        if self._next >= len(self._replies):
            return None
        self._next += 1
        return self._replies[self._next - 1]


# --- faults and what the emulator saw -------------------------------------------------------


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
    """Misbehaviour to inject, counted in seconds from a connection's setupComplete.

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
    messages: list[dict[str, Any]] = field(default_factory=list)
    """Every server message sent on this connection (only with `record_messages`)."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """Client content taken in as initial history (3.x `historyConfig`) or without a turn end."""

    @property
    def audio_in_seconds(self) -> float:
        return self.audio_in_bytes / 2 / INPUT_RATE


# --- helpers --------------------------------------------------------------------------------


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def normalize_keys(value: Any) -> Any:
    """Recursively turn camelCase keys into snake_case (both spellings arrive on the wire)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            name = _snake(key)
            out[name] = item if name in _OPAQUE_KEYS else normalize_keys(item)
        return out
    if isinstance(value, list):
        return [normalize_keys(v) for v in value]
    return value


def decode_bytes_field(data: str) -> bytes:
    """The SDK sends URL-safe base64 without padding; accept standard base64 as well."""
    padded = data + "=" * (-len(data) % 4)
    return base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))


class EnergyVad:
    """Caller speech detection on 16 kHz PCM, 20 ms frames: loud enough for long enough."""

    FRAME = INPUT_RATE // 50

    def __init__(self, threshold_dbfs: float = -45.0, start_frames: int = 2, silence_ms: int = 500) -> None:
        self.threshold = 32768 * 10 ** (threshold_dbfs / 20)
        self.start_frames = start_frames
        self.end_frames = max(1, silence_ms // 20)
        self._pending = np.zeros(0, dtype=np.int16)
        self.speaking = False
        self._loud_run = 0
        self._quiet_run = 0
        self._utterance: list[np.ndarray] = []
        self._prefix: list[np.ndarray] = []

    def feed(self, samples: np.ndarray) -> list[tuple[str, np.ndarray | None]]:
        """Returns events: ("start", None) when speech begins, ("end", utterance) when it ends."""
        events: list[tuple[str, np.ndarray | None]] = []
        data = np.concatenate((self._pending, samples))
        whole = len(data) // self.FRAME * self.FRAME
        self._pending = data[whole:]
        for i in range(0, whole, self.FRAME):
            frame = data[i : i + self.FRAME]
            loud = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2))) >= self.threshold
            if not self.speaking:
                self._prefix = (self._prefix + [frame])[-self.start_frames :]
                self._loud_run = self._loud_run + 1 if loud else 0
                if self._loud_run >= self.start_frames:
                    self.speaking, self._quiet_run = True, 0
                    self._utterance = list(self._prefix)
                    events.append(("start", None))
                continue
            self._utterance.append(frame)
            self._quiet_run = 0 if loud else self._quiet_run + 1
            if self._quiet_run >= self.end_frames:
                events.append(("end", self.finish()))
        return events

    def finish(self) -> np.ndarray:
        """End the current utterance now (trailing silence trimmed)."""
        audio = np.concatenate(self._utterance) if self._utterance else np.zeros(0, dtype=np.int16)
        if self._quiet_run:
            audio = audio[: max(0, len(audio) - self._quiet_run * self.FRAME)]
        self.speaking, self._loud_run, self._quiet_run = False, 0, 0
        self._utterance, self._prefix = [], []
        return audio


def _setup_refusal(setup: dict[str, Any]) -> str | None:
    """What the real service says when it will not serve this model or voice (1008)."""
    model = str(setup.get("model", "")).rsplit("/", 1)[-1]
    if model not in KNOWN_MODELS:
        return f"models/{model} is not found for API version v1beta, or is not supported for bidiGenerateContent."
    speech = (setup.get("generation_config") or {}).get("speech_config") or {}
    voice = ((speech.get("voice_config") or {}).get("prebuilt_voice_config") or {}).get("voice_name")
    if voice and voice not in VOICES:
        return f"Invalid argument: voice {voice} is not available."
    return None


# --- the server -----------------------------------------------------------------------------


class GeminiLiveEmulator:
    """The server. Use as `async with GeminiLiveEmulator(agent) as emulator:`.

    `agent_factory` may be an `Agent` (shared by every connection) or a zero-argument
    callable returning one per connection.
    """

    def __init__(
        self,
        agent: Agent | Any = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
        chunk_ms: int = 40,
        lead_s: float = 0.5,
        vad_threshold_dbfs: float = -45.0,
        api_key: str | None = None,
        max_message_bytes: int = 1 << 20,
        speed: float = 1.0,
        hostnames: tuple[str, ...] = (),
        ca_out: Path | None = None,
        realism: Realism | None = None,
        auth_tokens: bool = False,
        model: str | None = None,
        session_age_speed: float = 1.0,
    ) -> None:
        """`realism`: behave like the real service (`REALISTIC`), or kindly (None).
        `model`: behave like this model's family whatever the client asks for (default: the
        family of the model in each setup, `model_profiles`). `session_age_speed`: emulated
        seconds of session age per real second, so that a 58-minute session deadline can be
        reached in a test.
        `auth_tokens`: also serve `POST /v1alpha/auth_tokens` (ephemeral tokens, as
        `client.aio.auth_tokens.create` makes them) and accept them on the constrained
        endpoint; a small front on the port then passes every other request on."""
        self.realism = realism
        self.auth_tokens = auth_tokens
        self.model = model
        self.session_age_speed = session_age_speed
        self.record_messages = False
        """Keep every server message in its connection's log (tests of the wire)."""
        self._deadline_handles: set[str] = set()
        self.caller_turns = 0
        """Caller turns heard, over every connection (what `Faults.stall_turns` counts)."""
        self.stalls: list[str] = []
        """The stall kinds this emulator played, in order."""
        self._owed_by_connection: dict[int, list[CallerTurn | Reply]] = {}
        """What a stalled session still owes its caller (said on the next nudge it takes), by
        connection number; a resumed connection takes over its predecessor's list."""
        self._handle_connection: dict[str, int] = {}
        """Handles of sessions closed at their deadline: a resume with one is refused (1007)."""
        self.tokens: dict[str, EphemeralToken] = {}
        self._token_of: dict[int, EphemeralToken] = {}
        self._front: asyncio.Server | None = None
        self._inner_port = 0
        if realism is not None:
            lead_s = max(lead_s, realism.lead_s)
        self._rng = random.Random(realism.seed if realism is not None else 0)
        self._agent = agent if agent is not None else EchoAgent()
        self.host, self.port = host, port
        self.faults = faults or Faults()
        self.chunk_ms = chunk_ms
        self.lead_s = lead_s
        self.vad_threshold_dbfs = vad_threshold_dbfs
        self.api_key = api_key
        self.max_message_bytes = max_message_bytes
        self.speed = speed
        self.hostnames = hostnames
        """Extra names for the TLS certificate (e.g. a compose service name)."""
        self.ca_out = ca_out
        """Where to write the CA certificate that clients must trust (default: a temp dir)."""
        """Clock rate: 4.0 streams replies (and counts fault delays) four times faster, to
        match a Twilio replay run at the same speed."""
        self.connections: list[ConnectionLog] = []
        self.record_timings = False
        """Keep a timestamp per audio chunk each way (benchmarks); off by default."""
        self.refused = 0
        self._handles: dict[str, int] = {}  # resumption handle -> turns so far
        self._counter = itertools.count(1)
        self._server: Server | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._ssl: ssl.SSLContext | None = None
        self.ca_file: Path | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # lifecycle
    async def start(self) -> GeminiLiveEmulator:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost", "::1", *self.hostnames)
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(server_ctx)
        if self.ca_out is not None:
            self.ca_file = self.ca_out
            self.ca_file.parent.mkdir(parents=True, exist_ok=True)
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="gemini-emulator-")
            self.ca_file = Path(self._tmp.name) / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self._ssl = server_ctx
        await self._listen()
        return self

    async def _listen(self) -> None:
        if self.auth_tokens:  # TLS and the REST route in front, WebSockets behind it on loopback
            self._server = await serve(self._handle, "127.0.0.1", 0, process_request=self._check_request, max_size=self.max_message_bytes)
            self._inner_port = self._server.sockets[0].getsockname()[1]
            self._front = await asyncio.start_server(self._front_door, self.host, self.port, ssl=self._ssl)
            self.port = self._front.sockets[0].getsockname()[1]
            return
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            ssl=self._ssl,
            process_request=self._check_request,
            max_size=self.max_message_bytes,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    # --- ephemeral tokens -------------------------------------------------------------------

    async def _front_door(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        line, _, rest = head.decode("latin-1").partition("\r\n")
        method, _, target = line.partition(" ")
        path = target.split(" ", 1)[0]
        if method == "POST" and path.split("?", 1)[0].endswith("/auth_tokens"):
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in rest.split("\r\n") if h)}
            body = await reader.readexactly(int(headers.get("content-length") or 0))
            status, payload = self._mint_token(headers, body)
            data = json.dumps(payload).encode()
            writer.write(
                f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(data)}\r\nconnection: close\r\n\r\n".encode()
                + data
            )
            await writer.drain()
            writer.close()
            return
        inner_reader, inner_writer = await asyncio.open_connection("127.0.0.1", self._inner_port)
        inner_writer.write(head)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            with contextlib.suppress(Exception):
                sink.close()

        await asyncio.gather(pipe(reader, inner_writer), pipe(inner_reader, writer))

    def _mint_token(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        if self.api_key is not None and headers.get("x-goog-api-key") != self.api_key:
            self.refused += 1
            return 403, {"error": {"code": 403, "message": "API key not valid", "status": "PERMISSION_DENIED"}}
        try:
            request = json.loads(body or b"{}")
        except json.JSONDecodeError:
            return 400, {"error": {"code": 400, "message": "invalid JSON", "status": "INVALID_ARGUMENT"}}
        now = time.time()
        token = EphemeralToken(
            name=f"auth_tokens/{secrets.token_hex(16)}",
            uses=int(request.get("uses") or 1),
            expire_at=_rfc3339(request.get("expireTime")) or now + 30 * 60,
            new_session_until=_rfc3339(request.get("newSessionExpireTime")) or now + 60,
            setup=normalize_keys(request["bidiGenerateContentSetup"]) if request.get("bidiGenerateContentSetup") else None,
        )
        self.tokens[token.name] = token
        return 200, {"name": token.name}

    def _redeem_token(self, request: Request) -> tuple[int, str] | EphemeralToken:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(request.path).query))
        auth = request.headers.get("authorization", "")
        name = query.get("access_token") or (auth[6:] if auth.startswith("Token ") else "")
        token = self.tokens.get(name)
        now = time.time()
        if token is None:
            return 401, "ephemeral token not valid"
        if token.setup is None:
            return 403, "this endpoint takes only tokens locked with liveConnectConstraints"
        if now >= token.expire_at or now >= token.new_session_until:
            return 401, "ephemeral token expired"
        if token.used >= token.uses:
            return 401, "ephemeral token already used"
        token.used += 1
        return token

    async def outage(self, seconds: float) -> None:
        """The service goes away: every live connection drops without a close frame (the
        client sees 1006), the port refuses connections for `seconds`, then the service
        is back on the same port (resumption handles issued before still work)."""
        server = self._server
        if server is None:
            raise RuntimeError("start the emulator first")
        self._server = None
        server.close(close_connections=False)
        for connection in list(server.connections):
            connection.transport.abort()
        await server.wait_closed()
        await asyncio.sleep(seconds)
        await self._listen()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._front is not None:
            self._front.close()
            self._front = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def __aenter__(self) -> GeminiLiveEmulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def client_ssl_context(self) -> ssl.SSLContext:
        if self.ca_file is None:
            raise RuntimeError("start the emulator first")
        return ssl.create_default_context(cafile=str(self.ca_file))

    def client_http_options(self) -> dict[str, Any]:
        """`http_options` for `genai.Client` so the real SDK connects here."""
        return {"base_url": self.base_url, "async_client_args": {"ssl": self.client_ssl_context()}}

    def agent_for_connection(self) -> Agent:
        agent = self._agent
        return agent() if callable(agent) and not hasattr(agent, "reply") else agent

    # connection handling
    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if not _PATH.match(request.path):
            return connection.respond(404, f"no BidiGenerateContent endpoint at {request.path.split('?', 1)[0]}\n")
        if "BidiGenerateContentConstrained" in request.path:
            redeemed = self._redeem_token(request)
            if not isinstance(redeemed, EphemeralToken):
                self.refused += 1
                return connection.respond(redeemed[0], redeemed[1] + "\n")
            self._token_of[id(connection)] = redeemed
        elif self.api_key is not None and request.headers.get("x-goog-api-key") != self.api_key:
            self.refused += 1
            return connection.respond(403, "API key not valid\n")
        limit = self.faults.refuse_after_connections
        if limit is not None and len(self.connections) >= limit:
            self.refused += 1
            return connection.respond(503, "emulator: refusing new connections (fault injection)\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        number = next(self._counter)
        request = ws.request
        conn = ConnectionLog(
            number=number,
            path=request.path if request else "",
            websocket_extensions=request.headers.get("Sec-WebSocket-Extensions", "") if request else "",
        )
        self.connections.append(conn)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await _EmulatedSession(self, ws, conn).run()
        except ConnectionClosed:
            pass
        finally:
            conn.close_code = ws.close_code
            conn.close_reason = ws.close_reason or ""
            if task is not None:
                self._tasks.discard(task)

    def _issue_handle(self, conn: ConnectionLog, turns: int) -> str:
        handle = f"handle-{conn.number}-{turns}-{len(self._handles)}"
        self._handles[handle] = turns
        self._handle_connection[handle] = conn.number
        conn.handles_issued.append(handle)
        return handle


class _EmulatedSession:
    """One connection: setup, then caller audio in, agent replies out."""

    def __init__(self, emulator: GeminiLiveEmulator, ws: ServerConnection, conn: ConnectionLog) -> None:
        self.emulator, self.ws, self.conn = emulator, ws, conn
        self.agent = emulator.agent_for_connection()
        self.faults = emulator.faults if conn.number in emulator.faults.connections else Faults()
        self.reply_task: asyncio.Task[None] | None = None
        self.tool_waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.reply_tool_ids: list[str] = []  # tool calls of the reply being spoken
        self.vad: EnergyVad | None = None
        self.manual_activity: list[np.ndarray] | None = None
        self.resumable = False
        self.send_lock = asyncio.Lock()
        self._ids = itertools.count(1)
        self.profile: ModelProfile = profile_for(emulator.model or "")
        self.declared: dict[str, str | None] = {}
        """Tool name -> declared behaviour (None: the family's default)."""
        self.awaiting_history = False
        """3.x with `historyConfig`: client content is initial history until `turnComplete`."""
        self.wedged = False
        """A stall that only a new connection gets past: this one hears nothing more."""
        self.owed: list[CallerTurn | Reply] = emulator._owed_by_connection.setdefault(conn.number, [])
        """What this session (and the ones resuming it) owes the caller after a stall."""

    async def send(self, message: dict[str, Any]) -> None:
        async with self.send_lock:
            if self.emulator.record_messages:
                self.conn.messages.append(message)
            await self.ws.send(json.dumps(message))

    async def run(self) -> None:
        setup = await self._receive_setup()
        if setup is None:
            return
        faults = self.emulator.faults
        if faults.setup_delay_s and self.conn.number in faults.setup_delay_connections:
            await asyncio.sleep(faults.setup_delay_s / self.emulator.speed)
        await self.send({"setupComplete": {}})
        realism = self.emulator.realism
        if realism is not None and realism.unknown_message:
            await self.send({"serverCapabilities": {"someFutureField": True}})  # unknown to the SDK
        fault_task = asyncio.create_task(self._inject_faults())
        try:
            async for raw in self.ws:
                if isinstance(raw, bytes):
                    raw = raw.decode("utf-8", "replace")
                try:
                    message = normalize_keys(json.loads(raw))
                except json.JSONDecodeError:
                    await self.ws.close(1007, "invalid JSON")
                    return
                await self._dispatch(message)
        finally:
            fault_task.cancel()
            if self.reply_task is not None:
                self.reply_task.cancel()

    async def _receive_setup(self) -> dict[str, Any] | None:
        try:
            async with asyncio.timeout(10):
                raw = await self.ws.recv()
            message = normalize_keys(json.loads(raw))
        except (TimeoutError, json.JSONDecodeError, TypeError):
            await self.ws.close(1007, "the first message must be a JSON setup")
            return None
        setup = message.get("setup") if isinstance(message, dict) else None
        if not isinstance(setup, dict) or not str(setup.get("model", "")).startswith(("models/", "projects/")):
            await self.ws.close(1007, "setup.model is required (models/<name>)")
            return None
        token = self.emulator._token_of.pop(id(self.ws), None)
        if token is not None and token.setup is not None:
            # A constrained session: the token's model and locked configuration win.
            locked = token.setup
            if str(locked.get("model", "")).rsplit("/", 1)[-1] != str(setup.get("model", "")).rsplit("/", 1)[-1]:
                await self.ws.close(1008, "the model is not the one the ephemeral token was created for")
                return None
            setup = {**setup, **locked}
            self.conn.token = token.name
        self.conn.setup = setup
        self.profile = profile_for(self.emulator.model or str(setup.get("model", "")))
        self.conn.family = self.profile.family.value
        realism = self.emulator.realism
        if realism is not None and realism.check_setup:
            refusal = _setup_refusal(setup)
            if refusal is not None:
                await self.ws.close(1008, refusal)
                return None
        refused = setup_refusal(setup, self.profile)
        if refused == NO_ANSWER:  # as 3.1 does: no setupComplete, ever
            await self.ws.wait_closed()
            return None
        if refused is not None:
            await self.ws.close(*refused)
            return None
        self.declared = {
            str(d.get("name")): d.get("behavior") for tool in setup.get("tools") or [] for d in tool.get("function_declarations") or []
        }
        self.awaiting_history = bool((setup.get("history_config") or {}).get("initial_history_in_client_content"))
        generation = setup.get("generation_config") or {}
        modalities = generation.get("response_modalities") or ["AUDIO"]
        if "AUDIO" not in modalities:
            await self.ws.close(1007, "this emulator answers with AUDIO only")
            return None
        resumption = setup.get("session_resumption")
        self.resumable = resumption is not None
        handle = (resumption or {}).get("handle")
        if handle:
            refuse = self.emulator.faults.refuse_resumption or handle in self.emulator._deadline_handles
            if refuse or handle not in self.emulator._handles:
                await self.ws.close(1007, "invalid session resumption handle")
                return None
            self.conn.resumed_handle = handle
            self.conn.turns = self.emulator._handles[handle]
            self.owed = self.emulator._owed_by_connection.setdefault(self.emulator._handle_connection[handle], [])
            self.emulator._owed_by_connection[self.conn.number] = self.owed
        activity = (setup.get("realtime_input_config") or {}).get("automatic_activity_detection") or {}
        if activity.get("disabled"):
            self.manual_activity = None
        else:
            self.vad = EnergyVad(
                threshold_dbfs=self.emulator.vad_threshold_dbfs,
                silence_ms=int(activity.get("silence_duration_ms") or 500),
            )
        return setup

    async def _dispatch(self, message: dict[str, Any]) -> None:
        realtime = message.get("realtime_input")
        if isinstance(realtime, dict):
            await self._realtime_input(realtime)
        content = message.get("client_content")
        if isinstance(content, dict):
            turns = content.get("turns") or []
            if self.profile.family is not Family.NATIVE_AUDIO_25 and any(not t.get("role") for t in turns):
                await self.ws.close(1007, "Request contains an invalid argument.")  # a turn without a role, on 3.x
                return
            if self.awaiting_history or not content.get("turn_complete"):
                self.conn.history.extend(turns)  # taken in; no answer
                seeded = " ".join(p["text"] for t in turns for p in t.get("parts") or [] if p.get("text"))
                if seeded:
                    self.conn.texts.append(seeded)
                if content.get("turn_complete"):
                    self.awaiting_history = False
                return
            texts = [p.get("text", "") for t in turns for p in t.get("parts") or []]
            text = " ".join(t for t in texts if t)
            if text:
                self.conn.texts.append(text)
                await self._caller_turn(CallerTurn(index=self.conn.turns, text=text))
        response = message.get("tool_response")
        if isinstance(response, dict):
            for item in response.get("function_responses") or []:
                refusal = tool_response_refusal(item, self.profile)
                if refusal is not None:
                    await self.ws.close(1007, refusal)
                    return
                self.conn.tool_responses.append(item)
                waiter = self.tool_waiters.pop(str(item.get("id")), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(item)

    async def _realtime_input(self, realtime: dict[str, Any]) -> None:
        audio = realtime.get("audio") or next(iter(realtime.get("media_chunks") or []), None)
        if isinstance(audio, dict) and audio.get("data"):
            try:
                pcm = decode_bytes_field(audio["data"])
            except (binascii.Error, ValueError):
                await self.ws.close(1007, "audio.data is not base64")
                return
            self.conn.audio_in_bytes += len(pcm)
            if self.emulator.record_timings:
                self.conn.audio_received_at.append(time.monotonic())
            samples = np.frombuffer(pcm[: len(pcm) & ~1], dtype="<i2")
            if self.vad is not None:
                for kind, utterance in self.vad.feed(samples):
                    if kind == "start":
                        await self._caller_started()
                    elif utterance is not None and len(utterance):
                        await self._caller_turn(CallerTurn(index=self.conn.turns, audio16k=utterance))
            elif self.manual_activity is not None:
                self.manual_activity.append(samples)
        if realtime.get("activity_start") is not None:
            self.manual_activity = []
            await self._caller_started()
        if realtime.get("activity_end") is not None and self.manual_activity is not None:
            utterance = np.concatenate(self.manual_activity) if self.manual_activity else np.zeros(0, np.int16)
            self.manual_activity = None
            await self._caller_turn(CallerTurn(index=self.conn.turns, audio16k=utterance))
        if realtime.get("audio_stream_end") and self.vad is not None and self.vad.speaking:
            await self._caller_turn(CallerTurn(index=self.conn.turns, audio16k=self.vad.finish()))
        text = realtime.get("text")
        if isinstance(text, str) and text:
            self.conn.texts.append(text)
            await self._caller_turn(CallerTurn(index=self.conn.turns, text=text), interrupt=False)

    async def _caller_started(self) -> None:
        """Barge-in: caller speech while a reply is still being generated interrupts it."""
        if self.wedged:
            return
        if self.reply_task is not None and not self.reply_task.done():
            self.reply_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reply_task
            self.conn.interruptions += 1
            self.conn.interrupted_sent_at.append(time.monotonic())
            await self.send({"serverContent": {"interrupted": True}})
            if self.reply_tool_ids:  # as the service does: the interrupted turn's calls are void
                self.conn.tool_calls_cancelled += self.reply_tool_ids
                await self.send({"toolCallCancellation": {"ids": list(self.reply_tool_ids)}})
                self.reply_tool_ids = []

    async def _caller_turn(self, turn: CallerTurn, interrupt: bool = True) -> None:
        if self.wedged:
            return
        self.conn.turns += 1
        if turn.text is not None and self.owed:  # a nudge: what was owed is said now
            owed = self.owed.pop(0)
            reply = owed if isinstance(owed, Reply) else self.agent.reply(owed)
            if reply is not None:
                self.reply_task = asyncio.create_task(self._speak(reply))
            return
        if turn.text is not None and self.conn.history and self.conn.replies_started == 0 and self.emulator.stalls:
            # A fresh session seeded with the conversation answers the caller's last words
            # when asked to (after a stall nothing else brought back).
            last = next(
                (p.get("text", "") for t in reversed(self.conn.history) if t.get("role") == "user" for p in t.get("parts") or []), ""
            )
            reply = self.agent.reply(CallerTurn(index=self.conn.turns, audio16k=np.zeros(INPUT_RATE // 10, np.int16), text=last))
            if reply is not None:
                self.reply_task = asyncio.create_task(self._speak(reply))
            return
        if turn.audio16k is not None:
            self.emulator.caller_turns += 1
            kind = self._stall_kind()
            if kind is not None:
                await self._stall(kind, turn)
                return
        reply = self.agent.reply(turn)
        heard = None
        if turn.audio16k is not None:
            heard = (reply.heard if reply is not None else None) or f"[caller spoke {turn.seconds:.2f} s]"
        realism = self.emulator.realism
        late = heard is not None and reply is not None and realism is not None and realism.late_input_transcript
        if heard is not None and not late:
            await self._transcript("inputTranscription", heard)
        if reply is None:
            return
        if interrupt:
            await self._caller_started()
        elif self.reply_task is not None and not self.reply_task.done():
            return  # text while the agent talks: heard, but it does not cut the reply
        self.reply_task = asyncio.create_task(self._speak(reply, heard if late else None))

    def _stall_kind(self) -> str | None:
        if self.faults.stall is not None and self.emulator.caller_turns in self.faults.stall_turns:
            return self.faults.stall
        realism = self.emulator.realism
        if realism is not None and realism.stall_rate and self.emulator._rng.random() < realism.stall_rate:
            return self.emulator._rng.choice(sorted(STALL_KINDS))
        return None

    async def _stall(self, kind: str, turn: CallerTurn) -> None:
        """Go silent as the real service has been seen to (`STALL_KINDS`), socket open."""
        self.emulator.stalls.append(kind)
        await self._transcript("inputTranscription", f"[caller spoke {turn.seconds:.2f} s]")  # Gemini has the words
        if kind == "empty_turn":
            await self.send({"serverContent": {"turnComplete": True}})
        elif kind == "phantom_interrupt":  # a moment after the caller's words, with them silent
            await asyncio.sleep(0.5 / self.emulator.speed)
            await self.send({"serverContent": {"interrupted": True}})
        elif kind == "mid_sentence":
            reply = self.agent.reply(turn)
            if reply is not None and reply.audio24k is not None:
                cut = len(reply.audio24k) * 2 // 5
                first = Reply(audio24k=reply.audio24k[:cut], transcript=reply.transcript[: len(reply.transcript) // 2])
                rest = Reply(audio24k=reply.audio24k[cut:], transcript=reply.transcript[len(reply.transcript) // 2 :])
                self.owed.append(rest)
                self.reply_task = asyncio.create_task(self._stream_only(first))
            return
        elif kind == "tone":
            self.reply_task = asyncio.create_task(self._stream_only(Reply(audio24k=tone24k(14.0, 180.0, dbfs=-20.0))))
        self.owed.append(turn)
        self.wedged = kind in ("no_answer", "phantom_interrupt", "tone")

    async def _stream_only(self, reply: Reply) -> None:
        """Audio (and its transcript, if any) with no end of turn: a stalled reply."""
        if reply.audio24k is None:
            return
        pcm = reply.audio24k.astype("<i2").tobytes()
        step = OUTPUT_RATE * 2 * self.emulator.chunk_ms // 1000
        start = time.monotonic()
        said = [reply.transcript] if reply.transcript else []
        for offset in range(0, len(pcm), step):
            due = start + (offset / 2 / OUTPUT_RATE - self.emulator.lead_s) / self.emulator.speed
            if (delay := due - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            content: dict[str, Any] = {
                "modelTurn": {
                    "parts": [
                        {
                            "inlineData": {
                                "mimeType": OUTPUT_MIME_TYPE,
                                "data": base64.b64encode(pcm[offset : offset + step]).decode("ascii"),
                            }
                        }
                    ]
                }
            }
            if said:
                content["outputTranscription"] = {"text": said.pop()}
            await self.send({"serverContent": content})

    async def _transcript(self, kind: str, text: str) -> None:
        """A transcript, whole (kind) or in sub-word fragments (realistic)."""
        realism = self.emulator.realism
        pieces = fragments(text, self.emulator._rng) if realism is not None and realism.fragment_transcripts else [text]
        for piece in pieces:
            await self.send({"serverContent": {kind: {"text": piece}}})

    async def _speak(self, reply: Reply, late_input: str | None = None) -> None:
        """One reply, as the session's model family would give it: BLOCKING calls awaited in
        silence first; NON_BLOCKING ones with the model talking meanwhile and the result
        used as its `scheduling` says; on Extended Thinking a filler, an IN_PROGRESS turn,
        the background calls, then the answer and IDLE."""
        self.conn.replies_started += 1
        self.reply_tool_ids = []
        if self.faults.reply_delay_s:
            await asyncio.sleep(self.faults.reply_delay_s / self.emulator.speed)
        profile = self.profile
        background = [c for c in reply.tool_calls if profile.tool_behavior(self.declared.get(c.name)) is ToolBehavior.NON_BLOCKING]
        blocking = [c for c in reply.tool_calls if c not in background]
        for call in blocking:
            await self._tool_result(await self._send_tool_call(call))
        speak_answer = True
        if background and profile.rules.split_turns:
            await self._stream(self._filler(reply), reply.filler or FILLER_TEXT, late_input, status="IN_PROGRESS")
            late_input = None
            waiters = [await self._send_tool_call(call) for call in background]
            for waiter in waiters:
                await self._tool_result(waiter)
        elif background:
            waiters = [await self._send_tool_call(call) for call in background]
            filler = asyncio.create_task(self._stream(self._filler(reply), reply.filler or FILLER_TEXT, late_input))
            late_input = None
            try:
                results = [await self._tool_result(waiter) for waiter in waiters]
                schedules = {self._scheduling(result) for result in results}
                if "INTERRUPT" in schedules and not (self.vad is not None and self.vad.speaking):
                    filler.cancel()  # stop talking and answer now (3.8 waits while the caller speaks)
                    await asyncio.gather(filler, return_exceptions=True)
                    if filler.cancelled():
                        await self._end_turn()  # the filler's turn, cut short
                else:
                    await filler  # WHEN_IDLE: once the filler is said
                speak_answer = schedules != {"SILENT"}
            finally:
                filler.cancel()
        if speak_answer:
            delay_s = reply.speech_delay_s
            realism = self.emulator.realism
            if delay_s is None:
                delay_s = self.emulator._rng.uniform(*realism.tool_speech_delay_s) if realism is not None and reply.tool_calls else 0.0
            if delay_s:
                await asyncio.sleep(delay_s / self.emulator.speed)
            self.conn.reply_started_at.append(time.monotonic())
            final = "IDLE" if profile.rules.split_turns else None
            await self._stream(reply.audio24k, reply.transcript, late_input, status=final)
        self.conn.replies_finished += 1
        if self.resumable:
            handle = self.emulator._issue_handle(self.conn, self.conn.turns)
            await self.send({"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}})

    def _filler(self, reply: Reply) -> np.ndarray:
        self.conn.fillers += 1
        return tone24k(self.profile.filler_s, freq_hz=330.0)

    @staticmethod
    def _scheduling(result: dict[str, Any] | None) -> str:
        if not result:
            return "WHEN_IDLE"
        return str(result.get("scheduling") or (result.get("response") or {}).get("scheduling") or "WHEN_IDLE")

    async def _send_tool_call(self, call: EmulatedToolCall) -> asyncio.Future[dict[str, Any]]:
        call_id = f"call-{self.conn.number}-{next(self._ids)}"
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.tool_waiters[call_id] = waiter
        self.reply_tool_ids.append(call_id)
        await self.send({"toolCall": {"functionCalls": [{"id": call_id, "name": call.name, "args": call.args}]}})
        return waiter

    async def _tool_result(self, waiter: asyncio.Future[dict[str, Any]]) -> dict[str, Any] | None:
        try:
            async with asyncio.timeout(30):
                return await waiter
        except TimeoutError:
            log.warning("emulator: no tool response")
            return None

    async def _stream(self, audio24k: np.ndarray | None, transcript: str, late_input: str | None = None, status: str | None = None) -> None:
        """Speech and its transcript, faster than real time, then the end of the turn. 3.x
        bundles: the last chunk carries the turn's end in the same message."""
        realism = self.emulator.realism
        rng = self.emulator._rng
        bundle = self.profile.bundles_parts
        said = fragments(transcript, rng) if realism is not None and realism.fragment_transcripts else [transcript]
        said = [piece for piece in said if piece]
        last: dict[str, Any] | None = None
        if audio24k is not None and len(audio24k):
            pcm = audio24k.astype("<i2").tobytes()
            step = OUTPUT_RATE * 2 * self.emulator.chunk_ms // 1000
            start = time.monotonic()
            speed = self.emulator.speed
            for offset in range(0, len(pcm), step):
                # Faster than real time, but never more than `lead_s` ahead of playout.
                due = start + (offset / 2 / OUTPUT_RATE - self.emulator.lead_s) / speed
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                chunk = base64.b64encode(pcm[offset : offset + step]).decode("ascii")
                content: dict[str, Any] = {"modelTurn": {"parts": [{"inlineData": {"mimeType": OUTPUT_MIME_TYPE, "data": chunk}}]}}
                if said:  # one transcript piece rides with each chunk, as the service does
                    content["outputTranscription"] = {"text": said.pop(0)}
                if late_input is not None and bundle:  # the caller's words, transcribed after the reply began
                    content["inputTranscription"] = {"text": late_input}
                    late_input = None
                if bundle and offset + step >= len(pcm) and not said:
                    last = content  # sent with the turn's end
                    break
                if self.emulator.record_timings:
                    self.conn.audio_sent_at.append(time.monotonic())
                await self.send({"serverContent": content})
                if late_input is not None:
                    await self._transcript("inputTranscription", late_input)
                    late_input = None
        for piece in said:
            await self.send({"serverContent": {"outputTranscription": {"text": piece}}})
        if late_input is not None:
            await self._transcript("inputTranscription", late_input)
        if last is not None and self.emulator.record_timings:
            self.conn.audio_sent_at.append(time.monotonic())
        await self._end_turn(last, status)

    async def _end_turn(self, content: dict[str, Any] | None = None, status: str | None = None) -> None:
        end: dict[str, Any] = {"generationComplete": True, "turnComplete": True}
        if status is not None:
            end["interactionStatus"] = status
        if content is not None or self.profile.bundles_parts:
            await self.send({"serverContent": {**(content or {}), **end}})
        else:
            await self.send({"serverContent": {"generationComplete": True}})
            await self.send({"serverContent": {k: v for k, v in end.items() if k != "generationComplete"}})
        realism = self.emulator.realism
        if realism is not None and realism.usage_metadata:
            usage = {
                "promptTokenCount": 250 + 32 * self.conn.turns,
                "responseTokenCount": 60,
                "totalTokenCount": 310 + 32 * self.conn.turns,
            }
            if self.profile.rules.thinking_level_required:
                usage["thoughtsTokenCount"] = 120
            await self.send({"usageMetadata": usage})

    async def _inject_faults(self) -> None:
        faults = self.faults
        with contextlib.suppress(ConnectionClosed, asyncio.CancelledError):
            if self.resumable:  # a handle is available from the start, as with the real service
                handle = self.emulator._issue_handle(self.conn, self.conn.turns)
                await self.send({"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}})
            deadline_s = faults.session_deadline_s
            realism = self.emulator.realism
            if deadline_s is None and realism is not None:
                deadline_s = self.profile.session_deadline_s
            plan = [
                (faults.go_away_after_s, "go_away"),
                (faults.close_after_s, "close"),
                (faults.drop_after_s, "drop"),
                (None if deadline_s is None else deadline_s / self.emulator.session_age_speed, "deadline"),
            ]
            start = time.monotonic()
            speed = self.emulator.speed
            due = sorted((at, kind) for at, kind in plan if at is not None)
            for at, kind in due:
                await asyncio.sleep(max(0.0, start + at / speed - time.monotonic()))
                if kind == "go_away":
                    await self.send({"goAway": {"timeLeft": f"{faults.go_away_time_left_s:g}s"}})
                    await asyncio.sleep(faults.go_away_time_left_s / speed)
                    await self.ws.close(1011, "deadline expired (after goAway)")
                    return
                if kind == "close":
                    await self.ws.close(faults.close_code, faults.close_reason)
                    return
                if kind == "drop":
                    self.ws.transport.abort()
                    return
                if kind == "deadline":  # 3.8 at 58:00: closed, and its handles refused after
                    self.emulator._deadline_handles.update(self.conn.handles_issued)
                    await self.ws.close(1011, DEADLINE_CLOSE_REASON)
                    return
