"""G.711 mu-law, the codec of every Twilio Media Stream (8 kHz, 8 bits a sample).

audioop is the C implementation in the standard library up to Python 3.12 and the
`audioop-lts` package from 3.13; both are the same code and both are fast.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    # 3.11/3.12 warn that stdlib audioop goes away in 3.13; there audioop-lts takes over.
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop
    except ImportError:  # pragma: no cover - only when audioop-lts is missing on 3.13+
        raise ImportError("audioop is missing: on Python 3.13+ install 'audioop-lts'") from None

SILENCE_BYTE = 0xFF
"""The mu-law code for digital silence (linear 0)."""


def decode_mulaw(data: bytes) -> bytes:
    """Decode mu-law bytes into 16-bit little-endian PCM (two bytes out per byte in)."""
    return audioop.ulaw2lin(data, 2)


def encode_mulaw(pcm16: bytes) -> bytes:
    """Encode 16-bit little-endian PCM into mu-law (one byte out per sample in)."""
    return audioop.lin2ulaw(pcm16, 2)


def halve_rate(pcm16k: bytes, state: object = None) -> tuple[bytes, object]:
    """16 kHz PCM16 -> 8 kHz, streaming (pass the returned state back in): the browser
    phone's wideband audio, for voice detection and the recording."""
    return audioop.ratecv(pcm16k, 2, 1, 16000, 8000, state)  # type: ignore[arg-type]
