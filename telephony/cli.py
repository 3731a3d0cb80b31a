"""The `telephony` command: serve, emulate, replay, dial, bench, demo."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Put a Gemini Live voice agent on a phone number (Twilio Media Streams).", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks: figures are printed, never asserted.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
console = Console()

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures"


@bench_app.command("codec")
def bench_codec(
    seconds: float = typer.Option(10.0, help="Seconds of audio pushed through each direction."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the figures as JSON."),
) -> None:
    """Microseconds per 20 ms frame each way (JSON and base64 included) and each way's delay."""
    from telephony.bench.codec import figures_as_dict, run_codec_bench

    figures = run_codec_bench(seconds=seconds)
    table = Table(title=f"codec: {figures.frames} frames of 20 ms, best of 5 runs")
    table.add_column("direction")
    table.add_column("us per 20 ms frame", justify="right")
    table.add_column("share of real time", justify="right")
    table.add_column("delay (ms)", justify="right")
    for name, us, delay in [
        ("caller -> Gemini (mu-law 8k -> PCM 16k)", figures.caller_to_gemini_us_per_frame, figures.caller_to_gemini_delay_ms),
        ("Gemini -> caller (PCM 24k -> mu-law 8k)", figures.gemini_to_caller_us_per_frame, figures.gemini_to_caller_delay_ms),
    ]:
        table.add_row(name, f"{us:.1f}", f"{us / 20000:.2%}", f"{delay:.2f}")
    console.print(table)
    if json_out:
        json_out.write_text(json.dumps(figures_as_dict(figures), indent=2) + "\n")
        console.print(f"figures written to {json_out}")


emulate_app = typer.Typer(help="Local stand-ins for Gemini Live and Twilio, for offline work.", no_args_is_help=True)
app.add_typer(emulate_app, name="emulate")


@emulate_app.command("gemini")
def emulate_gemini(
    port: int = typer.Option(9000, help="TCP port on 127.0.0.1."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    agent: str = typer.Option("echo", help="'echo' (says back what the caller said) or a folder of WAV replies."),
) -> None:
    """Run the Gemini Live emulator so that a local `telephony serve` needs no key or network."""
    import asyncio

    from telephony.testing.gemini_live import EchoAgent, GeminiLiveEmulator, ScriptedAgent

    if agent == "echo":
        chosen = EchoAgent()
    else:
        replies = sorted(Path(agent).glob("*.wav"))
        if not replies:
            raise typer.BadParameter(f"no WAV files in {agent!r}; use 'echo' or a folder of WAV replies", param_hint="--agent")
        chosen = ScriptedAgent(replies)

    async def run() -> None:
        async with GeminiLiveEmulator(chosen, host=host, port=port) as emulator:
            console.print(f"Gemini Live emulator on {emulator.base_url} (agent: {agent})")
            console.print("Point the server at it:")
            console.print(f"  export TELEPHONY_GEMINI_BASE_URL={emulator.base_url}")
            console.print(f"  export TELEPHONY_GEMINI_CA_FILE={emulator.ca_file}")
            console.print("  export GEMINI_API_KEY=offline")
            await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        console.print("emulator stopped")


@app.command()
def demo(
    fixture: Path = typer.Option(FIXTURES_DIR / "one_sentence.jsonl", help="Recorded call to play."),
    out_dir: Path = typer.Option(Path("out"), help="Where the WAV files go."),
) -> None:
    """Run a recorded call through both transcoders and write what each side hears."""
    import numpy as np

    from telephony.audio.transcode import CallerToGemini, GeminiToCaller
    from telephony.audio.wav import resample_whole, write_wav
    from telephony.audio.mulaw import decode_mulaw
    from telephony.testing.call_fixture import caller_audio

    mulaw = caller_audio(fixture)
    to_gemini = CallerToGemini()
    heard_by_gemini = b"".join(to_gemini.process(mulaw[i : i + 160]) for i in range(0, len(mulaw), 160))
    heard_by_gemini += to_gemini.flush()
    # Stand-in agent until the bridge lands: it echoes the caller back at Gemini's 24 kHz.
    reply = resample_whole(np.frombuffer(heard_by_gemini, dtype="<i2"), 16000, 24000).astype("<i2").tobytes()
    to_caller = GeminiToCaller()
    frames = [f for i in range(0, len(reply), 4800) for f in to_caller.process(reply[i : i + 4800])]
    frames += to_caller.flush()
    gemini_wav = write_wav(out_dir / "demo-gemini-heard.wav", heard_by_gemini, 16000)
    caller_wav = write_wav(out_dir / "demo-caller-heard.wav", decode_mulaw(b"".join(frames)), 8000)
    console.print(f"Gemini would hear: {gemini_wav}\nthe caller would hear: {caller_wav}")


def main() -> None:  # pragma: no cover - console script entry
    app()
