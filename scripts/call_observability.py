"""Shows, offline, what a call leaves for the business's systems: the call.ended event as a
receiver gets it, the call's trace as a tree, and where a keypad PIN went (nowhere).

    .venv/bin/python scripts/call_observability.py

A shop agent with a tool and a PIN typed on the keypad takes one call (the Twilio and Gemini
emulators, our server, a local event receiver and OTLP collector, all on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import FastAPI, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from telephony import Agent, Keypad
from telephony.audio.dtmf_detect import DtmfToneDetector
from telephony.audio.wav import read_wav, resample_whole
from telephony.call import tracing
from telephony.testing import Conversation, ModelStep
from telephony.web.server import running_server

PIN = "9041"


def shop() -> Agent:
    agent = Agent("shop", instructions="You answer questions about orders.")

    @agent.tool
    def order_status(order: int, pin: Annotated[str, Keypad(length=4, label="PIN")]) -> dict:
        """An order's state, once the caller has typed their PIN.

        Args:
            order: The order number.
        """
        return {"order": order, "state": "shipped" if pin == PIN else "unknown"}

    return agent


def tones(pcm: np.ndarray, rate: int) -> int:
    samples = resample_whole(pcm, rate, 8000) if rate != 8000 else pcm
    detector = DtmfToneDetector()
    return sum(detector.has_tone(samples[i : i + 160]) for i in range(0, len(samples) - 159, 160))


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.text: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.text.append(record.getMessage() + " " + json.dumps(record.__dict__, default=str))


async def main() -> None:
    events: list[dict] = []
    spans: list = []
    receiver, collector = FastAPI(), FastAPI()

    @receiver.post("/events")
    async def take_event(request: Request) -> Response:
        events.append(json.loads(await request.body()))
        return Response(status_code=204)

    @collector.post("/v1/traces")
    async def take_spans(request: Request) -> Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.body())
        spans.extend(span for resource in message.resource_spans for scope in resource.scope_spans for span in scope.spans)
        return Response(status_code=200)

    lines = Lines()
    logging.getLogger("telephony").addHandler(lines)
    logging.getLogger("telephony").setLevel(logging.DEBUG)
    scratch = Path(tempfile.mkdtemp(prefix="observability-"))
    async with running_server(receiver) as events_url, running_server(collector) as otlp_url:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"], os.environ["OTEL_BSP_SCHEDULE_DELAY"] = otlp_url, "100"
        tracing.reset()
        model = [
            ModelStep(say="Sure. Please type your PIN on the keypad."),
            ModelStep(tool="order_status", args={"order": 42}, say="Order forty-two has shipped."),
        ]
        settings = {
            "events_url": f"{events_url}/events",
            "database_url": f"sqlite:///{scratch / 'calls.db'}",
            "record_audio": True,
            "recordings_dir": scratch / "recordings",
        }
        async with Conversation(shop(), model, speed=1.0, **settings) as call:
            call.gemini.record_messages = True
            await call.caller("Where is my order forty-two?")
            await call.caller("OK.", keypad=PIN)
            record = await call.hang_up()
            connection = call.gemini.connections[0]
            while not any(e["type"] == "call.ended" for e in events):
                await asyncio.sleep(0.05)
        tracing.reset()  # sends what is pending
        while not any(span.name == "call" for span in spans):
            await asyncio.sleep(0.05)

    ended = next(e for e in events if e["type"] == "call.ended")
    print("== call.ended, as the receiver got it ==")
    shown = ended | {"data": ended["data"] | {"transcript": ["..."]}}
    print(json.dumps(shown, indent=1))
    for line in ended["data"]["transcript"]:  # the transcript, a line each
        print(f"  {json.dumps(line)}")
    print("\n== the call's trace ==")
    root = next(span for span in spans if span.name == "call")
    print(f"call  {(root.end_time_unix_nano - root.start_time_unix_nano) / 1e6:8.0f} ms  trace {root.trace_id.hex()}")
    for span in sorted((s for s in spans if s.parent_span_id == root.span_id), key=lambda s: s.start_time_unix_nano):
        start = (span.start_time_unix_nano - root.start_time_unix_nano) / 1e6
        print(f"  └─ {span.name:<20} at {start:7.0f} ms, {(span.end_time_unix_nano - span.start_time_unix_nano) / 1e6:6.0f} ms")
    print("\n== where the PIN went ==")
    assert record is not None and record.recording
    samples, rate = read_wav(record.recording)
    checks = {
        "Gemini messages (text, tool results, content)": PIN in json.dumps(connection.client_messages) + json.dumps(connection.texts),
        "Gemini audio: frames with a keypad tone": tones(np.frombuffer(bytes(connection.caller_audio), dtype="<i2"), 16000),
        "log lines": sum(PIN in line for line in lines.text),
        "transcript": PIN in record.transcript_text(),
        "recording: frames with a keypad tone": tones(samples[:, 0] if samples.ndim == 2 else samples, rate),
        "call.ended event": PIN in json.dumps(ended),
    }
    for place, found in checks.items():
        print(f"  {place:<48} {found}")
    print(f"  keypad lines in the transcript: {[line.text for line in record.transcript if line.speaker == 'keypad']}")
    sys.exit(1 if any(checks.values()) else 0)


if __name__ == "__main__":
    asyncio.run(main())
