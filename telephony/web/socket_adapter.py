"""Starlette's WebSocket as the call driver's `TwilioConnection` (Twilio streams and the
browser phone alike)."""

from __future__ import annotations

from fastapi import WebSocket
from starlette.websockets import WebSocketState

from telephony.live_objects import track


class StarletteTwilioConnection:
    """Adapts Starlette's WebSocket to the call driver's `TwilioConnection`."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.closed = False
        track(self)
        track(websocket, "starlette.WebSocket")

    async def receive(self) -> str | bytes | None:
        if self.closed:
            return None
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            self.closed = True
            return None
        text = message.get("text")
        return text if text is not None else message.get("bytes")

    async def send(self, text: str) -> None:
        if self.closed:
            return
        try:
            await self.websocket.send_text(text)
        except Exception:  # the caller hung up mid-send: the receive side will see it
            self.closed = True

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.websocket.client_state == WebSocketState.CONNECTED and self.websocket.application_state == WebSocketState.CONNECTED:
            self.closed = True
            await self.websocket.close(code, reason)
