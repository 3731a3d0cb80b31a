"""The emulated session's first message: the setup, checked as the session's model family
checks it (`model_profiles`), with ephemeral tokens' locked configuration and resumption
handles. A part of the emulated session (`emulated_session`)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from telephony.testing.gemini_wire import EnergyVad, _setup_refusal, normalize_keys
from telephony.testing.model_profiles import NO_ANSWER, profile_for, setup_refusal


async def receive_setup(self: Any) -> dict[str, Any] | None:
    """The setup, or None when the connection was refused (closed with the service's code).
    `self` is the `emulated_session._EmulatedSession` being set up (untyped here: that module
    imports this one)."""
    try:
        async with asyncio.timeout(10):
            raw = await self.ws.recv()
        message = normalize_keys(json.loads(raw))
    except (TimeoutError, json.JSONDecodeError, TypeError):
        await self.ws.close(1007, "the first message must be a JSON setup")
        return None
    setup = message.get("setup") if isinstance(message, dict) else None
    if not isinstance(setup, dict) or not str(setup.get("model", "")).startswith(("models/", "projects/")):
        await self.ws.close(1007, "setup.model is required (models/<name>)")
        return None
    token = self.emulator._token_of.pop(id(self.ws), None)
    if token is not None and token.setup is not None:
        # A constrained session: the token's model and locked configuration win.
        locked = token.setup
        if str(locked.get("model", "")).rsplit("/", 1)[-1] != str(setup.get("model", "")).rsplit("/", 1)[-1]:
            await self.ws.close(1008, "the model is not the one the ephemeral token was created for")
            return None
        setup = {**setup, **locked}
        self.conn.token = token.name
    self.conn.setup = setup
    self.profile = profile_for(self.emulator.model or str(setup.get("model", "")))
    self.conn.family = self.profile.family.value
    realism = self.emulator.realism
    if realism is not None and realism.check_setup:
        refusal = _setup_refusal(setup)
        if refusal is not None:
            await self.ws.close(1008, refusal)
            return None
    refused = setup_refusal(setup, self.profile)
    if refused == NO_ANSWER:  # as 3.1 does: no setupComplete, ever
        await self.ws.wait_closed()
        return None
    if refused is not None:
        await self.ws.close(*refused)
        return None
    self.declared = {
        str(d.get("name")): d.get("behavior") for tool in setup.get("tools") or [] for d in tool.get("function_declarations") or []
    }
    self.awaiting_history = bool((setup.get("history_config") or {}).get("initial_history_in_client_content"))
    generation = setup.get("generation_config") or {}
    modalities = generation.get("response_modalities") or ["AUDIO"]
    if "AUDIO" not in modalities:
        await self.ws.close(1007, "this emulator answers with AUDIO only")
        return None
    resumption = setup.get("session_resumption")
    self.resumable = resumption is not None
    handle = (resumption or {}).get("handle")
    if handle:
        refuse = self.emulator.faults.refuse_resumption or handle in self.emulator._deadline_handles
        if refuse or handle not in self.emulator._handles:
            await self.ws.close(1007, "invalid session resumption handle")
            return None
        self.conn.resumed_handle = handle
        self.conn.turns = self.emulator._handles[handle]
        self.owed = self.emulator._owed_by_connection.setdefault(self.emulator._handle_connection[handle], [])
        self.emulator._owed_by_connection[self.conn.number] = self.owed
        resumed_agent = self.emulator._agent_of_connection.get(self.emulator._handle_connection[handle])
        if resumed_agent is not None:
            self.agent = self.emulator._agent_of_connection[self.conn.number] = resumed_agent
    activity = (setup.get("realtime_input_config") or {}).get("automatic_activity_detection") or {}
    if activity.get("disabled"):
        self.manual_activity = None
    else:
        self.vad = EnergyVad(
            threshold_dbfs=self.emulator.vad_threshold_dbfs,
            silence_ms=int(activity.get("silence_duration_ms") or 500),
        )
    return setup
