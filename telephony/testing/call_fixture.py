"""Recorded calls: Twilio's inbound Media Streams messages, one JSON message per line.

A fixture holds exactly what Twilio sends (`connected`, `start`, `media` every 20 ms with
real mu-law payloads and timestamps, `dtmf`, `stop`), so it can be replayed into any
`/media-stream` endpoint. `mark` echoes found in a recording are responses to what the
server sent; a replayer regenerates those itself and skips them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from telephony.audio.mulaw import decode_mulaw, encode_mulaw
from telephony.twilio.media_streams import (
    Connected,
    Dtmf,
    DtmfDetails,
    Media,
    MediaDetails,
    Start,
    StartDetails,
    Stop,
    StopDetails,
    TwilioProtocolError,
    parse_message,
)

FRAME_SAMPLES = 160  # 20 ms at 8 kHz


def fake_sid(prefix: str, seed: str) -> str:
    """A deterministic Twilio-shaped SID (prefix + 32 hex digits)."""
    return prefix + hashlib.sha256(seed.encode()).hexdigest()[:32]


@dataclass
class CallFixtureBuilder:
    """Builds a recorded call frame by frame, as Twilio would have sent it."""

    name: str
    custom_parameters: dict[str, str] = field(default_factory=dict)
    noise_dbfs: float = -66.0
    """Level of the line noise in silent stretches (a real line is never digitally silent)."""

    def __post_init__(self) -> None:
        self.account_sid = fake_sid("AC", "account")
        self.call_sid = fake_sid("CA", f"call:{self.name}")
        self.stream_sid = fake_sid("MZ", f"stream:{self.name}")
        self._seq = 0
        self._chunk = 0
        self._lines: list[str] = [Connected().to_json()]
        self._rng = np.random.default_rng(int(hashlib.sha256(self.name.encode()).hexdigest()[:8], 16))
        self._lines.append(
            Start(
                sequence_number=self._next_seq(),
                stream_sid=self.stream_sid,
                start=StartDetails(
                    account_sid=self.account_sid,
                    call_sid=self.call_sid,
                    stream_sid=self.stream_sid,
                    tracks=["inbound"],
                    custom_parameters=self.custom_parameters,
                ),
            ).to_json()
        )

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    @property
    def duration_ms(self) -> int:
        return self._chunk * 20

    def speech(self, samples_8k: np.ndarray) -> CallFixtureBuilder:
        """Add caller audio (int16 at 8 kHz), padded with line noise to whole 20 ms frames."""
        pad = (-len(samples_8k)) % FRAME_SAMPLES
        if pad:
            samples_8k = np.concatenate([samples_8k.astype(np.int16), self._noise(pad)])
        mulaw = encode_mulaw(samples_8k.astype("<i2").tobytes())
        for i in range(0, len(mulaw), FRAME_SAMPLES):
            self._media(mulaw[i : i + FRAME_SAMPLES])
        return self

    def silence(self, ms: int) -> CallFixtureBuilder:
        """Add `ms` of line noise (the caller says nothing)."""
        return self.speech(self._noise(ms * 8))

    def dtmf(self, digit: str) -> CallFixtureBuilder:
        """Add a keypad press as Twilio reports it (the tone itself is removed from the audio)."""
        self._lines.append(Dtmf(sequence_number=self._next_seq(), stream_sid=self.stream_sid, dtmf=DtmfDetails(digit=digit)).to_json())
        return self

    def stop(self) -> CallFixtureBuilder:
        """The caller hangs up."""
        self._lines.append(
            Stop(
                sequence_number=self._next_seq(),
                stream_sid=self.stream_sid,
                stop=StopDetails(account_sid=self.account_sid, call_sid=self.call_sid),
            ).to_json()
        )
        return self

    def lines(self) -> list[str]:
        return list(self._lines)

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(self._lines) + "\n", encoding="utf-8")
        return path

    def _media(self, frame: bytes) -> None:
        self._chunk += 1
        self._lines.append(
            Media(
                sequence_number=self._next_seq(),
                stream_sid=self.stream_sid,
                media=MediaDetails(track="inbound", chunk=self._chunk, timestamp=(self._chunk - 1) * 20, payload=frame),
            ).to_json()
        )

    def _noise(self, n: int) -> np.ndarray:
        if self.noise_dbfs is None:
            return np.zeros(n, dtype=np.int16)
        amplitude = 32768 * 10 ** (self.noise_dbfs / 20)
        return np.rint(self._rng.normal(0, amplitude, n)).astype(np.int16)


@dataclass(frozen=True)
class FixtureMessage:
    """One line of a recorded call and when (ms since stream start) Twilio sent it."""

    at_ms: int
    text: str
    event: str


def read_fixture(path: str | Path) -> list[FixtureMessage]:
    """Read a recorded call; non-media messages are timed by the media frame before them.

    Raises `TwilioProtocolError` naming the line for anything that is not a Twilio message.
    """
    return parse_fixture_lines(_lines(path), source=str(path))


def parse_fixture_lines(lines: Iterable[str], source: str = "fixture") -> list[FixtureMessage]:
    """The same for lines already in memory (e.g. from `CallFixtureBuilder.lines()`)."""
    out: list[FixtureMessage] = []
    at_ms = 0
    for number, line in enumerate(lines, start=1):
        try:
            message = parse_message(line)
        except TwilioProtocolError as exc:
            raise TwilioProtocolError(f"{source}:{number}: {exc}") from None
        if isinstance(message, Media):
            at_ms = message.media.timestamp
        out.append(FixtureMessage(at_ms=at_ms, text=line, event=message.event))
    return out


def _lines(path: str | Path) -> Iterator[str]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line:
                yield line


def caller_stays(path: str | Path, seconds: float) -> list[FixtureMessage]:
    """A recorded call whose caller stays on the line `seconds` longer before hanging up
    (in silence), so that an answer that comes late is heard late, not cut by the hang-up."""
    return [replace(m, at_ms=m.at_ms + int(seconds * 1000)) if m.event == "stop" else m for m in read_fixture(path)]


def caller_audio(path: str | Path) -> bytes:
    """All inbound mu-law audio of a recorded call, concatenated (what the caller said)."""
    audio = bytearray()
    for message in read_fixture(path):
        if message.event == "media":
            parsed = parse_message(message.text)
            assert isinstance(parsed, Media)
            audio += parsed.media.payload
    return bytes(audio)


__all__ = [
    "CallFixtureBuilder",
    "FixtureMessage",
    "caller_audio",
    "caller_stays",
    "fake_sid",
    "read_fixture",
]


def speech_spans_s(path: str | Path, threshold: float = 500.0, gap_s: float = 0.4) -> list[tuple[float, float]]:
    """(start, end) in call seconds of each utterance of the recorded caller: loud 20 ms
    frames, utterances split by at least `gap_s` of quiet (to measure on the wire)."""
    pcm = np.frombuffer(decode_mulaw(caller_audio(path)), dtype="<i2").astype(np.float64)
    spans: list[tuple[float, float]] = []
    quiet = gap_s
    for index, start in enumerate(range(0, len(pcm) - 160, 160)):
        at = round(index * 0.02, 2)
        if float(np.sqrt(np.mean(pcm[start : start + 160] ** 2))) > threshold:
            if quiet >= gap_s:
                spans.append((at, at + 0.02))
            else:
                spans[-1] = (spans[-1][0], round(at + 0.02, 2))
            quiet = 0.0
        else:
            quiet += 0.02
    return spans


def speech_onsets_s(path: str | Path, threshold: float = 500.0, gap_s: float = 0.4) -> list[float]:
    """Call seconds at which the recorded caller starts each utterance."""
    return [start for start, _ in speech_spans_s(path, threshold, gap_s)]
