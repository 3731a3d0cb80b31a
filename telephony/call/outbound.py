"""What waits for the one Twilio writer: messages in order, except that a `clear` jumps the
queue. A clear never waits behind audio it would throw away: queued media is dropped (Twilio
would discard it anyway) and queued marks follow the clear, so Twilio still echoes every
one and the call's ledger of what was played stays whole."""

from __future__ import annotations

from collections import deque

from telephony.twilio.media_streams import Outbound


class OutboundQueue:
    def __init__(self) -> None:
        self._items: deque[tuple[Outbound, str]] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def push(self, kind: Outbound, text: str) -> None:
        """Queue one message."""
        if kind is Outbound.CLEAR:
            kept = [item for item in self._items if item[0] is not Outbound.MEDIA]
            self._items.clear()
            self._items.append((kind, text))
            self._items.extend(kept)
        else:
            self._items.append((kind, text))

    def pop(self) -> str:
        return self._items.popleft()[1]
