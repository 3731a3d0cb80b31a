"""The per-call record stays small however long the call runs."""

from __future__ import annotations

import sys

import numpy as np

from telephony.call.record import CallRecord


def test_an_hour_of_latencies_keeps_a_bounded_sample_with_exact_count_mean_and_max():
    # An hour of agent speech is ~90,000 Gemini chunks; a list of floats per call grew to MBs.
    record = CallRecord()
    latencies = np.random.default_rng(7).exponential(0.3, 90_000)
    for value in latencies:
        record.chunk_to_frame_ms.append(float(value))
    summary = record.summary()["chunk_to_frame_ms"]
    assert summary["n"] == 90_000
    assert summary["max"] == round(float(latencies.max()), 3)
    assert abs(summary["mean"] - latencies.mean()) < 1e-3
    assert abs(summary["p50"] - np.percentile(latencies, 50)) < 0.03
    assert abs(summary["p95"] - np.percentile(latencies, 95)) < 0.1
    kept = record.chunk_to_frame_ms
    assert sys.getsizeof(kept.sample) + 32 * len(kept.sample) < 64_000, "a few tens of kB, not MBs"


def test_a_short_call_keeps_every_latency():
    record = CallRecord()
    for value in (3.0, 1.0, 2.0):
        record.interrupted_to_clear_ms.append(value)
    assert record.summary()["interrupted_to_clear_ms"] == {"n": 3, "p50": 2.0, "p95": 3.0, "max": 3.0, "mean": 2.0}
    assert CallRecord().summary()["interrupted_to_clear_ms"] is None


def test_a_very_long_call_keeps_a_bounded_transcript():
    from telephony.call.record import MAX_LINE_CHARS, MAX_TRANSCRIPT_LINES, CallRecord

    record = CallRecord()
    for n in range(MAX_TRANSCRIPT_LINES + 500):
        record.say("caller" if n % 2 else "agent", f"line {n}")
        record.end_turn()
    assert len(record.transcript) == MAX_TRANSCRIPT_LINES and record.transcript_lines_dropped == 500
    assert record.transcript[-1].text == f"line {MAX_TRANSCRIPT_LINES + 499}", "the newest lines are kept"
    for _ in range(10_000):
        record.say("agent", "word ")
    assert len(record.transcript[-1].text) == MAX_LINE_CHARS
