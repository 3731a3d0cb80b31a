"""Where `telephony serve --agent SPEC` (or TELEPHONY_AGENT) finds your agent.

- `module:attr` (as uvicorn's app spec, the current folder first on the path), or
  `path/to/file.py:attr` (its folder first on the path): `attr` is an `Agent`, a list of
  agents, or a selector `(IncomingCall) -> Agent | Refuse` (sync or async).
- `path/agent.toml`: a no-code agent. Its tools are HTTP endpoints of yours:

      name = "clinic"
      instructions = "You are the front desk of Maple Clinic."
      voice = "Kore"
      greeting = "Greet the caller and offer to book an appointment."

      [[tools]]
      name = "free_slots"
      description = "List the free appointment times on a day."
      url = "https://backend.example.com/tools/free_slots"
      timeout_seconds = 5
      parameters = { type = "object", properties = { day = { type = "string" } }, required = ["day"] }
      behavior = "non_blocking"   # or "blocking"; default: the model family's (NON_BLOCKING on 3.8)
      scheduling = "when_idle"    # non_blocking only: or "silent", "interrupt"

  For each call of a tool the server POSTs JSON `{"name", "arguments", "call_sid", "from",
  "to"}` to its `url`, with the header `X-Telephony-Signature: sha256=<hex HMAC-SHA256 of the
  exact body, keyed by TELEPHONY_TOOL_SIGNING_SECRET>`; your server should check it
  (`hmac.compare_digest`) before acting. The JSON it answers goes to the model as the
  tool's result; an HTTP error, a timeout or a body that is not JSON goes as an error.
  The model's arguments are checked against `parameters` (JSON Schema) before any request.

Every mistake is an `AgentLoadError` with one line naming the file or module and the field.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import httpx
from google.genai import types
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from telephony.agents.agent import BUILTIN_TOOLS, Agent, AgentSelector
from telephony.agents.analysis import Analysis
from telephony.agents.tools import Tool, as_response, blocking_tool_problems, context_of
from telephony.call.tool_api import CallHandle, ToolOutcome
from telephony.gemini.events import ToolCall
from telephony.http_client import http_client, tls_context

SIGNATURE_HEADER = "X-Telephony-Signature"


class AgentLoadError(ValueError):
    """An agent spec or file that cannot be used: `problems`, one line each (a TOML file lists
    every mistake it has, not the first)."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def sign_body(secret: bytes, body: bytes) -> str:
    """The `X-Telephony-Signature` value for a request body (what your tool server checks)."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class _AnalysisEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    success: str = "the caller got what they called for"
    fields: dict[str, Any] | None = None
    """A JSON schema (an object) of what to extract from each call."""
    model: str | None = None


class _ToolEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = Field(min_length=1)
    url: str = Field(pattern=r"^https?://")
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    timeout_seconds: float = Field(10.0, gt=0, le=300)
    behavior: Literal["blocking", "non_blocking"] | None = None
    scheduling: Literal["when_idle", "silent", "interrupt"] | None = None


class _McpEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(None, pattern=r"^https?://")
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    tools: list[str] | None = None
    behavior: Literal["blocking", "non_blocking"] | None = None


class _AgentFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "default"
    instructions: str | None = None
    voice: str | None = None
    greeting: str | None = None
    language: str | None = None
    vad: str | None = None
    model: str | None = None
    builtin_tools: list[str] = Field(default_factory=lambda: list(BUILTIN_TOOLS))
    tool_timeout_seconds: float | None = Field(None, gt=0, le=300)
    silence_reprompt_seconds: float | None = Field(None, ge=0)
    silence_hangup_seconds: float | None = Field(None, ge=0)
    max_call_seconds: float | None = Field(None, gt=0)
    events_url: str | None = Field(None, pattern=r"^https?://")
    voicemail: str | bool | None = None
    """The message an answering machine gets (text), or false to hang up on one."""
    voicemail_instructions: str | None = None

    @field_validator("voicemail", mode="before")
    @classmethod
    def _message_or_false(cls, value: Any) -> Any:
        if value is None or value is False or isinstance(value, str):
            return value
        raise ValueError("the message to leave on an answering machine (text), or false to hang up on one")

    analysis: _AnalysisEntry | None = None
    tools: list[_ToolEntry] = Field(default_factory=list)
    mcp: list[_McpEntry] = Field(default_factory=list)


def http_tool(entry: _ToolEntry, secret: bytes) -> Tool:
    """A tool whose work is done by an HTTP endpoint (see the module docstring)."""
    import jsonschema  # here: 2 MB that only agents with HTTP tools need

    try:
        jsonschema.Draft202012Validator.check_schema(entry.parameters)
    except jsonschema.SchemaError as exc:
        raise AgentLoadError(f"tools.{entry.name}.parameters is not a valid JSON Schema: {exc.message}") from None
    validator = jsonschema.Draft202012Validator(entry.parameters)
    declaration = types.FunctionDeclaration(name=entry.name, description=entry.description, parameters_json_schema=entry.parameters)
    tls_context()  # made now, at load: made at the first call, it would hold every call's audio ~20 ms
    client: httpx.AsyncClient | None = None

    async def handler(call: CallHandle, tool_call: ToolCall) -> ToolOutcome:
        nonlocal client
        problems = sorted(validator.iter_errors(tool_call.args), key=lambda e: list(e.path))
        if problems:
            listed = "; ".join(f"{'.'.join(str(p) for p in e.path) or 'arguments'}: {e.message}" for e in problems)
            return ToolOutcome({"error": f"invalid arguments: {listed}"})
        context = context_of(call)
        body = json.dumps(
            {
                "name": entry.name,
                "arguments": tool_call.args,
                "call_sid": context.call_sid,
                "from": context.from_number,
                "to": context.to_number,
            }
        ).encode()
        client = client or http_client(entry.timeout_seconds)
        try:
            response = await client.post(
                entry.url, content=body, headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign_body(secret, body)}
            )
        except httpx.TimeoutException:
            return ToolOutcome({"error": f"the tool's server did not answer within {entry.timeout_seconds:g} s"})
        except httpx.HTTPError as exc:
            return ToolOutcome({"error": f"the tool's server could not be reached ({type(exc).__name__})"})
        if response.status_code >= 400:
            return ToolOutcome({"error": f"the tool's server answered HTTP {response.status_code}: {response.text[:200]}"})
        try:
            data = response.json()
        except ValueError:
            return ToolOutcome({"error": "the tool's server answered something that is not JSON"})
        return ToolOutcome(as_response(data))

    return Tool(entry.name, declaration, handler, entry.timeout_seconds, behavior=entry.behavior, scheduling=entry.scheduling)


def load_toml_agent(path: Path, signing_secret: bytes | None) -> Agent:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AgentLoadError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise AgentLoadError(f"{path}: not valid TOML ({exc})") from None
    try:
        spec = _AgentFile.model_validate(raw)
    except ValidationError as exc:
        raise AgentLoadError(
            *(
                f"{path}: {'.'.join(str(p) for p in error['loc']) or 'the file'}: {str(error['msg']).removeprefix('Value error, ')}"
                for error in exc.errors(include_input=False, include_url=False)
            )
        ) from None
    problems = []
    if spec.tools and signing_secret is None:
        problems.append(f"{path}: its tools are HTTP endpoints: set TELEPHONY_TOOL_SIGNING_SECRET so that they can check our requests")
    from telephony.agents.mcp_tools import McpServer

    servers = []
    for number, server in enumerate(spec.mcp):
        if bool(server.url) == bool(server.command):
            problems.append(f"{path}: mcp.{number}: give either a url or a command")
            continue
        chosen = tuple(server.tools) if server.tools else None
        servers.append(McpServer(server.url, server.command, tuple(server.args), server.env, chosen, server.behavior))
    tools = []
    for entry in spec.tools:
        try:
            tools.append(http_tool(entry, signing_secret or b""))
        except ValueError as exc:
            problems.append(f"{path}: {exc}")
    if problems:
        raise AgentLoadError(*problems)
    try:
        return Agent(
            spec.name,
            instructions=spec.instructions,
            voice=spec.voice,
            greeting=spec.greeting,
            language=spec.language,
            vad=spec.vad,
            model=spec.model,
            builtin_tools=spec.builtin_tools,
            tool_timeout_s=spec.tool_timeout_seconds,
            silence_reprompt_s=spec.silence_reprompt_seconds,
            silence_hangup_s=spec.silence_hangup_seconds,
            max_call_s=spec.max_call_seconds,
            events_url=spec.events_url,
            voicemail=spec.voicemail,
            voicemail_instructions=spec.voicemail_instructions,
            analysis=Analysis(fields=spec.analysis.fields, success=spec.analysis.success, model=spec.analysis.model)
            if spec.analysis is not None
            else None,
            tools=tools,
            mcp=servers,
        )
    except ValueError as exc:
        raise AgentLoadError(f"{path}: {exc}") from None


def load_agent(spec: str, signing_secret: bytes | None = None) -> Agent | AgentSelector | list[Agent]:
    """What `--agent SPEC` names: a TOML file, or `module:attr` (see the module docstring)."""
    if spec.endswith(".toml"):
        return load_toml_agent(Path(spec), signing_secret)
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise AgentLoadError(f"--agent {spec!r}: use module:attribute (e.g. myagent:agent), path/to/file.py:attribute or a .toml file")
    if module_name.endswith(".py"):  # a file: path/to/agent.py:agent (its folder goes on the path)
        path = Path(module_name)
        if not path.is_file():
            raise AgentLoadError(f"--agent {spec!r}: no file {module_name}")
        if str(path.parent.resolve()) not in sys.path:
            sys.path.insert(0, str(path.parent.resolve()))
        module_name = path.stem
    elif "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AgentLoadError(f"--agent {spec!r}: cannot import {module_name!r} ({exc})") from None
    except Exception as exc:
        raise AgentLoadError(f"--agent {spec!r}: importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    try:
        found = getattr(module, attribute)
    except AttributeError:
        raise AgentLoadError(f"--agent {spec!r}: {module_name!r} has no attribute {attribute!r}") from None
    if isinstance(found, Agent):
        return found
    if isinstance(found, (list, tuple)) and found and all(isinstance(a, Agent) for a in found):
        return list(found)
    if callable(found) and not isinstance(found, type):
        return found
    raise AgentLoadError(
        f"--agent {spec!r}: {attribute!r} is a {type(found).__name__}; it must be an Agent, a list of agents or a selector"
    )


def agent_names(agents: Agent | AgentSelector | Iterable[Agent]) -> list[str]:
    """For the startup line."""
    if isinstance(agents, Agent):
        return [agents.name]
    if callable(agents):
        return [f"selector {getattr(agents, '__name__', 'function')}"]
    return [agent.name for agent in agents]


def agent_model_problems(agents: Agent | AgentSelector | Iterable[Agent], default_model: str) -> list[str]:
    """What the model each agent runs on would refuse in its tools (one line each): a tool
    declared BLOCKING on Extended Thinking closes every session at setup. A selector's agents
    are only known per call and are not checked here."""
    listed = [agents] if isinstance(agents, Agent) else [] if callable(agents) else list(agents)
    problems = []
    for agent in listed:
        model = agent.model or default_model
        problems += [f"agent {agent.name!r}: {problem}" for problem in blocking_tool_problems(agent.tools.values(), model)]
    return problems
