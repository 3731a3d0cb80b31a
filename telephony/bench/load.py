"""`telephony bench load`: how many calls one box carries, and what delay the bridge adds.

The server under test runs in its own process (`telephony serve`), so its CPU time and
memory are read from /proc apart from the load generators. This process runs the Gemini Live
emulator (echo agent) and N emulated Twilio callers. Every caller follows the barge-in
recording: speaks, is answered, and talks over the answer once; the recording is padded with
line noise to the run's duration. Calls start spread over the first second or two.

Both emulators live in this process and share one clock, so delays across the server are
measured end to end:
- inbound: a Twilio frame with speech in it sent -> its audio received by Gemini (the first
  chunk after the frame carries it). Quiet frames (line noise, below
  `audio.level.QUIET_RMS`) are not timed: while no answer is owed to the caller they wait
  for a bigger block by design (`TELEPHONY_CALLER_QUIET_BLOCK_MS`), and the caller waits for
  nothing of them;
- outbound: Gemini chunk sent -> the first Twilio frame received after it;
- barge-in: Gemini `interrupted` sent -> Twilio `clear` received.
These include both WebSocket hops and this process's own scheduling; with many calls the
load generators share the machine's two cores with the server, which the figures include.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from bisect import bisect_right
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from telephony.audio.level import QUIET_RMS, rms16
from telephony.audio.mulaw import decode_mulaw
from telephony.http_client import http_client
from telephony.metrics import sample_loop_lag
from telephony.testing.call_fixture import CallFixtureBuilder, FixtureMessage, caller_audio, parse_fixture_lines
from telephony.testing.gemini_live import GeminiLiveEmulator
from telephony.testing.ports import free_port
from telephony.testing.twilio_media import ReplayResult, TwilioMediaEmulator

FIXTURE = Path(str(resources.files("telephony").joinpath("testing", "calls", "barge_in.jsonl")))
"""A recorded call shipped with the package (package data, found without importing the test kit)."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class LoadFigures:
    calls: int
    seconds: float
    server_loop: str
    server_cpu_ms_per_call_second: float
    server_cpu_share_of_one_core: float
    peak_rss_mb: float
    rss_per_call_mb: float
    late_outbound_frames: int
    outbound_frames: int
    late_inbound_frames: int
    inbound_frames: int
    """Caller frames with speech in them, the ones timed (quiet frames may wait by design)."""
    inbound_delay_ms: dict[str, float | None]
    outbound_delay_ms: dict[str, float | None]
    reply_start_ms: dict[str, float | None]
    """Gemini's first chunk of a reply sent -> its first Twilio frame received: the part of
    the outbound delay the caller waits for (later chunks wait behind audio still playing)."""
    interrupted_to_clear_ms: dict[str, float | None]
    interruptions_seen: int
    errors: int
    dropped_calls: int
    caller_block_ms: int = 20
    gemini_audio_messages_per_call_second: float = 0.0
    """Caller audio messages Gemini received (50 a second at 20 ms blocks): each costs a
    websocket frame and a TLS write, the largest per-message cost left."""
    bridge: str = "ours"
    """"ours", "naive" (telephony/bench/naive_bridge.py, the same load in the same run), or
    "floor <sends>" (telephony/bench/floor_bridge.py: only what every bridge on this stack must
    do; caller audio to Gemini every frame, every fifth, or by our rule: 1, 5 or ours)."""
    notes: list[str] = field(default_factory=list)
    server_cores: int | None = None
    """Cores the server was pinned to (`--server-cpus`); None: it shared them with the callers."""
    server_loop_lag_over_20ms: float | None = None
    """Share of the server's event-loop lag samples (`telephony_event_loop_lag_seconds`, every
    100 ms) over 20 ms during the load: its frames were late; None for a bridge without it."""
    callers_loop_lag_ms: dict[str, float | None] = field(default_factory=dict)
    """The same lag in this process (the emulated callers and Gemini), every 100 ms: where it
    is high, late frames may be the bench's own, not the server's."""

    @property
    def late(self) -> bool:
        """Past capacity: a call dropped, or over 1 % of caller speech frames reached Gemini late."""
        return self.dropped_calls > 0 or self.late_inbound_frames > 0.01 * max(1, self.inbound_frames)


