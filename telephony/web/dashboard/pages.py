"""The calls dashboard: server-rendered HTML, no build step, no script, nothing from a CDN.

`/calls` lists live calls and the history (search by number and date, paging); `/calls/{sid}`
shows one call: the transcript, the recording, tool calls, reconnects, usage and cost, and a
timeline drawn here as SVG (who spoke when, interruptions, tool calls).
"""

from __future__ import annotations

import datetime as dt
import html
import json
from typing import Any
from urllib.parse import urlencode

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:10px 20px}header a{color:#fff;text-decoration:none;font-weight:600}
main{padding:16px 20px;max-width:1200px}table{border-collapse:collapse;width:100%;background:#fff}
th,td{padding:6px 8px;border-bottom:1px solid #e3e6eb;text-align:left;vertical-align:top}th{background:#eef0f3}
.num{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#6b7280}.live{color:#0a7d32;font-weight:600}
form.search{display:flex;gap:8px;margin:0 0 12px}form.search input{padding:4px 6px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:10px 0}.card{background:#fff;border:1px solid #e3e6eb;padding:8px 12px;min-width:110px}
.card b{display:block;font-size:18px}.caller{color:#1f5fbf}.agent{color:#a34a00}.tool{color:#6d28d9}.system{color:#6b7280}
.interrupted{text-decoration:line-through #c00}svg{background:#fff;border:1px solid #e3e6eb}pre{white-space:pre-wrap;margin:0}
.pass{color:#0a7d32}.fail{color:#b91c1c}
"""


def _page(title: str, body: str, base: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width,initial-scale=1'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><header><a href='{_e(base)}/calls'>telephony · calls</a></header>"
        f"<main>{body}</main></body></html>"
    )


def _when(epoch: float | None) -> str:
    if not epoch:
        return "-"
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _fmt(value: float | None, pattern: str) -> str:
    return "" if value is None else pattern.format(value)


def calls_page(
    rows: list[dict[str, Any]], total: int, live: list[dict[str, Any]], query: dict[str, str], page: int, page_size: int, base: str = ""
) -> str:
    """The list: live calls on this instance, then the history page."""
    live_rows = "".join(
        f"<tr><td class='live'>live</td><td><a href='{_e(base)}/calls/{_e(c['call_sid'])}'>{_e(c['call_sid'])}</a></td>"
        f"<td>{_e(c.get('from_number'))}</td><td>{_e(c.get('to_number'))}</td><td>{_e(c.get('agent'))}</td>"
        f"<td class='num'>{c.get('seconds', 0):.0f} s</td></tr>"
        for c in live
    )
    history = "".join(
        f"<tr><td>{_when(r['started_at'])}</td><td><a href='{_e(base)}/calls/{_e(r['call_sid'])}'>{_e(r['call_sid'])}</a></td>"
        f"<td>{_e(r.get('direction'))}</td><td>{_e(r.get('from_number'))}</td><td>{_e(r.get('to_number'))}</td>"
        f"<td>{_e(r.get('agent'))}</td><td class='num'>{_fmt(r.get('duration_s'), '{:.0f} s')}</td>"
        f"<td>{_e(r.get('outcome') or ('live' if r.get('ended_at') is None else ''))}</td>"
        f"<td class='num'>{_fmt(r.get('cost_usd'), '${:.4f}')}</td></tr>"
        for r in rows
    )
    pages = max(1, -(-total // page_size))
    nav = []
    for label, target in (("« newer", page - 1), ("older »", page + 1)):
        if 1 <= target <= pages:
            nav.append(f"<a href='{_e(base)}/calls?{_e(urlencode({**query, 'page': target}))}'>{label}</a>")
    body = (
        "<h1>Calls</h1>"
        f"<form class='search' method='get' action='{_e(base)}/calls'>"
        f"<input name='number' placeholder='number' value='{_e(query.get('number', ''))}' aria-label='number'>"
        f"<input name='since' type='date' value='{_e(query.get('since', ''))}' aria-label='from date'>"
        f"<input name='until' type='date' value='{_e(query.get('until', ''))}' aria-label='to date'>"
        "<button type='submit'>Search</button></form>"
        + (
            "<h2>Live on this instance</h2><table><tr><th></th><th>CallSid</th><th>from</th><th>to</th><th>agent</th>"
            f"<th>for</th></tr>{live_rows}</table>"
            if live
            else ""
        )
        + f"<h2>History <span class='muted'>({total} calls)</span></h2>"
        "<table><tr><th>started (UTC)</th><th>CallSid</th><th>direction</th><th>from</th><th>to</th><th>agent</th>"
        f"<th>length</th><th>outcome</th><th>cost</th></tr>{history or '<tr><td colspan=9 class=muted>no calls yet</td></tr>'}</table>"
        f"<p>page {page} of {pages} {' · '.join(nav)}</p>"
    )
    return _page("Calls", body, base)


def call_page(call: dict[str, Any], recording_url: str | None, base: str = "") -> str:
    """One call: figures, timeline, recording, transcript, tools, statuses."""
    usage = call.get("usage") or {}
    cards = [
        ("length", "-" if call.get("duration_s") is None else f"{call['duration_s']:.1f} s"),
        ("outcome", call.get("outcome") or ("live" if not call.get("finished") else "-")),
        ("interruptions", call.get("interruptions", 0)),
        ("reconnects", call.get("reconnects", 0)),
        ("tokens in / out", f"{usage.get('prompt_tokens', 0)} / {usage.get('response_tokens', 0)}"),
        ("est. cost", "-" if call.get("cost_usd") is None else f"${call['cost_usd']:.4f}"),
    ]
    if call.get("answered_by"):  # an outbound call: who or what answered, and whether a message was left
        cards.append(("answered by", call["answered_by"].replace("_", " ")))
        cards.append(("voicemail", "left" if call.get("voicemail_left") else "-"))
    lines = "".join(
        f"<tr><td class='num'>{line['at_ms'] / 1000:.1f} s</td><td class='{_e(line['speaker'])}'>{_e(line['speaker'])}</td>"
        f"<td class='{'interrupted' if line.get('interrupted') else ''}'>{_e(line['text'])}"
        f"{' <span class=muted>(interrupted)</span>' if line.get('interrupted') else ''}</td></tr>"
        for line in call.get("transcript", [])
    )
    tools = "".join(
        f"<tr><td class='num'>{t['at_ms'] / 1000:.1f} s</td><td>{_e(t['name'])}</td><td><pre>{_e(json.dumps(t['arguments']))}</pre></td>"
        f"<td><pre>{_e(json.dumps(t['response'])[:500])}</pre></td>"
        f"<td class='num'>{_fmt(t.get('duration_ms'), '{:.0f} ms')}</td><td>{_e(t.get('error'))}</td></tr>"
        for t in call.get("tool_calls", [])
    )
    statuses = ", ".join(_e(s.get("CallStatus")) for s in call.get("statuses", []))
    audio = f"<audio controls preload='none' src='{_e(recording_url)}'></audio>" if recording_url else "<p class='muted'>no recording</p>"
    errors = "".join(f"<li>{_e(e)}</li>" for e in call.get("errors") or [])
    body = (
        f"<h1>Call {_e(call.get('call_sid'))}</h1>"
        f"<p class='muted'>{_e(call.get('direction'))} · from {_e(call.get('from_number'))} to {_e(call.get('to_number'))}"
        f" · agent {_e(call.get('agent'))} · started {_when(call.get('started_at'))} UTC · {_e(call.get('end_reason'))}</p>"
        + "<div class='cards'>"
        + "".join(f"<div class='card'><span class='muted'>{k}</span><b>{_e(v)}</b></div>" for k, v in cards)
        + "</div>"
        + eval_section(call.get("eval"))
        + analysis_section(call.get("analysis"))
        + timeline_svg(call)
        + f"<h2>Recording</h2>{audio}"
        + "<h2>Transcript</h2><table><tr><th>at</th><th>who</th><th>said</th></tr>"
        + (lines or "<tr><td colspan=3 class=muted>nothing said</td></tr>")
        + "</table>"
        + (
            "<h2>Tool calls</h2><table><tr><th>at</th><th>tool</th><th>arguments</th><th>result</th><th>took</th>"
            f"<th>error</th></tr>{tools}</table>"
            if tools
            else ""
        )
        + (f"<h2>Errors</h2><ul>{errors}</ul>" if errors else "")
        + f"<h2>Twilio statuses</h2><p>{statuses or '<span class=muted>none</span>'}</p>"
    )
    return _page(f"Call {call.get('call_sid')}", body, base)


def analysis_section(analysis: dict[str, Any] | None) -> str:
    """The post-call analysis: summary, verdict, the agent's fields."""
    if not isinstance(analysis, dict):
        return ""
    verdict = "<b class='pass'>success</b>" if analysis.get("success") else "<b class='fail'>not a success</b>"
    found = analysis.get("fields")
    fields: dict[str, Any] = found if isinstance(found, dict) else {}
    rows = "".join(f"<tr><td>{_e(k)}</td><td><pre>{_e(json.dumps(v))}</pre></td></tr>" for k, v in fields.items())
    return f"<h2>Analysis</h2><p>{verdict} · {_e(analysis.get('success_reason'))}</p><p>{_e(analysis.get('summary'))}</p>" + (
        f"<table><tr><th>field</th><th>value</th></tr>{rows}</table>" if rows else ""
    )


def eval_section(run: dict[str, Any] | None) -> str:
    """An eval run's verdict (`telephony eval`): the scenario, pass or fail, and why."""
    if not isinstance(run, dict):
        return ""
    verdict = "<b class='pass'>passed</b>" if run.get("passed") else "<b class='fail'>failed</b>"
    failures = "".join(f"<li>{_e(failure)}</li>" for failure in run.get("failures") or [])
    judged = "".join(
        f"<li>{'met' if v.get('met') else 'not met'}: {_e(v.get('criterion'))} <span class=muted>{_e(v.get('reason'))}</span></li>"
        for v in run.get("verdicts") or []
    )
    return (
        f"<h2>Eval run</h2><p>{verdict} · scenario {_e(run.get('scenario'))} · run {_e(run.get('run'))}"
        f" · {_e(run.get('model'))} model · {_e(run.get('file'))}</p>"
        + (f"<ul>{failures}</ul>" if failures else "")
        + (f"<h3>Judge</h3><ul>{judged}</ul>" if judged else "")
    )


def timeline_svg(call: dict[str, Any], width: int = 1000) -> str:
    """Who spoke when (one lane each), interruptions as red marks, tool calls as ticks."""
    transcript = call.get("transcript", [])
    total_ms = max(
        [1000.0, (call.get("duration_s") or 0) * 1000]
        + [float(line.get("end_ms") or line["at_ms"]) for line in transcript]
        + [float(span[2]) for span in call.get("speech") or []]
        + [float(t["at_ms"]) for t in call.get("tool_calls", [])]
    )
    lanes = {"caller": 20, "agent": 50, "tool": 80}
    scale = (width - 80) / total_ms

    def x(ms: float) -> float:
        return 70 + ms * scale

    parts = [f"<svg role='img' aria-label='call timeline' width='{width}' height='118' viewBox='0 0 {width} 118'>"]
    for name, y in lanes.items():
        parts.append(f"<text x='4' y='{y + 12}' font-size='12'>{name}</text>")
    colours = {"caller": "#1f5fbf", "agent": "#a34a00"}
    # Spans of audio (voice detection, playout) where the record has them, else the transcript's times.
    spans = [(w, float(a), float(b), bool(c)) for w, a, b, c in call.get("speech") or []]
    if not spans:
        spans = [
            (line["speaker"], float(line["at_ms"]), float(line.get("end_ms") or line["at_ms"] + 600), bool(line.get("interrupted")))
            for line in transcript
            if line["speaker"] in colours
        ]
    words = {who: [line for line in transcript if line["speaker"] == who] for who in colours}
    for speaker, start, end, cut_off in spans:
        if speaker not in colours:
            continue
        y = lanes[speaker]
        said = next((line["text"] for line in words[speaker] if abs(float(line["at_ms"]) - start) < 4000), "")
        parts.append(
            f"<rect x='{x(start):.1f}' y='{y}' width='{max(2.0, (end - start) * scale):.1f}' height='16' "
            f"fill='{colours[speaker]}' opacity='0.75'>"
            f"<title>{_e(speaker)} {start / 1000:.1f}-{end / 1000:.1f} s: {_e(said[:120])}</title></rect>"
        )
        if cut_off:
            parts.append(
                f"<line x1='{x(end):.1f}' x2='{x(end):.1f}' y1='14' y2='72' stroke='#c00' stroke-width='2'>"
                "<title>interrupted</title></line>"
            )
    for tool in call.get("tool_calls", []):
        at = float(tool["at_ms"])
        took = float(tool.get("duration_ms") or 0)
        parts.append(
            f"<rect x='{x(max(0.0, at - took)):.1f}' y='80' width='{max(3.0, took * scale):.1f}' height='16' fill='#6d28d9'>"
            f"<title>{_e(tool['name'])} {took:.0f} ms</title></rect>"
        )
    step = max(1, int(total_ms / 1000 / 10))
    for second in range(0, int(total_ms / 1000) + 1, step):
        parts.append(f"<text x='{x(second * 1000):.1f}' y='112' font-size='10' fill='#6b7280'>{second}s</text>")
    parts.append("</svg>")
    return "<h2>Timeline</h2>" + "".join(parts)
