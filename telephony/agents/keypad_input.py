"""Tool parameters the caller types on the keypad, which the model never sees.

    from typing import Annotated
    from telephony import Agent, Keypad

    @agent.tool
    async def check_balance(account: str, pin: Annotated[str, Keypad(length=4, label="PIN")]) -> dict:
        \"\"\"The account's balance, once the caller has typed their PIN on the keypad.\"\"\"

The model is not given `pin`: its declaration leaves it out and tells the model to ask the
caller to type it. When the model calls the tool, the call collects the key presses (muting
the caller's audio toward the model while they type, and keypad tones at any time), fills
`pin` with the digits and runs the tool; the model gets only the tool's result. The digits
are in no Gemini message, log line, transcript (masked), recording (silence) or dashboard page.
A timeout or a wrong length goes back to the model as a tool error, so it can ask again.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

from telephony.call.keypad import KeypadRules


@dataclass(frozen=True)
class Keypad:
    """Mark a `str` tool parameter as typed on the keypad: `Annotated[str, Keypad(length=4)]`.
    `length`: exactly so many digits (no end key needed); else `min_length`..`max_length`,
    ended by `end_key` (#). `timeout_s`: from the tool call to the last digit. `label`: what
    the model and the errors call it (default: the parameter's name)."""

    length: int | None = None
    min_length: int = 1
    max_length: int = 32
    end_key: str = "#"
    timeout_s: float = 20.0
    label: str | None = None

    def __post_init__(self) -> None:
        if self.length is not None and not 1 <= self.length <= 64:
            raise ValueError("Keypad(length=...) must be 1-64 digits")
        if not 1 <= self.min_length <= self.max_length <= 64:
            raise ValueError("Keypad: 1 <= min_length <= max_length <= 64")
        if self.end_key not in ("#", "*"):
            raise ValueError("Keypad(end_key=...) must be '#' or '*'")
        if not 1 <= self.timeout_s <= 300:
            raise ValueError("Keypad(timeout_s=...) must be 1-300 seconds")

    def rules(self, parameter: str) -> KeypadRules:
        return KeypadRules(
            length=self.length,
            min_length=self.min_length,
            max_length=self.max_length,
            end_key=self.end_key,
            timeout_s=self.timeout_s,
            label=self.label or parameter.replace("_", " "),
        )

    def how_to_type(self, parameter: str) -> str:
        label = self.label or parameter.replace("_", " ")
        size = f"{self.length} digits" if self.length else f"{self.min_length}-{self.max_length} digits, then {self.end_key}"
        return f"the {label} ({size})"


def keypad_of(annotation: Any) -> Keypad | None:
    """The `Keypad` marker of an `Annotated[str, Keypad(...)]` annotation, if any."""
    if typing.get_origin(annotation) is typing.Annotated:
        for extra in typing.get_args(annotation)[1:]:
            if isinstance(extra, Keypad):
                return extra
    return None


def keypad_note(entries: dict[str, Keypad]) -> str:
    """What the tool's description tells the model about its keypad parameters."""
    typed = " and ".join(keypad.how_to_type(name) for name, keypad in entries.items())
    return (
        f"\n\nThe caller types {typed} on their phone keypad; the digits go straight to this tool and you never "
        "see them. Ask the caller to type it on the keypad now (never to say it aloud), then call this tool at once. "
        "If the tool reports a timeout or a wrong length, ask them to type it again."
    )
