"""Paced playout: how much agent audio sits in Twilio's buffer, and the rest we hold.

Gemini generates speech far faster than real time, and Twilio plays whatever it is sent in
order, at real time, from its own buffer. Sent straight through, seconds of a reply would sit
at Twilio where only a `clear` can reach them, and marks would say little about what the
caller heard. So frames wait here and are released only while the audio Twilio has not yet
confirmed as played (its mark has not come back) is below `lead_ms`. Each release ends with
a mark, so every mark echo frees room for the next batch: the pace follows Twilio's own
playout clock, whatever its speed, jitter or network delay.

Nothing here does I/O; the call core turns `release()`'s output into Twilio messages.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum

from telephony.audio.transcode import FRAME_BYTES
from telephony.call.mark_ledger import BYTES_PER_MS, MarkLedger, MarkOutcome


class Source(str, Enum):
    AGENT = "agent"
    """Gemini's speech: dropped at a barge-in."""
    PROMPT = "prompt"
    """Our own audio (apologies, keypad tones): kept at a barge-in."""
    HOLD = "hold"
    """The hold tone while a slow tool works: dropped as soon as it is not needed."""


@dataclass(frozen=True, slots=True)
class _Audio:
    mulaw: bytes
    source: Source


@dataclass(frozen=True, slots=True)
class _Marker:
    token: int


@dataclass(frozen=True, slots=True)
class MediaOut:
    """Send this mu-law audio to Twilio as one media message (up to one batch)."""

    mulaw: bytes
    frames: int
    """Twilio's 20 ms frames in it (the last may be short)."""


@dataclass(frozen=True, slots=True)
class MarkOut:
    """Send a mark with this name to Twilio."""

    name: str


class Playout:
    """Held frames, the marks in flight, and what the caller has heard."""

    def __init__(self, lead_ms: int = 300, batch_ms: int = 100) -> None:
        if lead_ms < 20 or batch_ms < 20:
            raise ValueError("lead_ms and batch_ms must be at least one 20 ms frame")
        self.lead_ms = lead_ms
        self.batch_ms = min(batch_ms, lead_ms)
        self.ledger = MarkLedger()
        self._held: deque[_Audio | _Marker] = deque()
        self._held_agent_bytes = 0
        self._tokens: dict[str, int] = {}  # sync mark name -> waiter token
        self._agent_until_ms = 0.0  # ledger position just after the last agent frame sent
        self.resolved: list[tuple[int, bool]] = []
        """(token, heard) for waiters that are settled; the core drains it."""

    # --- input ----------------------------------------------------------------------------

    def hold(self, mulaw: bytes, source: Source) -> None:
        """Audio to play after what is held: agent speech, a prompt, tones."""
        if mulaw:
            self._held.append(_Audio(mulaw, source))
            if source is Source.AGENT:
                self._held_agent_bytes += len(mulaw)

    def hold_marker(self, token: int) -> None:
        """Settle `token` once everything held or sent before it has been played."""
        self._held.append(_Marker(token))

    def mark_echoed(self, name: str) -> MarkOutcome:
        outcome = self.ledger.mark_echoed(name)
        token = self._tokens.pop(name, None)
        if token is not None:
            self.resolved.append((token, outcome is MarkOutcome.PLAYED))
        return outcome

    def clear(self) -> float:
        """After a Twilio `clear`: drop held agent audio, forget what Twilio threw away.
        Returns the ms of agent audio dropped here (not counting what Twilio discarded)."""
        dropped = self._held_agent_bytes / BYTES_PER_MS
        self.drop_held(Source.AGENT)
        self.drop_held(Source.HOLD)
        self.ledger.cleared()
        self._agent_until_ms = self.ledger.sent_ms
        # Sync marks in flight come back unplayed: their waiters learn it when they echo.
        return dropped

    def drop_held(self, source: Source) -> None:
        """Forget held frames of one source (what is already at Twilio plays out: < lead)."""
        self._held = deque(item for item in self._held if not (isinstance(item, _Audio) and item.source is source))
        if source is Source.AGENT:
            self._held_agent_bytes = 0

    def drop_all(self) -> None:
        """The call is over: settle every waiter as not heard."""
        for item in self._held:
            if isinstance(item, _Marker):
                self.resolved.append((item.token, False))
        for token in self._tokens.values():
            self.resolved.append((token, False))
        self._held.clear()
        self._tokens.clear()
        self._held_agent_bytes = 0

    # --- output ---------------------------------------------------------------------------

    def release(self) -> list[MediaOut | MarkOut]:
        """What may go to Twilio now: batches up to the lead, each closed by a mark."""
        out: list[MediaOut | MarkOut] = []
        while self._held and self.unconfirmed_ms < self.lead_ms:
            batch = self._take_batch()
            if batch:
                out.append(MediaOut(batch, -(-len(batch) // FRAME_BYTES)))
            marker = self._held[0] if self._held and isinstance(self._held[0], _Marker) else None
            if marker is not None:
                self._held.popleft()
                if not self.ledger.playing and not batch:
                    self.resolved.append((marker.token, True))  # nothing left to hear
                    continue
                name = self.ledger.new_mark("sync")
                self._tokens[name] = marker.token
                out.append(MarkOut(name))
            elif batch:
                out.append(MarkOut(self.ledger.new_mark("reply")))
        return out

    def _take_batch(self) -> bytes:
        """`batch_ms` of held audio, in whole 20 ms frames (a batch may end a frame past it
        when a short last frame of a prompt came before), up to the next marker."""
        limit = self.batch_ms * BYTES_PER_MS
        parts: list[bytes] = []
        size = 0
        while self._held and size < limit and isinstance(item := self._held[0], _Audio):
            take = -(-(limit - size) // FRAME_BYTES) * FRAME_BYTES
            if len(item.mulaw) > take:
                head = item.mulaw[:take]
                self._held[0] = _Audio(item.mulaw[take:], item.source)
            else:
                head = item.mulaw
                self._held.popleft()
            parts.append(head)
            size += len(head)
            self.ledger.audio_sent(len(head))
            if item.source is Source.AGENT:
                self._held_agent_bytes -= len(head)
                self._agent_until_ms = self.ledger.sent_ms
        return b"".join(parts)

    # --- state ----------------------------------------------------------------------------

    @property
    def unconfirmed_ms(self) -> float:
        """Audio sent to Twilio that it has not yet confirmed as played."""
        return self.ledger.sent_ms - self.ledger.heard_ms

    @property
    def held_agent_ms(self) -> float:
        return self._held_agent_bytes / BYTES_PER_MS

    @property
    def agent_audible(self) -> bool:
        """True while agent speech is held here or may still be playing at Twilio."""
        return self._held_agent_bytes > 0 or (self.ledger.playing and self.ledger.heard_ms < self._agent_until_ms)

    @property
    def idle(self) -> bool:
        """Nothing held and nothing waiting to be played: the caller has heard it all."""
        return not self._held and not self.ledger.playing

    @property
    def heard_ms(self) -> float:
        return self.ledger.heard_ms
