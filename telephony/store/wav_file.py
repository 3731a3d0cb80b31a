"""A WAV file that is valid after every write: a call recording survives a crash mid-call.

The RIFF and data sizes in the header are rewritten after each append, so the file on disk
always plays up to the last second written. Blocking: the driver calls it in a thread.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

CHANNELS, RATE, WIDTH = 2, 8000, 2


def recording_path(directory: Path, call_sid: str, started_at: float) -> Path:
    day = time.strftime("%Y-%m-%d", time.gmtime(started_at))
    safe = "".join(c for c in call_sid if c.isalnum()) or "call"
    return directory / day / f"{safe}.wav"


def open_recording(directory: Path, call_sid: str, started_at: float) -> WavAppender:
    """A call's recording file, under its day's folder (the driver's `RecordingSink`)."""
    return WavAppender(recording_path(directory, call_sid, started_at))


class WavAppender:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("wb")
        self.data_bytes = 0
        self._file.write(self._header())
        self._file.flush()

    def _header(self) -> bytes:
        byte_rate = RATE * CHANNELS * WIDTH
        return b"RIFF" + struct.pack(
            "<I4s4sIHHIIHH4sI",
            36 + self.data_bytes,
            b"WAVE",
            b"fmt ",
            16,
            1,
            CHANNELS,
            RATE,
            byte_rate,
            CHANNELS * WIDTH,
            WIDTH * 8,
            b"data",
            self.data_bytes,
        )

    def append(self, pcm: bytes) -> None:
        if not pcm or self._file.closed:
            return
        self._file.seek(0, 2)
        self._file.write(pcm)
        self.data_bytes += len(pcm)
        self._file.seek(0)
        self._file.write(self._header())
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def delete_old_recordings(directory: Path, older_than_s: float) -> int:
    """Remove recordings (and emptied day folders) older than the retention; returns how many."""
    if not directory.is_dir():
        return 0
    cutoff = time.time() - older_than_s
    removed = 0
    for wav in directory.glob("*/*.wav"):
        try:
            if wav.stat().st_mtime < cutoff:
                wav.unlink()
                removed += 1
        except OSError:
            continue
    for day in directory.iterdir():
        if day.is_dir() and not any(day.iterdir()):
            day.rmdir()
    return removed
