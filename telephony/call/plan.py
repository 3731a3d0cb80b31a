"""Who answers this call and how: the agent the webhook named, its tools (built-in and its
own), its Live options with the call's own overrides, and its greeting; and, if a fresh
Gemini session must replace a lost one, the conversation so far. Decisions, no I/O: the
driver asks once per call and carries the plan out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from telephony.call.record import CallRecord
from telephony.call.rules import CallLimits
from telephony.call.tool_api import AgentDirectory, CallAgent, CallTool
from telephony.gemini import catalog
from telephony.gemini.config import AgentOptions

HISTORY_CHARS = 8000
"""How much of the conversation a fresh Gemini session is given when it replaces a lost one."""


@dataclass(frozen=True)
class CallPlan:
    agent: CallAgent
    tools: dict[str, CallTool]
    """By name: what the model may call on this call."""
    options: AgentOptions
    greeting: str | None


def plan_call(
    parameters: dict[str, str],
    *,
    agents: AgentDirectory | None,
    builtin_tools: Callable[[tuple[str, ...]], list[CallTool]],
    base: AgentOptions,
    greeting: str | None,
    extra_voices: tuple[str, ...],
    logger: logging.LoggerAdapter[Any],
) -> CallPlan:
    """The agent the webhook chose travels by name; its tools are this call's tools."""
    agent: CallAgent = agents.named(parameters.get("agent")) if agents is not None else SettingsAgent()
    tools = [*builtin_tools(agent.builtin_tools), *agent.tools.values()]
    options = agent.options(base).with_overrides(tools=tuple(tool.declaration for tool in tools))
    options = options_for_call(options, parameters, logger, extra_voices)
    said_first = parameters.get("greeting") or agent.greeting or greeting
    return CallPlan(agent, {tool.name: tool for tool in tools}, options, said_first)


def conversation_so_far(record: CallRecord, max_chars: int = HISTORY_CHARS) -> list[tuple[str, str]]:
    """The call's transcript as Gemini turns (newest kept when it is long), for a fresh session."""
    turns: list[tuple[str, str]] = []
    for line in record.transcript:
        if line.speaker == "caller":
            turns.append(("user", line.text))
        elif line.speaker == "keypad":
            turns.append(("user", f"(The caller pressed the keypad key {line.text}.)"))
        elif line.speaker == "agent":
            turns.append(("model", line.text + (" (the caller interrupted here)" if line.interrupted else "")))
    kept: list[tuple[str, str]] = []
    size = 0
    for role, text in reversed(turns):
        size += len(text)
        if size > max_chars:
            break
        kept.append((role, text))
    return kept[::-1]


def options_for_call(
    base: AgentOptions, parameters: dict[str, str], logger: logging.LoggerAdapter[Any], extra_voices: tuple[str, ...] = ()
) -> AgentOptions:
    """Per-call agent settings travel as Stream <Parameter>s of our own (signed) TwiML. A
    voice the service would refuse (it closes the socket at setup) falls back to the
    agent's own, so that a typo costs a voice, not the call."""
    voice = parameters.get("voice") or None
    if voice and (problem := catalog.voice_problem(voice, extra_voices)):
        logger.warning("per-call voice ignored, using %s: %s", base.voice, problem)
        voice = None
    options = base.with_overrides(voice=voice, instructions=parameters.get("instructions") or None)
    if context := parameters.get("context"):  # a call list's own columns: what this call is about
        options = options.with_overrides(instructions=f"{options.instructions}\n\n{context}")
    if parameters.get("vad"):
        try:
            options = options.with_vad_preset(parameters["vad"])
        except ValueError as exc:
            logger.warning("per-call VAD preset ignored: %s", exc)
    return options


class SettingsAgent:
    """The agent of a server given none: the settings' own, with the built-in tools."""

    name = "default"
    greeting: str | None = None
    builtin_tools = ("end_call", "transfer_call", "warm_transfer", "send_dtmf")
    tool_timeout_s: float | None = None
    call_limits = CallLimits()
    tools: dict[str, CallTool] = {}

    def options(self, base: AgentOptions) -> AgentOptions:
        return base
