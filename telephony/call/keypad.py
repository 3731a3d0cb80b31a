"""Digits the caller types for a tool (a PIN, a card number) that the model never sees.

When the model calls a tool with a keypad parameter (`telephony.Keypad`), the call collects
the caller's key presses for it: until the length is reached, the end key (#) is pressed, or
the time is up. While collecting, the digits go nowhere but here (no text to Gemini, a masked
line in the transcript) and the caller's audio toward Gemini and the recording is muted.

Key presses can come before the model's tool call arrives (it asked, the caller typed at once):
while the agent has keypad tools, each press is held for `grace_s` before it is told to the
model as text, and a keypad request in that time takes it instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MASK = "•"


@dataclass(frozen=True)
class KeypadRules:
    """What to collect: `length` digits exactly, or `min_length`..`max_length` ended by `end_key`."""

    length: int | None = None
    min_length: int = 1
    max_length: int = 32
    end_key: str = "#"
    timeout_s: float = 20.0
    """From the request to the last digit."""
    label: str = "the digits"


@dataclass(frozen=True)
class KeypadResult:
    token: int
    digits: str | None
    problem: str | None = None
    """Why no digits: for the model, to ask again (never containing the digits)."""


@dataclass
class _Request:
    token: int
    rules: KeypadRules
    until: float
    digits: list[str] = field(default_factory=list)


class KeypadCollector:
    def __init__(self) -> None:
        self.grace_s = 0.0
        """Hold key presses this long for a keypad request that may follow (0: the agent has
        no keypad tools, presses go to the model at once)."""
        self.request: _Request | None = None
        self.held: list[tuple[str, float]] = []

    @property
    def collecting(self) -> bool:
        return self.request is not None

    def start(self, token: int, rules: KeypadRules, now: float) -> KeypadResult | None:
        """A tool asks for digits; the ones pressed within the grace time count."""
        if self.request is not None:
            return KeypadResult(token, None, "another keypad entry is in progress; try again once it is done")
        self.request = _Request(token, rules, now + rules.timeout_s)
        held, self.held = self.held, []
        for digit, _ in held:
            if (done := self.press(digit)) is not None:
                return done
        return None

    def hold(self, digit: str, now: float) -> None:
        self.held.append((digit, now))

    def release(self, now: float) -> list[str]:
        """Presses held past the grace time: they were not for a keypad tool."""
        due = [digit for digit, at in self.held if now >= at + self.grace_s]
        self.held = [(digit, at) for digit, at in self.held if now < at + self.grace_s]
        return due

    def press(self, digit: str) -> KeypadResult | None:
        request = self.request
        assert request is not None
        rules = request.rules
        if digit == rules.end_key:
            return self._finish(ended=True)
        if digit.isdigit():
            request.digits.append(digit)
        if rules.length is not None and len(request.digits) >= rules.length:
            return self._finish(ended=False)
        if len(request.digits) >= rules.max_length:
            return self._finish(ended=False)
        return None

    def deadline(self) -> float | None:
        if not self.held and self.request is None:
            return None  # (asked after every input of a call: the usual answer, quickly)
        times = [at + self.grace_s for _, at in self.held]
        if self.request is not None:
            times.append(self.request.until)
        return min(times, default=None)

    def tick(self, now: float) -> KeypadResult | None:
        request = self.request
        if request is None or now < request.until:
            return None
        self.request = None
        typed = len(request.digits)
        return KeypadResult(request.token, None, f"timeout: the caller typed {typed} digit(s) of {request.rules.label} in time")

    def cancel(self) -> KeypadResult | None:
        """The call ends or the tool was cancelled."""
        request, self.request = self.request, None
        return KeypadResult(request.token, None, "cancelled") if request is not None else None

    def _finish(self, ended: bool) -> KeypadResult:
        request = self.request
        assert request is not None
        self.request = None
        rules, digits = request.rules, "".join(request.digits)
        if rules.length is not None and len(digits) != rules.length:
            return KeypadResult(request.token, None, f"wrong length: {rules.label} has {rules.length} digits, {len(digits)} were typed")
        if len(digits) < rules.min_length:
            return KeypadResult(request.token, None, f"too short: {rules.label} needs at least {rules.min_length} digits")
        return KeypadResult(request.token, digits)
