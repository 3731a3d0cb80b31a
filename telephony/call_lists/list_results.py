"""A call list run's results file: one line per row of the list, in its order (CSV or JSON by
the file's suffix), skipped rows with why; written at the end of a run and when it is stopped."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path

from telephony.call_lists.list_file import ListRow, RowProblem
from telephony.store.list_calls import ListEntry

RESULT_COLUMNS = ("line", "number", "outcome", "answered_by", "duration_s", "voicemail_left", "attempts", "call_sid", "summary")


def write_results(path: Path, rows: list[ListRow], entries: dict[str, ListEntry], skipped: list[RowProblem]) -> None:
    """One line per row of the list, in its order; skipped rows say why."""
    lines: list[dict[str, object]] = []
    for row in rows:
        entry = entries.get(row.key)
        data = asdict(entry) if entry is not None else {"line": row.line, "number": row.number, "attempts": 0}
        if entry is not None and entry.state in ("new", "retry", "dialing"):
            data["outcome"] = data.get("outcome") or "not called yet"
        lines.append({k: data.get(k) for k in RESULT_COLUMNS})
    lines += [{"line": p.line, "outcome": "skipped", "summary": p.message} for p in skipped]
    lines.sort(key=lambda line: int(str(line["line"])))
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(lines, indent=2, default=str) + "\n", encoding="utf-8")
        return
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, RESULT_COLUMNS)
        writer.writeheader()
        writer.writerows([{k: "" if v is None else v for k, v in line.items()} for line in lines])
