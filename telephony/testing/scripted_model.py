"""What the emulated model says: the caller's turns as it hears them, its replies (speech,
transcript, tool calls) and the agents that choose them (an echo, or a script).

    ScriptedAgent([Reply(audio24k=tone24k(1.0), transcript="Hello!")])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from telephony.audio.wav import read_wav, resample_whole

INPUT_RATE = 16000
OUTPUT_RATE = 24000


@dataclass(frozen=True)
class CallerTurn:
    """What the caller just said: an utterance (16 kHz int16) or text."""

    index: int
    audio16k: np.ndarray | None = None
    text: str | None = None

    @property
    def seconds(self) -> float:
        return 0.0 if self.audio16k is None else len(self.audio16k) / INPUT_RATE


@dataclass(frozen=True)
class EmulatedToolCall:
    """A function call the agent makes; the reply continues once the client answers it."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """One agent turn: tool calls first (each awaited), then speech with its transcript."""

    audio24k: np.ndarray | None = None
    transcript: str = ""
    tool_calls: tuple[EmulatedToolCall, ...] = ()
    speech_delay_s: float | None = None
    """Silence before the speech starts, after the tool calls were answered (native-audio
    models often wait 0.5 s to several seconds after a tool response). None: 0, or a
    random 0.5-3 s after tool calls with the realistic profile."""
    heard: str | None = None
    """The inputTranscription for the caller turn this replies to (default: a description
    of the caller's audio)."""
    filler: str | None = None
    """What the model says while a NON_BLOCKING call runs (3.8) or before its background
    work (Extended Thinking); default: the profile's filler."""

    @property
    def seconds(self) -> float:
        return 0.0 if self.audio24k is None else len(self.audio24k) / OUTPUT_RATE


class ModelAgent(Protocol):
    """Decides what the emulated model says. Return None to stay silent. (Not your
    `telephony.Agent`: this one stands in for the model's mind in the emulator.)"""

    def reply(self, turn: CallerTurn) -> Reply | None: ...


Agent = ModelAgent
"""The old name of `ModelAgent`, kept for test kits written against it."""


class EchoAgent:
    """The classic telephony echo test: says back whatever the caller said."""

    def reply(self, turn: CallerTurn) -> Reply | None:
        if turn.audio16k is None or len(turn.audio16k) == 0:
            return None
        audio = resample_whole(turn.audio16k, INPUT_RATE, OUTPUT_RATE)
        return Reply(audio24k=audio, transcript=f"[echo of {turn.seconds:.2f} s]")


def tone24k(seconds: float, freq_hz: float = 440.0, dbfs: float = -12.0) -> np.ndarray:
    """A plain tone at 24 kHz, handy as scripted agent speech."""
    t = np.arange(int(OUTPUT_RATE * seconds)) / OUTPUT_RATE
    return np.rint(32767 * 10 ** (dbfs / 20) * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


class ScriptedAgent:
    """Replies with the given replies in order, one per caller turn; silent when done.

    `replies` items may be `Reply` objects or paths of WAV files (any rate, resampled).
    """

    def __init__(self, replies: Sequence[Reply | str | Path], respond_to_text: bool = False) -> None:
        self._replies = [self._load(r) for r in replies]
        self._next = 0
        self.respond_to_text = respond_to_text
        self.turns: list[CallerTurn] = []

    @staticmethod
    def _load(item: Reply | str | Path) -> Reply:
        if isinstance(item, Reply):
            return item
        samples, rate = read_wav(item)
        return Reply(audio24k=resample_whole(samples, rate, OUTPUT_RATE), transcript=Path(item).stem)

    def heard_history(self, model_turns: int) -> None:
        """A fresh session seeded with a conversation in which the model already spoke
        `model_turns` times: the script goes on from there, as the model would."""
        self._next = max(self._next, min(model_turns, len(self._replies)))

    def take_back(self) -> None:
        """The last reply was never said (its connection died first): it is given again."""
        self._next = max(0, self._next - 1)

    def reply(self, turn: CallerTurn) -> Reply | None:
        self.turns.append(turn)
        if turn.audio16k is None and not self.respond_to_text:
            return None
        if self._next >= len(self._replies):
            return None
        self._next += 1
        return self._replies[self._next - 1]
