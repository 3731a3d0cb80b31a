"""The `telephony` command: serve, emulate, replay, dial, bench, demo."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from telephony.config import Settings

app = typer.Typer(help="Put a Gemini Live voice agent on a phone number (Twilio Media Streams).", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks: figures are printed, never asserted.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
# Piped to a file or CI log, rich would wrap the wide bench tables at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)

DEMO_CALL = Path(__file__).resolve().parent / "testing" / "calls" / "barge_in.jsonl"
"""The recorded call `telephony demo` plays; it ships inside the package."""


def settings_or_exit(for_serve: bool = False, gemini_emulated: bool = False, warn: bool = False, **overrides: Any) -> Settings:
    """The settings, or every problem with them on its own line and exit code 2 (never a
    traceback, never a value: it may be a secret). `for_serve`: also what would make the
    server refuse to start (`Settings.serve_problems`)."""
    from telephony.config import ConfigError, load_settings

    try:
        settings = load_settings(**overrides)
        problems = settings.serve_problems(gemini_emulated) if for_serve else []
    except ConfigError as exc:
        problems = exc.problems
    if problems:
        for problem in problems:
            console.print(f"[red]config:[/red] {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    for warning in settings.startup_warnings() if (warn or for_serve) else []:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)
    return settings


def agent_or_exit(settings: Settings) -> Any:
    """The agent TELEPHONY_AGENT / --agent names (None: the settings' agent), or one line and exit 2."""
    if not settings.agent:
        return None
    from telephony.agent_loading import AgentLoadError, agent_model_problems, agent_names, load_agent

    secret = settings.tool_signing_secret.get_secret_value().encode() if settings.tool_signing_secret else None
    try:
        agents = load_agent(settings.agent, secret)
    except AgentLoadError as exc:
        console.print(f"[red]agent:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    problems = agent_model_problems(agents, settings.gemini_model)
    for problem in problems:
        console.print(f"[red]agent:[/red] {problem}", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(2)
    console.print(f"agents: {', '.join(agent_names(agents))}", highlight=False)
    return agents


def require_test_kit() -> None:
    """The emulators are an extra (`pip install 'telephony[emulators]'`): say so, in one line."""
    import importlib.util

    if importlib.util.find_spec("trustme") is None:
        console.print("[red]the offline test kit is not installed:[/red] pip install 'telephony[emulators]' (make demo and make test do)")
        raise typer.Exit(2)


@bench_app.command("codec")
def bench_codec(
    seconds: float = typer.Option(10.0, help="Seconds of audio pushed through each direction."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the figures as JSON."),
    agc: bool = typer.Option(True, "--agc/--no-agc", help="Include the caller gain control (on in production)."),
) -> None:
    """Microseconds per 20 ms frame each way (JSON and base64 included) and each way's delay."""
    from telephony.bench.codec import figures_as_dict, run_codec_bench

    figures = run_codec_bench(seconds=seconds, with_agc=agc)
    gain = "with" if agc else "without"
    table = Table(title=f"codec: {figures.frames} frames of 20 ms, best of 5 runs, {gain} caller gain control")
    table.add_column("direction")
    table.add_column("us per 20 ms frame", justify="right")
    table.add_column("share of real time", justify="right")
    table.add_column("delay (ms)", justify="right")
    for name, us, delay in [
        ("caller -> Gemini", figures.caller_to_gemini_us_per_frame, f"{figures.caller_to_gemini_delay_ms:.2f}"),
        ("Gemini -> caller", figures.gemini_to_caller_us_per_frame, f"{figures.gemini_to_caller_delay_ms:.2f}"),
        ("local voice detection (webrtcvad)", figures.voice_detection_us_per_frame, "0 (runs beside)"),
        ("a caller frame through the call core", figures.call_core_caller_frame_us, "-"),
    ]:
        table.add_row(name, f"{us:.1f}", f"{us / 20000:.2%}", delay)
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
) -> None:
    """Run the Gemini Live emulator so that a local `telephony serve` needs no key or network.

    Example: telephony emulate gemini --realistic --model gemini-3.8-live"""
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

    if agent == "echo":
        chosen: EchoAgent | ScriptedAgent = EchoAgent()
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


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Address to listen on [TELEPHONY_HOST, 127.0.0.1]."),
    port: int | None = typer.Option(None, help="Port [TELEPHONY_PORT, 8080]."),
    record: Path | None = typer.Option(None, "--record", help="Write every inbound Twilio message of each call here, as fixtures."),
    call_log: Path | None = typer.Option(None, "--call-log", help="Append one JSON line per call here."),
    emulate_gemini: bool = typer.Option(False, "--emulate-gemini", help="Use the local Gemini emulator (echo agent): no key, no network."),
    log_level: str | None = typer.Option(None, "--log-level", help="DEBUG, INFO, WARNING or ERROR [TELEPHONY_LOG_LEVEL, INFO]."),
    log_format: str | None = typer.Option(
        None, "--log-format", help="auto (plain on a terminal, else JSON), plain or json [TELEPHONY_LOG_FORMAT]."
    ),
    loop: str = typer.Option("auto", help="Event loop: auto (uvloop when installed), uvloop or asyncio."),
    agent: str | None = typer.Option(None, "--agent", help="Your agent: module:attribute or agent.toml [TELEPHONY_AGENT]."),
    workers: int | None = typer.Option(
        None, "--workers", min=1, max=64, help="Server processes on one port [TELEPHONY_WORKERS; 0 there: one per core]."
    ),
) -> None:
    """Serve Twilio's voice webhook (POST /twiml) and media streams (WS /media-stream)."""
    import os

    from telephony.logs import configure_logging

    given: dict[str, Any] = {
        "host": host,
        "port": port,
        "record_dir": record,
        "call_log_dir": call_log,
        "agent": agent,
        "log_level": log_level,
        "log_format": log_format,
        "workers": workers,
    }
    settings = settings_or_exit(for_serve=True, gemini_emulated=emulate_gemini, **{k: v for k, v in given.items() if v is not None})
    processes = 1 if emulate_gemini else (settings.workers or os.cpu_count() or 1)
    if processes > 1:  # before anything imports prometheus_client: the workers add their metrics up
        from telephony.workers import prepare_shared_metrics

        prepare_shared_metrics()

    from telephony.app import create_app
    from telephony.server import DrainingServer, listen_socket, uvicorn_config

    configure_logging(settings.log_level, settings.log_format)
    if settings.log_level != "DEBUG":  # the built-in emulator speaks only when asked
        logging.getLogger("telephony.testing").setLevel(logging.WARNING)
    agents = agent_or_exit(settings)
    try:
        listening = listen_socket(settings.host, settings.port, reuse_port=processes > 1)
        bound_port = listening.getsockname()[1]
        sockets = [listening, *(listen_socket(settings.host, bound_port, reuse_port=True) for _ in range(processes - 1))]
    except OSError as exc:
        console.print(f"[red]cannot listen on {settings.host}:{settings.port}:[/red] {exc.strerror or exc}", highlight=False)
        raise typer.Exit(1) from None
    public = settings.public_url or f"http://{settings.host}:{settings.port}"
    console.print(f"Voice webhook: {public}/twiml   media stream: {public.replace('http', 'ws', 1)}/media-stream")

    async def run() -> None:
        from telephony.mcp_tools import McpError, mcp_tools_of

        async with contextlib.AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(mcp_tools_of(agents))
            except McpError as exc:
                console.print(f"[red]agent:[/red] {exc}", highlight=False, soft_wrap=True)
                raise typer.Exit(2) from None
            if emulate_gemini:
                require_test_kit()
                from telephony.testing.gemini_live import GeminiLiveEmulator

                emulator = await stack.enter_async_context(GeminiLiveEmulator())
                settings.gemini_api_key = SecretStr("offline")
                settings.gemini_base_url, settings.gemini_ca_file = emulator.base_url, emulator.ca_file
                console.print(f"Gemini: local emulator (echo agent) at {emulator.base_url}")
            try:
                app = create_app(settings, agent=agents)
            except ValueError as exc:
                console.print(f"[red]cannot start:[/red] {exc}")
                raise typer.Exit(2) from None

            config = uvicorn_config(
                app,
                settings.host,
                settings.port,
                log_level=settings.log_level.lower(),
                header_timeout_s=settings.header_timeout_seconds,
                max_connections_per_client=settings.max_connections_per_client,
            )
            await DrainingServer(config, app, settings.drain_seconds).serve(sockets=[listening])

    if processes == 1:
        run_event_loop(run(), loop)
        return
    from telephony.workers import run_workers

    def work(mine: Any) -> int:
        nonlocal listening
        listening = mine
        try:
            run_event_loop(run(), loop)
        except typer.Exit as exc:
            return int(exc.exit_code)
        return 0

    raise typer.Exit(run_workers(sockets, work))


@app.command()
def dial(
    to: str = typer.Argument(..., help="Number to call, E.164 (+15551234567)."),
    from_: str | None = typer.Option(None, "--from", help="Your Twilio number [TWILIO_PHONE_NUMBER]."),
    instructions: Path | None = typer.Option(None, exists=True, dir_okay=False, help="System instructions for this call (text file)."),
    voice: str | None = typer.Option(None, help="Gemini prebuilt voice for this call (e.g. Kore, Puck, Charon)."),
    greeting: str | None = typer.Option(None, help="Make the agent speak first, e.g. 'Introduce yourself.'"),
    vad: str | None = typer.Option(None, help="Turn-taking preset for this call: phone, responsive or patient."),
    agent: str | None = typer.Option(None, "--agent", help="One of your server's agents, by name (see serve --agent)."),
    server: str | None = typer.Option(None, help="Public URL of your running `telephony serve` [TELEPHONY_PUBLIC_URL]."),
    follow: bool = typer.Option(True, "--follow/--no-follow", help="Show the call's progress until it ends."),
) -> None:
    """Call a phone number and connect it to the agent on your running server."""
    import asyncio

    from telephony.dial import DialRequest, FollowError, check_number, follow_call, place_call
    from telephony.gemini import catalog
    from telephony.gemini.config import VAD_PRESETS
    from telephony.twilio_rest import TwilioRestError

    settings = settings_or_exit()
    public = server or settings.public_url
    try:
        if not public:
            raise ValueError("say where your server is reachable: --server https://... or TELEPHONY_PUBLIC_URL")
        text = instructions.read_text(encoding="utf-8").strip() if instructions else None
        if text and len(text) > 4000:
            raise ValueError("per-call instructions are limited to 4000 characters; use TELEPHONY_INSTRUCTIONS_FILE on the server")
        request = DialRequest(
            to=check_number(to, "the number to call"),
            from_=check_number(from_ or settings.from_number or "", "--from (or TWILIO_PHONE_NUMBER)"),
            server=public,
            voice=voice,
            instructions=text,
            greeting=greeting,
            vad=vad,
            agent=agent,
        )
        if vad and vad not in VAD_PRESETS:
            raise ValueError(f"--vad must be one of {', '.join(VAD_PRESETS)}")
        if voice and (problem := catalog.voice_problem(voice, settings.extra_voices)):
            raise ValueError(f"--voice: {problem}")
        call_sid = asyncio.run(place_call(settings, request))
    except (ValueError, TwilioRestError) as exc:
        console.print(f"[red]cannot dial:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(f"calling {request.to} from {request.from_}: {call_sid}")
    if follow:
        try:
            final = asyncio.run(follow_call(settings, public, call_sid, console))
        except FollowError as exc:
            console.print(f"[red]cannot follow the call:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        console.print(f"call {call_sid}: {final}")


db_app = typer.Typer(help="The call history database (SQLite by default, or TELEPHONY_DATABASE_URL).", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _store(settings: Settings) -> Any:
    from telephony.store import CallStore

    url = settings.call_history_url
    if url == "off":
        console.print("call history is off (TELEPHONY_DATABASE_URL=off)")
        raise typer.Exit(1)
    return CallStore(url)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the call history tables (servers also do it on first use)."""
    settings = settings_or_exit()
    store = _store(settings)

    async def run() -> None:
        try:
            await store.ensure_schema()
        finally:
            await store.close()

    try:
        run_event_loop(run())
    except Exception as exc:  # a database that cannot be reached: one line, no URL (it may hold a password)
        console.print(f"[red]cannot upgrade the {store.kind} database:[/red] {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        raise typer.Exit(1) from None
    console.print(f"call history schema is current ({store.kind})")


@app.command()
def calls(
    number: str | None = typer.Option(None, help="Only calls from or to a number containing this."),
    limit: int = typer.Option(20, min=1, max=500, help="How many, newest first."),
) -> None:
    """Recent calls from the call history, as a table."""
    import datetime as dt

    from telephony.store import CallQuery

    settings = settings_or_exit()
    store = _store(settings)

    async def run() -> tuple[list[dict[str, Any]], int]:
        try:
            return await store.calls(CallQuery(number=number, page_size=limit))
        finally:
            await store.close()

    try:
        rows, total = run_event_loop(run())
    except Exception as exc:
        console.print(f"[red]cannot read the call history:[/red] {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        raise typer.Exit(1) from None
    table = Table(title=f"calls: {len(rows)} of {total}")
    for column in ("started (UTC)", "CallSid", "direction", "from", "to", "agent", "length", "outcome", "cost"):
        table.add_column(column, justify="right" if column in ("length", "cost") else "left")
    for row in rows:
        started = dt.datetime.fromtimestamp(row["started_at"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        length = "" if row["duration_s"] is None else f"{row['duration_s']:.0f} s"
        cost = "" if row["cost_usd"] is None else f"${row['cost_usd']:.4f}"
        outcome = row["outcome"] or ("live" if row["ended_at"] is None else "")
        table.add_row(
            started,
            row["call_sid"],
            row["direction"] or "",
            row["from_number"] or "",
            row["to_number"] or "",
            row["agent"] or "",
            length,
            outcome,
            cost,
        )
    console.print(table)


@app.command()
def check(
    agent: str | None = typer.Option(None, "--agent", help="Your agent (module:attr or a .toml file) [TELEPHONY_AGENT]."),
) -> None:
    """Before the phone rings: Gemini key and your agent's exact session setup, Twilio
    credentials, where your number's webhook points, and whether TELEPHONY_PUBLIC_URL reaches
    a running server.

    Example: telephony check --agent myagent:agent"""
    from telephony.agent import Agent
    from telephony.preflight import run_checks

    overrides: dict[str, Any] = {"agent": agent} if agent else {}
    settings = settings_or_exit(warn=True, **overrides)
    loaded = agent_or_exit(settings)
    agents: list[Agent] | None = None
    if isinstance(loaded, Agent):
        agents = [loaded]
    elif isinstance(loaded, list):
        agents = [one for one in loaded if isinstance(one, Agent)]
    results = run_event_loop(run_checks(settings, agents))
    table = Table(title="telephony check")
    for column in ("", "check", "finding", "what to do"):
        table.add_column(column)
    marks = {True: "[green]ok[/green]", False: "[red]FAIL[/red]", None: "[yellow]skip[/yellow]"}
    for result in results:
        table.add_row(marks[result.ok], result.name, result.detail, result.fix)
    console.print(table)
    if any(result.ok is False for result in results):
        raise typer.Exit(1)


@app.command()
def replay(
    fixture: Path = typer.Argument(..., exists=True, dir_okay=False, help="Recorded call (.jsonl)."),
    url: str = typer.Option(..., help="http(s)://HOST/twiml (full Twilio flow) or ws(s)://HOST/media-stream."),
    speed: float = typer.Option(1.0, min=0.1, max=50.0, help="Play faster than real time."),
    auth_token: str | None = typer.Option(None, envvar="TWILIO_AUTH_TOKEN", help="Sign requests like Twilio."),
    account_sid: str | None = typer.Option(None, envvar="TWILIO_ACCOUNT_SID", help="To fetch the transcript."),
    out: Path = typer.Option(Path("out"), help="Where the WAV and transcript go."),
) -> None:
    """Play a recorded call into a running server as Twilio would; write what the caller heard."""
    import asyncio

    import httpx
    import websockets

    require_test_kit()
    from telephony.testing.replay import replay_call

    try:
        outcome = asyncio.run(
            replay_call(fixture, url, speed=speed, auth_token=auth_token, account_sid=account_sid, out_dir=out, console=console)
        )
    except (OSError, ValueError, httpx.HTTPError, websockets.exceptions.WebSocketException) as exc:
        console.print(f"[red]replay failed:[/red] {exc}", highlight=False, soft_wrap=True)
        if _refused_403(exc) and not auth_token:
            console.print(
                "the server checks Twilio signatures: pass --auth-token (or set TWILIO_AUTH_TOKEN) with its auth token",
                highlight=False,
                soft_wrap=True,
            )
        raise typer.Exit(1) from None
    outcome.print(console)


@app.command()
def demo(
    fixture: Path = typer.Option(DEMO_CALL, help="Recorded call to play (default: the one shipped with the package)."),
    out: Path = typer.Option(Path("out"), help="Where the WAV files and transcript go."),
    speed: float = typer.Option(1.0, min=0.1, max=50.0, help="Play faster than real time."),
    port: int = typer.Option(0, min=0, max=65535, help="Port for the demo's server (0: any free port)."),
) -> None:
    """A whole call, offline: our server, the Gemini emulator (echo agent) and a replayed caller."""
    import asyncio

    require_test_kit()
    from telephony.testing.replay import demo_call

    if not fixture.is_file():
        console.print(f"[red]no recorded call at {fixture}[/red] (pass --fixture with a .jsonl recorded call)")
        raise typer.Exit(2)
    try:
        outcome = asyncio.run(demo_call(fixture, out_dir=out, speed=speed, console=console, port=port))
    except OSError as exc:
        console.print(f"[red]demo failed:[/red] {exc.strerror or exc} (port {port})", highlight=False)
        raise typer.Exit(1) from None
    outcome.print(console)


def _refused_403(exc: BaseException) -> bool:
    import httpx
    from websockets.exceptions import InvalidStatus

    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code == 403
    return isinstance(exc, InvalidStatus) and exc.response.status_code == 403


def run_event_loop(coroutine, loop: str = "auto"):
    """Run on uvloop when asked (or, for 'auto', when installed), else on asyncio's loop."""
    import asyncio

    if loop not in ("auto", "uvloop", "asyncio"):
        raise typer.BadParameter("choose auto, uvloop or asyncio", param_hint="--loop")
    if loop != "asyncio":
        try:
            import uvloop

            return uvloop.run(coroutine)
        except ImportError:
            if loop == "uvloop":
                raise typer.BadParameter("uvloop is not installed", param_hint="--loop") from None
    return asyncio.run(coroutine)


@bench_app.command("stalls")
def bench_stalls(
    calls: int = typer.Option(10, min=1, max=100, help="Calls per stall kind (real time, 0.2 s apart)."),
    healthy: int = typer.Option(100, min=0, max=1000, help="Healthy calls per model family, counted for false recoveries (0: skip)."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the figures as JSON."),
) -> None:
    """The model goes silent with its socket open: the silence the caller hears, per stall kind.

    Example: telephony bench stalls --calls 10 --healthy 100"""
    require_test_kit()
    import json

    from telephony.bench.stalls import FAMILY_MODELS, figures_as_dict, kinds, run_false_recoveries, run_stall_kind

    figures = []
    with console.status("") as status:
        for kind in kinds():
            status.update(f"{calls} calls, {kind or 'no stall'} ...")
            figures.append(run_event_loop(run_stall_kind(kind, calls), "uvloop"))
        found = []
        for family in FAMILY_MODELS if healthy else ():
            status.update(f"{healthy} healthy calls on {family.value} (realistic) ...")
            found.append(run_event_loop(run_false_recoveries(family, healthy), "uvloop"))
    table = Table(title=f"bench stalls: {calls} calls each, real time, on the wire at the Twilio emulator")
    for column in ("stall", "answered", "silence heard p50", "p99", "max", "brought back by", "errors"):
        table.add_column(column, justify="left" if column in ("stall", "brought back by") else "right")

    def s(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f} s"

    for row in figures:
        steps = ", ".join(f"{step} {count}" for step, count in sorted(row.answered_by.items()))
        table.add_row(
            row.kind,
            f"{row.answered}/{row.calls}",
            s(row.silence_s["p50"]),
            s(row.silence_s["p99"]),
            s(row.silence_s["max"]),
            steps,
            str(row.errors),
        )
    console.print(table)
    if found:
        healthy_table = Table(title="healthy calls (realistic profile): nudges are false recoveries")
        for column in ("model family", "calls", "nudged", "errors"):
            healthy_table.add_column(column)
        for row in found:
            healthy_table.add_row(row.family, str(row.calls), str(row.nudged_calls), str(row.errors))
        console.print(healthy_table)
    if json_out is not None:
        json_out.write_text(json.dumps(figures_as_dict(figures, found), indent=2))


@bench_app.command("barge-in")
def bench_barge_in(
    calls: int = typer.Option(10, min=1, max=200, help="Concurrent calls (started 0.25 s apart)."),
    min_speech_ms: int = typer.Option(300, help="TELEPHONY_BARGE_IN_MIN_SPEECH_MS for the server under test."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the figures as JSON."),
) -> None:
    """The caller talks over agent audio already buffered: caller speech -> Twilio clear, on the wire."""
    require_test_kit()
    from telephony.bench.barge_in import figures_as_dict, run_barge_in

    rows = []
    with console.status(f"{calls} calls with local barge-in, then {calls} with Gemini's alone ..."):
        for speech_ms in (min_speech_ms, 0):
            rows.append(run_event_loop(run_barge_in(calls, speech_ms), "uvloop"))
    table = Table(title=f"bench barge-in: {calls} calls, each 8 s answer generated at once (ms, on the wire at the Twilio emulator)")
    for column in (
        "barge-in",
        "calls cleared",
        "speech -> clear p50",
        "p95",
        "p99",
        "max",
        "old reply heard after speech p50",
        "max",
        "errors",
    ):
        table.add_column(column, justify="left" if column == "barge-in" else "right")

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    for row in rows:
        latency, heard = row.caller_to_clear_ms, row.old_reply_heard_after_barge_in_ms
        name = f"local, {row.min_speech_ms} ms of speech" if row.min_speech_ms else "Gemini's interrupted only"
        table.add_row(
            name, f"{row.cleared_calls}/{row.calls}", ms(latency["p50"]), ms(latency["p95"]), ms(latency["p99"]),
            ms(latency["max"]), ms(heard["p50"]), ms(heard["max"]), str(row.errors),
        )  # fmt: skip
    console.print(table)
    if json_out:
        json_out.write_text(json.dumps([figures_as_dict(row) for row in rows], indent=2) + "\n")
        console.print(f"figures written to {json_out}")


@bench_app.command("reconnect")
def bench_reconnect(json_out: Path | None = typer.Option(None, "--json", help="Also write the figures as JSON.")) -> None:
    """Gemini connections replaced mid-call (1000, 1008, 1011, refused resumption, drop, goAway):
    the silence the caller hears, on the wire."""
    require_test_kit()
    from telephony.bench.reconnect import figures_as_dict, run_reconnect

    with console.status("one call per case, all at once (about 20 s) ..."):
        rows = run_event_loop(run_reconnect(), "uvloop")
    table = Table(title="bench reconnect: realistic Gemini emulator, one fault per call (seconds, on the wire at the Twilio emulator)")
    for column in ("case", "reconnects", "follow-up -> answer heard", "extra silence", "first answer heard", "error"):
        table.add_column(column, justify="left" if column in ("case", "error") else "right")
    for row in rows:
        gap = "-" if row.answer_gap_s is None else f"{row.answer_gap_s:.2f}"
        extra = "-" if row.extra_silence_s is None else f"{row.extra_silence_s:+.2f}"
        table.add_row(row.case, str(row.reconnects), gap, extra, f"{row.first_answer_heard_s:.2f}", row.errors[:60])
    console.print(table)
    if json_out:
        json_out.write_text(json.dumps(figures_as_dict(rows), indent=2) + "\n")
        console.print(f"figures written to {json_out}")


@bench_app.command("quality")
def bench_quality(
    json_out: Path | None = typer.Option(None, "--json", help="Also write the scores as JSON."),
    speech: Path = typer.Option(Path("fixtures") / "speech", help="Folder of speech WAV files (in a clone: fixtures/speech)."),
) -> None:
    """PESQ and STOI of speech through the real transcoders, against G.711 alone."""
    from telephony.bench.quality import run_quality_bench, scores_as_dicts

    try:
        scores = run_quality_bench(speech)
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    table = Table(title="bench quality: against the ideal one-shot conversion (PESQ wb at 16 kHz, nb at 8 kHz)")
    for column in ("direction", "speaker", "condition", "PESQ", "STOI", "level dBFS"):
        table.add_column(column, justify="left" if column in ("direction", "speaker", "condition") else "right")
    for score in scores:
        table.add_row(score.direction, score.speaker, score.condition, f"{score.pesq:.2f}", f"{score.stoi:.3f}", f"{score.level_dbfs:.1f}")
    console.print(table)
    if json_out:
        json_out.write_text(json.dumps(scores_as_dicts(scores), indent=2) + "\n")
        console.print(f"scores written to {json_out}")


@bench_app.command("soak")
def bench_soak(
    calls: int = typer.Option(30, min=1, help="Concurrent calls, each replaced by a new one as it ends."),
    minutes: float = typer.Option(5.0, min=0.05, help="How long the load lasts."),
    call_seconds: float = typer.Option(20.0, min=8.0, help="Length of each call."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the samples as JSON."),
) -> None:
    """Calls for minutes against a server in its own process: RSS, descriptors and tasks over
    time and after an idle pause (a leak shows as figures that do not come back)."""
    from rich.progress import Progress

    from telephony.bench.soak import run_soak, write_json

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"{calls} calls for {minutes:g} min", total=minutes * 60)
        figures = run_event_loop(
            run_soak(calls, minutes, call_seconds, on_sample=lambda s: progress.update(task, completed=s.at_s)), "uvloop"
        )
    table = Table(title=f"bench soak: {calls} concurrent calls of {call_seconds:.0f} s for {minutes:g} min (server process)")
    for column in ("at s", "RSS MB", "descriptors", "tasks", "live calls", "calls done"):
        table.add_column(column, justify="right")
    rows = [("before", figures.before), *((f"{s.at_s:.0f}", s) for s in figures.samples), ("after idle", figures.after_idle)]
    for label, sample in rows:
        if sample is not None:
            table.add_row(
                label, f"{sample.rss_mb:.1f}", str(sample.descriptors), str(sample.tasks), str(sample.live_calls), str(sample.calls_done)
            )
    console.print(table)
    console.print(f"calls completed: {figures.calls_done}, failed: {figures.calls_failed}")
    if json_out:
        write_json(json_out, figures)
        console.print(f"figures written to {json_out}")


@bench_app.command("load")
def bench_load(
    calls: str = typer.Option("10", help="Concurrent calls; a list such as 10,50,100,200 prints the curve."),
    seconds: float = typer.Option(20.0, min=8.0, help="Length of each call (each caller interrupts once, at ~5.4 s)."),
    loop: str = typer.Option("uvloop", help="Event loop of the server under test: uvloop or asyncio."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the figures as JSON."),
    database_url: str | None = typer.Option(
        None, "--database-url", help="The server's call history: default a fresh SQLite file; off; or postgresql://..."
    ),
    record_audio: bool = typer.Option(False, "--record-audio", help="The server keeps a stereo recording of every call."),
    compare: bool = typer.Option(
        False, "--compare", help="Also run the same load against the naive bridge (telephony/bench/naive_bridge.py): ratios."
    ),
    workers: int = typer.Option(1, "--workers", min=1, max=64, help="Our server's processes (serve --workers)."),
    readme: Path | None = typer.Option(None, "--readme", help="Rewrite the capacity table in this README from the figures."),
) -> None:
    """N concurrent emulated calls against a server in its own process: CPU, memory, delays."""
    from rich.progress import Progress

    from telephony.bench.load import run_load, write_json

    try:
        points = [int(c) for c in calls.split(",") if c.strip()]
    except ValueError:
        raise typer.BadParameter("a number or a comma-separated list of numbers", param_hint="--calls") from None
    if not points or min(points) < 1:
        raise typer.BadParameter("at least one call", param_hint="--calls")
    results = []
    for n in points:
        for bridge in ("ours", "naive") if compare else ("ours",):
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task(f"{bridge}: {n} calls x {seconds:.0f} s", total=seconds)
                results.append(
                    run_event_loop(
                        run_load(
                            n,
                            seconds,
                            loop,
                            on_progress=lambda t, done, task=task: progress.update(task, completed=t),
                            database_url=database_url,
                            record_audio=record_audio,
                            bridge=bridge,
                            workers=workers if bridge == "ours" else 1,
                        ),
                        "uvloop",
                    )
                )
    table = Table(title=f"bench load: calls of {seconds:.0f} s, server on {loop} (delays in ms, end to end between emulators)")
    for column in (
        "bridge",
        "calls",
        "CPU ms/call-s",
        "CPU of 1 core",
        "peak RSS MB",
        "MB/call",
        "late out",
        "late in",
        "in p50/p99",
        "reply start p50/p99",
        "out p50/p99",
        "clear p50/p99",
        "errors/dropped",
    ):
        table.add_column(column, justify="right")
    for f in results:
        table.add_row(
            f.bridge,
            str(f.calls),
            f"{f.server_cpu_ms_per_call_second:.2f}",
            f"{f.server_cpu_share_of_one_core:.0%}",
            f"{f.peak_rss_mb:.0f}",
            f"{f.rss_per_call_mb:.2f}",
            f"{f.late_outbound_frames}/{f.outbound_frames}",
            f"{f.late_inbound_frames}/{f.inbound_frames}",
            _p50_p99(f.inbound_delay_ms),
            _p50_p99(f.reply_start_ms),
            _p50_p99(f.outbound_delay_ms),
            _p50_p99(f.interrupted_to_clear_ms),
            f"{f.errors}/{f.dropped_calls}",
        )
    console.print(table)
    if compare:
        ratios = Table(title="ours vs the naive bridge, same run (naive / ours: above 1 means ours is better)")
        for column in ("calls", "CPU per call-s", "peak RSS", "clear p99", "in p99", "reply start p99"):
            ratios.add_column(column, justify="right")
        for ours, naive in zip(results[0::2], results[1::2], strict=True):
            ratios.add_row(
                str(ours.calls),
                _ratio(naive.server_cpu_ms_per_call_second, ours.server_cpu_ms_per_call_second),
                _ratio(naive.peak_rss_mb, ours.peak_rss_mb),
                _ratio(naive.interrupted_to_clear_ms["p99"], ours.interrupted_to_clear_ms["p99"]),
                _ratio(naive.inbound_delay_ms["p99"], ours.inbound_delay_ms["p99"]),
                _ratio(naive.reply_start_ms["p99"], ours.reply_start_ms["p99"]),
            )
        console.print(ratios)
    for f in results:
        for note in f.notes:
            console.print(f"[yellow]note:[/] {note}")
    if json_out:
        write_json(json_out, results)
        console.print(f"figures written to {json_out}")
    if readme:
        from telephony.bench.load import figures_as_dict
        from telephony.bench.readme import update_readme

        update_readme(readme, [figures_as_dict(f) for f in results])
        console.print(f"capacity table rewritten in {readme}")


def _ratio(theirs: float | None, ours: float | None) -> str:
    if not theirs or not ours:
        return "-"
    return f"{theirs / ours:.2f}x"


def _p50_p99(stats: dict[str, float | None]) -> str:
    if stats["p50"] is None or stats["p99"] is None:
        return "-"
    return f"{stats['p50']:.2f}/{stats['p99']:.2f}"


def main() -> None:  # pragma: no cover - console script entry
    app()
