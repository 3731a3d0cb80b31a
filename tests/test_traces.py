"""Call traces: with OTEL_EXPORTER_OTLP_ENDPOINT set, a call's spans reach an OTLP/HTTP receiver
(here a local one that parses what the real exporter sends): the call, its turns, its tool
call, its Gemini connection, all children of the call span, with the SIDs; log lines of the
call carry its trace id. With the variable unset, nothing is made."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from test_events import until

from telephony.call import tracing
from telephony.testing import Conversation, ModelStep
from telephony.web.server import running_server

from helpers.agents import shop_agent


def collector() -> tuple[FastAPI, list]:
    spans: list = []
    app = FastAPI()

    @app.post("/v1/traces")
    async def take(request: Request) -> Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.body())
        for resource in message.resource_spans:
            for scope in resource.scope_spans:
                spans.extend(scope.spans)
        return Response(status_code=200)

    return app, spans


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_a_calls_spans_reach_the_otlp_receiver_as_one_tree(monkeypatch):
    app, spans = collector()
    logs, logger = Kept(), logging.getLogger("telephony")  # on the logger itself: another test may have stopped propagation
    logger.addHandler(logs)
    monkeypatch.setattr(logger, "level", logging.INFO)
    async with running_server(app) as url:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        tracing.reset()
        try:
            model = [ModelStep(say="Which order?"), ModelStep(tool="order_status", args={"order": 42}, say="It has shipped.")]
            async with Conversation(shop_agent(), model, speed=1.0) as call:  # real time: turns are timed by the server's clock
                await call.caller("Where is my order?")
                await call.caller("Number forty-two.")
                record = await call.hang_up()
            await until(lambda: any(span.name == "call" for span in spans))
        finally:
            tracing.reset()
            logger.removeHandler(logs)
    (root,) = [span for span in spans if span.name == "call"]
    children = [span for span in spans if span.parent_span_id == root.span_id]
    names = sorted(span.name for span in children)
    assert names == ["gemini.connect", "tool order_status", "turn", "turn"], names
    assert all(span.trace_id == root.trace_id for span in spans)
    attributes = {a.key: a.value.string_value for a in root.attributes}
    assert record is not None and attributes["call_sid"] == record.call_sid and attributes["outcome"] == "completed"
    turns = [span for span in children if span.name == "turn"]
    assert all(0 < span.end_time_unix_nano - span.start_time_unix_nano < 10e9 for span in turns)
    trace_id = root.trace_id.hex()
    assert any(getattr(r, "trace_id", None) == trace_id and getattr(r, "call_sid", None) == record.call_sid for r in logs.records)


def test_without_the_variables_there_is_no_tracer(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    tracing.reset()
    assert tracing.tracer() is None
    tracing.reset()
