"""Prometheus metrics, served at GET /metrics. One registry per app, so that several apps in
one process (tests, benchmarks) never share counters."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from telephony import live_objects

_FAST = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
_LAG = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LOOP_LAG_EVERY_S = 0.1
"""How often the event loop's lag is sampled: ten wake-ups a second, nothing beside 50 frames
a second per call."""


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.active_calls = Gauge("telephony_active_calls", "Calls in progress", registry=r, multiprocess_mode="livesum")
        self.calls = Counter("telephony_calls", "Calls ended, by outcome", ["outcome"], registry=r)
        self.refused = Counter("telephony_refused", "Requests refused, by reason", ["reason"], registry=r)
        self.gemini_reconnects = Counter("telephony_gemini_reconnects", "Gemini sessions moved to a new connection", ["kind"], registry=r)
        self.stalls = Counter(
            "telephony_gemini_stalls", "Silent stalls of the model, by kind and the recovery step taken", ["kind", "step"], registry=r
        )
        self.stall_silence = Histogram(
            "telephony_gemini_stall_silence_seconds",
            "Silence the caller heard in a stall, to the agent's first audio after recovery",
            buckets=(1, 2, 3, 4, 5, 6, 8, 10, 15),
            registry=r,
        )
        self.frames_in = Counter("telephony_frames_in", "Twilio media frames received", registry=r)
        self.frames_out = Counter("telephony_frames_out", "Twilio media frames sent", registry=r)
        self.dropped_audio_ms = Counter("telephony_dropped_audio_ms", "Audio dropped, by reason (ms)", ["reason"], registry=r)
        self.malformed = Counter("telephony_malformed_messages", "Bad Media Streams messages, by kind", ["kind"], registry=r)
        self.barge_ins = Counter(
            "telephony_barge_ins", "Agent audio cut off by the caller, by who noticed (gemini or caller)", ["source"], registry=r
        )
        self.interrupted_to_clear = Histogram(
            "telephony_interrupted_to_clear_seconds", "Gemini interrupted -> Twilio clear sent", buckets=_FAST, registry=r
        )
        self.chunk_to_frame = Histogram(
            "telephony_gemini_chunk_to_twilio_frame_seconds",
            "Gemini audio chunk received -> its first Twilio frame sent",
            buckets=_FAST,
            registry=r,
        )

        self.store_errors = Counter("telephony_store_errors", "Call store writes that failed (and were retried)", registry=r)
        self.store_dropped = Counter("telephony_store_dropped", "Call store records dropped (backlog full)", registry=r)
        self.event_loop_lag = Histogram(
            "telephony_event_loop_lag_seconds",
            f"How late this process's event loop ran a timer, sampled every {LOOP_LAG_EVERY_S:g} s: every call's frames wait"
            " as long (above 0.02 s, callers' audio is late: too many calls for this process)",
            buckets=_LAG,
            registry=r,
        )
        self.event_loop_tasks = Gauge("telephony_event_loop_tasks", "asyncio tasks alive in the server's event loop", registry=r)
        self.event_loop_tasks.set_function(_tasks_alive)
        self.open_descriptors = Gauge("telephony_open_descriptors", "File descriptors open in this process", registry=r)
        self.open_descriptors.set_function(_descriptors_open)
        r.register(_LiveObjects())

    def publish(self, counts: Mapping[tuple[str, tuple[str, ...]], int], observations: Iterable[tuple[str, float]]) -> None:
        """Add what a call core counted (`telephony.call.tally.Tally.take()`): each name is an
        attribute here, a counter (with its label values) or a histogram."""
        for (name, labels), amount in counts.items():
            metric = getattr(self, name)
            (metric.labels(*labels) if labels else metric).inc(amount)
        for name, value in observations:
            getattr(self, name).observe(value)

    def render(self) -> bytes:
        """This app's metrics; with `serve --workers N`, every worker's added up (prometheus
        multiprocess mode: counters and histograms summed, live calls summed over live workers)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            shared = CollectorRegistry()
            multiprocess.MultiProcessCollector(shared)
            return generate_latest(shared)
        return generate_latest(self.registry)


async def sample_loop_lag(observe: Callable[[float], None], every_s: float = LOOP_LAG_EVERY_S) -> None:
    """Forever: sleep `every_s`, and `observe` how much later than asked the loop woke us.

    A loop with more work than time runs every timer late, and a caller's frames with them
    (their 20 ms has no slack): so this is where a process past its capacity shows first, in
    the server's /metrics and in the load bench's own callers (`telephony bench load`)."""
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time() + every_s
        await asyncio.sleep(every_s)
        observe(max(0.0, loop.time() - asked))


class _LiveObjects(Collector):
    """`telephony_live_objects{kind}`: objects of calls still alive (`telephony.live_objects`)."""

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("telephony_live_objects", "Objects of calls still alive, by kind (idle: 0)", labels=["kind"])
        for kind, count in live_objects.counts().items():
            family.add_metric([kind], count)
        yield family


def _tasks_alive() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # scraped outside the event loop
        return 0.0


def _descriptors_open() -> float:
    try:
        return float(len(os.listdir("/proc/self/fd")))
    except OSError:  # not Linux
        return 0.0
