"""The agent's turn, as one object: what the call knows about the reply being spoken.

A turn opens with its first audio and closes at `turnComplete` (the final one, on Extended
Thinking) or `interrupted`. While it is open the core counts its audio, remembers where in
the playout it began (so that a barge-in knows how much of it the caller heard), its
transcript line (cut to what was heard) and how long the caller waited for it. Its log line
is written once the reply has been played out, not when it was generated.
"""

from __future__ import annotations

from dataclasses import dataclass

from telephony.call_record import TranscriptLine


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
