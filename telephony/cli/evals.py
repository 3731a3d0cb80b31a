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
from telephony.cli.common import agent_or_exit, console, require_test_kit, run_event_loop, settings_or_exit


@app.command("eval")
def evaluate(
    file: Path = typer.Argument(..., help="Scenarios (YAML): name, caller, model, expect."),
    agent: str | None = typer.Option(None, "--agent", help="Your agent (module:attr or a .toml file) [TELEPHONY_AGENT]."),
    emulate_gemini: bool = typer.Option(False, "--emulate-gemini", help="Offline: the Gemini emulator follows each scenario's `model`."),
    runs: int = typer.Option(1, "--runs", min=1, max=100, help="Runs per scenario."),
    report: Path | None = typer.Option(None, "--report", help="Also write the results as JSON here."),
    speed: float = typer.Option(8.0, min=1.0, max=20.0, help="Offline: how much faster than real time the calls run."),
) -> None:
    """Run every scenario N times through the phone path; a table, JSON, and exit 1 when an expectation fails.

    Example: telephony eval examples/clinic/evals.yaml --agent examples/clinic/agent.py:agent --emulate-gemini"""
    require_test_kit()
    from telephony.testing.evals import EvalFileError, load_eval_file, run_offline

    try:
        scenarios = load_eval_file(file)
    except EvalFileError as exc:
        console.print(f"[red]eval:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if not emulate_gemini:
        console.print(
            "[red]eval:[/red] only offline runs are built so far: add --emulate-gemini "
            "(runs against the real model, judged by Gemini, are the next step of this command)",
            highlight=False,
        )
        raise typer.Exit(2)
    personas = [s.name for s in scenarios if not s.caller]
    if personas:
        console.print(f"[red]eval:[/red] {file}: scenario {personas[0]!r} has only a `persona`: offline runs need `caller` lines")
        raise typer.Exit(2)
    overrides: dict[str, Any] = {"agent": agent} if agent else {}
    settings = settings_or_exit(gemini_emulated=True, **overrides)
    loaded = agent_or_exit(settings)
    if loaded is None:
        console.print("[red]eval:[/red] say which agent: --agent module:attr or a .toml file (or TELEPHONY_AGENT)")
        raise typer.Exit(2)

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("eval", total=len(scenarios) * runs)
        results = run_event_loop(
            run_offline(scenarios, loaded, runs=runs, speed=speed, on_run=lambda name, n: progress.advance(task)), loop="asyncio"
        )

    table = Table(title=f"telephony eval {file.name} ({runs} run{'s' if runs > 1 else ''} each, offline)")
    for column in ("scenario", "passed", "tools", "response p50", "response p95"):
        table.add_column(column)
    for scenario in results:
        accuracy = scenario.tool_accuracy
        p50, p95 = scenario.latency_ms(0.5), scenario.latency_ms(0.95)
        table.add_row(
            scenario.name,
            f"{scenario.pass_rate:.0%}",
            "-" if accuracy is None else f"{accuracy:.0%}",
            "-" if p50 is None else f"{p50:.0f} ms",
            "-" if p95 is None else f"{p95:.0f} ms",
        )
    console.print(table)
    for scenario in results:
        for number, run in enumerate(scenario.runs, 1):
            for failure in run.failures:
                console.print(f"[red]FAIL[/red] {scenario.name} (run {number}): {failure}", highlight=False, soft_wrap=True)
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps({"file": str(file), "runs": runs, "scenarios": [s.as_json() for s in results]}, indent=2))
        console.print(f"report: {report}")
    if any(run.failures for scenario in results for run in scenario.runs):
        raise typer.Exit(1)
