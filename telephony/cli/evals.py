"""`telephony eval FILE.yaml --agent SPEC --emulate-gemini [--runs N] [--report OUT.json]`:
your agent's scenarios, run over the phone path and scored (`telephony.testing.evals`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.progress import Progress
from rich.table import Table

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


@app.command("eval")
def evaluate(
    file: Path = typer.Argument(..., help="Scenarios (YAML): name, caller or persona, model, expect."),
    agent: str | None = typer.Option(None, "--agent", help="Your agent (module:attr or a .toml file) [TELEPHONY_AGENT]."),
    emulate_gemini: bool = typer.Option(
        False, "--emulate-gemini", help="Offline: the Gemini emulator follows each scenario's `model` (default: the real model)."
    ),
    runs: int = typer.Option(1, "--runs", min=1, max=100, help="Runs per scenario."),
    report: Path | None = typer.Option(None, "--report", help="Also write the results as JSON here."),
    speed: float = typer.Option(8.0, min=1.0, max=20.0, help="Offline: how much faster than real time the calls run."),
    max_turns: int = typer.Option(8, "--max-turns", min=1, max=50, help="A simulated caller's (persona's) most turns."),
    max_seconds: float = typer.Option(120.0, "--max-seconds", min=5.0, max=1800.0, help="A simulated caller's longest call."),
    keep: bool = typer.Option(True, "--keep/--no-keep", help="Keep the runs in the call history (the dashboard shows them)."),
) -> None:
    """Run every scenario N times through the phone path; a table, JSON, and exit 1 when an expectation fails.

    Offline: telephony eval examples/clinic/evals.yaml --agent examples/clinic/clinic.py:agent --emulate-gemini
    Real model (GEMINI_API_KEY): telephony eval examples/clinic/evals.yaml --agent examples/clinic/clinic.py:agent

    Example: telephony eval examples/clinic/evals.yaml --agent examples/clinic/clinic.py:agent --emulate-gemini
    """
    require_test_kit()
    from telephony.testing.evals import EvalFileError, EvalOptions, load_eval_file, run_evals
    from telephony.testing.judge import JudgeError

    try:
        scenarios = load_eval_file(file)
    except EvalFileError as exc:
        console.print(f"[red]eval:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    personas = [s.name for s in scenarios if not s.caller]
    if emulate_gemini and personas:
        console.print(
            f"[red]eval:[/red] {file}: scenario {personas[0]!r} has only a `persona`: offline runs need `caller` lines "
            "(a simulated caller needs the real model)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2)
    overrides: dict[str, Any] = {"agent": agent} if agent else {}
    settings = settings_or_exit(gemini_emulated=True, **overrides)
    if not emulate_gemini:
        real_model_or_exit(settings, "eval")
    loaded = chosen_agent_or_exit(settings, "eval")
    server: dict[str, Any] = {"database_url": "sqlite:///:memory:"}
    history = settings.call_history_url
    if keep and history != "off":
        recordings = settings.recordings_dir or settings.data_dir / "recordings"
        server = {"database_url": history, "record_audio": True, "recordings_dir": recordings, "recording_notice": False}
    options = EvalOptions(
        runs=runs, real=not emulate_gemini, speed=speed, server=server, max_turns=max_turns, max_seconds=max_seconds, source=str(file)
    )

    with only_errors_logged(), Progress(console=console, transient=True) as progress:
        task = progress.add_task("eval", total=len(scenarios) * runs)
        try:
            results = run_event_loop(run_evals(scenarios, loaded, options, on_run=lambda name, n: progress.advance(task)), loop="asyncio")
        except JudgeError as exc:
            console.print(f"[red]eval:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    where = "offline" if emulate_gemini else "real model"
    table = Table(title=f"telephony eval {file.name} ({runs} run{'s' if runs > 1 else ''} each, {where})")
    for column in ("scenario", "passed", "tools", "response p50", "response p95", "cost/run"):
        table.add_column(column)
    for scenario in results:
        accuracy = scenario.tool_accuracy
        p50, p95 = scenario.latency_ms(0.5), scenario.latency_ms(0.95)
        costs = [run.cost_usd for run in scenario.runs if run.cost_usd is not None]
        table.add_row(
            scenario.name,
            f"{scenario.pass_rate:.0%}",
            "-" if accuracy is None else f"{accuracy:.0%}",
            "-" if p50 is None else f"{p50:.0f} ms",
            "-" if p95 is None else f"{p95:.0f} ms",
            f"${sum(costs) / len(costs):.4f}" if costs else "-",
        )
    console.print(table)
    for scenario in results:
        for number, run in enumerate(scenario.runs, 1):
            for failure in run.failures:
                console.print(f"[red]FAIL[/red] {scenario.name} (run {number}): {failure}", highlight=False, soft_wrap=True)
    if keep and history != "off":
        console.print("runs kept in the call history (direction eval): telephony calls, or /calls on a running server", highlight=False)
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        body = {"file": str(file), "runs": runs, "model": where, "scenarios": [s.as_json() for s in results]}
        report.write_text(json.dumps(body, indent=2))
        console.print(f"report: {report}")
    if any(run.failures for scenario in results for run in scenario.runs):
        raise typer.Exit(1)
