"""What a call's driver is given: the socket it speaks on, where its recording goes, and the
services every call of a server shares (`CallServices`, built by the composition root)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Protocol

from telephony.call.record import CallRecord
from telephony.call.rules import CallConfig
from telephony.call.tool_api import AgentDirectory, CallTool
from telephony.gemini.config import AgentOptions
from telephony.gemini.resilient import RetryPolicy
from telephony.gemini.session import GeminiLiveSession
from telephony.metrics import Metrics


def load_prompt(name: str) -> bytes:
    """A recorded mu-law 8 kHz prompt shipped with the package (see scripts/make_fixtures.py)."""
    return resources.files("telephony.assets").joinpath(f"{name}.ulaw").read_bytes()


class TwilioConnection(Protocol):
    """The Media Streams socket, as the driver needs it (the app adapts its WebSocket)."""

    async def receive(self) -> str | bytes | None:
        """The next frame; None once the socket is closed."""
        ...

    async def send(self, text: str) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class RecordingSink(Protocol):
    """Where a call's stereo recording goes, chunk by chunk (`store.wav_file.WavAppender`)."""

    path: Path

    def append(self, pcm: bytes) -> None: ...
    def close(self) -> None: ...


@dataclass
class CallServices:
    """What every call gets from the server: settings-derived, shared, immutable."""

    open_gemini: Callable[[AgentOptions], GeminiLiveSession]
    agent_options: AgentOptions
    call_config: CallConfig = field(default_factory=CallConfig)
    metrics: Metrics = field(default_factory=Metrics)
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    agents: AgentDirectory | None = None
    """The agents calls may name (`telephony.agents.agent.AgentBook`); None: the settings' agent."""
    builtin_tools: Callable[[tuple[str, ...]], list[CallTool]] = lambda enabled: []
    """The built-in tools (end_call, ...) an agent asked for (see `CallControl.tools`)."""
    greeting: str | None = None
    """When set, and neither the agent nor the call says otherwise, the agent speaks first."""
    tool_timeout_s: float = 30.0
    extra_voices: tuple[str, ...] = ()
    """Voice names accepted per call beyond `gemini.catalog.VOICES`."""
    call_log_dir: Path | None = None
    record_dir: Path | None = None
    on_call_start: Callable[[CallRecord], None] | None = None
    """A call was admitted (its SIDs and parameters are known): e.g. the store's first row."""
    on_call_end: Callable[[CallRecord], Awaitable[None] | None] | None = None
    early_answered_by: Callable[[str], str | None] = lambda call_sid: None
    before_start: Callable[[str, dict[str, str]], Awaitable[tuple[str, str] | None]] | None = None
    """Asked before a `start` reaches the core, with its CallSid and custom parameters: what
    must hold across workers and instances (the stream token used once and the CallSid taken,
    in the shared store; a selector's agent found again); None admits, else (kind, reason)
    refuses the stream."""
    """Twilio's answering-machine result for a CallSid that came before its stream started."""
    recordings_dir: Path | None = None
    """Where the stereo recordings are kept when the core records (CallConfig.record_audio)."""
    open_recording: Callable[[str, float], RecordingSink] | None = None
    """Opens the call's recording (CallSid, start time): the store's crash-safe WAV file."""
