"""The person's side of a warm transfer: their media stream (`/transfer-stream`).

They hear the briefing in the agent's voice (sent at once, then a mark: Twilio echoes it once
it was played), and what they do answers the transfer (`telephony.call.transfer_answer`):
key presses, their voice after the briefing (webrtcvad on their 8 kHz audio), a hang-up.
This task is the only writer on the socket; when they said yes, Twilio ends the stream itself
(the call moves into the conference).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import webrtcvad
from fastapi import APIRouter, Request, Response, WebSocket

from telephony.agents.warm_transfer import TRANSFER_PARAMETER, PendingTransfer, WarmTransfers
from telephony.audio.mulaw import decode_mulaw
from telephony.twilio.media_streams import Dtmf, Mark, Media, Start, Stop, TwilioProtocolError, mark_message, media_message, parse_message
from telephony.twilio.signatures import websocket_url
from telephony.twilio.twiml import connect_stream, say_and_hang_up
from telephony.web.socket_adapter import StarletteTwilioConnection

log = logging.getLogger(__name__)

BRIEFING_MARK = "briefing"
FRAME_BYTES = 160
START_TIMEOUT_S = 10.0
BRIEFING_WAIT_S = 20.0
"""The briefing is made while the phone rings; a person who answers at once waits for it."""


class TwilioSocket(Protocol):
    async def receive(self) -> str | bytes | None: ...

    async def send(self, text: str) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


async def carry_transfer_leg(socket: TwilioSocket, transfers: WarmTransfers) -> None:
    """Run one person's stream until they answered and Twilio (or they) ended it."""
    clock = transfers.clock
    try:
        pending, stream_sid = await _start(socket, transfers)
    except (TimeoutError, TwilioProtocolError) as exc:
        log.warning("transfer stream refused: %s", exc)
        await socket.close(1008)
        return
    if pending is None:
        await socket.close(1008)
        return
    tasks: list[asyncio.Future[Any]] = [asyncio.create_task(_brief(socket, pending, stream_sid, clock), name="transfer-briefing")]
    elsewhere = pending.on_decided is not None
    if elsewhere:  # the transfer runs on another instance: its time limits are kept here, with the leg
        tasks.append(asyncio.create_task(transfers.wait_for_answer(pending), name="transfer-answer-timer"))
    vad = webrtcvad.Vad(2)
    try:
        while (raw := await socket.receive()) is not None:
            try:
                message = parse_message(raw)
            except TwilioProtocolError:
                continue
            now = clock()
            if isinstance(message, Media) and len(message.media.payload) == FRAME_BYTES:
                speaking = vad.is_speech(decode_mulaw(message.media.payload), 8000)
                pending.settle(pending.answer.voice(speaking, 20.0, now))
            elif isinstance(message, Dtmf):
                pending.settle(pending.answer.key(message.dtmf.digit, now))
            elif isinstance(message, Mark) and message.mark.name == BRIEFING_MARK:
                pending.answer.briefing_heard(now)
            elif isinstance(message, Stop):
                break
    finally:
        pending.settle(pending.answer.hung_up(clock()))  # no-op once they answered
        if elsewhere:  # the briefing was this leg's to fetch
            tasks.append(pending.briefing)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await socket.close()


async def _start(socket: TwilioSocket, transfers: WarmTransfers) -> tuple[PendingTransfer | None, str]:
    async with asyncio.timeout(START_TIMEOUT_S):
        while (raw := await socket.receive()) is not None:
            message = parse_message(raw)
            if isinstance(message, Start):
                transfer_id = message.start.custom_parameters.get(TRANSFER_PARAMETER, "")
                pending = transfers.leg(transfer_id, message.start.call_sid)
                if pending is None and transfer_id not in transfers.pending:  # the caller may be on another instance
                    pending = await transfers.leg_from_elsewhere(transfer_id, message.start.call_sid)
                if pending is None:
                    log.warning("transfer stream for no transfer in progress", extra={"call_sid": message.start.call_sid})
                return pending, message.stream_sid
    return None, ""


async def _brief(socket: TwilioSocket, pending: PendingTransfer, stream_sid: str, clock: Callable[[], float]) -> None:
    started = time.monotonic()
    try:
        audio = await asyncio.wait_for(asyncio.shield(pending.briefing), BRIEFING_WAIT_S)
    except Exception as exc:  # noqa: BLE001 - any failure: the person cannot be briefed
        log.warning("the warm transfer's briefing could not be made: %s", exc)
        pending.settle(pending.answer.gave_up(clock(), f"no briefing: {type(exc).__name__}"))
        return
    log.info("briefing the person (%.1f s, ready after %.2f s)", len(audio) / 8000, time.monotonic() - started)
    for at in range(0, len(audio), FRAME_BYTES * 50):  # one message a second of audio: Twilio queues it
        await socket.send(media_message(stream_sid, audio[at : at + FRAME_BYTES * 50]))
    await socket.send(mark_message(stream_sid, BRIEFING_MARK))


def add_transfer_routes(
    routes: APIRouter,
    transfers: WarmTransfers,
    signed_form: Callable[[Request, str], Awaitable[dict[str, str]]],
    public_base: Callable[[Request], str],
    refused_unsigned: Callable[[WebSocket, str], Awaitable[bool]],
) -> None:
    """POST /transfer-leg (the person's call answered: TwiML to their stream) and WS
    /transfer-stream (the stream), both signed like every request from Twilio."""

    @routes.post("/transfer-leg")
    async def transfer_leg(request: Request) -> Response:
        await signed_form(request, "transfer webhook")
        transfer_id = request.query_params.get(TRANSFER_PARAMETER, "")
        if transfer_id not in transfers.pending and not await transfers.known_elsewhere(transfer_id):
            return Response(say_and_hang_up("Sorry, the caller is no longer waiting. Goodbye."), media_type="application/xml")
        stream_path = request.url.path.rsplit("/", 1)[0] + "/transfer-stream"
        body = connect_stream(websocket_url(public_base(request), stream_path), {TRANSFER_PARAMETER: transfer_id})
        return Response(body, media_type="application/xml")

    @routes.websocket("/transfer-stream")
    async def transfer_stream(websocket: WebSocket) -> None:
        if await refused_unsigned(websocket, "transfer stream"):
            return
        await websocket.accept()
        await carry_transfer_leg(StarletteTwilioConnection(websocket), transfers)


__all__ = ["add_transfer_routes", "carry_transfer_leg"]
