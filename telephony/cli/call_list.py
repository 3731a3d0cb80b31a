"""`telephony dial --list FILE.csv`: the list's rows reported and checked, a progress bar while
it runs, the results file (CSV or JSON) written at the end and on Ctrl-C. The work itself is
`telephony.call_lists.list_run`."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from telephony.call_lists.list_file import ListRow, RowProblem
from telephony.call_lists.list_results import write_results
from telephony.call_lists.list_run import ListOptions, ListRun
from telephony.settings import Settings
from telephony.store import CallStore
from telephony.store.list_calls import ListEntry, ListProgress
from telephony.twilio.dial import DialRequest


def list_id(path: Path) -> str:
    return hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:32]


def results_path(list_path: Path, given: Path | None) -> Path:
    return given or list_path.with_name(list_path.stem + ".results.csv")


def run_list(
    console: Console,
    settings: Settings,
    path: Path,
    rows: list[ListRow],
    skipped: list[RowProblem],
    template: DialRequest,
    options: ListOptions,
    results: Path,
) -> dict[str, int]:
    """Dial the list; returns how many rows ended with each outcome."""
    for problem in skipped:
        console.print(f"[yellow]skipped[/yellow] {path.name} {problem}", highlight=False)
    url = settings.call_history_url
    store = CallStore(url) if url != "off" else None
    if store is None:
        console.print("[yellow]call history is off: a stopped run cannot be resumed[/yellow]")
    started = time.monotonic()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("calling", total=len(rows))
        finished: set[str] = set()

        def changed(entry: ListEntry, what: str) -> None:
            if entry.state in ("done", "unknown") and entry.row_key not in finished:
                finished.add(entry.row_key)
                bar.advance(task)
            bar.console.print(f"  line {entry.line} {entry.number}: {what}", highlight=False)

        run = ListRun(settings, template, ListProgress(list_id(path), store), options, on_change=changed)

        async def go() -> None:
            try:
                await run.run(rows)
            finally:
                if store is not None:
                    await store.close()

        try:
            asyncio.run(go())
        except KeyboardInterrupt:
            console.print("[yellow]stopped: run the same command again to go on (nobody is called twice)[/yellow]")
        finally:
            entries = run.entries
            write_results(results, rows, entries, skipped)
    counts: dict[str, int] = {}
    for row in rows:
        entry = entries.get(row.key)
        outcome = (entry.outcome if entry is not None and entry.state in ("done", "unknown") else None) or "not called yet"
        counts[outcome] = counts.get(outcome, 0) + 1
    if skipped:
        counts["skipped"] = len(skipped)
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    console.print(f"{len(rows)} rows in {time.monotonic() - started:.1f} s: {summary}; results in {results}", highlight=False)
    return counts


def default_zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except Exception:
        raise ValueError(f"--timezone {name!r} is not an IANA name such as America/New_York") from None
