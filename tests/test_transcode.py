"""The per-call transcoders: bytes in any chunking, nothing lost, nothing duplicated."""

import numpy as np
import pytest

from telephony.audio.measure import level_at, tone
from telephony.audio.mulaw import encode_mulaw
from telephony.audio.transcode import FRAME_BYTES, CallerToGemini, GeminiToCaller


def test_caller_frame_becomes_640_bytes_of_16khz_pcm():
    transcoder = CallerToGemini()
    frames = [transcoder.process(b"\xff" * 160) for _ in range(10)]
    total = sum(len(f) for f in frames) + len(transcoder.flush())
    assert total == 10 * 160 * 2 * 2  # twice the samples, two bytes each


def test_caller_tone_keeps_its_level_through_mulaw_and_resampling():
    x = tone(1000, 8000, 1.0, dbfs=-20)
    mulaw = encode_mulaw(x.astype("<i2").tobytes())
    transcoder = CallerToGemini()
    pcm = b"".join(transcoder.process(mulaw[i : i + 160]) for i in range(0, len(mulaw), 160))
    pcm += transcoder.flush()
    y = np.frombuffer(pcm, dtype="<i2")
    assert level_at(y, 1000, 16000) == pytest.approx(-20, abs=0.3)


def test_agent_audio_is_cut_into_20ms_frames_with_remainder_kept():
    transcoder = GeminiToCaller()
    pcm = tone(440, 24000, 0.05).astype("<i2").tobytes()  # 50 ms -> two frames + 10 ms
    frames = transcoder.process(pcm)
    assert [len(f) for f in frames] == [FRAME_BYTES, FRAME_BYTES]
    assert transcoder.pending_bytes == 400 - 2 * FRAME_BYTES - 10  # 10 = filter delay at 8 kHz
    tail = transcoder.flush()
    assert [len(f) for f in tail] == [400 - 2 * FRAME_BYTES]
    total = sum(map(len, frames)) + sum(map(len, tail))
    assert total == 400  # 50 ms at 8 kHz, exactly


def test_agent_odd_byte_chunks_lose_nothing():
    pcm = tone(700, 24000, 1.0, dbfs=-12).astype("<i2").tobytes()
    reference = GeminiToCaller()
    even = b"".join(reference.process(pcm)) + b"".join(reference.flush())
    rng = np.random.default_rng(3)
    transcoder, out, i = GeminiToCaller(), [], 0
    while i < len(pcm):
        n = int(rng.integers(0, 4001))  # odd sizes, empty chunks, up to ~83 ms
        out.extend(transcoder.process(pcm[i : i + n]))
        i += n
    out.extend(transcoder.flush())
    odd = b"".join(out)
    assert len(odd) == len(even) == 8000
    assert all(len(f) == FRAME_BYTES for f in out[:-1])
    # mu-law of values within 1 LSB may differ by one code at most.
    diff = np.abs(np.frombuffer(odd, np.uint8).astype(int) - np.frombuffer(even, np.uint8).astype(int))
    assert diff.max() <= 1


def test_reset_at_barge_in_drops_pending_audio():
    transcoder = GeminiToCaller()
    transcoder.process(tone(440, 24000, 0.03).astype("<i2").tobytes() + b"\x01")
    assert transcoder.pending_bytes > 0
    transcoder.reset()
    assert transcoder.pending_bytes == 0
    assert transcoder.flush() == []
