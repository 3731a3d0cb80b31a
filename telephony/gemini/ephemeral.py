"""Ephemeral Gemini tokens for a browser that talks to Gemini Live itself: minted with the
server's API key, single-use, expiring in minutes, and locked to the agent's model and
configuration (`liveConnectConstraints`), so the key never reaches the browser and the
token opens nothing else. Gemini Developer API only (v1alpha), as the SDK's own docs say.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from google import genai
from google.genai import types

from telephony.gemini.config import AgentOptions, build_live_config

TOKEN_MINUTES = 10.0
"""How long a minted token lives at all."""
NEW_SESSION_SECONDS = 60.0
"""How soon the browser must open its session with it."""


@dataclass(frozen=True)
class EphemeralToken:
    name: str
    model: str
    expires_at: dt.datetime


async def mint_token(client: genai.Client, options: AgentOptions, now: dt.datetime | None = None) -> EphemeralToken:
    """One single-use token for one Live session with `options` (raises the SDK's errors)."""
    now = now or dt.datetime.now(dt.UTC)
    expires = now + dt.timedelta(minutes=TOKEN_MINUTES)
    config = build_live_config(options)
    config.session_resumption = None  # a browser session is not resumed by us
    token = await client.aio.auth_tokens.create(
        config=types.CreateAuthTokenConfig(
            uses=1,
            expire_time=expires,
            new_session_expire_time=now + dt.timedelta(seconds=NEW_SESSION_SECONDS),
            live_connect_constraints=types.LiveConnectConstraints(model=options.model, config=config),
            http_options=types.HttpOptions(api_version="v1alpha"),
        )
    )
    if not token.name:
        raise ValueError("the Gemini service returned no token")
    return EphemeralToken(token.name, options.model, expires)
