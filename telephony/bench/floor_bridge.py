"""The least a bridge on our stack can do per message, kept as a yardstick for CPU targets.

`telephony bench load --compare --floor` runs it beside ours and the naive bridge. It does
only what any Twilio <-> Gemini Live bridge on uvicorn, websockets and google-genai must do:
receive every Twilio frame (uvicorn, ASGI, `json.loads`), send caller audio to Gemini on the
SDK's own connection (the message `session.audio_message` writes, TLS, no permessage-deflate),
receive Gemini's messages through the SDK, and send each audio chunk back as one Twilio
message. Its audio work is the cheapest there is (audioop's mu-law codec and its
linear-interpolation `ratecv`, which aliases: not fit for a call), and there is no gain
control, voice detection, pacing, barge-in, tool, record, log or metric. `FLOOR_SENDS` says how often caller audio goes to Gemini:
`1`, every Twilio frame (50 messages a second, like the naive bridge); `5`, every fifth (10 a
second); `ours`, by our rule (`telephony.call.caller_audio`): a loud frame goes at once with
what waited, and so does every frame until the agent answers, while other quiet frames wait
for our default block (200 ms, ten frames).

So its CPU per call-second at our message rate is a floor for ours: what our own work costs
is the difference. Not for production.

    python -m telephony.bench.floor_bridge   (PORT, FLOOR_SENDS, GEMINI_API_KEY,
                                              TELEPHONY_GEMINI_BASE_URL, TELEPHONY_GEMINI_CA_FILE)
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl

import uvicorn
from fastapi import FastAPI, WebSocket
from google import genai
from google.genai import types

from telephony.audio.level import QUIET_RMS
from telephony.audio.mulaw import audioop
from telephony.bench.naive_bridge import MODEL, healthz, stream_start, twiml
from telephony.gemini.session import audio_message
from telephony.settings import Settings

SENDS = os.environ.get("FLOOR_SENDS", "1")
LIKE_OURS = SENDS == "ours"
# Like ours: quiet waits for our default block (`TELEPHONY_CALLER_QUIET_BLOCK_MS`).
FRAMES_PER_SEND = Settings.model_fields["caller_quiet_block_ms"].default // 20 if LIKE_OURS else max(1, int(SENDS))
app = FastAPI()
options: dict = {"base_url": os.environ.get("TELEPHONY_GEMINI_BASE_URL")} if os.environ.get("TELEPHONY_GEMINI_BASE_URL") else {}
# No permessage-deflate on the Live socket (ours turns it off too; the naive bridge keeps the
# SDK's default, which offers it).
options["async_client_args"] = {"compression": None}
if os.environ.get("TELEPHONY_GEMINI_CA_FILE"):
    options["async_client_args"]["ssl"] = ssl.create_default_context(cafile=os.environ["TELEPHONY_GEMINI_CA_FILE"])
client = genai.Client(api_key=os.environ.get("GEMINI_API_KEY", "offline"), http_options=options)
app.get("/healthz")(healthz)  # the naive bridge's own handlers: the same TwiML and start
app.post("/twiml")(twiml)


@app.websocket("/media-stream")
async def media_stream(ws: WebSocket) -> None:
    stream_sid, instructions = await stream_start(ws)
    config = types.LiveConnectConfig(response_modalities=["AUDIO"], system_instruction=instructions)
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        gemini_ws = session._ws  # the SDK's own connection, as ours sends caller audio on it
        owed = False  # like ours: the caller was loud since the agent last began to answer

        async def from_twilio() -> None:
            nonlocal owed
            block, frames, state = b"", 0, None
            while True:
                message = json.loads(await ws.receive_text())
                if message["event"] == "media":
                    pcm8k = audioop.ulaw2lin(base64.b64decode(message["media"]["payload"]), 2)
                    pcm16k, state = audioop.ratecv(pcm8k, 2, 1, 8000, 16000, state)
                    block += pcm16k
                    frames += 1
                    if LIKE_OURS:
                        owed = owed or audioop.rms(pcm8k, 2) >= QUIET_RMS
                    if frames >= FRAMES_PER_SEND or owed:
                        await gemini_ws.send(audio_message(block))
                        block, frames = b"", 0
                elif message["event"] == "stop":
                    return

        async def to_twilio() -> None:
            # One Twilio message per Gemini chunk (Twilio takes any length), as the naive bridge
            # does: the fewest messages without holding audio back.
            nonlocal owed
            state = None
            while True:
                async for response in session.receive():
                    content = response.server_content
                    if content and content.interrupted:
                        state = None
                        await ws.send_text('{"event":"clear","streamSid":"' + stream_sid + '"}')
                    if response.data:
                        owed = False
                        pcm8k, state = audioop.ratecv(response.data, 2, 1, 24000, 8000, state)
                        payload = base64.b64encode(audioop.lin2ulaw(pcm8k, 2)).decode()
                        await ws.send_text('{"event":"media","streamSid":"' + stream_sid + '","media":{"payload":"' + payload + '"}}')

        tasks = [asyncio.create_task(from_twilio()), asyncio.create_task(to_twilio())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
    await ws.close()


if __name__ == "__main__":  # uvloop, as for the naive bridge (uvicorn's "auto" picks it)
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8090")), log_level="warning", ws_per_message_deflate=False)
