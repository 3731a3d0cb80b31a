"""Both sides of a call on one timeline, as the caller heard it: caller left, agent right.

Twilio sends the caller's audio in real time (one 20 ms frame every 20 ms) and plays ours as
soon as it arrives, in order, until a `clear` throws the rest away. So the caller's frames
are the clock: each one is paired with the next stretch of agent audio sent and not yet
played, or silence; a clear drops what was sent but not played. Barge-ins are heard as they
were: the agent stops where the caller cut in. Pure bookkeeping: the driver writes the file.
"""

from __future__ import annotations

import numpy as np

BYTES_PER_MS = 16  # PCM16 at 8 kHz


class StereoTimeline:
    """Interleaved PCM16 stereo at 8 kHz, taken by the driver with `take()`."""

    def __init__(self) -> None:
        self._agent = bytearray()  # sent to Twilio, not yet played
        self._out = bytearray()

    def caller(self, pcm8k: bytes) -> None:
        """One caller frame arrived: that much time passed on the call."""
        n = len(pcm8k) & ~1
        agent = bytes(self._agent[:n]).ljust(n, b"\0")
        del self._agent[:n]
        stereo = np.empty(n, dtype="<i2")  # n bytes = n/2 samples per side
        stereo[0::2] = np.frombuffer(pcm8k[:n], dtype="<i2")
        stereo[1::2] = np.frombuffer(agent, dtype="<i2")
        self._out += stereo.tobytes()

    def agent_sent(self, pcm8k: bytes) -> None:
        self._agent += pcm8k

    def cleared(self) -> None:
        """Twilio drops what it had not played yet."""
        self._agent.clear()

    @property
    def pending_agent_ms(self) -> float:
        return len(self._agent) / BYTES_PER_MS

    def take(self) -> bytes:
        out, self._out = bytes(self._out), bytearray()
        return out
