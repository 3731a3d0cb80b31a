"""`telephony bench soak`: many calls, one after another, for minutes; does anything leak?

A server in its own process (as `bench load` starts it) carries `calls` concurrent emulated
calls, each replaced by a new one as it ends, for `minutes`. Every few seconds the server's
RSS, open file descriptors, event-loop tasks and live calls are sampled (from /proc and its
own /metrics); then the load stops and, after an idle pause, they are sampled once more. A
server that frees everything a call held comes back to its idle figures.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from telephony.bench.load import _proc_memory_mb, _Server, bench_fixture
from telephony.http_client import http_client
from telephony.testing.gemini_live import GeminiLiveEmulator
from telephony.testing.twilio_media import TwilioMediaEmulator


@dataclass
class SoakSample:
    at_s: float
    rss_mb: float
    descriptors: int
    tasks: int
    live_calls: int
    calls_done: int
    objects: dict[str, int] = field(default_factory=dict)
    """Objects of calls still alive, by kind (`telephony_live_objects`): 0 at idle."""


@dataclass
class SoakFigures:
    calls: int
    minutes: float
    call_seconds: float
    calls_done: int = 0
    calls_failed: int = 0
    samples: list[SoakSample] = field(default_factory=list)
    before: SoakSample | None = None
    after_idle: SoakSample | None = None


async def _sample(client: httpx.AsyncClient, url: str, pid: int, started: float, done: int) -> SoakSample:
    values: dict[str, float] = {}
    objects: dict[str, int] = {}
    text = (await client.get(url + "/metrics")).text
    for family in text_string_to_metric_families(text):  # prometheus_client's own reader
        if family.name == "telephony_live_objects":
            for sample in family.samples:
                kind = sample.labels.get("kind", "")
                objects[kind] = objects.get(kind, 0) + int(sample.value)
        elif family.name in ("telephony_event_loop_tasks", "telephony_open_descriptors", "telephony_active_calls"):
            values[family.name] = sum(sample.value for sample in family.samples)  # every worker's
    rss, _ = _proc_memory_mb(pid)
    return SoakSample(
        at_s=round(time.monotonic() - started, 1),
        rss_mb=round(rss, 1),
        descriptors=int(values.get("telephony_open_descriptors", 0)),
        tasks=int(values.get("telephony_event_loop_tasks", 0)),
        live_calls=int(values.get("telephony_active_calls", 0)),
        calls_done=done,
        objects=objects,
    )


async def run_soak(
    calls: int, minutes: float, call_seconds: float = 20.0, sample_every_s: float = 5.0, idle_s: float = 5.0, on_sample=None
) -> SoakFigures:
    figures = SoakFigures(calls, minutes, call_seconds)
    messages = bench_fixture(call_seconds)
    async with GeminiLiveEmulator() as gemini:
        server = _Server(gemini, calls, "uvloop")
        try:
            await server.wait_ready()
            pid = server.process.pid
            async with http_client(10) as client:
                started = time.monotonic()
                figures.before = await _sample(client, server.url, pid, started, 0)
                stop_at = started + minutes * 60
                counter = 0

                async def caller(slot: int) -> None:
                    nonlocal counter
                    await asyncio.sleep(slot * min(2.0, call_seconds / 4) / max(1, calls))
                    while time.monotonic() < stop_at:
                        counter += 1
                        emulator = TwilioMediaEmulator(messages, auth_token=server.auth_token)
                        try:
                            target = await emulator.answer(server.url + "/twiml", {"CallSid": f"CA{counter:032x}"})
                            result = await asyncio.wait_for(emulator.play(target), call_seconds + 60)
                            ok = result.close_code in (1000, None) and result.caller_hung_up
                        except Exception:  # counted, never fatal to the soak
                            ok = False
                        figures.calls_done += ok
                        figures.calls_failed += not ok

                callers = [asyncio.create_task(caller(i)) for i in range(calls)]
                while not all(c.done() for c in callers):
                    await asyncio.sleep(sample_every_s if time.monotonic() < stop_at else 1.0)
                    sample = await _sample(client, server.url, pid, started, figures.calls_done)
                    figures.samples.append(sample)
                    if on_sample is not None:
                        on_sample(sample)
                await asyncio.gather(*callers)
                await asyncio.sleep(idle_s)
                figures.after_idle = await _sample(client, server.url, pid, started, figures.calls_done)
        finally:
            server.stop()
    return figures


def soak_as_dict(figures: SoakFigures) -> dict[str, Any]:
    return asdict(figures)


def write_json(path: Path, figures: SoakFigures) -> None:
    path.write_text(json.dumps(soak_as_dict(figures), indent=2) + "\n")
