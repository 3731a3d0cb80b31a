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
from pathlib import Path
from typing import Any

import trustme
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from telephony.testing.emulated_session import OUTPUT_MIME_TYPE, _EmulatedSession
from telephony.testing.gemini_faults import (
    FILLER_TEXT,
    KNOWN_MODELS,
    REALISTIC,
    STALL_KINDS,
    ConnectionLog,
    EphemeralToken,
    Faults,
    Realism,
    _rfc3339,
    fragments,
)
from telephony.testing.gemini_wire import EnergyVad, decode_bytes_field, normalize_keys
from telephony.testing.scripted_model import (
    INPUT_RATE,
    OUTPUT_RATE,
    Agent,
    CallerTurn,
    EchoAgent,
    EmulatedToolCall,
    ModelAgent,
    Reply,
    ScriptedAgent,
    tone24k,
)
from telephony.testing.text_model import TextModel, generate_content

__all__ = [
    "FILLER_TEXT", "INPUT_RATE", "KNOWN_MODELS", "OUTPUT_MIME_TYPE", "OUTPUT_RATE", "REALISTIC", "STALL_KINDS", "Agent",
    "CallerTurn", "ConnectionLog", "EchoAgent", "EmulatedToolCall", "EnergyVad", "Faults", "GeminiLiveEmulator",
    "ModelAgent", "Realism", "Reply", "ScriptedAgent", "decode_bytes_field", "fragments", "normalize_keys", "tone24k",
]  # fmt: skip

log = logging.getLogger(__name__)
WIRE_LOG = logging.getLogger("telephony.testing.gemini_emulator.websockets")
"""The emulator's own WebSocket server: its lines are marked as the emulator's (not ours)."""
_PATH = re.compile(
    r"^/+ws/(google\.ai\.generativelanguage\.[A-Za-z0-9]+\.GenerativeService\.BidiGenerateContent(Constrained)?"
    r"|google\.cloud\.aiplatform\.[A-Za-z0-9]+\.LlmBidiService/BidiGenerateContent)(\?.*)?$"
)


# --- the server -----------------------------------------------------------------------------


class GeminiLiveEmulator:
    """The server. Use as `async with GeminiLiveEmulator(agent) as emulator:`.

    `agent_factory` may be a `ModelAgent` (shared by every connection) or a zero-argument
    callable returning one per connection.
    """

    def __init__(
        self,
        agent: ModelAgent | Any = None,
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
        text_model: TextModel | None = None,
        plain_front: bool = False,
    ) -> None:
        """`realism`: behave like the real service (`REALISTIC`), or kindly (None).
        `model`: behave like this model's family whatever the client asks for (default: the
        family of the model in each setup, `model_profiles`). `session_age_speed`: emulated
        seconds of session age per real second, so that a 58-minute session deadline can be
        reached in a test.
        `auth_tokens`: also serve `POST /v1alpha/auth_tokens` (ephemeral tokens, as
        `client.aio.auth_tokens.create` makes them) and accept them on the constrained
        endpoint; a small front on the port then passes every other request on.
        `text_model`: also answer `POST .../models/{model}:generateContent` (a judge, a
        post-call analysis) with this `TextModel`, through the same front.
        `plain_front`: the same front also without TLS, on loopback (`plain_base_url`), for a
        browser, which does not trust the emulator's own certificate authority."""
        self.text_model = text_model
        self.text_requests: list[dict[str, Any]] = []
        """Every generateContent request answered, as sent (tests of what was asked)."""
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
        self._agent_of_connection: dict[int, ModelAgent] = {}
        """A resumed session goes on with the mind of the session it resumes (where a script is)."""
        """What a stalled session still owes its caller (said on the next nudge it takes), by
        connection number; a resumed connection takes over its predecessor's list."""
        self._handle_connection: dict[str, int] = {}
        """Handles of sessions closed at their deadline: a resume with one is refused (1007)."""
        self.tokens: dict[str, EphemeralToken] = {}
        self._token_of: dict[int, EphemeralToken] = {}
        self._front: asyncio.Server | None = None
        self._plain_front: asyncio.Server | None = None
        self.plain_front = plain_front
        self.plain_port = 0
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
        if self.auth_tokens or self.text_model is not None:  # TLS and the REST routes in front, WebSockets behind it
            self._server = await serve(
                self._handle, "127.0.0.1", 0, process_request=self._check_request, max_size=self.max_message_bytes, logger=WIRE_LOG
            )
            self._inner_port = self._server.sockets[0].getsockname()[1]
            self._front = await asyncio.start_server(self._front_door, self.host, self.port, ssl=self._ssl)
            self.port = self._front.sockets[0].getsockname()[1]
            if self.plain_front:
                self._plain_front = await asyncio.start_server(self._front_door, "127.0.0.1", 0)
                self.plain_port = self._plain_front.sockets[0].getsockname()[1]
            return
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            ssl=self._ssl,
            process_request=self._check_request,
            max_size=self.max_message_bytes,
            logger=WIRE_LOG,
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
        route = path.split("?", 1)[0]
        rest_route = self.auth_tokens and route.endswith("/auth_tokens")
        rest_route = rest_route or (self.text_model is not None and route.endswith(":generateContent"))
        if method == "POST" and rest_route:
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in rest.split("\r\n") if h)}
            body = await reader.readexactly(int(headers.get("content-length") or 0))
            if route.endswith("/auth_tokens"):
                status, payload = self._mint_token(headers, body)
            else:
                status, payload = self._generate_content(route, headers, body)
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

    def _generate_content(self, route: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        if self.api_key is not None and headers.get("x-goog-api-key") != self.api_key:
            self.refused += 1
            return 403, {"error": {"code": 403, "message": "API key not valid", "status": "PERMISSION_DENIED"}}
        assert self.text_model is not None
        return generate_content(self.text_model, route, body, self.text_requests)

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
        for front in (self._front, self._plain_front):
            if front is not None:
                front.close()
        self._front = self._plain_front = None
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

    @property
    def plain_base_url(self) -> str | None:
        """http:// on loopback, with `plain_front` (and a front: `auth_tokens` or `text_model`)."""
        return f"http://127.0.0.1:{self.plain_port}" if self.plain_port else None

    def client_ssl_context(self) -> ssl.SSLContext:
        if self.ca_file is None:
            raise RuntimeError("start the emulator first")
        return ssl.create_default_context(cafile=str(self.ca_file))

    def client_http_options(self) -> dict[str, Any]:
        """`http_options` for `genai.Client` so the real SDK connects here."""
        return {"base_url": self.base_url, "async_client_args": {"ssl": self.client_ssl_context()}}

    def agent_for_connection(self) -> ModelAgent:
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
