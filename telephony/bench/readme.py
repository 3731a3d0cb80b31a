"""The capacity table of docs/benchmarks.md, made from a `bench load --json` file, never typed by hand:
`telephony bench load ... --compare --json out/bench-load.json --readme docs/benchmarks.md`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

START, END = "<!-- bench-load:start -->", "<!-- bench-load:end -->"


def _pair(stats: dict[str, Any]) -> str:
    if stats.get("p50") is None or stats.get("p99") is None:
        return "-"
    return f"{stats['p50']:.1f} / {stats['p99']:.1f}"


def capacity_table(figures: list[dict[str, Any]]) -> str:
    lines = [
        f"Made by `telephony bench load` on {dt.date.today().isoformat()} (this 2-core machine, calls of "
        f"{figures[0]['seconds']:.0f} s; delays in ms on the wire, between the emulators):",
        "",
        "| bridge | calls | server CPU ms per call-second | peak RSS MB | late frames in / out | inbound p50 / p99 | "
        "reply start p50 / p99 | outbound (incl. held) p50 / p99 | interrupted → clear p50 / p99 | dropped |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        lines.append(
            f"| {f['bridge']} | {f['calls']} | {f['server_cpu_ms_per_call_second']:.1f} | {f['peak_rss_mb']:.0f} | "
            f"{f['late_inbound_frames']} / {f['late_outbound_frames']} | {_pair(f['inbound_delay_ms'])} | "
            f"{_pair(f.get('reply_start_ms') or {})} | {_pair(f['outbound_delay_ms'])} | {_pair(f['interrupted_to_clear_ms'])} | "
            f"{f['dropped_calls']} |"
        )
    by = {(f["bridge"], f["calls"]): f for f in figures}
    ratios = []
    for (bridge, calls), ours in by.items():
        naive = by.get(("naive", calls))
        if bridge != "ours" or naive is None:
            continue
        cpu = naive["server_cpu_ms_per_call_second"] / max(1e-9, ours["server_cpu_ms_per_call_second"])
        clear_ours, clear_naive = ours["interrupted_to_clear_ms"].get("p99"), naive["interrupted_to_clear_ms"].get("p99")
        clear = f", interrupted → clear p99 {clear_naive / clear_ours:.1f}x lower" if clear_ours and clear_naive else ""
        ratios.append(f"{calls} calls: {cpu:.1f}x less CPU per call-second than the naive bridge{clear}")
    if ratios:
        lines += ["", "Ratios from the same run: " + "; ".join(ratios) + "."]
    return "\n".join(lines) + "\n"


def update_readme(readme: Path, figures: list[dict[str, Any]]) -> None:
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise ValueError(f"{readme} has no {START} ... {END} block")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(head + START + "\n" + capacity_table(figures) + END + tail, encoding="utf-8")
