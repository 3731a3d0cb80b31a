"""Your agent's tools: a function becomes a `Tool` (its declaration for Gemini made by
pydantic from the type hints, parameter descriptions from the docstring's Args), and a call
of it runs validated, off the audio path, with whatever goes wrong reported to the model.
`CallContext` is what a tool can ask for about its call. See `telephony.agents.agent`."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import re
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, get_type_hints

import docstring_parser
from google.genai import types
from pydantic import BaseModel, ConfigDict, Field, PydanticSchemaGenerationError, TypeAdapter, ValidationError, create_model
from pydantic.errors import PydanticInvalidForJsonSchema

from telephony.agents.keypad_input import Keypad, keypad_note, keypad_of
from telephony.call.tool_api import CallHandle, ToolHandler, ToolOutcome
from telephony.gemini.events import ToolCall
from telephony.gemini.models import Scheduling, ToolBehavior, rules_for

if TYPE_CHECKING:
    pass

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
"""Names of agents and tools: what Gemini accepts as a function name."""


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
        if not NAME_PATTERN.match(name):
            raise ValueError(f"tool name {name!r}: letters, digits, _ . - only, starting with a letter or _")
        self.name = name
        self.behavior = _enum(ToolBehavior, behavior, f"tool {name!r}: behavior")
        self.scheduling = _enum(Scheduling, scheduling, f"tool {name!r}: scheduling")
        if self.behavior is not None:
            declaration = declaration.model_copy(update={"behavior": types.Behavior(self.behavior.value)})
        self.declaration = declaration
        self.handler = handler
        self.timeout_s = timeout_s
        self.keypad: dict[str, Keypad] = {}
        """Parameters the caller types on the keypad (`telephony.agents.keypad_input`)."""

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
        descriptions = {p.arg_name: p.description for p in docs.params}
        arguments, context_parameter, keypad = _arguments_model(function, tool_name, descriptions)
        if keypad:
            described += keypad_note(keypad)
        schema = _clean_schema(arguments.model_json_schema())
        declaration = types.FunctionDeclaration(name=tool_name, description=described, parameters_json_schema=schema)
        run = _function_runner(function, arguments, context_parameter)

        async def handler(call: CallHandle, tool_call: ToolCall) -> ToolOutcome:
            typed: dict[str, str] = {}
            for parameter, entry in keypad.items():  # the model asked the caller; the call collects
                result = await call.collect_keypad(entry.rules(parameter))
                if result.digits is None:
                    problem = result.problem or "no digits"
                    return ToolOutcome({"error": f"keypad entry failed: {problem}", "status": "keypad", "retryable": True})
                typed[parameter] = result.digits
            model_args = {k: v for k, v in tool_call.args.items() if k not in keypad}  # never the model's guess
            return await run(model_args, call, typed)

        made = cls(tool_name, declaration, handler, timeout_s, behavior=behavior, scheduling=scheduling)
        made.keypad = keypad
        return made

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
) -> tuple[type[BaseModel], str | None, dict[str, Keypad]]:
    hints = get_type_hints(function, include_extras=True)
    fields: dict[str, Any] = {}
    keypad: dict[str, Keypad] = {}
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
        if (entry := keypad_of(annotation)) is not None:  # typed by the caller, not given by the model
            if typing.get_args(annotation)[0] is not str:
                raise ValueError(f"tool {tool_name!r}: keypad parameter {parameter.name!r} must be a str (digits keep their zeros)")
            keypad[parameter.name] = entry
            continue
        _describable(annotation, tool_name, parameter.name)
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[parameter.name] = (annotation, Field(default, description=descriptions.get(parameter.name)))
    model = create_model(f"{tool_name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
    return model, context_parameter, keypad


def _describable(annotation: Any, tool_name: str, parameter: str) -> None:
    """A parameter's type must become JSON Schema for the model: one line when it cannot."""
    try:
        TypeAdapter(annotation).json_schema()
    except (PydanticSchemaGenerationError, PydanticInvalidForJsonSchema):
        name = getattr(annotation, "__name__", None) or str(annotation)
        raise ValueError(
            f"tool {tool_name!r}: parameter {parameter!r} is a {name}, which cannot be described to the model; "
            "use str, int, float, bool, a Literal, a list or dict of those, an Enum, or a pydantic model, dataclass or TypedDict"
        ) from None


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
) -> Callable[[dict[str, Any], CallHandle, dict[str, str]], Awaitable[ToolOutcome]]:
    is_async = inspect.iscoroutinefunction(function)

    async def run(raw: dict[str, Any], call: CallHandle, typed: dict[str, str]) -> ToolOutcome:
        try:
            parsed = arguments.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors())
            return ToolOutcome({"error": f"invalid arguments: {problems}", "status": "invalid_argument", "retryable": False})
        kwargs = {name: getattr(parsed, name) for name in type(parsed).model_fields} | typed
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
