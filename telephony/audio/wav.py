"""One-shot conversions and WAV files: fixtures, demo output and tests (not the live path).

soxr's HQ quality is used here because delay does not matter on a whole file.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import soxr


def resample_whole(samples: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Resample a whole int16 signal at once (for files, never for live chunks)."""
    if in_rate == out_rate:
        return samples.astype(np.int16)
    out = soxr.resample(samples.astype(np.float32) / 32768.0, in_rate, out_rate, quality="HQ")
    return np.clip(np.rint(out * 32768.0), -32768, 32767).astype(np.int16)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a mono 16-bit WAV file; returns (int16 samples, sample rate)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV is supported")
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        channels = wav.getnchannels()
        rate = wav.getframerate()
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1).astype(np.int16)
    return data.astype(np.int16), rate


def write_wav(path: str | Path, samples: np.ndarray | bytes, rate: int) -> Path:
    """Write mono 16-bit PCM samples (array or little-endian bytes) as a WAV file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = samples if isinstance(samples, bytes) else samples.astype("<i2").tobytes()
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(data)
    return path
