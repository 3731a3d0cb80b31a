"""What a Gemini session owes and is owed across connections: the supervisor's bookkeeping
as a plain object, so that every case has an instant test (tests/test_gemini_ledger.py).

- Messages sent since the last resumable handle may not have been consumed: on a resumed
  connection they go again, in order (only those after `lastConsumedClientMessageIndex`
  where the server says, as Vertex AI's transparent resumption does).
- Caller audio is kept only while it is owed an answer (`UnansweredSpeech`): what the caller
  said since the model last began to answer goes to a new connection first, resumed or
  fresh. A turn the old connection heard only in part (or whole, with no answer yet) would
  otherwise never be answered: the new connection hears the tail of a sentence, or nothing.
- Tool calls not yet answered make handles not resumable (the service marks them so).
- A fresh session knows nothing of the old one's calls: their results become orphans, told
  to the model as text instead of a `toolResponse` it would refuse.
- A goAway is acted on when nothing is being said or awaited and a resumable handle covers
  everything, or at the deadline.
"""

from __future__ import annotations

import json
from collections import deque

from telephony.audio.level import has_speech_level
from telephony.gemini.messages import CallerAudio, GeminiMessage, RealtimeText, ToolResult

ORPHANED_RESULT_TEXT = "(The result of your earlier {name} request, which was interrupted by a reconnection: {result})"


class UnansweredSpeech:
    """The caller's audio since the model last began to answer, from their first loud block
    (with `pre_roll_s` before it) and at most `limit_s` of it. Quiet audio alone is not kept
    beyond the pre-roll: between turns this holds a few kilobytes, not seconds of silence."""

    def __init__(self, limit_s: float = 8.0, pre_roll_s: float = 0.3) -> None:
        self._limit = int(limit_s * 32000)
        self._pre_roll = int(pre_roll_s * 32000)
        self._blocks: deque[CallerAudio] = deque()
        self._bytes = 0
        self._speech = False

    def sent(self, audio: CallerAudio) -> None:
        if not self._speech and has_speech_level(audio.pcm16k):
            self._speech = True
        self._blocks.append(audio)
        self._bytes += len(audio.pcm16k)
        limit = self._limit if self._speech else self._pre_roll
        while self._bytes > limit and len(self._blocks) > 1:
            self._bytes -= len(self._blocks.popleft().pcm16k)

    def answered(self) -> None:
        """The model began to answer (its first audio, or a tool call): nothing is owed."""
        self._blocks.clear()
        self._bytes = 0
        self._speech = False

    def take(self) -> list[CallerAudio]:
        """What a new connection must hear again (nothing if the caller has not spoken);
        it is kept again as it goes out."""
        blocks = list(self._blocks) if self._speech else []
        self.answered()
        return blocks

    @property
    def seconds(self) -> float:
        return self._bytes / 32000 if self._speech else 0.0


class ResumptionLedger:
    def __init__(self) -> None:
        self.speech = UnansweredSpeech()
        """The caller's words that no answer has begun for yet."""
        self._sent_index = 0
        self._unconfirmed: deque[tuple[int, GeminiMessage]] = deque()
        self.unanswered: set[str] = set()
        """Tool calls the model made on this conversation that have no result yet."""
        self.orphaned: set[str] = set()
        """Tool calls of a lost conversation: their results go as text."""
        self.resumable_now = False
        """The latest handle covers everything (no call unanswered since it came)."""

    # --- what happened on the connection --------------------------------------------------

    def on_the_wire(self, message: GeminiMessage) -> GeminiMessage:
        """What to put on the wire for a queued message: an orphan's result becomes text."""
        if isinstance(message, ToolResult) and message.call_id in self.orphaned:
            result = json.dumps(message.response, default=str)[:2000]
            return RealtimeText(ORPHANED_RESULT_TEXT.format(name=message.name, result=result))
        return message

    def sent(self, queued: GeminiMessage, on_wire: GeminiMessage) -> None:
        """`on_wire` (for `queued`) went out on the current connection."""
        if on_wire is not queued and isinstance(queued, ToolResult):
            self.orphaned.discard(queued.call_id)
        self._sent_index += 1
        if isinstance(on_wire, CallerAudio):
            self.speech.sent(on_wire)
        else:
            self._unconfirmed.append((self._sent_index, on_wire))
        if isinstance(on_wire, ToolResult):
            self.unanswered.discard(on_wire.call_id)

    def answer_began(self) -> None:
        self.speech.answered()

    def tool_called(self, call_id: str) -> None:
        self.speech.answered()
        self.unanswered.add(call_id)
        self.resumable_now = False

    def handle(self, last_consumed: int | None) -> None:
        """A resumable handle arrived: it covers what the server had consumed when it made it."""
        if last_consumed is None:
            self._unconfirmed.clear()
        else:
            while self._unconfirmed and self._unconfirmed[0][0] <= last_consumed:
                self._unconfirmed.popleft()
        self.resumable_now = not self.unanswered

    # --- a new connection -----------------------------------------------------------------

    def resumed(self) -> list[GeminiMessage]:
        """The session resumed on a new connection: what to send again first, in order (the
        caller's unanswered words, then what the handle may not cover)."""
        again: list[GeminiMessage] = [*self.speech.take(), *(message for _, message in self._unconfirmed)]
        self._reset()
        return again

    def fresh(self) -> list[GeminiMessage]:
        """A fresh session replaced the lost one: its unanswered calls become orphans; the
        caller's unanswered words go to it first (it was seeded with the rest)."""
        self.orphaned |= self.unanswered
        self.unanswered.clear()
        again: list[GeminiMessage] = list(self.speech.take())
        self._reset()
        return again

    def _reset(self) -> None:
        self._unconfirmed.clear()
        self._sent_index = 0

    # --- goAway -----------------------------------------------------------------------------

    def may_switch(self, agent_speaking: bool) -> bool:
        """After a goAway: switch now? Only between sentences, with every call answered and
        covered by a resumable handle (else wait, at most until the deadline)."""
        return not agent_speaking and self.resumable_now and not self.unanswered
