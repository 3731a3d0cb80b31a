"""Your agent, as code: instructions, voice, greeting, turn-taking, model, and your tools.

    from telephony import Agent, CallContext

    agent = Agent(name="front-desk", instructions="You are the front desk of Maple Clinic.")

    @agent.tool
    async def free_slots(day: str) -> list[str]:
        \"\"\"List the free appointment times on a day.

        Args:
            day: The day, as YYYY-MM-DD.
        \"\"\"
        return ["09:00", "11:30"]

A tool is any function, sync or async, with type hints and a docstring. Its parameters
become the function declaration Gemini sees (a JSON schema made by pydantic, parameter
descriptions taken from the docstring's Args section); the model's arguments are validated
against the same model before your function runs. A parameter annotated `CallContext`
receives the call (CallSid, numbers, parameters) and is not shown to the model. A sync
function runs in a thread; every tool runs off the audio path, with a timeout. Whatever
goes wrong - bad arguments, an exception, a timeout, a result that is not JSON - goes back
to the model as an error, is logged with the call's SIDs, and the call goes on.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

from telephony.agents.analysis import Analysis
from telephony.agents.tools import (  # noqa: F401 - CallContext and ToolError: the public API's home
    NAME_PATTERN,
    CallContext,
    Tool,
    ToolError,
    blocking_tool_problems,
)
from telephony.call.rules import CallLimits
from telephony.call.voicemail_rules import VoicemailRules
from telephony.gemini import catalog
from telephony.gemini.models import DEFAULT_MODEL_ID, Scheduling, ToolBehavior
from telephony.gemini.models import known as known_model

if TYPE_CHECKING:
    from telephony.gemini.config import AgentOptions

log = logging.getLogger(__name__)

BUILTIN_TOOLS = ("end_call", "transfer_call", "warm_transfer", "send_dtmf")


@dataclass(frozen=True)
class IncomingCall:
    """What is known when a call arrives, for choosing its agent (from Twilio's webhook)."""

    call_sid: str
    from_number: str
    to_number: str
    direction: str
    parameters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Refuse:
    """An agent selector's answer for a call it will not take: said to the caller, then hang-up."""

    message: str


class Agent:
    """A phone agent. Settings left as None come from the server's settings."""

    def __init__(
        self,
        name: str = "default",
        *,
        instructions: str | None = None,
        voice: str | None = None,
        greeting: str | None = None,
        language: str | None = None,
        vad: str | None = None,
        model: str | None = None,
        builtin_tools: Iterable[str] = BUILTIN_TOOLS,
        tool_timeout_s: float | None = None,
        tools: Iterable[Tool | Callable[..., Any]] = (),
        mcp: Iterable[Any] = (),
        silence_reprompt_s: float | None = None,
        silence_hangup_s: float | None = None,
        max_call_s: float | None = None,
        events_url: str | None = None,
        analysis: Analysis | None = None,
        voicemail: str | bool | None = None,
        voicemail_instructions: str | None = None,
    ) -> None:
        """`builtin_tools`: which of end_call, transfer_call, warm_transfer, send_dtmf the model
        gets (all by default; the transfers only where transfer numbers are configured, warm
        ones where the server knows its public URL). `vad`: a preset
        name (phone, responsive, patient). `tool_timeout_s`: default for this agent's tools.
        `mcp`: `telephony.agents.mcp_tools.McpServer`s whose tools this agent gets (connected at
        startup by `telephony serve`). `silence_reprompt_s`, `silence_hangup_s`, `max_call_s`:
        this agent's own caller-silence and call-length limits (default: the server's
        `TELEPHONY_SILENCE_REPROMPT_SECONDS`, `..._HANGUP_SECONDS`, `TELEPHONY_MAX_CALL_SECONDS`;
        0 turns the silence rules off). `events_url`: where this agent's call events go
        (default: `TELEPHONY_EVENTS_URL`); in code, `@agent.on_call_ended` and the like.
        `analysis`: a post-call analysis of every call (`telephony.agents.analysis.Analysis`).
        `voicemail`: when an answering machine takes an outbound call, the message to leave
        (text), or False to hang up; `voicemail_instructions`: what the model's own message
        says instead (default: who is calling, why, how to call back)."""
        if events_url is not None and not events_url.startswith(("http://", "https://")):
            raise ValueError(f"agent {name!r}: events_url must be an http(s) URL")
        for label, value in (("silence_reprompt_s", silence_reprompt_s), ("silence_hangup_s", silence_hangup_s)):
            if value is not None and value < 0:
                raise ValueError(f"agent {name!r}: {label} cannot be negative")
        if max_call_s is not None and max_call_s <= 0:
            raise ValueError(f"agent {name!r}: max_call_s must be positive")
        if not NAME_PATTERN.match(name):
            raise ValueError(f"agent name {name!r}: letters, digits, _ . - only")
        unknown = set(builtin_tools) - set(BUILTIN_TOOLS)
        if unknown:
            raise ValueError(f"unknown built-in tools {sorted(unknown)}; choose from {', '.join(BUILTIN_TOOLS)}")
        if voice is not None and (problem := catalog.voice_problem(voice)):
            raise ValueError(f"agent {name!r}: {problem}")
        if language is not None and (problem := catalog.language_problem(language)):
            raise ValueError(f"agent {name!r}: {problem}")
        if model is not None and (listed := known_model(model)) is not None and listed.retired:
            raise ValueError(f"agent {name!r}: model {listed.id!r} was shut down on {listed.retired}; use {DEFAULT_MODEL_ID!r}")
        self.name = name
        self.instructions = instructions
        self.voice = voice
        self.greeting = greeting
        self.language = language
        self.vad = vad
        self.model = model
        self.builtin_tools = tuple(builtin_tools)
        self.tool_timeout_s = tool_timeout_s
        if voicemail is True or (voicemail is not None and not isinstance(voicemail, (str, bool))):
            raise ValueError(f"agent {name!r}: voicemail is the message (text) or False (hang up on a machine)")
        rules = None
        if voicemail is not None or voicemail_instructions is not None:
            message = voicemail if isinstance(voicemail, str) else None
            rules = VoicemailRules(message=message, instructions=voicemail_instructions, off=voicemail is False)
        self.call_limits = CallLimits(silence_reprompt_s, silence_hangup_s, max_call_s, voicemail=rules)
        self.events_url = events_url
        self.analysis = analysis
        self.callbacks: dict[str, list[Callable[[dict[str, Any]], Any]]] = {}
        """Event type -> async (or plain) functions called with the event (`on_call_ended`...)."""
        """This agent's own limits over the server's (`telephony.call.rules.CallLimits`)."""
        self.tools: dict[str, Tool] = {}
        self.mcp_servers = tuple(mcp)
        for tool in tools:
            self.add_tool(tool)

    def on_call_started(self, function: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        """Decorator: `function(event)` when a call of this agent starts (event as sent to
        `TELEPHONY_EVENTS_URL`: id, type, created_at, data)."""
        self.callbacks.setdefault("call.started", []).append(function)
        return function

    def on_call_ended(self, function: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        """Decorator: `function(event)` when a call of this agent has ended: outcome, reason,
        duration, numbers, transcript, tool calls, recording URL, cost."""
        self.callbacks.setdefault("call.ended", []).append(function)
        return function

    def on_analysis_ready(self, function: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        """Decorator: `function(event)` once the post-call analysis of a call is done."""
        self.callbacks.setdefault("call.analysis_ready", []).append(function)
        return function

    @overload
    def tool(self, function: Callable[..., Any]) -> Callable[..., Any]: ...

    @overload
    def tool(
        self,
        function: None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout_s: float | None = None,
        behavior: ToolBehavior | str | None = None,
        scheduling: Scheduling | str | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...

    def tool(
        self,
        function: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout_s: float | None = None,
        behavior: ToolBehavior | str | None = None,
        scheduling: Scheduling | str | None = None,
    ) -> Any:
        """Decorator: `@agent.tool` or `@agent.tool(timeout_s=5, behavior="blocking")`. The
        function is returned unchanged, so it stays callable (and testable) as it was.
        `behavior` and `scheduling`: see `Tool`."""

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            made = Tool.from_function(fn, name=name, description=description, timeout_s=timeout_s, behavior=behavior, scheduling=scheduling)
            self.add_tool(made)
            return fn

        return register(function) if function is not None else register

    def add_tool(self, tool: Tool | Callable[..., Any]) -> Tool:
        if not callable(tool) and not isinstance(tool, Tool):
            hint = f" ({', '.join(BUILTIN_TOOLS)} are chosen with builtin_tools=[...])" if tool in BUILTIN_TOOLS else ""
            raise ValueError(f"agent {self.name!r}: a tool is a function or a Tool, not {tool!r}{hint}")
        made = tool if isinstance(tool, Tool) else Tool.from_function(tool)
        if made.name in self.tools or made.name in BUILTIN_TOOLS:
            raise ValueError(f"agent {self.name!r} already has a tool named {made.name!r}")
        if self.model is not None and (problems := blocking_tool_problems([made], self.model)):
            raise ValueError(f"agent {self.name!r}: {problems[0]}")
        self.tools[made.name] = made
        return made

    def options(self, base: AgentOptions) -> AgentOptions:
        """This agent's Live session options, on top of the server's defaults."""
        options = base.with_overrides(instructions=self.instructions, voice=self.voice, language_code=self.language, model=self.model)
        return options.with_vad_preset(self.vad) if self.vad else options

    def __repr__(self) -> str:
        return f"Agent({self.name!r}, tools={list(self.tools)})"


AgentSelector = Callable[[IncomingCall], "Agent | Refuse | Awaitable[Agent | Refuse]"]
"""Chooses the agent for each incoming call (by number, caller, time of day ...)."""


class AgentBook:
    """The agents a server can put on a call: by name, plus an optional selector.

    The webhook chooses the agent (the selector, or `?agent=NAME` from `telephony dial`) and
    names it in the signed TwiML; the stream looks the name up here. Only the name travels
    (Twilio limits a `<Parameter>` to ~500 characters, and instructions are longer), so an
    agent a selector returns is remembered by name in this process, and a stream that lands on
    another worker or instance asks the selector again for the same call (`recall`).
    """

    def __init__(self, agents: Agent | AgentSelector | Iterable[Agent] | None = None) -> None:
        self.selector: AgentSelector | None = None
        self.by_name: dict[str, Agent] = {}
        if isinstance(agents, Agent):
            self.add(agents)
        elif callable(agents):
            self.selector = agents
        elif agents is not None:
            for agent in agents:
                self.add(agent)
        self.default = next(iter(self.by_name.values()), None) or Agent()

    def add(self, agent: Agent) -> None:
        known = self.by_name.get(agent.name)
        if known is not None and known is not agent:
            raise ValueError(f"two different agents are named {agent.name!r}")
        self.by_name[agent.name] = agent

    async def choose(self, call: IncomingCall, asked_for: str | None = None) -> Agent | Refuse:
        """The agent for an incoming call: the one asked for by name, else the selector's,
        else the default."""
        if asked_for:
            agent = self.by_name.get(asked_for)
            return agent if agent is not None else Refuse("Sorry, this number is not set up to take calls. Goodbye.")
        if self.selector is None:
            return self.default
        chosen = self.selector(call)
        if inspect.isawaitable(chosen):
            chosen = await chosen
        if isinstance(chosen, Agent):
            self.add(chosen)
        elif not isinstance(chosen, Refuse):
            raise TypeError(f"the agent selector returned {type(chosen).__name__}, not an Agent or Refuse")
        return chosen

    async def recall(self, name: str | None, call: IncomingCall) -> None:
        """A stream names an agent this process has not seen: its webhook ran on another worker
        or instance. A selector decides by the call, so it is asked again for the same call."""
        if not name or name in self.by_name or self.selector is None:
            return
        chosen = await self.choose(call)
        if not isinstance(chosen, Agent) or chosen.name != name:
            what = chosen.name if isinstance(chosen, Agent) else "to refuse"
            log.warning("the agent selector chose %s here and %s at the webhook: the call gets the default agent", what, name)

    def named(self, name: str | None) -> Agent:
        """The agent a stream's TwiML named (the default when none)."""
        return self.by_name.get(name or "", self.default)
