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

import asyncio
import functools
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, get_type_hints, overload

import docstring_parser
from google.genai import types
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from telephony.call.tool_api import CallHandle, ToolHandler, ToolOutcome
from telephony.gemini import catalog
from telephony.gemini.events import ToolCall
from telephony.gemini.models import DEFAULT_MODEL_ID, Scheduling, ToolBehavior, rules_for
from telephony.gemini.models import known as known_model

if TYPE_CHECKING:
    from telephony.gemini.config import AgentOptions

BUILTIN_TOOLS = ("end_call", "transfer_call", "send_dtmf")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class CallContext:
    """The call a tool runs in. Declare a parameter of this type to receive it."""

    call_sid: str | None
    stream_sid: str | None
    from_number: str
    to_number: str
    direction: str
    parameters: dict[str, str]
    """The stream's custom parameters (per-call settings; no token)."""
    call: CallHandle | None = field(default=None, repr=False, compare=False)
    """The live call, for tools that play audio or end it (see `telephony.call.tool_api`)."""


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


class ToolError(Exception):
    """Raise from a tool to give the model a clean error message (no type name, no trace)."""


class Tool:
    """One function the model may call: its declaration, and how to run it."""

    def __init__(
        self,
        name: str,
        declaration: types.FunctionDeclaration,
        handler: ToolHandler,
        timeout_s: float | None = None,
        *,
        behavior: ToolBehavior | str | None = None,
        scheduling: Scheduling | str | None = None,
    ) -> None:
        """`behavior`: "blocking" (the model waits in silence, the caller hears the hold tone
        if it is slow) or "non_blocking" (the model may keep talking while it runs); None
        means the model family's own default (NON_BLOCKING on 3.8, BLOCKING on 2.5), always
        declared explicitly. `scheduling`, for NON_BLOCKING tools: what the result makes the
        model do - "when_idle" (default: answer once it has finished speaking), "silent"
        (just know it) or "interrupt" (stop and answer now); a result may choose its own
        (`ToolOutcome.scheduling`)."""
        if not _NAME.match(name):
            raise ValueError(f"tool name {name!r}: letters, digits, _ . - only, starting with a letter or _")
        self.name = name
        self.behavior = _enum(ToolBehavior, behavior, f"tool {name!r}: behavior")
        self.scheduling = _enum(Scheduling, scheduling, f"tool {name!r}: scheduling")
        if self.behavior is not None:
            declaration = declaration.model_copy(update={"behavior": types.Behavior(self.behavior.value)})
        self.declaration = declaration
        self.handler = handler
        self.timeout_s = timeout_s

    @classmethod
    def from_function(
        cls,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout_s: float | None = None,
        behavior: ToolBehavior | str | None = None,
        scheduling: Scheduling | str | None = None,
    ) -> Tool:
        """A tool from a typed Python function (see the module docstring)."""
        tool_name = name or function.__name__
        docs = docstring_parser.parse(inspect.getdoc(function) or "")
        described = description or "\n\n".join(p for p in (docs.short_description, docs.long_description) if p)
        if not described:
            raise ValueError(f"tool {tool_name!r}: give it a docstring (the model reads it to know when to call it)")
        arguments, context_parameter = _arguments_model(function, tool_name, {p.arg_name: p.description for p in docs.params})
        schema = _clean_schema(arguments.model_json_schema())
        declaration = types.FunctionDeclaration(name=tool_name, description=described, parameters_json_schema=schema)
        run = _function_runner(function, arguments, context_parameter)

        async def handler(call: CallHandle, tool_call: ToolCall) -> ToolOutcome:
            return await run(tool_call.args, call)

        return cls(tool_name, declaration, handler, timeout_s, behavior=behavior, scheduling=scheduling)

    def __repr__(self) -> str:
        return f"Tool({self.name!r})"


def _enum(kind: type[ToolBehavior] | type[Scheduling], value: Any, what: str) -> Any:
    """`"non_blocking"`, `"NON_BLOCKING"` or the member itself -> the member; None stays None."""
    if value is None or isinstance(value, kind):
        return value
    try:
        return kind(str(value).upper())
    except ValueError:
        allowed = ", ".join(member.value.lower() for member in kind)
        raise ValueError(f"{what} {value!r}: choose one of {allowed}") from None


