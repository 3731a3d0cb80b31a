"""`telephony talk --agent SPEC [--emulate-gemini [--script FILE]]`: type what the caller
says, watch the agent answer (`telephony.testing.console`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from telephony.cli.commands import app
from telephony.cli.common import (
    chosen_agent_or_exit,
    console,
    only_errors_logged,
    real_model_or_exit,
    require_test_kit,
    run_event_loop,
    settings_or_exit,
)


@app.command("talk")
def talk_command(
    agent: str | None = typer.Option(None, "--agent", help="Your agent (module:attr or a .toml file) [TELEPHONY_AGENT]."),
    emulate_gemini: bool = typer.Option(False, "--emulate-gemini", help="Offline: the Gemini emulator plays the model."),
    script: Path | None = typer.Option(None, "--script", help="Offline: the emulated model follows this model script (YAML)."),
) -> None:
    """A terminal console: type what the caller says; see the agent's words, tool calls and latencies.

    Real model (GEMINI_API_KEY): telephony talk --agent examples/clinic/clinic.py:agent
    Offline: telephony talk --agent examples/clinic/clinic.py:agent --emulate-gemini --script examples/clinic/model_script.yaml

    Example: telephony talk --agent examples/clinic/clinic.py:agent --emulate-gemini
    """
    require_test_kit()
    from telephony.cli.emulate import model_script_or_exit
    from telephony.testing.console import talk

    if script is not None and not emulate_gemini:
        console.print("[red]talk:[/red] --script is what the emulated model does: add --emulate-gemini", highlight=False)
        raise typer.Exit(2)
    model_script = model_script_or_exit(script) if script is not None else None
    overrides: dict[str, Any] = {"agent": agent} if agent else {}
    settings = settings_or_exit(gemini_emulated=True, **overrides)
    if not emulate_gemini:
        real_model_or_exit(settings, "talk")
    loaded = chosen_agent_or_exit(settings, "talk")
    if emulate_gemini:
        console.print(f"[dim]offline: the emulated model {'follows ' + str(script) if script else 'says back what it heard'}[/dim]")

    def show(text: str) -> None:
        console.print(text, highlight=False, soft_wrap=True)

    try:
        with only_errors_logged():
            code = run_event_loop(talk(loaded, real=not emulate_gemini, script=model_script, show=show), loop="asyncio")
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)
