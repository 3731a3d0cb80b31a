"""`telephony emulate ...`: the local stand-ins for Gemini Live and Twilio, for offline work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from telephony.cli.common import console, require_test_kit


def model_script_or_exit(path: Path) -> Any:
    """A model script file (`telephony.testing.model_script`), or one line and exit 2."""
    require_test_kit()
    from telephony.testing.model_script import ModelScriptError, load_model_script

    try:
        return load_model_script(path)
    except ModelScriptError as exc:
        console.print(f"[red]--script:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


emulate_app = typer.Typer(help="Local stand-ins for Gemini Live and Twilio, for offline work.", no_args_is_help=True)


@emulate_app.command("gemini")
def emulate_gemini(
    port: int = typer.Option(9000, help="TCP port on 127.0.0.1."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    agent: str = typer.Option("echo", help="'echo' (says back what the caller said) or a folder of WAV replies."),
    name: list[str] = typer.Option([], "--name", help="Extra host name for the TLS certificate (e.g. a compose service)."),
    ca_out: Path | None = typer.Option(None, "--ca-out", help="Write the CA certificate clients must trust here."),
    realistic: bool = typer.Option(
        False, "--realistic/--kind", help="Behave like the real service: answers in bursts, sub-word late transcripts, ..."
    ),
    close_after: float | None = typer.Option(None, help="Fault: close each first connection after this many seconds."),
    close_code: int = typer.Option(1011, help="Fault: the close code (1000, 1008, 1011 ...)."),
    close_reason: str = typer.Option("emulator: injected close", help="Fault: the close reason."),
    go_away_after: float | None = typer.Option(None, help="Fault: send goAway after this many seconds, then close with 1011."),
    go_away_left: float = typer.Option(50.0, help="Fault: the goAway's timeLeft in seconds."),
    refuse_resumption: bool = typer.Option(False, "--refuse-resumption", help="Fault: refuse every resumption handle."),
    setup_delay: float = typer.Option(0.0, help="Fault: answer a reconnect's setup this many seconds late."),
    model: str | None = typer.Option(
        None,
        help="Behave like this model's family whatever the client asks for (e.g. gemini-3.8-live-extended-thinking); "
        "default: the family of the model each session asks for.",
    ),
    session_deadline: float | None = typer.Option(
        None, help="Fault: close sessions at this age with 1011 'Deadline expired' and refuse their resumption (3.8: 3480)."
    ),
    stall: str | None = typer.Option(
        None,
        help="Fault: go silent on the first caller turn, socket open: empty_turn, no_answer, mid_sentence, phantom_interrupt or tone.",
    ),
    stall_rate: float = typer.Option(0.0, min=0.0, max=1.0, help="With --realistic: stall on this share of caller turns."),
    script: Path | None = typer.Option(
        None, "--script", help="A model script (YAML: per caller turn, tools to call and words to say): your tools run offline."
    ),
) -> None:
    """Run the Gemini Live emulator so that a local `telephony serve` needs no key or network.

    Examples: telephony emulate gemini --realistic --model gemini-3.8-live
              telephony emulate gemini --script examples/clinic/model_script.yaml"""
    import asyncio

    require_test_kit()
    from dataclasses import replace

    from telephony.gemini.models import known
    from telephony.testing.gemini_live import REALISTIC, STALL_KINDS, EchoAgent, Faults, GeminiLiveEmulator, ScriptedAgent
    from telephony.testing.model_profiles import profile_for

    if stall is not None and stall not in STALL_KINDS:
        raise typer.BadParameter(f"{stall!r}: choose one of {', '.join(sorted(STALL_KINDS))}", param_hint="--stall")

    if model is not None and known(model) is None:
        console.print(f"[yellow]warning:[/yellow] {model!r} is not a model we know: emulating {profile_for(model).rules.title}")

    faults = Faults(
        close_after_s=close_after,
        close_code=close_code,
        close_reason=close_reason,
        go_away_after_s=go_away_after,
        go_away_time_left_s=go_away_left,
        refuse_resumption=refuse_resumption,
        setup_delay_s=setup_delay,
        session_deadline_s=session_deadline,
        stall=stall,
    )

    chosen: Any
    if script is not None:
        if agent != "echo":
            raise typer.BadParameter("give --agent or --script, not both", param_hint="--script")
        chosen = model_script_or_exit(script).model  # a fresh script for every call
        agent = f"script {script.name}"
    elif agent == "echo":
        chosen = EchoAgent()
    else:
        replies = sorted(Path(agent).glob("*.wav"))
        if not replies:
            raise typer.BadParameter(f"no WAV files in {agent!r}; use 'echo' or a folder of WAV replies", param_hint="--agent")
        chosen = ScriptedAgent(replies)

    async def run() -> None:
        async with GeminiLiveEmulator(
            chosen,
            host=host,
            port=port,
            hostnames=tuple(name),
            ca_out=ca_out,
            faults=faults,
            realism=replace(REALISTIC, stall_rate=stall_rate) if realistic else None,
            model=model,
        ) as emulator:
            profile = "realistic" if realistic else "kind"
            family = profile_for(model).rules.title if model else "each session's model family"
            console.print(f"Gemini Live emulator on {emulator.base_url} (agent: {agent}, {profile}, behaving as {family})")
            console.print("Point the server at it:")
            console.print(f"  export TELEPHONY_GEMINI_BASE_URL={emulator.base_url}")
            console.print(f"  export TELEPHONY_GEMINI_CA_FILE={emulator.ca_file}")
            console.print("  export GEMINI_API_KEY=offline")
            await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        console.print("emulator stopped")
    except OSError as exc:
        console.print(f"[red]cannot listen on {host}:{port}:[/red] {exc.strerror or exc}", highlight=False)
        raise typer.Exit(1) from None
