"""A model script: what the emulated model does at each caller turn (call these tools with
these arguments, await their results, say these words), so that your own agent's tools run
offline. Used by conversation tests, `telephony eval --emulate-gemini`, and a YAML file given
to `telephony emulate gemini --script` or `telephony serve --emulate-gemini --script`:

    opening: {say: Maple Clinic, good morning. How can I help?}   # optional: the greeting
    steps:                                                        # one per caller turn
      - say: Of course. Which day would you like?
      - tool: free_slots
        args: {day: "2027-01-05"}
        say: On the fifth I have nine, half past nine and ten.

A bare list is the `steps`. After the last step the model stays silent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from telephony.agents.warm_transfer import READ_ALOUD
from telephony.testing.caller_speech import speech_like_24k
from telephony.testing.scripted_model import CallerTurn, EmulatedToolCall, Reply
from telephony.testing.yaml_files import YamlFileError, load_validated


@dataclass(frozen=True)
class ModelStep:
    """What the emulated model does at one caller turn: call `tool` with `args` (or each of
    `tools`), await the results, then `say` the words. Ignored against the real model."""

    say: str = ""
    tool: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    tools: Sequence[tuple[str, dict[str, Any]]] = ()

    def calls(self) -> tuple[EmulatedToolCall, ...]:
        listed = [(self.tool, self.args)] if self.tool else []
        return tuple(EmulatedToolCall(name, dict(args)) for name, args in [*listed, *self.tools] if name)


NUDGE_REPLIES = {
    "still there": "Hello, are you still there?",
    "goodbye now": "I will let you go now. Goodbye!",
    "time limit": "Just so you know, we have about a minute left.",
    "voicemail message": "Hello, this is Maple Clinic about your appointment. Please call us back. Goodbye.",
}
"""What the scripted model says when the call nudges it (caller silence, the time limit), as
a real model would answer those instructions."""


class ScriptedModel:
    """The emulated model's mind: the n-th caller turn gets the n-th step; the greeting the
    server asks for gets `opening`. One per call (its count of turns is the call's)."""

    def __init__(self, steps: Sequence[ModelStep], opening: ModelStep | None = None) -> None:
        self.steps = list(steps)
        self.opening = opening
        self.lines: list[str] = []
        """What the caller said, in order, when known (the emulator transcribes turn n as
        lines[n]; otherwise it describes the audio)."""
        self.turns_heard = 0
        self.replies = 0
        self.owed_audio_ms = 0.0
        """Agent audio of every reply so far (the server's record catches up with it)."""
        self.owed_tool_results = 0

    def reply(self, turn: CallerTurn) -> Reply | None:
        if turn.audio16k is None and (turn.text or "").startswith(READ_ALOUD):  # a warm transfer's briefing
            return self._reply(ModelStep(say=(turn.text or "")[len(READ_ALOUD) :]), heard=None)
        if turn.audio16k is None:  # text: the greeting the server asks for, or a nudge
            if self.replies == 0 and self.opening is not None:
                return self._reply(self.opening, heard=None)
            said = next((words for cue, words in NUDGE_REPLIES.items() if cue in (turn.text or "")), None)
            return self._reply(ModelStep(say=said), heard=None) if said else None
        index = self.turns_heard
        self.turns_heard += 1
        heard = self.lines[index] if index < len(self.lines) else None
        step = self.steps[index] if index < len(self.steps) else ModelStep()
        return self._reply(step, heard)

    def _reply(self, step: ModelStep, heard: str | None) -> Reply:
        self.replies += 1
        audio = speech_like_24k(step.say) if step.say else None
        # What the server must have received before the reply counts as made: the emulator
        # having sent it is not enough on a busy machine.
        self.owed_audio_ms += 0.0 if audio is None else len(audio) / 24
        self.owed_tool_results += len(step.calls())
        return Reply(audio24k=audio, transcript=step.say, tool_calls=step.calls(), speech_delay_s=0.0, heard=heard)


class StepSpec(BaseModel):
    """A `ModelStep` as written in YAML."""

    model_config = ConfigDict(extra="forbid")
    say: str = ""
    tool: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)

    def step(self) -> ModelStep:
        return ModelStep(say=self.say, tool=self.tool, args=dict(self.args))


class ScriptFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    opening: StepSpec | None = None
    steps: list[StepSpec] = Field(default_factory=list)


class ModelScriptError(YamlFileError):
    """A mistake in a model script file, as one line."""


@dataclass(frozen=True)
class ModelScript:
    """A loaded script file: make a `ScriptedModel` per call with `model()`."""

    steps: tuple[ModelStep, ...]
    opening: ModelStep | None = None

    def model(self) -> ScriptedModel:
        return ScriptedModel(self.steps, self.opening)


def load_model_script(path: Path) -> ModelScript:
    script = load_validated(
        path, ScriptFile, "steps", "step", ModelScriptError, "`steps:` with a list of steps (say, tool, args), or such a list"
    )
    if not script.steps and script.opening is None:
        raise ModelScriptError(f"{path}: no steps: write what the model does at each caller turn")
    return ModelScript(tuple(s.step() for s in script.steps), script.opening.step() if script.opening else None)
