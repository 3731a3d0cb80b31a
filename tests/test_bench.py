"""The benchmark commands keep working (figures are printed, never asserted against targets)."""

from __future__ import annotations

import asyncio
import json
import os

from typer.testing import CliRunner

from telephony.bench.load import LoadFigures, bench_fixture, capacity, paired_with_naive, percentiles, run_load, speech_frames
from telephony.cli import app
from telephony.testing.twilio_media import TwilioMediaEmulator


async def test_load_smoke_three_calls_are_carried_and_measured():
    figures = await run_load(calls=3, seconds=9.0)
    assert figures.errors == 0 and figures.dropped_calls == 0
    speech = speech_frames(bench_fixture(9.0))
    assert len(speech) == 450 and 50 < sum(speech) < 400, "the caller talks and is quiet"
    assert figures.inbound_frames == 3 * sum(speech), "every frame with speech in it is timed, the quiet ones not"
    assert figures.inbound_delay_ms["n"] == figures.inbound_frames
    assert figures.outbound_frames > 100 and figures.outbound_delay_ms["n"] > 0
    assert figures.interruptions_seen == 3, "each caller talked over the agent once"
    assert figures.server_cpu_ms_per_call_second > 0 and figures.peak_rss_mb > 0
    assert 10 < figures.gemini_audio_messages_per_call_second < 50, "the caller's quiet goes in bigger blocks, speech every 20 ms"
    assert figures.server_loop_lag_over_20ms is not None and figures.callers_loop_lag_ms["n"] > 50, "both loops' lag was sampled"


