"""The bridge a user writes first (google-genai + soxr + json, ~60 lines), kept here so that
`telephony bench load --compare` measures ours against it in the same run, on the same
emulators: every "faster" in docs/benchmarks.md is a ratio from one run. Not for production: no
signatures, no pacing, no reconnects, no barge-in of its own (it forwards `interrupted`).

    python -m telephony.bench.naive_bridge   (PORT, GEMINI_API_KEY, TELEPHONY_GEMINI_BASE_URL,
                                              TELEPHONY_GEMINI_CA_FILE from the environment)
"""

from __future__ import annotations

import asyncio
import audioop
import base64
import json
import os
import ssl

import numpy as np
import soxr
import uvicorn
from fastapi import FastAPI, Request, Response, WebSocket
from google import genai
from google.genai import types

MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
app = FastAPI()
options: dict = {"base_url": os.environ.get("TELEPHONY_GEMINI_BASE_URL")} if os.environ.get("TELEPHONY_GEMINI_BASE_URL") else {}
if os.environ.get("TELEPHONY_GEMINI_CA_FILE"):
    options["async_client_args"] = {"ssl": ssl.create_default_context(cafile=os.environ["TELEPHONY_GEMINI_CA_FILE"])}
client = genai.Client(api_key=os.environ.get("GEMINI_API_KEY", "offline"), http_options=options)


@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@app.post("/twiml")
async def twiml(request: Request) -> Response:
    host = request.headers["host"]
    instructions = request.query_params.get("instructions", "You are a helpful phone agent.")
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="ws://{host}/media-stream">'
        f'<Parameter name="instructions" value="{instructions}"/></Stream></Connect></Response>'
    )
    return Response(body, media_type="application/xml")


async def stream_start(ws: WebSocket) -> tuple[str, str]:
    """Accept the stream and read up to its `start`: (streamSid, instructions)."""
    await ws.accept()
    stream_sid, instructions = None, "You are a helpful phone agent."
    while stream_sid is None:
        message = json.loads(await ws.receive_text())
        if message["event"] == "start":
            stream_sid = message["start"]["streamSid"]
            instructions = message["start"].get("customParameters", {}).get("instructions", instructions)
    return stream_sid, instructions


@app.websocket("/media-stream")
async def media_stream(ws: WebSocket) -> None:
    stream_sid, instructions = await stream_start(ws)
    config = types.LiveConnectConfig(response_modalities=["AUDIO"], system_instruction=instructions)
    async with client.aio.live.connect(model=MODEL, config=config) as session:

        async def from_twilio() -> None:
            while True:
                message = json.loads(await ws.receive_text())
                if message["event"] == "media":
                    pcm8k = np.frombuffer(audioop.ulaw2lin(base64.b64decode(message["media"]["payload"]), 2), dtype=np.int16)
                    pcm16k = soxr.resample(pcm8k, 8000, 16000).astype(np.int16).tobytes()
                    await session.send_realtime_input(audio=types.Blob(data=pcm16k, mime_type="audio/pcm;rate=16000"))
                elif message["event"] == "stop":
                    return

        async def to_twilio() -> None:
            while True:
                async for response in session.receive():
                    content = response.server_content
                    if content and content.interrupted:
                        await ws.send_text(json.dumps({"event": "clear", "streamSid": stream_sid}))
                    if response.data:
                        pcm24k = np.frombuffer(response.data, dtype=np.int16)
                        mulaw = audioop.lin2ulaw(soxr.resample(pcm24k, 24000, 8000).astype(np.int16).tobytes(), 2)
                        payload = base64.b64encode(mulaw).decode()
                        await ws.send_text(json.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}}))

        tasks = [asyncio.create_task(from_twilio()), asyncio.create_task(to_twilio())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
    await ws.close()


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8090")), log_level="warning", ws_per_message_deflate=False)
