"""What a call leaves behind: its transcript and timings (one JSON line per call), and an
optional recording of every inbound Twilio message in the fixture format."""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, Any

MAX_TRANSCRIPT_LINES = 2000
"""Per-call state is bounded: a very long call keeps its last 2000 lines (and counts the rest)."""
MAX_LINE_CHARS = 8000


@dataclass
class TranscriptLine:
    at_ms: int
    speaker: str  # "caller" | "agent" | "keypad" | "system"
    text: str
    interrupted: bool = False
    """For an agent line: the caller talked over it; `text` is cut to what they heard."""
    end_ms: int | None = None
    """When the turn ended (its last words, or the end of the exchange)."""

    def cut_to(self, heard_fraction: float) -> None:
        """The caller talked over this line: keep the part of it they heard."""
        keep = max(0, min(len(self.text), round(len(self.text) * heard_fraction)))
        cut = self.text[:keep]
        if keep < len(self.text) and " " in cut:
            cut = cut[: cut.rindex(" ")]  # whole words where the language has them
        self.text = cut.rstrip() + ("…" if keep < len(self.text) else "")
        self.interrupted = True


@dataclass
class ToolRecord:
    """One tool call the model made, and what it got back."""

    name: str
    arguments: dict[str, Any]
    response: dict[str, Any]
    at_ms: int
    duration_ms: float | None = None
    error: str | None = None


_SAMPLING = random.Random(0)
"""One generator for every call's reservoir (a Mersenne Twister is 2.5 kB; a record has two)."""


