"""`telephony bench ...`: benchmarks whose figures are printed (and written as JSON), never
asserted; latencies measured on the wire, at the emulators."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.table import Table

from telephony.cli.common import console, require_test_kit, run_event_loop

bench_app = typer.Typer(help="Benchmarks: figures are printed, never asserted.", no_args_is_help=True)


@bench_app.command("codec")
def bench_codec(
    seconds: float = typer.Option(10.0, help="Seconds of audio pushed through each direction."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the figures as JSON."),
    agc: bool = typer.Option(True, "--agc/--no-agc", help="Include the caller gain control (on in production)."),
    python: bool = typer.Option(False, "--python", help="The gain control and resamplers in Python and numpy, not the C kernels."),
) -> None:
    """Microseconds per 20 ms frame each way (JSON and base64 included) and each way's delay.

    Example: telephony bench codec"""
    from telephony.bench.codec import figures_as_dict, run_codec_bench

    figures = run_codec_bench(seconds=seconds, with_agc=agc, in_python=python)
    gain = "with" if agc else "without"
    kernels = "Python and numpy" if figures.audio_in_python else "the C kernels"
    table = Table(title=f"codec: {figures.frames} frames of 20 ms, best of 5 runs, {gain} caller gain control, on {kernels}")
    table.add_column("direction")
    table.add_column("us per 20 ms frame", justify="right")
    table.add_column("share of real time", justify="right")
    table.add_column("delay (ms)", justify="right")
    for name, us, delay in [
        ("caller -> Gemini", figures.caller_to_gemini_us_per_frame, f"{figures.caller_to_gemini_delay_ms:.2f}"),
        ("Gemini -> caller", figures.gemini_to_caller_us_per_frame, f"{figures.gemini_to_caller_delay_ms:.2f}"),
        ("local voice detection (webrtcvad)", figures.voice_detection_us_per_frame, "0 (runs beside)"),
        ("a caller frame through the call core", figures.call_core_caller_frame_us, "-"),
    ]:
        table.add_row(name, f"{us:.1f}", f"{us / 20000:.2%}", delay)
    console.print(table)
    if json_out:
        json_out.write_text(json.dumps(figures_as_dict(figures), indent=2) + "\n")
        console.print(f"figures written to {json_out}")


@bench_app.command("stalls")
def bench_stalls(
    calls: int = typer.Option(10, min=1, max=100, help="Calls per stall kind (real time, 0.2 s apart)."),
    healthy: int = typer.Option(100, min=0, max=1000, help="Healthy calls per model family, counted for false recoveries (0: skip)."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the figures as JSON."),
) -> None:
    """The model goes silent with its socket open: the silence the caller hears, per stall kind.

    Example: telephony bench stalls --calls 10 --healthy 100"""
    require_test_kit()
    import json

    from telephony.bench.stalls import FAMILY_MODELS, figures_as_dict, kinds, run_false_recoveries, run_stall_kind

    figures = []
    with console.status("") as status:
        for kind in kinds():
            status.update(f"{calls} calls, {kind or 'no stall'} ...")
            figures.append(run_event_loop(run_stall_kind(kind, calls), "uvloop"))
        found = []
        for family in FAMILY_MODELS if healthy else ():
            status.update(f"{healthy} healthy calls on {family.value} (realistic) ...")
            found.append(run_event_loop(run_false_recoveries(family, healthy), "uvloop"))
    table = Table(title=f"bench stalls: {calls} calls each, real time, on the wire at the Twilio emulator")
    for column in ("stall", "answered", "silence heard p50", "p99", "max", "brought back by", "errors"):
        table.add_column(column, justify="left" if column in ("stall", "brought back by") else "right")

    def s(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f} s"

    for row in figures:
        steps = ", ".join(f"{step} {count}" for step, count in sorted(row.answered_by.items()))
        table.add_row(
            row.kind,
            f"{row.answered}/{row.calls}",
            s(row.silence_s["p50"]),
            s(row.silence_s["p99"]),
            s(row.silence_s["max"]),
            steps,
            str(row.errors),
        )
    console.print(table)
    if found:
        healthy_table = Table(title="healthy calls (realistic profile): nudges are false recoveries")
        for column in ("model family", "calls", "nudged", "errors"):
            healthy_table.add_column(column)
        for row in found:
            healthy_table.add_row(row.family, str(row.calls), str(row.nudged_calls), str(row.errors))
        console.print(healthy_table)
    if json_out is not None:
        json_out.write_text(json.dumps(figures_as_dict(figures, found), indent=2))


@bench_app.command("barge-in")
def bench_barge_in(
    calls: int = typer.Option(10, min=1, max=200, help="Concurrent calls (started 0.25 s apart)."),
    min_speech_ms: int = typer.Option(300, help="TELEPHONY_BARGE_IN_MIN_SPEECH_MS for the server under test."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the figures as JSON."),
) -> None:
    """The caller talks over agent audio already buffered: caller speech -> Twilio clear, on the wire.

    Example: telephony bench barge-in"""
    require_test_kit()
    from telephony.bench.barge_in import figures_as_dict, run_barge_in

    rows = []
    with console.status(f"{calls} calls with local barge-in, then {calls} with Gemini's alone ..."):
        for speech_ms in (min_speech_ms, 0):
            rows.append(run_event_loop(run_barge_in(calls, speech_ms), "uvloop"))
    table = Table(title=f"bench barge-in: {calls} calls, each 8 s answer generated at once (ms, on the wire at the Twilio emulator)")
    for column in (
        "barge-in",
        "calls cleared",
        "speech -> clear p50",
        "p95",
        "p99",
        "max",
        "old reply heard after speech p50",
        "max",
        "errors",
    ):
        table.add_column(column, justify="left" if column == "barge-in" else "right")

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    for row in rows:
        latency, heard = row.caller_to_clear_ms, row.old_reply_heard_after_barge_in_ms
        name = f"local, {row.min_speech_ms} ms of speech" if row.min_speech_ms else "Gemini's interrupted only"
        table.add_row(
            name, f"{row.cleared_calls}/{row.calls}", ms(latency["p50"]), ms(latency["p95"]), ms(latency["p99"]),
            ms(latency["max"]), ms(heard["p50"]), ms(heard["max"]), str(row.errors),
        )  # fmt: skip
    console.print(table)
    if json_out:
        json_out.write_text(json.dumps([figures_as_dict(row) for row in rows], indent=2) + "\n")
        console.print(f"figures written to {json_out}")


@bench_app.command("reconnect")
def bench_reconnect(json_out: Path | None = typer.Option(None, "--json", help="Also write the figures as JSON.")) -> None:
    """Gemini connections replaced mid-call (1000, 1008, 1011, refused resumption, drop, goAway):
    the silence the caller hears, on the wire.

    Example: telephony bench reconnect --json out/reconnect.json
    """
    require_test_kit()
    from telephony.bench.reconnect import figures_as_dict, run_reconnect

    with console.status("one call per case, all at once (about 20 s) ..."):
        rows = run_event_loop(run_reconnect(), "uvloop")
    table = Table(title="bench reconnect: realistic Gemini emulator, one fault per call (seconds, on the wire at the Twilio emulator)")
    for column in ("case", "reconnects", "follow-up -> answer heard", "extra silence", "first answer heard", "its answer heard", "error"):
        table.add_column(column, justify="left" if column in ("case", "error") else "right")
    for row in rows:
        gap = "-" if row.answer_gap_s is None else f"{row.answer_gap_s:.2f}"
        extra = "-" if row.extra_silence_s is None else f"{row.extra_silence_s:+.2f}"
        table.add_row(
            row.case,
            str(row.reconnects),
            gap,
            extra,
            f"{row.first_answer_heard_s:.2f}",
            f"{row.follow_up_answer_heard_s:.2f}",
            row.errors[:60],
        )
    console.print(table)
    if json_out:
        json_out.write_text(json.dumps(figures_as_dict(rows), indent=2) + "\n")
        console.print(f"figures written to {json_out}")


@bench_app.command("quality")
def bench_quality(
    json_out: Path | None = typer.Option(None, "--json", help="Also write the scores as JSON."),
    speech: Path = typer.Option(Path("fixtures") / "speech", help="Folder of speech WAV files (in a clone: fixtures/speech)."),
) -> None:
    """PESQ and STOI of speech through the real transcoders, against G.711 alone.

    Example: telephony bench quality"""
    from telephony.bench.quality import run_quality_bench, scores_as_dicts

    try:
        scores = run_quality_bench(speech)
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    table = Table(title="bench quality: against the ideal one-shot conversion (PESQ wb at 16 kHz, nb at 8 kHz)")
    for column in ("direction", "speaker", "condition", "PESQ", "STOI", "level dBFS"):
        table.add_column(column, justify="left" if column in ("direction", "speaker", "condition") else "right")
    for score in scores:
        table.add_row(score.direction, score.speaker, score.condition, f"{score.pesq:.2f}", f"{score.stoi:.3f}", f"{score.level_dbfs:.1f}")
    console.print(table)
    if json_out:
        json_out.write_text(json.dumps(scores_as_dicts(scores), indent=2) + "\n")
        console.print(f"scores written to {json_out}")


@bench_app.command("soak")
def bench_soak(
    calls: int = typer.Option(30, min=1, help="Concurrent calls, each replaced by a new one as it ends."),
    minutes: float = typer.Option(5.0, min=0.05, help="How long the load lasts."),
    call_seconds: float = typer.Option(20.0, min=8.0, help="Length of each call."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the samples as JSON."),
) -> None:
    """Calls for minutes against a server in its own process: RSS, descriptors and tasks over
    time and after an idle pause (a leak shows as figures that do not come back).

    Example: telephony bench soak --calls 30 --minutes 5
    """
    from rich.progress import Progress

    from telephony.bench.soak import run_soak, write_json

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"{calls} calls for {minutes:g} min", total=minutes * 60)
        figures = run_event_loop(
            run_soak(calls, minutes, call_seconds, on_sample=lambda s: progress.update(task, completed=s.at_s)), "uvloop"
        )
    table = Table(title=f"bench soak: {calls} concurrent calls of {call_seconds:.0f} s for {minutes:g} min (server process)")
    for column in ("at s", "RSS MB", "descriptors", "tasks", "live calls", "calls done", "call objects alive"):
        table.add_column(column, justify="right")
    rows = [("before", figures.before), *((f"{s.at_s:.0f}", s) for s in figures.samples), ("after idle", figures.after_idle)]
    for label, sample in rows:
        if sample is not None:
            alive = sum(sample.objects.values())
            table.add_row(
                label,
                f"{sample.rss_mb:.1f}",
                str(sample.descriptors),
                str(sample.tasks),
                str(sample.live_calls),
                str(sample.calls_done),
                str(alive),
            )
    console.print(table)
    if figures.after_idle is not None:
        left = {kind: n for kind, n in figures.after_idle.objects.items() if n}
        console.print("after idle, alive: " + (", ".join(f"{n} {kind}" for kind, n in left.items()) or "no call objects"))
    console.print(f"calls completed: {figures.calls_done}, failed: {figures.calls_failed}")
    if json_out:
        write_json(json_out, figures)
        console.print(f"figures written to {json_out}")


@bench_app.command("load")
def bench_load(
    calls: str = typer.Option("10", help="Concurrent calls; a list such as 10,50,100,200 prints the curve."),
    seconds: float = typer.Option(20.0, min=8.0, help="Length of each call (each caller interrupts once, at ~5.4 s)."),
    loop: str = typer.Option("uvloop", help="Event loop of the server under test: uvloop or asyncio."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the figures as JSON."),
    database_url: str | None = typer.Option(
        None, "--database-url", help="The server's call history: default a fresh SQLite file; off; or postgresql://..."
    ),
    record_audio: bool = typer.Option(False, "--record-audio", help="The server keeps a stereo recording of every call."),
    compare: bool = typer.Option(
        False, "--compare", help="Also run the same load against the naive bridge (telephony/bench/naive_bridge.py): ratios."
    ),
    workers: int = typer.Option(1, "--workers", min=1, max=64, help="Our server's processes (serve --workers)."),
    readme: Path | None = typer.Option(None, "--readme", help="Rewrite the capacity table in this page (docs/benchmarks.md)."),
    traces: bool = typer.Option(
        False, "--traces", help="Also run each point with call traces exported (OTLP to a local receiver): tracing's cost."
    ),
    server_cpus: str | None = typer.Option(
        None,
        "--server-cpus",
        help="Pin the server to these cores (e.g. 0 or 0-1) and the callers to the rest: calls per core where late frames start.",
    ),
    floor: bool = typer.Option(
        False,
        "--floor",
        help="Also run the floor bridge (telephony/bench/floor_bridge.py: only what every bridge on this stack must do), "
        "sending caller audio every frame, by our rule, and every fifth frame: what our own work costs is the difference.",
    ),
    caller_block_ms: int = typer.Option(
        20,
        "--caller-block-ms",
        min=20,
        max=200,
        help="Our server's TELEPHONY_CALLER_AUDIO_BLOCK_MS: caller audio to Gemini in blocks this long (fewer sends, later words).",
    ),
) -> None:
    """N concurrent emulated calls against a server in its own process: CPU, memory, delays.

    Example: telephony bench load --calls 40 --compare;  telephony bench load --calls 20,40,60 --server-cpus 0"""
    from rich.progress import Progress

    from telephony.bench.load import capacity, paired_with_naive, run_load, write_json

    try:
        points = [int(c) for c in calls.split(",") if c.strip()]
    except ValueError:
        raise typer.BadParameter("a number or a comma-separated list of numbers", param_hint="--calls") from None
    if not points or min(points) < 1:
        raise typer.BadParameter("at least one call", param_hint="--calls")
    if caller_block_ms % 20:
        raise typer.BadParameter("a multiple of 20 (Twilio's frame)", param_hint="--caller-block-ms")
    pinned = _server_cpus(server_cpus) if server_cpus else None
    results = []
    for n in points:
        runs = [("ours", False), *([("ours", True)] if traces else []), *([("naive", False)] if compare else [])]
        runs += [("floor 1", False), ("floor ours", False), ("floor 5", False)] if floor else []
        for bridge, traced in runs:
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task(f"{bridge}: {n} calls x {seconds:.0f} s", total=seconds)
                results.append(
                    run_event_loop(
                        run_load(
                            n,
                            seconds,
                            loop,
                            on_progress=lambda t, done, task=task: progress.update(task, completed=t),
                            database_url=database_url,
                            record_audio=record_audio,
                            bridge=bridge,
                            workers=workers if bridge == "ours" else 1,
                            traces=traced,
                            server_cpus=pinned,
                            block_ms=caller_block_ms if bridge == "ours" else 20,
                        ),
                        "uvloop",
                    )
                )
    blocks = f", our caller blocks {caller_block_ms} ms" if caller_block_ms != 20 else ""
    table = Table(title=f"bench load: calls of {seconds:.0f} s, server on {loop}{blocks} (delays in ms, end to end between emulators)")
    for column in (
        "bridge",
        "calls",
        "CPU ms/call-s",
        "CPU of 1 core",
        "peak RSS MB",
        "MB/call",
        "late out",
        "late in",
        "in p50/p99",
        "reply start p50/p99",
        "out p50/p99",
        "clear p50/p99",
        "to Gemini msg/call-s",
        "errors/dropped",
    ):
        table.add_column(column, justify="right")
    for f in results:
        table.add_row(
            f.bridge,
            str(f.calls),
            f"{f.server_cpu_ms_per_call_second:.2f}",
            f"{f.server_cpu_share_of_one_core:.0%}",
            f"{f.peak_rss_mb:.0f}",
            f"{f.rss_per_call_mb:.2f}",
            f"{f.late_outbound_frames}/{f.outbound_frames}",
            f"{f.late_inbound_frames}/{f.inbound_frames}",
            _p50_p99(f.inbound_delay_ms),
            _p50_p99(f.reply_start_ms),
            _p50_p99(f.outbound_delay_ms),
            _p50_p99(f.interrupted_to_clear_ms),
            f"{f.gemini_audio_messages_per_call_second:.1f}",
            f"{f.errors}/{f.dropped_calls}",
        )
    console.print(table)
    if traces:
        for off, on in zip((f for f in results if f.bridge == "ours"), (f for f in results if f.bridge == "ours+traces"), strict=True):
            cost = on.server_cpu_ms_per_call_second - off.server_cpu_ms_per_call_second
            console.print(
                f"traces at {off.calls} calls: {off.server_cpu_ms_per_call_second:.2f} -> {on.server_cpu_ms_per_call_second:.2f}"
                f" CPU ms per call-second ({cost:+.2f}, {on.server_cpu_ms_per_call_second / off.server_cpu_ms_per_call_second:.2f}x)",
                highlight=False,
            )
    if compare:
        ratios = Table(title="ours vs the naive bridge, same run (naive / ours: above 1 means ours is better)")
        for column in ("calls", "CPU per call-s", "peak RSS", "clear p99", "in p99", "reply start p99"):
            ratios.add_column(column, justify="right")
        for ours, naive in paired_with_naive(results):
            ratios.add_row(
                str(ours.calls),
                _ratio(naive.server_cpu_ms_per_call_second, ours.server_cpu_ms_per_call_second),
                _ratio(naive.peak_rss_mb, ours.peak_rss_mb),
                _ratio(naive.interrupted_to_clear_ms["p99"], ours.interrupted_to_clear_ms["p99"]),
                _ratio(naive.inbound_delay_ms["p99"], ours.inbound_delay_ms["p99"]),
                _ratio(naive.reply_start_ms["p99"], ours.reply_start_ms["p99"]),
            )
        console.print(ratios)
    if floor:
        for n in points:
            at = {f.bridge: f.server_cpu_ms_per_call_second for f in results if f.calls == n}
            base = at.get("naive")
            shares = ", ".join(
                f"{bridge} {cpu:.2f}" + (f" ({cpu / base:.2f}x)" if base else "")
                for bridge, cpu in at.items()
                if bridge.startswith(("ours", "floor")) and not bridge.endswith("+traces")
            )
            console.print(f"CPU ms per call-second at {n} calls{' (x the naive bridge)' if base else ''}: {shares}", highlight=False)
    for f in results:
        server_lag = (
            ""
            if f.server_loop_lag_over_20ms is None
            else f"the server's timers over 20 ms late in {f.server_loop_lag_over_20ms:.1%} of samples; "
        )
        if (callers := f.callers_loop_lag_ms.get("p99")) is not None:
            console.print(
                f"event-loop lag, {f.bridge} at {f.calls} calls: {server_lag}the callers' loop lag p99 {callers:.1f} ms", highlight=False
            )
    for f in results:
        for note in f.notes:
            console.print(f"[yellow]note:[/] {note}")
    if pinned:
        for bridge in dict.fromkeys(f.bridge for f in results):
            if (line := capacity([f for f in results if f.bridge == bridge])) is not None:
                console.print(f"capacity: {line}", highlight=False)
    if json_out:
        write_json(json_out, results)
        console.print(f"figures written to {json_out}")
    if readme:
        from telephony.bench.load import figures_as_dict
        from telephony.bench.readme import update_readme

        update_readme(readme, [figures_as_dict(f) for f in results])
        console.print(f"capacity table rewritten in {readme}")


def _server_cpus(spec: str) -> set[int]:
    """`0`, `0,2` or `0-1`: cores this machine lets us use, leaving at least one for the callers."""
    cpus: set[int] = set()
    try:
        for part in spec.split(","):
            low, _, high = part.strip().partition("-")
            cpus.update(range(int(low), int(high or low) + 1))
    except ValueError:
        raise typer.BadParameter("cores as 0, 0,2 or 0-1", param_hint="--server-cpus") from None
    allowed = os.sched_getaffinity(0)
    if not cpus or not cpus <= allowed:
        raise typer.BadParameter(f"cores this machine offers are {_cpu_list(allowed)}", param_hint="--server-cpus")
    if not allowed - cpus:
        raise typer.BadParameter(f"leaves no core for the callers (this machine offers {_cpu_list(allowed)})", param_hint="--server-cpus")
    return cpus


def _cpu_list(cpus: set[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def _ratio(theirs: float | None, ours: float | None) -> str:
    if not theirs or not ours:
        return "-"
    return f"{theirs / ours:.2f}x"


def _p50_p99(stats: dict[str, float | None]) -> str:
    if stats["p50"] is None or stats["p99"] is None:
        return "-"
    return f"{stats['p50']:.2f}/{stats['p99']:.2f}"


@bench_app.command("voicemail")
def bench_voicemail(json_out: Path | None = typer.Option(None, "--json", help="Also write the figures as JSON.")) -> None:
    """Answering machines and people on outbound calls, offline: what each was taken for, when
    the message started after the beep, whether any was spoken before it, whether it was heard whole.

    Example: telephony bench voicemail
    """
    import asyncio
    import json
    from dataclasses import asdict

    from rich.progress import Progress

    from telephony.bench.outbound import greetings, run_voicemail

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("greetings, all at once, in real time", total=len(greetings()))
        rows = asyncio.run(run_voicemail(on_done=lambda name: progress.advance(task)))
    table = Table(title="bench voicemail: outbound calls answered by machines and people (call time, real time)")
    for column in ("greeting", "detected as", "message left", "starts after beep", "spoken before beep", "heard whole"):
        table.add_column(column, justify="left" if column == "greeting" else "right")
    for row in rows:
        after = "-" if row.starts_after_beep_s is None else f"{row.starts_after_beep_s:.2f} s"
        whole = "-" if row.heard_whole is None or not row.message_left else ("yes" if row.heard_whole else "no")
        before = "-" if row.human else f"{row.spoken_before_beep_s:.2f} s"
        table.add_row(row.greeting, row.detected_as, "yes" if row.message_left else "no", after, before, whole)
    console.print(table)
    humans = [r for r in rows if r.human]
    wrong = sum(1 for r in humans if r.message_left or r.detected_as.startswith("machine"))
    console.print(f"people taken for machines: {wrong} of {len(humans)}")
    if json_out:
        json_out.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n", encoding="utf-8")


@bench_app.command("list")
def bench_list(
    numbers: int = typer.Option(50, min=1, max=1000, help="Rows in the list."),
    concurrency: int = typer.Option(5, min=1, help="Calls at the same time."),
    speed: float = typer.Option(4.0, min=1.0, help="How much faster than real time the callees talk."),
    results: Path = typer.Option(Path("out/bench-list.results.csv"), help="The list run's results file."),
) -> None:
    """A call list dialled offline (people, machines, busy, no answer): outcomes and wall time.

    Example: telephony bench list --numbers 50 --concurrency 5"""
    import asyncio
    import tempfile

    from telephony.bench.outbound import run_list_bench

    with tempfile.TemporaryDirectory() as directory:
        figures = asyncio.run(run_list_bench(Path(directory) / "list.csv", numbers, concurrency, speed, results))
    outcomes = ", ".join(f"{n} {k}" for k, n in sorted(figures["outcomes"].items(), key=lambda kv: -kv[1]))  # type: ignore[attr-defined]
    console.print(
        f"bench list: {numbers} numbers, concurrency {concurrency}, callees at {speed:g}x: {figures['wall_s']:.1f} s wall, "
        f"{figures['calls_placed']} calls placed (retries included), at most {figures['peak']} at once; {outcomes}; results in {results}"
    )
