"""What the caller's phone does with the audio Twilio is sent: Twilio's playback buffer,
played in order at real time, marks echoed when the audio before them has played, and
`clear` dropping what has not played yet."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class PhonePlayer:
    """Twilio's playback buffer: audio plays in order at real time; marks wait their turn."""

    def __init__(self, clock: Callable[[], float], speed: float) -> None:
        self.clock, self.speed = clock, speed
        self.play_end = 0.0
        self.last_arrival = -1.0
        self.underruns = 0
        self.scheduled: list[tuple[float, bytes]] = []
        self.arrivals: list[float] = []
        """When each media message arrived (call seconds)."""
        self.marks: list[tuple[float, str]] = []
        self.changed = asyncio.Event()

    def audio(self, frame: bytes) -> None:
        now = self.clock()
        # A frame that comes after its predecessor finished playing, within one burst of a
        # reply (frames less than 100 ms apart), is an underrun: the caller heard a gap.
        if now > self.play_end + 0.001 and now - self.last_arrival < 0.1 * self.speed:
            self.underruns += 1
        self.last_arrival = now
        self.arrivals.append(now)
        start = max(now, self.play_end)
        self.play_end = start + len(frame) / 8000
        self.scheduled.append((start, frame))

    def mark(self, name: str) -> None:
        self.marks.append((max(self.clock(), self.play_end), name))
        self.changed.set()

    def clear(self) -> list[str]:
        """Drop what has not started playing; return every pending mark (Twilio echoes them)."""
        now = self.clock()
        kept = []
        for start, frame in self.scheduled:
            if start < now:  # what had started plays up to now, the rest of it is dropped
                kept.append((start, frame[: max(0, min(len(frame), round((now - start) * 8000)))]))
        self.scheduled = kept
        self.play_end = min(self.play_end, now)
        pending = [name for _, name in self.marks]
        self.marks.clear()
        self.changed.set()
        return pending

    def played_between(self, start_s: float, end_s: float) -> bytes:
        """The mu-law the caller heard from `start_s` to `end_s` (call seconds), silence
        (0xFF) where nothing played: what a listener on the line hears, at its pace."""
        out = bytearray(b"\xff" * max(0, int(round((end_s - start_s) * 8000))))
        for begin, frame in self.scheduled:
            finish = begin + len(frame) / 8000
            if finish <= start_s or begin >= end_s:
                continue
            lo = max(begin, start_s)
            piece = frame[round((lo - begin) * 8000) : round((min(finish, end_s) - begin) * 8000)]
            at = round((lo - start_s) * 8000)
            out[at : at + len(piece)] = piece[: max(0, len(out) - at)]
        return bytes(out)

    def due_marks(self) -> list[str]:
        now = self.clock()
        due = [name for at, name in self.marks if at <= now]
        self.marks = [(at, name) for at, name in self.marks if at > now]
        return due

    def next_due(self) -> float | None:
        return min((at for at, _ in self.marks), default=None)
