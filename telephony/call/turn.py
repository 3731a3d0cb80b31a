"""The agent's turn, as one object: what the call knows about the reply being spoken.

A turn opens with its first audio and closes at `turnComplete` (the final one, on Extended
Thinking) or `interrupted`. While it is open the core counts its audio, remembers where in
the playout it began (so that a barge-in knows how much of it the caller heard), its
transcript line (cut to what was heard) and how long the caller waited for it. Its log line
is written once the reply has been played out, not when it was generated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from telephony.call.record import CallRecord, TranscriptLine


@dataclass
class AgentTurn:
    open: bool = False
    """Audio of this reply is arriving (until `turnComplete` or `interrupted`)."""
    discarding: bool = False
    """The caller cut the agent off while Gemini was still generating: the rest of that
    reply is dropped until Gemini says the turn ended or was interrupted."""
    working: bool = False
    """Extended Thinking said IN_PROGRESS: the agent's turn goes on after a filler."""
    audio_ms: float = 0.0
    """Agent audio of this turn received so far."""
    started_at: float | None = None
    """When its first audio arrived here (call time, as the core is fed)."""
    start_position_ms: float = 0.0
    """Where in the call's playout (sent + held) the turn's first audio sits."""
    heard_from_ms: float = 0.0
    """Call time from which the caller hears it (after what is ahead of it has played)."""
    latency_ms: float | None = None
    """From the end of the caller's speech to the reply's first audio here (our side of their wait)."""
    line: TranscriptLine | None = None
    """Its transcript line (cut to what was heard on a barge-in)."""
    log_pending: bool = False
    """Complete but not yet played out: logged once the caller has heard it."""

    def begin(self, now: float, latency_ms: float | None, position_ms: float, heard_from_ms: float) -> None:
        """Its first audio arrived: at `position_ms` of the playout, heard from `heard_from_ms`."""
        self.open = True
        self.started_at = now
        self.latency_ms = latency_ms
        self.audio_ms = 0.0
        self.start_position_ms = position_ms
        self.heard_from_ms = heard_from_ms
        self.line = None

    def stop(self) -> None:
        """The model ended or abandoned the reply (interrupted, reconnected)."""
        self.discarding = False
        self.open = False
        self.working = False

    def played_out(self, record: CallRecord, log: logging.Logger | logging.LoggerAdapter[Any]) -> None:
        """The reply was played to its end: its log line and heard span, once."""
        if self.log_pending:
            self.log_pending = False
            self.write_down(record, log, "complete")
            self.audio_ms = 0.0

    def write_down(
        self, record: CallRecord, log: logging.Logger | logging.LoggerAdapter[Any], how: str, heard_ms: float | None = None
    ) -> None:
        """What the caller heard of this reply (all of it, or `heard_ms` when cut off), in
        the record and the log."""
        span_ms = self.audio_ms if heard_ms is None else heard_ms
        record.heard("agent", self.heard_from_ms, self.heard_from_ms + span_ms, heard_ms is not None)
        extra: dict[str, Any] = {"turn": "agent", "duration_ms": round(self.audio_ms), "ended": how}
        if self.latency_ms is not None:
            extra["latency_ms"] = round(self.latency_ms)
        after = f", {self.latency_ms / 1000:.2f} s after the caller stopped" if self.latency_ms is not None else ""
        if heard_ms is not None:
            extra["heard_ms"] = round(heard_ms)
            log.info("agent turn: interrupted after %.1f of %.1f s%s", heard_ms / 1000, self.audio_ms / 1000, after, extra=extra)
        else:
            log.info("agent turn: %.1f s%s", self.audio_ms / 1000, after, extra=extra)
        self.latency_ms = None


@dataclass
class CallerTurn:
    """The caller's side of the turn-taking, as local voice detection saw it."""

    spoke_last: bool = False
    """Their speech ended after the last agent audio: an answer is due."""
    started_at: float | None = None
    """Onset of the speech going on now (call time)."""
    stopped_at: float | None = None
    """End of their last speech (call time, the trailing silence taken off)."""
