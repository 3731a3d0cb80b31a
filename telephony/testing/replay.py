"""Replaying recorded calls from the command line: against a running server (`telephony
replay`) or against a whole offline stack started in-process (`telephony demo`)."""

from __future__ import annotations

import contextlib
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from telephony.audio.mulaw import decode_mulaw
from telephony.audio.wav import write_wav
from telephony.http_client import http_client
from telephony.testing.call_fixture import caller_audio
from telephony.testing.twilio_media import ReplayResult, TwilioMediaEmulator


@dataclass
class ReplayOutcome:
    result: ReplayResult
    files: dict[str, Path] = field(default_factory=dict)
    record: dict[str, Any] | None = None

    def print(self, console: Console) -> None:
        r = self.result
        console.print(
            f"call {r.call_sid}: {r.duration_s:.1f} s, caller heard {r.heard_seconds:.2f} s of agent audio, "
            f"{len(r.media())} frames, {len(r.clears)} clear(s), {len(r.marks_echoed)} marks echoed"
        )
        reason = (self.record or {}).get("end_reason")
        if reason and reason != "caller hung up":
            console.print(f"the server ended the call: {reason}", highlight=False)
        elif not r.caller_hung_up and not reason:
            console.print(f"the server ended the call before the recording did (WebSocket close {r.close_code})", highlight=False)
        if self.record:
            console.print(self.record.get("transcript_text") or "(no transcript)", markup=False)
            for key, label in (("interrupted_to_clear_ms", "interrupted -> clear"), ("chunk_to_frame_ms", "Gemini chunk -> Twilio frame")):
                figures = self.record.get(key)
                if figures:
                    console.print(f"{label}: p50 {figures['p50']:.3f} ms, max {figures['max']:.3f} ms (n={figures['n']})")
        for label, path in self.files.items():
            console.print(f"{label}: [bold]{path}[/bold]")


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]replaying[/bold] {task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.1f}/{task.total:.1f} s"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


async def _play(emulator: TwilioMediaEmulator, url: str, name: str, console: Console, connect_url: str | None = None) -> ReplayResult:
    with _progress(console) as progress:
        task = progress.add_task(name, total=emulator.total_s)
        emulator.on_progress = lambda done, total: progress.update(task, completed=done)
        if url.startswith(("http://", "https://")):
            target = await emulator.answer(url)
            return await emulator.play(target, connect_url=connect_url)
        return await emulator.play(url)


def write_outputs(result: ReplayResult, fixture: Path, out_dir: Path, stem: str, record: dict[str, Any] | None) -> dict[str, Path]:
    """What the caller heard, the whole conversation as one track, and the transcript."""
    files: dict[str, Path] = {}
    heard = np.frombuffer(result.heard_pcm(), dtype="<i2")
    files["what the caller heard"] = write_wav(out_dir / f"{stem}-caller-heard.wav", heard, 8000)
    said = np.frombuffer(decode_mulaw(caller_audio(fixture)), dtype="<i2")
    both = np.zeros(max(len(said), len(heard)), dtype=np.int32)
    both[: len(said)] += said
    both[: len(heard)] += heard
    files["the whole conversation"] = write_wav(out_dir / f"{stem}-conversation.wav", np.clip(both, -32768, 32767).astype(np.int16), 8000)
    if record is not None:
        path = out_dir / f"{stem}-transcript.txt"
        path.write_text((record.get("transcript_text") or "") + "\n", encoding="utf-8")
        files["transcript"] = path
        call = out_dir / f"{stem}-call.json"
        call.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
        files["call record"] = call
    return files


async def replay_call(
    fixture: Path,
    url: str,
    *,
    speed: float,
    auth_token: str | None,
    account_sid: str | None,
    out_dir: Path,
    console: Console,
) -> ReplayOutcome:
    emulator = TwilioMediaEmulator(fixture, speed=speed, auth_token=auth_token)
    result = await _play(emulator, url, fixture.name, console)
    record = None
    if url.startswith(("http://", "https://")):
        base = url.rsplit("/", 1)[0]
        auth = (account_sid or "", auth_token) if auth_token else None
        with contextlib.suppress(httpx.HTTPError):
            async with http_client(5) as client:
                response = await client.get(f"{base}/calls/{result.call_sid}", auth=auth)
            if response.status_code == 200:
                record = response.json()
    return ReplayOutcome(result, write_outputs(result, fixture, out_dir, fixture.stem, record), record)


async def demo_call(fixture: Path, *, out_dir: Path, speed: float, console: Console, port: int = 0) -> ReplayOutcome:
    """Gemini emulator + our server (signatures on, as in production) + a replayed caller."""
    from telephony.settings import Settings
    from telephony.testing.demo import DemoModel, demo_agent
    from telephony.testing.gemini_live import GeminiLiveEmulator
    from telephony.web.app import create_app
    from telephony.web.server import running_server

    auth_token = secrets.token_hex(16)
    async with GeminiLiveEmulator(DemoModel(), speed=speed) as gemini:
        settings = Settings(
            _env_file=None,
            gemini_api_key="offline",
            gemini_base_url=gemini.base_url,
            gemini_ca_file=gemini.ca_file,
            twilio_account_sid="AC" + "0" * 32,
            twilio_auth_token=auth_token,
            media_rate_limit=max(1.25, speed * 1.25),
            database_url="sqlite:///:memory:",
        )
        app = create_app(settings, agent=demo_agent)
        async with running_server(app, port=port) as base_url:
            settings.public_url = base_url
            console.print(f"server on {base_url}, Gemini emulator (echo agent with a tool) on {gemini.base_url}")
            emulator = TwilioMediaEmulator(fixture, speed=speed, auth_token=auth_token)
            result = await _play(emulator, f"{base_url}/twiml", fixture.name, console)
            records = app.state.recent_calls
            record = records[result.call_sid] if result.call_sid in records else None
            summary = record.summary() | {"transcript_text": record.transcript_text()} if record else None
    files = write_outputs(result, fixture, out_dir, "demo", summary)
    return ReplayOutcome(result, files, summary)