def blocking_tool_problems(tools: Iterable[Tool], model: str) -> list[str]:
    """Tools declared BLOCKING for a model that refuses BLOCKING (Extended Thinking), one
    line each: the service would refuse the whole session at setup."""
    rules = rules_for(model)
    if rules.accepts_blocking:
        return []
    return [
        f"tool {tool.name!r} is declared blocking, which {model} refuses (its tools run in the background): "
        "declare it behavior='non_blocking', or use gemini-3.8-live"
        for tool in tools
        if tool.behavior is ToolBehavior.BLOCKING
    ]


def _arguments_model(
    function: Callable[..., Any], tool_name: str, descriptions: dict[str, str | None]
) -> tuple[type[BaseModel], str | None]:
    hints = get_type_hints(function)
    fields: dict[str, Any] = {}
    context_parameter = None
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise ValueError(f"tool {tool_name!r}: *args and **kwargs cannot be declared to the model")
        annotation = hints.get(parameter.name)
        if annotation is CallContext:
            context_parameter = parameter.name
            continue
        if annotation is None:
            raise ValueError(f"tool {tool_name!r}: parameter {parameter.name!r} needs a type hint")
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[parameter.name] = (annotation, Field(default, description=descriptions.get(parameter.name)))
    model = create_model(f"{tool_name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
    return model, context_parameter


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """pydantic's JSON schema without the titles it adds everywhere (noise for the model)."""

    def clean(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: clean(v) for k, v in node.items() if k != "title" or not isinstance(v, str)}
        if isinstance(node, list):
            return [clean(v) for v in node]
        return node

    cleaned: dict[str, Any] = clean(schema)
    cleaned.pop("additionalProperties", None)
    return cleaned


def _function_runner(
    function: Callable[..., Any], arguments: type[BaseModel], context_parameter: str | None
) -> Callable[[dict[str, Any], CallHandle], Awaitable[ToolOutcome]]:
    is_async = inspect.iscoroutinefunction(function)

    async def run(raw: dict[str, Any], call: CallHandle) -> ToolOutcome:
        try:
            parsed = arguments.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors())
            return ToolOutcome({"error": f"invalid arguments: {problems}", "status": "invalid_argument", "retryable": False})
        kwargs = {name: getattr(parsed, name) for name in type(parsed).model_fields}
        if context_parameter is not None:
            kwargs[context_parameter] = context_of(call)
        try:
            if is_async:
                result = await function(**kwargs)
            else:
                result = await asyncio.to_thread(functools.partial(function, **kwargs))
        except ToolError as exc:
            return ToolOutcome({"error": str(exc)})
        if isinstance(result, ToolOutcome):
            return result
        return ToolOutcome(as_response(result))

    return run


def as_response(result: Any) -> dict[str, Any]:
    """A tool's return value as the functionResponse the model gets: a dict as it is, any
    other JSON value as {"result": value}; pydantic models are dumped. Not JSON -> an error."""
    if isinstance(result, BaseModel):
        result = result.model_dump(mode="json")
    response = result if isinstance(result, dict) else {"result": result}
    try:
        json.dumps(response)
    except (TypeError, ValueError) as exc:
        return {"error": f"the tool returned something that is not JSON ({exc}); return str, numbers, lists or dicts"}
    return response


def context_of(call: CallHandle) -> CallContext:
    parameters = call.parameters
    return CallContext(
        call_sid=call.call_sid,
        stream_sid=call.stream_sid,
        from_number=parameters.get("caller", ""),
        to_number=parameters.get("called", ""),
        direction=parameters.get("direction", ""),
        parameters=dict(parameters),
        call=call,
    )


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
    ) -> None:
        """`builtin_tools`: which of end_call, transfer_call, send_dtmf the model gets (all by
        default; transfer_call only where transfer numbers are configured). `vad`: a preset
        name (phone, responsive, patient). `tool_timeout_s`: default for this agent's tools.
        `mcp`: `telephony.agents.mcp_tools.McpServer`s whose tools this agent gets (connected at
        startup by `telephony serve`)."""
        if not _NAME.match(name):
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
        self.tools: dict[str, Tool] = {}
        self.mcp_servers = tuple(mcp)
        for tool in tools:
            self.add_tool(tool)

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
    agent a selector returns is remembered by name in this process.
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

    def named(self, name: str | None) -> Agent:
        """The agent a stream's TwiML named (the default when none)."""
        return self.by_name.get(name or "", self.default)