def capacity(curve: list[LoadFigures]) -> str | None:
    """Where late frames start on one bridge's curve (ascending calls), in calls per core."""
    points = sorted(curve, key=lambda f: f.calls)
    if not points or points[0].server_cores is None:
        return None
    cores = points[0].server_cores
    first_late = next((f for f in points if f.late), None)
    fine = [f for f in points if not f.late and (first_late is None or f.calls < first_late.calls)]
    if first_late is None:
        most = points[-1].calls
        return f"{points[0].bridge}: no late frames up to {most} calls on {cores} core(s): at least {most / cores:.0f} calls per core"
    if not fine:
        return f"{points[0].bridge}: late frames from {first_late.calls} calls on {cores} core(s), the smallest point: try fewer calls"
    return (
        f"{points[0].bridge}: {fine[-1].calls} calls on {cores} core(s) without late frames, late from {first_late.calls}: "
        f"{fine[-1].calls / cores:.0f}-{first_late.calls / cores:.0f} calls per core"
    )


def paired_with_naive(results: list[LoadFigures]) -> list[tuple[LoadFigures, LoadFigures]]:
    """Our run and the naive bridge's at each number of calls, for the ratios: ours may run
    as "ours x2" (`--workers 2`); a traced run and the floor's are not compared."""
    naive = {f.calls: f for f in results if f.bridge == "naive"}
    ours = [f for f in results if f.bridge.split(" ")[0] == "ours" and not f.bridge.endswith("+traces")]
    return [(f, naive[f.calls]) for f in ours if f.calls in naive]


def percentiles(values: list[float]) -> dict[str, float | None]:
    """n, p50, p95, p99 and max; None (JSON null) where nothing was measured."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    data = np.asarray(values)
    return {
        "n": len(values),
        "p50": round(float(np.percentile(data, 50)), 3),
        "p95": round(float(np.percentile(data, 95)), 3),
        "p99": round(float(np.percentile(data, 99)), 3),
        "max": round(float(data.max()), 3),
    }


def _family(pid: int) -> list[int]:
    """The process and its children (the workers of `serve --workers N`)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return [pid, *map(int, children)]