async def test_the_emulated_twilio_posts_each_calls_webhook_without_building_a_tls_context(ca_bundle_loads):
    """Regression: httpx built a TLS context (certifi's CAs, ~20 ms of CPU, the loop held) for
    every webhook the emulated Twilio posted, so `bench load`'s generator stalled 20 ms per call
    start and the caller frames it held back read as the server's late frames (40 of 9360 at
    40 calls; 0 since)."""
    twiml = b'<?xml version="1.0"?><Response><Connect><Stream url="wss://example.test/s"/></Connect></Response>'

    async def webhook(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: %d\r\n\r\n%s" % (len(twiml), twiml))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(webhook, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/twiml"
    async with server:
        targets = [await TwilioMediaEmulator([], call_sid=f"CA{i:032x}").answer(url) for i in range(5)]
    assert [t.url for t in targets] == ["wss://example.test/s"] * 5
    assert len(ca_bundle_loads) <= 1, f"CAs loaded {len(ca_bundle_loads)} times for 5 calls: once per process at most"


async def test_floor_bridge_carries_the_same_calls_so_its_cpu_is_a_fair_floor():
    # The floor's CPU per call-second is only a floor if it does the work every bridge must:
    # every caller frame reaches Gemini, the agent's audio reaches the caller, and the
    # interruption clears it. "ours" sends as our server does: speech at once, quiet in blocks.
    speech = sum(speech_frames(bench_fixture(9.0)))
    every, like_ours = await run_load(calls=2, seconds=9.0, bridge="floor 1"), await run_load(calls=2, seconds=9.0, bridge="floor ours")
    for figures in (every, like_ours):
        assert figures.errors == 0 and figures.dropped_calls == 0, figures.bridge
        assert figures.inbound_frames == 2 * speech and figures.inbound_delay_ms["n"] == figures.inbound_frames
        assert figures.outbound_frames > 100 and figures.interruptions_seen == 2, figures.bridge
    assert every.gemini_audio_messages_per_call_second >= 49
    assert 10 < like_ours.gemini_audio_messages_per_call_second < 45, "quiet waits for a block, speech goes at once"
    assert like_ours.inbound_delay_ms["p50"] < 20, "speech is not held back (in blocks of five it waits 40 ms at p50)"


def test_codec_and_quality_commands_print_and_write_json(tmp_path):
    runner = CliRunner()
    codec = runner.invoke(app, ["bench", "codec", "--seconds", "1", "--json", str(tmp_path / "codec.json")])
    assert codec.exit_code == 0, codec.output
    figures = json.loads((tmp_path / "codec.json").read_text())
    assert figures["caller_to_gemini_delay_ms"] <= 5 and figures["gemini_to_caller_delay_ms"] <= 5
    quality = runner.invoke(app, ["bench", "quality", "--json", str(tmp_path / "quality.json")])
    assert quality.exit_code == 0, quality.output
    assert len(json.loads((tmp_path / "quality.json").read_text())) == 4 * 8


def test_nothing_measured_is_null_in_json_not_nan():
    # A saturated run can see no interruption at all; NaN is not JSON and breaks dashboards.
    empty = percentiles([])
    assert empty == {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    assert json.loads(json.dumps(empty, allow_nan=False))["p99"] is None
    assert percentiles([1.0, 3.0])["max"] == 3.0


async def test_barge_in_smoke_every_call_is_cleared_over_buffered_audio():
    from telephony.bench.barge_in import run_barge_in

    figures = await run_barge_in(calls=2, min_speech_ms=300)
    assert figures.errors == 0
    assert figures.cleared_calls == 2, "the caller talking over a fully sent answer always clears it"
    assert figures.caller_to_clear_ms["n"] == 2


async def test_reconnect_bench_every_case_answers_the_caller():
    from telephony.bench.reconnect import CASES, run_reconnect

    figures = await run_reconnect()
    assert [f.case for f in figures] == list(CASES)
    for figure in figures:
        assert figure.errors == "", figure
        assert figure.answer_gap_s is not None, f"{figure.case}: the follow-up was never answered; the server said:\n{figure.server_log}"
        assert 0.55 <= figure.first_answer_heard_s <= 0.65, f"{figure.case}: the first answer was cut or said twice"
        assert 0.95 <= figure.follow_up_answer_heard_s <= 1.05, (
            f"{figure.case}: the follow-up's answer was cut or wrong\n{figure.server_log}"
        )
        assert (figure.reconnects > 0) == (figure.case != "no fault")


async def test_soak_comes_back_to_its_idle_figures():
    from telephony.bench.soak import run_soak

    figures = await run_soak(calls=2, minutes=0.12, call_seconds=8.0, sample_every_s=2.0, idle_s=1.0)
    assert figures.calls_failed == 0 and figures.calls_done >= 2
    before, after = figures.before, figures.after_idle
    # The figures are read off the server's /metrics: they must be there to mean anything.
    assert before.tasks > 0 and before.descriptors > 0
    assert max(sample.live_calls for sample in figures.samples) >= 1
    assert any(sum(sample.objects.values()) > 0 for sample in figures.samples), "no call's objects seen alive mid-call"
    assert after.live_calls == 0
    assert not any(after.objects.values()), f"call objects alive at idle: {after.objects}"
    assert after.tasks <= before.tasks + 2, f"tasks {before.tasks} -> {after.tasks}: something a call started is still running"
    assert after.descriptors <= before.descriptors + 4, f"descriptors {before.descriptors} -> {after.descriptors}"


def _point(calls: int, late_in: int, dropped: int = 0) -> LoadFigures:
    empty = percentiles([])
    return LoadFigures(
        calls, 20.0, "uvloop", 20.0, 0.5, 150.0, 0.7, 0, 100, late_in, calls * 1000,
        empty, empty, empty, empty, calls, 0, dropped, server_cores=1,
    )  # fmt: skip


def test_capacity_is_read_where_late_frames_start_in_calls_per_core():
    assert capacity([_point(40, 0), _point(20, 0), _point(60, 2000)]) == (
        "ours: 40 calls on 1 core(s) without late frames, late from 60: 40-60 calls per core"
    )
    assert capacity([_point(10, 5), _point(20, 10)]).endswith("at least 20 calls per core"), "under 1 % late is not late"
    assert "the smallest point" in capacity([_point(10, 0, dropped=1)])
    unpinned = _point(10, 0)
    unpinned.server_cores = None
    assert capacity([unpinned]) is None, "sharing cores with the callers, a figure per core means nothing"


def test_ratios_pair_our_run_with_the_naive_bridges_at_the_same_calls():
    # With --workers 2 our run is "ours x2"; traced and floor runs sit between them.
    runs = [_point(10, 0), _point(10, 0), _point(10, 0), _point(10, 0), _point(40, 0), _point(40, 0), _point(40, 0)]
    for run, bridge in zip(runs, ("ours x2", "ours x2+traces", "naive", "floor ours", "ours x2", "naive", "floor 1"), strict=True):
        run.bridge = bridge
    assert paired_with_naive(runs) == [(runs[0], runs[2]), (runs[4], runs[5])]


def test_server_cores_are_checked_in_one_line():
    runner = CliRunner()
    every = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    cases = (("x", "cores as 0, 0,2 or 0-1"), ("999", "cores this machine offers are"), (every, "leaves no core for the callers"))
    for spec, says in cases:
        result = runner.invoke(app, ["bench", "load", "--server-cpus", spec])
        assert result.exit_code == 2 and says in result.output, result.output


def test_caller_block_size_is_checked_in_one_line():
    runner = CliRunner()
    for value, says in (("30", "a multiple of 20"), ("10", "greater than or equal to 20"), ("400", "less than or equal to 200")):
        result = runner.invoke(app, ["bench", "load", "--caller-block-ms", value])
        unboxed = " ".join(result.output.replace("│", " ").split())
        assert result.exit_code == 2 and says in unboxed, result.output
