"""The HTTP tools of agent.toml: your own small server, here with FastAPI.

Each request from the telephony server is a JSON POST {"name", "arguments", "call_sid",
"from", "to"} signed with X-Telephony-Signature: sha256=<HMAC-SHA256 of the body, keyed by
TELEPHONY_TOOL_SIGNING_SECRET>. Check it before acting; answer JSON.

    TELEPHONY_TOOL_SIGNING_SECRET=change-me python backend.py
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os

from fastapi import FastAPI, HTTPException, Request

import clinic  # the same booking logic as the Python agent

app = FastAPI()


async def verified(request: Request) -> dict:
    body = await request.body()
    secret = os.environ["TELEPHONY_TOOL_SIGNING_SECRET"].encode()
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(request.headers.get("X-Telephony-Signature", ""), expected):
        raise HTTPException(401, "bad signature")
    return json.loads(body)


@app.post("/tools/free_slots")
async def free_slots(request: Request) -> dict:
    call = await verified(request)
    try:
        return {"free": clinic.free_slots(call["arguments"]["day"])}
    except clinic.ToolError as exc:
        return {"error": str(exc)}


@app.post("/tools/book")
async def book(request: Request) -> dict:
    call = await verified(request)
    arguments = call["arguments"]
    try:
        return clinic.book_for(arguments["day"], arguments["time"], arguments["name"], call["from"])
    except clinic.ToolError as exc:
        return {"error": str(exc)}


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8090)
