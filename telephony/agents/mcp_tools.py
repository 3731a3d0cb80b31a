"""Tools from MCP servers: an agent's `[[mcp]]` entries (TOML) or `Agent(mcp=[...])`.

    [[mcp]]
    command = "python"              # a server over stdio, started with the service
    args = ["my_mcp_server.py"]
    # or:  url = "https://tools.example.com/mcp"   (streamable HTTP)
    # tools = ["lookup_order"]      # only these (default: every tool it lists)

At startup each server is connected once (with the official `mcp` package) and its tools are
declared to the model with the server's own descriptions and input schemas; a call from the
model becomes `tools/call` on that connection. The connections live as long as the service
(`McpConnections`, an async context manager), each owned by one task. A server that cannot
be reached at startup is a one-line error; a tool error or a failed call goes back to the
model as an error, like any tool's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from google.genai import types

if TYPE_CHECKING:  # the mcp package (24 MB, ~190 modules) loads only for an agent that has MCP servers
    from mcp import Client, StdioServerParameters

from telephony.agents.agent import Agent
from telephony.agents.tools import Tool, as_response
from telephony.call.tool_api import CallHandle, ToolOutcome
from telephony.gemini.events import ToolCall

CONNECT_TIMEOUT_S = 20.0


class McpError(RuntimeError):
    """An MCP server could not be used; the message is one line."""


@dataclass(frozen=True)
class McpServer:
    """Where an agent's MCP server is: a `url` (streamable HTTP) or a `command` (stdio)."""

    url: str | None = None
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    tools: tuple[str, ...] | None = None
    """Only these of its tools (default: all)."""
    behavior: str | None = None
    """"blocking" or "non_blocking" for all its tools (default: the model family's; see `telephony.Tool`)."""

    @property
    def label(self) -> str:
        return self.url or " ".join((self.command or "", *self.args)).strip()

    def target(self) -> str | StdioServerParameters:
        if self.url:
            return self.url
        if not self.command:
            raise McpError("an [[mcp]] entry needs a url or a command")
        from mcp import StdioServerParameters

        return StdioServerParameters(command=self.command, args=list(self.args), env=self.env or None)


class _Connection:
    """One MCP server, connected by a task of its own (anyio's scopes want one owner)."""

    def __init__(self, server: McpServer) -> None:
        self.server = server
        self._ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._own(), name=f"mcp:{server.label}")

    async def _own(self) -> None:
        try:
            from mcp import Client

            async with Client(self.server.target()) as client:
                self._ready.set_result(client)
                await self._stop.wait()
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
            elif not isinstance(exc, asyncio.CancelledError):
                raise

    async def connected(self) -> Client:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                return await asyncio.shield(self._ready)
        except TimeoutError:
            raise McpError(f"MCP server {self.server.label}: no answer within {CONNECT_TIMEOUT_S:.0f} s") from None
        except Exception as exc:
            raise McpError(f"MCP server {self.server.label}: cannot connect ({_one_line(exc)})") from None

    async def close(self) -> None:
        self._stop.set()
        try:
            async with asyncio.timeout(5):
                await asyncio.gather(self._task, return_exceptions=True)
        except TimeoutError:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _one_line(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")


def _tool(client: Client, name: str, description: str, schema: dict[str, Any], behavior: str | None = None) -> Tool:
    declaration = types.FunctionDeclaration(name=name, description=description or name, parameters_json_schema=schema)

    async def handler(call: CallHandle, tool_call: ToolCall) -> ToolOutcome:
        try:
            result = await client.call_tool(name, dict(tool_call.args))
        except Exception as exc:
            return ToolOutcome({"error": f"the MCP server failed: {_one_line(exc)}"})
        text = " ".join(getattr(block, "text", "") for block in getattr(result, "content", []) or []).strip()
        if getattr(result, "is_error", False):
            return ToolOutcome({"error": text or "the MCP tool reported an error"})
        structured = getattr(result, "structured_content", None)
        return ToolOutcome(as_response(structured if structured is not None else text))

    return Tool(name, declaration, handler, behavior=behavior)


class McpConnections:
    """The MCP servers of some agents, connected for as long as this context lasts; their
    tools are added to the agents on entry."""

    def __init__(self, agents: list[tuple[Agent, McpServer]]) -> None:
        self.agents = agents
        self._connections: list[_Connection] = []

    async def __aenter__(self) -> McpConnections:
        try:
            for agent, server in self.agents:
                connection = _Connection(server)
                self._connections.append(connection)
                client = await connection.connected()
                listed = await client.list_tools()
                for item in listed.tools:
                    if server.tools is not None and item.name not in server.tools:
                        continue
                    agent.add_tool(_tool(client, item.name, item.description or "", dict(item.input_schema), server.behavior))
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        for connection in reversed(self._connections):
            await connection.close()
        self._connections.clear()


@contextlib.asynccontextmanager
async def mcp_tools_of(agents: Any) -> AsyncIterator[None]:
    """Connect the MCP servers that loaded agents asked for (`Agent.mcp_servers`)."""
    pairs = [(agent, server) for agent in _agents(agents) for server in getattr(agent, "mcp_servers", ())]
    if not pairs:
        yield
        return
    async with McpConnections(pairs):
        yield


def _agents(agents: Any) -> list[Agent]:
    if isinstance(agents, Agent):
        return [agents]
    if isinstance(agents, (list, tuple)):
        return [agent for agent in agents if isinstance(agent, Agent)]
    return []
