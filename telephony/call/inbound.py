"""Is this stream misbehaving? The limits on what a Media Streams socket may send.

Twilio itself sends no malformed message, no keypad flood and audio at real time; a stream
that does otherwise is a bug or an attack, and is closed (1008) once it crosses a limit. One
bad message now and then is only skipped (Twilio may add events), so bad messages are
counted in all and per second, keypad digits per second, and caller audio against the clock
(after a short burst: network jitter delivers bursts). Pure: the call core feeds it.
"""

from __future__ import annotations

import math
from collections import deque

MEDIA_BURST_MS = 2000
"""Caller audio may run this far ahead of real time (network jitter delivers bursts)."""


class InboundGuard:
    def __init__(self, malformed_limit: int, malformed_per_second: int, max_dtmf_per_second: int, media_rate_limit: float) -> None:
        self.malformed_limit = malformed_limit
        self.malformed_per_second = malformed_per_second
        self.max_dtmf_per_second = max_dtmf_per_second
        self.media_rate_limit = media_rate_limit
        self.malformed = 0
        self._second = -1
        self._in_second = 0
        self._dtmf_times: deque[float] = deque()
        self._media_in_ms = 0.0

    def bad_message(self, now: float) -> int:
        """Count one bad message (received at `now`); returns how many there were in all."""
        second = int(now)
        if second != self._second:
            self._second, self._in_second = second, 0
        self._in_second += 1
        self.malformed += 1
        return self.malformed

    def closing_reason(self) -> str | None:
        """Why the stream must be closed now, or None."""
        if self.malformed > self.malformed_limit:
            return "too many malformed messages"
        if self._in_second > self.malformed_per_second:
            return "too many malformed messages in one second"
        return None

    def dtmf_flood(self, now: float) -> bool:
        """One keypad digit at `now`: more than the limit in the last second?"""
        window = self._dtmf_times
        window.append(now)
        while window and window[0] <= now - 1.0:
            window.popleft()
        return len(window) > self.max_dtmf_per_second

    def media_too_fast(self, payload_ms: float, now: float, started_at: float) -> bool:
        """Caller audio of `payload_ms` at `now`: beyond the allowed rate? (Counted only if not.)"""
        rate = self.media_rate_limit
        if math.isfinite(rate) and self._media_in_ms > MEDIA_BURST_MS + (now - started_at) * 1000 * rate:
            return True
        self._media_in_ms += payload_ms
        return False
