"""What the caller has heard: outbound audio and the marks Twilio echoes back.

Twilio buffers the audio we send and plays it in real time. A `mark` sent after some audio
comes back once that audio has been played, or at once, unplayed, when we `clear` the buffer.
This object keeps that bookkeeping (no I/O), so the call knows how much of a reply was
heard, whether playback is still going, and can ignore marks echoed by a clear.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum

BYTES_PER_MS = 8  # mu-law at 8 kHz


class MarkOutcome(str, Enum):
    PLAYED = "played"
    CLEARED = "cleared"
    UNKNOWN = "unknown"


@dataclass
class MarkLedger:
    sent_ms: float = 0.0
    """Audio sent to Twilio in total, in ms."""
    heard_ms: float = 0.0
    """Audio Twilio confirmed as played (up to the last mark echoed as played), in ms."""
    discarded_ms: float = 0.0
    """Audio sent but thrown away by a clear before it was played."""
    clears: int = 0
    _pending: OrderedDict[str, float] = field(default_factory=OrderedDict)
    _cleared: set[str] = field(default_factory=set)
    _count: int = 0

    def audio_sent(self, mulaw_bytes: int) -> None:
        self.sent_ms += mulaw_bytes / BYTES_PER_MS

    def new_mark(self, label: str = "m") -> str:
        """Name a mark to send now; it will come back once everything sent so far is played."""
        self._count += 1
        name = f"{label}-{self._count}"
        self._pending[name] = self.sent_ms
        return name

    def mark_echoed(self, name: str) -> MarkOutcome:
        if name in self._cleared:
            self._cleared.discard(name)
            return MarkOutcome.CLEARED
        if name not in self._pending:
            return MarkOutcome.UNKNOWN
        # Marks come back in the order they were sent: any sent before this one was played too.
        while True:
            earlier, position = self._pending.popitem(last=False)
            if earlier == name:
                break
        self.heard_ms = max(self.heard_ms, position)
        return MarkOutcome.PLAYED

    def cleared(self) -> None:
        """We sent `clear`: what was not confirmed played is gone; its marks come back unplayed."""
        self.clears += 1
        self._cleared.update(self._pending)
        self._pending.clear()
        self.discarded_ms += max(0.0, self.sent_ms - self.heard_ms)
        self.sent_ms = self.heard_ms

    @property
    def playing(self) -> bool:
        """True while audio we sent may still be waiting in Twilio's buffer."""
        return bool(self._pending)

    def is_pending(self, name: str) -> bool:
        return name in self._pending
