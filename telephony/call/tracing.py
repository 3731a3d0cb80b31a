"""OpenTelemetry traces of calls: one trace per call, with a span per turn (the caller's speech
ended -> the agent's first audio at the caller's phone), per tool call, per Gemini connection
(and reconnection) and per model stall, each with the call's and stream's SIDs.

Exported by the standard variables (`OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`, ...)
over OTLP/HTTP; with none set, nothing is made. Nothing runs on the audio path: the call span
opens when the call starts (its trace id goes into every log line of the call), and the rest
are written when the call ends, from its record, with the times it holds.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

    from telephony.call.record import CallRecord

log = logging.getLogger("telephony.tracing")

_tracer: Tracer | None = None
_provider: Any = None
_configured = False


def wanted() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true" or os.environ.get("OTEL_TRACES_EXPORTER", "") == "none":
        return False
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def tracer() -> Tracer | None:
    """The tracer when traces are exported, else None (set up on first use)."""
    global _tracer, _provider, _configured
    if _configured:
        return _tracer
    _configured = True
    if not wanted():
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        log.warning("OTEL_EXPORTER_OTLP_* is set but OpenTelemetry is not installed (%s): no traces", exc.name)
        return None
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", "telephony")}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _provider, _tracer = provider, provider.get_tracer("telephony")
    return _tracer


def reset() -> None:
    """Send what is pending and forget the set-up (shutdown; tests that change the environment)."""
    global _tracer, _provider, _configured
    if _provider is not None:
        _provider.shutdown()
    _tracer, _provider, _configured = None, None, False


def _ns(record: CallRecord, at_ms: float) -> int:
    return int(record.started_at * 1e9 + at_ms * 1e6)


class CallTrace:
    """One call's trace: `begin` when it starts, `end` with its record when it is over."""

    def __init__(self) -> None:
        self.span: Span | None = None

    def begin(self, record: CallRecord) -> str | None:
        """Opens the call's span; returns its trace id (hex) for the logs, or None."""
        chosen = tracer()
        if chosen is None:
            return None
        self.span = chosen.start_span("call", start_time=_ns(record, 0), attributes=_sids(record))
        return format(self.span.get_span_context().trace_id, "032x")

    def end(self, record: CallRecord) -> None:
        span, chosen = self.span, tracer()
        if span is None or chosen is None:
            return
        from opentelemetry import trace

        context = trace.set_span_in_context(span)
        sids = _sids(record)
        for connection in getattr(record, "connections", []):
            name = "gemini.connect" if connection["kind"] == "connect" else "gemini.reconnect"
            start = _ns(record, connection["at_ms"])
            child = chosen.start_span(name, context=context, start_time=start, attributes=sids | _plain(connection))
            child.end(end_time=start + int(connection["took_ms"] * 1e6))
        for number, (caller_end, agent_start) in enumerate(_turns(record), 1):
            child = chosen.start_span("turn", context=context, start_time=_ns(record, caller_end), attributes=sids | {"turn": number})
            child.set_attribute("response_ms", agent_start - caller_end)
            child.end(end_time=_ns(record, agent_start))
        for tool in record.tool_calls:  # written down when its result came: it started `duration_ms` before
            attributes = sids | {"tool.name": tool.name, "tool.error": tool.error or ""}
            began_ms = tool.at_ms - (tool.duration_ms or 0)
            child = chosen.start_span(f"tool {tool.name}", context=context, start_time=_ns(record, began_ms), attributes=attributes)
            child.end(end_time=_ns(record, tool.at_ms))
        for stall in record.stalls:
            at_ms = float(stall.get("at_ms", 0))
            child = chosen.start_span("gemini.stall", context=context, start_time=_ns(record, at_ms), attributes=sids | _plain(stall))
            child.end(end_time=_ns(record, at_ms + float(stall.get("silence_ms", 0))))
        span.set_attribute("outcome", record.outcome or "completed")
        span.set_attribute("end_reason", record.end_reason)
        span.end(end_time=int((record.ended_at or record.started_at) * 1e9))
        self.span = None


def _sids(record: CallRecord) -> dict[str, Any]:
    return {"call_sid": record.call_sid or "", "stream_sid": record.stream_sid or "", "agent": record.parameters.get("agent", "")}


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if isinstance(v, (str, bool, int, float))}


def _turns(record: CallRecord) -> list[tuple[int, int]]:
    """(the caller's speech ended, the agent's first audio at the phone) for each answer, from
    who was heard when (`CallRecord.speech`)."""
    turns = []
    caller_end: int | None = None
    for who, start, end, _ in sorted(record.speech, key=lambda item: item[1]):
        if who == "caller":
            caller_end = end
        elif who == "agent" and caller_end is not None and start >= caller_end:
            turns.append((caller_end, start))
            caller_end = None
    return turns