class LatencySamples:
    """One call's latencies (ms): exact count, mean and max, and percentiles from a uniform
    sample of at most `keep` values (reservoir sampling). An hour of agent speech is ~90,000
    chunks; keeping them all would cost megabytes per call, this costs ~40 kB at most."""

    def __init__(self, keep: int = 1000) -> None:
        self.keep = keep
        self.count = 0
        self.total = 0.0
        self.max = 0.0
        self.sample: list[float] = []
        self._random = _SAMPLING

    def append(self, ms: float) -> None:
        self.count += 1
        self.total += ms
        self.max = max(self.max, ms)
        if len(self.sample) < self.keep:
            self.sample.append(ms)
        else:
            slot = self._random.randrange(self.count)
            if slot < self.keep:
                self.sample[slot] = ms

    def __len__(self) -> int:
        return self.count

    def summary(self) -> dict[str, float] | None:
        if not self.count:
            return None
        ordered = sorted(self.sample)

        def pick(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

        return {"n": self.count, "p50": pick(0.5), "p95": pick(0.95), "max": round(self.max, 3), "mean": round(self.total / self.count, 3)}


@dataclass
class CallRecord:
    """Per-call facts, kept by the call core and written when the call ends."""

    call_sid: str | None = None
    stream_sid: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    end_reason: str = ""
    outcome: str = ""
    """How it ended: completed, gemini_failed, time_limit, bad_token, ... (set at the end)."""
    transcript: list[TranscriptLine] = field(default_factory=list)
    frames_in: int = 0
    frames_out: int = 0
    interruptions: int = 0
    reconnects: int = 0
    malformed: int = 0
    transcript_lines_dropped: int = 0
    """Lines dropped from the start of a very long call's transcript (see MAX_TRANSCRIPT_LINES)."""
    agent_audio_ms: float = 0.0
    agent_audio_heard_ms: float = 0.0
    interrupted_to_clear_ms: LatencySamples = field(default_factory=LatencySamples)
    chunk_to_frame_ms: LatencySamples = field(default_factory=LatencySamples)
    errors: list[str] = field(default_factory=list)
    tool_calls: list[ToolRecord] = field(default_factory=list)
    speech: list[tuple[str, int, int, bool]] = field(default_factory=list)
    """Who was heard when: (caller|agent, start ms, end ms, cut off) from the audio itself
    (voice detection for the caller, playout for the agent): the dashboard's timeline."""
    usage: dict[str, int] = field(default_factory=dict)
    """Tokens over the call: prompt, response, total, and per modality (prompt_audio, ...)."""
    recording: str | None = None
    """The call's stereo recording (caller left, agent right), when recordings are on."""
    answered_by: str | None = None
    """Twilio's answering-machine detection on an outbound call: human, machine_end_beep, ..."""
    voicemail_left: bool = False
    analysis: dict[str, Any] | None = None
    """The post-call analysis (summary, success, the agent's fields), once made."""
    connections: list[dict[str, Any]] = field(default_factory=list)
    """Gemini connections: kind (connect, resumed, fresh), at_ms, took_ms, reason (traces)."""
    stalls: list[dict[str, Any]] = field(default_factory=list)
    """Silent stalls of the model: kind, the recovery step that answered (or gave_up), and
    the silence the caller heard (`telephony.call.stall`)."""
    _open_speaker: str | None = None
    _caller_line: TranscriptLine | None = None
    """The caller's line of the exchange still going on (until the agent's turn ends)."""
    _clock_ms: int = 0

    def set_clock(self, ms: int) -> None:
        """The call's own time (ms since its socket opened), set by the call core from the
        `now` it is fed: the record reads no clock, so a test pins every time in it."""
        self._clock_ms = ms

    def elapsed_ms(self) -> int:
        return self._clock_ms

    def say(self, speaker: str, text: str) -> TranscriptLine | None:
        """Add transcript text; returns the line it went into. Gemini sends transcripts in
        sub-word fragments ("Hel", "lo"), so pieces of one turn are joined exactly as sent:
        no added spaces (right for Chinese and Japanese too)."""
        if not text:
            return None
        if self._open_speaker == speaker and self.transcript:
            self.transcript[-1].text = (self.transcript[-1].text + text)[:MAX_LINE_CHARS]  # a lone " " is content
            return self.transcript[-1]
        if speaker == "caller" and self._caller_line is not None:
            # The caller's words are often transcribed after the agent's answer has begun:
            # they belong to the caller's turn before it, not in the middle of the answer.
            self._caller_line.text = (self._caller_line.text + text)[:MAX_LINE_CHARS]
            return self._caller_line
        if not text.strip():
            return None
        line = TranscriptLine(self.elapsed_ms(), speaker, text.lstrip())
        if speaker == "caller" and self._open_speaker == "agent" and self.transcript:
            line.at_ms = self.transcript[-1].at_ms
            self.transcript.insert(len(self.transcript) - 1, line)
        else:
            self.transcript.append(line)
            self._open_speaker = speaker
        if speaker == "caller":
            self._caller_line = line
        if len(self.transcript) > MAX_TRANSCRIPT_LINES:  # a call of many hours: keep the recent part
            del self.transcript[0]
            self.transcript_lines_dropped += 1
        return line

    def heard(self, who: str, start_ms: float, end_ms: float, cut_off: bool = False) -> None:
        self.speech.append((who, int(max(0, start_ms)), int(max(0, end_ms)), cut_off))
        if len(self.speech) > MAX_TRANSCRIPT_LINES:
            del self.speech[0]

    def add_usage(self, counts: dict[str, int | None]) -> None:
        """Add one turn's token counts (each `usageMetadata` covers the turn it follows)."""
        for key, value in counts.items():
            if value:
                self.usage[key] = self.usage.get(key, 0) + int(value)

    def end_turn(self) -> None:
        if self._open_speaker is not None and self.transcript and self.transcript[-1].end_ms is None:
            self.transcript[-1].end_ms = self.elapsed_ms()
        self._open_speaker = None
        self._caller_line = None

    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for item in fields(self):
            if item.name.startswith("_"):
                continue
            value = getattr(self, item.name)
            if isinstance(value, LatencySamples):
                data[item.name] = value.summary()
            elif item.name in ("transcript", "tool_calls"):
                data[item.name] = [asdict(line) for line in value]
            else:
                data[item.name] = value
        data["duration_s"] = round(((self.ended_at or time.time()) - self.started_at), 3)
        return data

    def transcript_text(self) -> str:
        return "\n".join(
            f"[{line.at_ms / 1000:7.2f} s] {line.speaker}: {line.text}{' (interrupted)' if line.interrupted else ''}"
            for line in self.transcript
        )


def append_call_log(directory: Path, record: CallRecord) -> Path:
    """Append one JSON line for the call to DIRECTORY/calls.jsonl (blocking: run in a thread)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "calls.jsonl"
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record.summary(), default=str) + "\n")
    return path


class CallRecorder:
    """Writes every inbound Twilio message of one call, verbatim, to DIR/<CallSid>.jsonl.

    Messages before `start` (the `connected` message) are held until the CallSid is known.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path: Path | None = None
        self._early: list[str] = []
        self._file: IO[str] | None = None

    def open(self, call_sid: str) -> None:
        """Blocking (creates the file): run in a thread."""
        self.directory.mkdir(parents=True, exist_ok=True)
        safe = "".join(c for c in call_sid if c.isalnum()) or "call"
        self.path = self.directory / f"{safe}.jsonl"
        self._file = self.path.open("w", encoding="utf-8")
        for line in self._early:
            self._file.write(line + "\n")
        self._early.clear()

    def write(self, raw: str) -> None:
        if self._file is None:
            self._early.append(raw)
        else:
            self._file.write(raw + "\n")

    def close(self) -> None:
        """Blocking (flushes to disk): run in a thread."""
        if self._file is not None:
            self._file.close()
            self._file = None
