"""What every command shares: the console, settings and agents or a one-line exit, the
test kit check, and running a coroutine on the chosen event loop."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from telephony.settings import Settings

# Piped to a file or CI log, rich would wrap the wide bench tables at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)

DEMO_CALL = Path(str(resources.files("telephony").joinpath("testing", "calls", "barge_in.jsonl")))
"""A recorded call shipped with the package (package data, found without importing the test kit)."""
"""The recorded call `telephony demo` plays; it ships inside the package."""


def settings_or_exit(
    for_serve: bool = False, gemini_emulated: bool = False, warn: bool = False, with_agent: bool = False, **overrides: Any
) -> Settings:
    """The settings, or every problem with them on its own line and exit code 2 (never a
    traceback, never a value: it may be a secret). `for_serve`: also what would make the
    server refuse to start (`Settings.serve_problems`). `with_agent`: the agent's problems
    too, in the same report (then `agent_or_exit` says nothing new)."""
    from telephony.settings import ConfigError, load_settings

    agent_problems: list[str] = []
    try:
        settings = load_settings(**overrides)
        problems = settings.serve_problems(gemini_emulated) if for_serve else []
        if with_agent:
            agent_problems = _agents(settings)[1]
    except ConfigError as exc:
        problems = exc.problems
    if problems or agent_problems:
        for problem in problems:
            console.print(f"[red]config:[/red] {problem}", highlight=False, soft_wrap=True)
        for problem in agent_problems:
            console.print(f"[red]agent:[/red] {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    for warning in settings.startup_warnings() if (warn or for_serve) else []:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)
    return settings


def _agents(settings: Settings) -> tuple[Any, list[str]]:
    """The agent TELEPHONY_AGENT / --agent names (None: the settings' agent), and its problems."""
    if not settings.agent:
        return None, []
    from telephony.agents.loading import AgentLoadError, agent_model_problems, load_agent

    secret = settings.tool_signing_secret.get_secret_value().encode() if settings.tool_signing_secret else None
    try:
        agents = load_agent(settings.agent, secret)
    except AgentLoadError as exc:
        return None, exc.problems
    return agents, agent_model_problems(agents, settings.gemini_model)


def agent_or_exit(settings: Settings) -> Any:
    """The agent TELEPHONY_AGENT / --agent names (None: the settings' agent), or its problems, one line each, and exit 2."""
    from telephony.agents.loading import agent_names

    agents, problems = _agents(settings)
    for problem in problems:
        console.print(f"[red]agent:[/red] {problem}", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(2)
    if agents is not None:
        console.print(f"agents: {', '.join(agent_names(agents))}", highlight=False)
    return agents


def real_model_or_exit(settings: Settings, command: str) -> None:
    """A command about to use the real model without credentials: one line, exit 2."""
    if settings.gemini_api_key is None and not settings.vertex_project:
        console.print(
            f"[red]{command}:[/red] the real model needs GEMINI_API_KEY (or TELEPHONY_VERTEX_PROJECT); add --emulate-gemini to run offline",
            highlight=False,
        )
        raise typer.Exit(2)


def chosen_agent_or_exit(settings: Settings, command: str) -> Any:
    """The agent a command needs (`--agent` or TELEPHONY_AGENT), or one line and exit 2."""
    loaded = agent_or_exit(settings)
    if loaded is None:
        console.print(f"[red]{command}:[/red] say which agent: --agent module:attr or a .toml file (or TELEPHONY_AGENT)")
        raise typer.Exit(2)
    return loaded


def require_test_kit() -> None:
    """The emulators are an extra (`pip install 'telephony[emulators]'`): say so, in one line."""
    import importlib.util

    if importlib.util.find_spec("trustme") is None:
        console.print("[red]the offline test kit is not installed:[/red] pip install 'telephony[emulators]' (make demo and make test do)")
        raise typer.Exit(2)


def _refused_403(exc: BaseException) -> bool:
    import httpx
    from websockets.exceptions import InvalidStatus

    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code == 403
    return isinstance(exc, InvalidStatus) and exc.response.status_code == 403


@contextmanager
def only_errors_logged() -> Iterator[None]:
    """The server under test would log each tool that failed and each call that ended; a
    console command shows what matters of it itself, so only errors are printed. The level is
    given back after, so a command run in-process (a test, a notebook) leaves logging as it was."""
    logger = logging.getLogger("telephony")
    before = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(before)


def run_event_loop(coroutine, loop: str = "auto"):
    """Run on uvloop when asked (or, for 'auto', when installed), else on asyncio's loop."""
    import asyncio

    if loop not in ("auto", "uvloop", "asyncio"):
        raise typer.BadParameter("choose auto, uvloop or asyncio", param_hint="--loop")
    if loop != "asyncio":
        try:
            import uvloop

            return uvloop.run(coroutine)
        except ImportError:
            if loop == "uvloop":
                raise typer.BadParameter("uvloop is not installed", param_hint="--loop") from None
    return asyncio.run(coroutine)