def _proc_cpu_seconds(pid: int) -> float:
    total = 0.0
    for member in _family(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / CLOCK_TICKS  # own + reaped children
    return total


def _proc_memory_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) in MB, over the process and its workers."""
    values = {"VmRSS": 0.0, "VmHWM": 0.0}
    for member in _family(pid):
        try:
            lines = Path(f"/proc/{member}/status").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            key, _, rest = line.partition(":")
            if key in values:
                values[key] += int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


async def _server_loop_lag(base_url: str) -> tuple[float, float] | None:
    """The server's event-loop lag samples so far, and those over 20 ms (from /metrics)."""
    try:
        async with http_client(10) as client:
            text = (await client.get(base_url + "/metrics")).text
    except httpx.HTTPError:
        return None
    buckets = {
        sample.labels["le"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "telephony_event_loop_lag_seconds"
        for sample in family.samples
        if sample.name.endswith("_bucket")
    }
    if "+Inf" not in buckets or "0.02" not in buckets:
        return None
    return buckets["+Inf"], buckets["+Inf"] - buckets["0.02"]


def bench_fixture(seconds: float) -> list[FixtureMessage]:
    """The barge-in recording, cut or padded with line noise to `seconds`."""
    audio = np.frombuffer(decode_mulaw(caller_audio(FIXTURE)), dtype="<i2")
    builder = CallFixtureBuilder("bench-load", {"caller": "+15550100001", "called": "+15550100002"})
    wanted = int(seconds * 8000)
    builder.speech(audio[:wanted])
    if wanted > len(audio):
        builder.silence(int((wanted - len(audio)) / 8))
    builder.stop()
    return parse_fixture_lines(builder.lines())


class _Server:
    """`telephony serve` in a child process, pointed at the Gemini emulator."""

    def __init__(
        self,
        gemini: GeminiLiveEmulator,
        calls: int,
        loop: str,
        block_ms: int = 20,
        extra_env: dict[str, str] | None = None,
        bridge: str = "ours",
        workers: int = 1,
        log_file: Path | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.auth_token = secrets.token_hex(16)
        env = dict(
            os.environ,
            GEMINI_API_KEY="offline",
            TELEPHONY_GEMINI_BASE_URL=gemini.base_url,
            TELEPHONY_GEMINI_CA_FILE=str(gemini.ca_file),
            TWILIO_ACCOUNT_SID="AC" + "0" * 32,
            TWILIO_AUTH_TOKEN=self.auth_token,
            TELEPHONY_PUBLIC_URL=self.url,
            TELEPHONY_PORT=str(self.port),
            TELEPHONY_MAX_CONCURRENT_CALLS=str(calls + 10),
            TELEPHONY_CALLER_AUDIO_BLOCK_MS=str(block_ms),
        )
        env.update(extra_env or {})
        env["PORT"] = str(self.port)
        if bridge == "ours":
            command = ["-m", "telephony", "serve", "--loop", loop, "--workers", str(workers)]
        elif bridge.startswith("floor"):
            command = ["-m", "telephony.bench.floor_bridge"]
            env["FLOOR_SENDS"] = bridge.removeprefix("floor").strip() or "1"
        else:
            command = ["-m", "telephony.bench.naive_bridge"]
        self.log_file = log_file
        output = log_file.open("ab") if log_file is not None else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                [sys.executable, *command],
                env=env,
                stdout=output,
                stderr=output,
            )
        finally:
            if not isinstance(output, int):
                output.close()

    async def wait_ready(self, within_s: float = 90.0) -> None:
        """Until /healthz answers. Generous: `bench reconnect` starts eight servers at once on
        a small machine, where each spends seconds importing (10 s was not always enough)."""
        deadline = time.monotonic() + within_s
        async with http_client(5) as client:  # httpx's default timeout
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError("the server under test exited at start")
                try:
                    if (await client.get(self.url + "/healthz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError("the server under test did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


async def run_load(
    calls: int,
    seconds: float,
    loop: str = "uvloop",
    block_ms: int = 20,
    on_progress=None,
    database_url: str | None = None,
    record_audio: bool = False,
    bridge: str = "ours",
    workers: int = 1,
    traces: bool = False,
    server_cpus: set[int] | None = None,
) -> LoadFigures:
    """One load point: `calls` concurrent calls of `seconds` each against a fresh server
    (its call history in a fresh SQLite file unless `database_url` says otherwise).

    `server_cpus`: the server (and its workers) run on these cores only and this process (the
    callers and the Gemini emulator) on the others, so that the server's figures are not the
    load generator's competition for the same cores."""
    import tempfile

    messages = bench_fixture(seconds)
    scratch = tempfile.TemporaryDirectory(prefix="bench-load-")
    extra = {"TELEPHONY_DATA_DIR": scratch.name, "TELEPHONY_RECORD_AUDIO": "true" if record_audio else "false"}
    if database_url:
        extra["TELEPHONY_DATABASE_URL"] = database_url
    sink = await OtlpSink().start() if traces else None
    if sink is not None:  # the server exports every call's trace to a local receiver
        extra |= {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.url, "OTEL_BSP_SCHEDULE_DELAY": "1000"}
    async with GeminiLiveEmulator() as gemini:
        gemini.record_timings = True
        server = _Server(gemini, calls, loop, block_ms, extra_env=extra, bridge=bridge, workers=workers)
        generator_cpus = os.sched_getaffinity(0)
        if server_cpus:  # set before it imports (a second or more): its workers fork after, and inherit it
            os.sched_setaffinity(server.process.pid, server_cpus)
            os.sched_setaffinity(0, generator_cpus - server_cpus)
        watcher: asyncio.Task[None] | None = None
        try:
            await server.wait_ready()
            pid = server.process.pid
            idle_rss, _ = _proc_memory_mb(pid)
            server_lag_before = await _server_loop_lag(server.url) if bridge == "ours" else None
            callers_lag: list[float] = []
            watcher = asyncio.create_task(sample_loop_lag(lambda late_s: callers_lag.append(late_s * 1000)))
            cpu_before = _proc_cpu_seconds(pid)
            started = time.monotonic()

            async def one_call(index: int) -> ReplayResult | BaseException:
                await asyncio.sleep(index * min(2.0, seconds / 4) / max(1, calls))
                emulator = TwilioMediaEmulator(messages, auth_token=server.auth_token, record_sends=True)

                async def call() -> ReplayResult:
                    target = await emulator.answer(server.url + f"/twiml?instructions=bench-{index}", {"CallSid": f"CA{index:032x}"})
                    return await emulator.play(target)

                # A call that outlives its recording by a minute is counted as an error.
                return await asyncio.wait_for(call(), seconds + 60)

            tasks = [asyncio.create_task(one_call(i)) for i in range(calls)]
            if on_progress is not None:
                while not all(t.done() for t in tasks):
                    on_progress(min(seconds, time.monotonic() - started), sum(t.done() for t in tasks))
                    await asyncio.sleep(0.25)
            results = await asyncio.gather(*tasks, return_exceptions=True)
            wall = time.monotonic() - started
            cpu = _proc_cpu_seconds(pid) - cpu_before
            _, peak_rss = _proc_memory_mb(pid)
            server_lag_after = await _server_loop_lag(server.url) if server_lag_before is not None else None
        finally:
            if watcher is not None:
                watcher.cancel()
            server.stop()
            os.sched_setaffinity(0, generator_cpus)
            scratch.cleanup()
            if sink is not None:
                sink.close()
        figures = _figures(calls, seconds, loop, results, gemini, cpu, wall, idle_rss, peak_rss, speech_frames(messages))
        figures.caller_block_ms = block_ms
        figures.callers_loop_lag_ms = percentiles(callers_lag)
        if server_lag_before is not None and server_lag_after is not None:
            samples, late = (after - before for after, before in zip(server_lag_after, server_lag_before, strict=True))
            figures.server_loop_lag_over_20ms = round(late / samples, 4) if samples else None
        if (p99 := figures.callers_loop_lag_ms["p99"]) is not None and p99 > 20:
            figures.notes.append(
                f"{calls} calls: this process (the callers and Gemini) ran its timers late (loop lag p99 {p99:.0f} ms):"
                " some late frames may be the bench's own"
            )
        figures.bridge = (bridge if workers == 1 else f"{bridge} x{workers}") + ("+traces" if traces else "")
        figures.server_cores = len(server_cpus) if server_cpus else None
        if sink is not None:
            figures.notes.append(f"traces: {sink.requests} OTLP export(s), {sink.bytes / 1000:.0f} kB received")
        if bridge == "ours":
            figures.notes.append(f"call history: {database_url or 'sqlite file'}; recordings: {'on' if record_audio else 'off'}")
        return figures


class OtlpSink:
    """A local OTLP/HTTP receiver that takes and counts what it is sent (tracing's cost is the
    server's: its CPU is what the bench measures)."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        self._server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> OtlpSink:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
                )
                await reader.readexactly(length)
                self.requests += 1
                self.bytes += length
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


def _instructions(setup: dict) -> str:
    return setup.get("system_instruction", {}).get("parts", [{}])[0].get("text", "")


def speech_frames(messages: list[FixtureMessage]) -> list[bool]:
    """For each media frame of the recording: does it carry speech (is it timed)?"""
    return [
        rms16(decode_mulaw(base64.b64decode(json.loads(m.text)["media"]["payload"]))) >= QUIET_RMS for m in messages if m.event == "media"
    ]


def _figures(calls, seconds, loop, results, gemini, cpu, wall, idle_rss, peak_rss, speech) -> LoadFigures:
    ok = [r for r in results if isinstance(r, ReplayResult)]
    errors = len(results) - len(ok)
    # Each call's instructions name it (the bridge may add family rules after a blank line).
    connections = {
        c.setup.get("system_instruction", {}).get("parts", [{}])[0].get("text", "").split("\n\n")[0]: c for c in gemini.connections
    }
    inbound, outbound, clears, starts = [], [], [], []
    late_in = late_out = frames_out = frames_in = interruptions = audio_messages = 0
    dropped = 0
    for index, result in enumerate(results):
        if not isinstance(result, ReplayResult):
            continue
        if result.close_code not in (1000, None) or not result.caller_hung_up:
            dropped += 1
        conn = connections.get(f"bench-{index}")
        if conn is None:
            dropped += 1
            continue
        recv = conn.audio_received_at
        audio_messages += len(recv)
        sends = [result.monotonic(t) for t, spoken in zip(result.media_sent_at, speech, strict=False) if spoken]
        frames_in += len(sends)
        for sent in sends:
            i = bisect_right(recv, sent)
            if i < len(recv):
                delay = (recv[i] - sent) * 1000
                inbound.append(delay)
                late_in += delay > 20
        media_times = [result.monotonic(m.at_s) for m in result.media()]
        frames_out += len(media_times)
        late_out += result.underruns
        previous = -1e9
        for sent in conn.audio_sent_at:
            i = bisect_right(media_times, sent)
            if i < len(media_times):
                outbound.append((media_times[i] - sent) * 1000)
                if sent - previous > 0.3:  # a reply begins: nothing of it is held ahead of it
                    starts.append((media_times[i] - sent) * 1000)
            previous = sent
        for sent in conn.interrupted_sent_at:
            later = [result.monotonic(c) for c in result.clears if result.monotonic(c) >= sent]
            if later:
                clears.append((later[0] - sent) * 1000)
                interruptions += 1
    call_seconds = max(1e-9, sum(r.duration_s for r in ok))
    notes = []
    late_share = late_in / max(1, frames_in)
    if dropped:
        notes.append(
            f"{calls} calls: over capacity ({dropped} dropped, {late_share:.0%} of caller speech frames late);"
            " CPU per call-second understates the cost, since less audio got through"
        )
    elif late_share > 0.01:
        notes.append(f"{calls} calls: at capacity ({late_share:.0%} of caller speech frames reached Gemini over 20 ms late)")
    return LoadFigures(
        calls=calls,
        seconds=seconds,
        server_loop=loop,
        server_cpu_ms_per_call_second=round(cpu * 1000 / call_seconds, 3),
        server_cpu_share_of_one_core=round(cpu / wall, 3),
        peak_rss_mb=round(peak_rss, 1),
        rss_per_call_mb=round(max(0.0, peak_rss - idle_rss) / calls, 3),
        late_outbound_frames=late_out,
        outbound_frames=frames_out,
        late_inbound_frames=late_in,
        inbound_frames=frames_in,
        inbound_delay_ms=percentiles(inbound),
        outbound_delay_ms=percentiles(outbound),
        reply_start_ms=percentiles(starts),
        interrupted_to_clear_ms=percentiles(clears),
        interruptions_seen=interruptions,
        gemini_audio_messages_per_call_second=round(audio_messages / call_seconds, 1),
        errors=errors,
        dropped_calls=dropped,
        notes=notes,
    )


def figures_as_dict(figures: LoadFigures) -> dict[str, Any]:
    return asdict(figures)


def write_json(path: Path, figures: list[LoadFigures]) -> None:
    path.write_text(json.dumps([figures_as_dict(f) for f in figures], indent=2, allow_nan=False) + "\n")
