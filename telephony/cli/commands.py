"""The commands a user types most: serve, dial, calls and the history database, check,
replay, demo."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import typer
from pydantic import SecretStr
from rich.table import Table

from telephony.cli.common import (
    DEMO_CALL,
    _refused_403,
    agent_or_exit,
    console,
    require_test_kit,
    run_event_loop,
    settings_or_exit,
)

if TYPE_CHECKING:
    from telephony.settings import Settings
    from telephony.twilio.dial import DialRequest

app = typer.Typer(help="Put a Gemini Live voice agent on a phone number (Twilio Media Streams).", no_args_is_help=True)


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Address to listen on [TELEPHONY_HOST, 127.0.0.1]."),
    port: int | None = typer.Option(None, help="Port [TELEPHONY_PORT, 8080]."),
    record: Path | None = typer.Option(None, "--record", help="Write every inbound Twilio message of each call here, as fixtures."),
    call_log: Path | None = typer.Option(None, "--call-log", help="Append one JSON line per call here."),
    emulate_gemini: bool = typer.Option(False, "--emulate-gemini", help="Use the local Gemini emulator (echo agent): no key, no network."),
    script: Path | None = typer.Option(
        None, "--script", help="With --emulate-gemini: the emulated model follows this model script (YAML), calling your tools."
    ),
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
    """Serve Twilio's voice webhook (POST /twiml) and media streams (WS /media-stream).

    Example: telephony serve --emulate-gemini --agent myagent:agent"""
    import os

    from telephony.logs import configure_logging

    if script is not None and not emulate_gemini:
        console.print("[red]--script[/red] is what the emulated model does: add --emulate-gemini", highlight=False)
        raise typer.Exit(2)
    from telephony.cli.emulate import model_script_or_exit

    model_script = model_script_or_exit(script) if script is not None else None

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
    given = {k: v for k, v in given.items() if v is not None}
    signatures_off_locally = emulate_gemini and _local_without_twilio(given)
    if signatures_off_locally:  # nothing outside this machine can reach it: no Twilio to sign anything
        given["validate_signatures"] = False
    settings = settings_or_exit(for_serve=True, gemini_emulated=emulate_gemini, with_agent=True, **given)
    processes = 1 if emulate_gemini else (settings.workers or os.cpu_count() or 1)
    if processes > 1 and settings.call_history_url == "off":
        console.print(
            f"[red]config:[/red] {processes} workers need the call store (TELEPHONY_DATABASE_URL is off): a stream token must be "
            "used once and a live call have one stream across them; keep the default SQLite file, or use --workers 1",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2)
    if processes > 1:  # before anything imports prometheus_client: the workers add their metrics up
        from telephony.web.workers import prepare_shared_metrics

        prepare_shared_metrics()
    _upgrade_store(settings)  # once, before the workers would race to create the tables

    from telephony.web.app import create_app
    from telephony.web.server import DrainingServer, listen_socket, uvicorn_config

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
    local = f"http://{'127.0.0.1' if settings.host in ('0.0.0.0', '::') else settings.host}:{settings.port}"
    console.print(f"Voice webhook: {public}/twiml   media stream: {public.replace('http', 'ws', 1)}/media-stream", highlight=False)
    console.print(f"Talk to your agent: {local}/phone   calls: {local}/calls", highlight=False)
    if signatures_off_locally:
        console.print("Twilio signatures: off (only this machine reaches it; set TWILIO_AUTH_TOKEN to check them)", highlight=False)
    if (kernels := audio_kernels_note(settings)) is not None:
        console.print(kernels, highlight=False)

    async def run() -> None:
        from telephony.agents.mcp_tools import McpError, mcp_tools_of

        async with contextlib.AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(mcp_tools_of(agents))
            except McpError as exc:
                console.print(f"[red]agent:[/red] {exc}", highlight=False, soft_wrap=True)
                raise typer.Exit(2) from None
            if emulate_gemini:
                require_test_kit()
                from telephony.testing.gemini_live import GeminiLiveEmulator

                mind = model_script.model if model_script is not None else None  # a fresh script for every call
                from telephony.testing.text_model import SchemaFiller

                emulator = await stack.enter_async_context(
                    GeminiLiveEmulator(mind, text_model=SchemaFiller(), auth_tokens=True, plain_front=True)
                )
                settings.gemini_api_key = SecretStr("offline")
                settings.gemini_base_url, settings.gemini_ca_file = emulator.base_url, emulator.ca_file
                settings.gemini_browser_base_url = emulator.plain_base_url  # a browser does not trust the emulator's CA
                follows = f"following {script}" if script is not None else "echo agent"
                console.print(f"Gemini: local emulator ({follows}) at {emulator.base_url}", highlight=False)
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
    from telephony.web.workers import run_workers

    def work(mine: Any) -> int:
        nonlocal listening
        listening = mine
        try:
            run_event_loop(run(), loop)
        except typer.Exit as exc:
            return int(exc.exit_code)
        return 0

    raise typer.Exit(run_workers(sockets, work))


def _upgrade_store(settings: Settings) -> None:
    """Bring the call history's tables up to date before serving, and in a child process
    (`telephony db upgrade`): alembic and its templates are 12 MB that the server would carry
    all its life for a one-off migration. A store already current costs one query here. When
    the database does not answer or the child fails, the server starts anyway: it keeps calls
    going without a store and migrates in-process once the database is back."""
    import asyncio
    import os
    import subprocess
    import sys

    from telephony.store.database import CallStore

    url = settings.call_history_url
    if url == "off" or ":memory:" in url:  # nothing to keep: the server's own store makes its tables
        return

    async def current() -> bool | None:
        store = CallStore(url)
        try:
            return await asyncio.wait_for(store.schema_is_current(), 10)
        except TimeoutError:
            return None
        finally:
            await store.close()

    state = run_event_loop(current(), "asyncio")
    if state is None:
        console.print("[yellow]call history:[/yellow] no answer from the database within 10 s; retried on first use", highlight=False)
    if state is not False:
        return
    failed: str | None = None
    try:
        done = subprocess.run(
            [sys.executable, "-m", "telephony", "db", "upgrade"],
            env=os.environ | {"TELEPHONY_DATABASE_URL": url},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:  # its own one-line error, last
            failed = (done.stdout.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    except subprocess.TimeoutExpired:
        failed = "no answer within 120 s"
    if failed:
        console.print(f"[yellow]call history:[/yellow] not upgraded before serving ({failed}); retried on first use", highlight=False)


def _local_without_twilio(given: dict[str, Any]) -> bool:
    """An offline server that only this machine reaches, with no Twilio auth token and no
    word on signatures: they are off (real Twilio settings switch them on)."""
    from telephony.settings import ConfigError, host_is_loopback, load_settings

    try:
        probe = load_settings(**given)
    except ConfigError:
        return False  # the real load reports it
    return probe.twilio_auth_token is None and host_is_loopback(probe.host) and "validate_signatures" not in probe.model_fields_set


@app.command()
def dial(
    to: str | None = typer.Argument(None, help="Number to call, E.164 (+15551234567); or --list FILE.csv."),
    from_: str | None = typer.Option(None, "--from", help="Your Twilio number [TWILIO_PHONE_NUMBER]."),
    instructions: Path | None = typer.Option(None, exists=True, dir_okay=False, help="System instructions for this call (text file)."),
    voice: str | None = typer.Option(None, help="Gemini prebuilt voice for this call (e.g. Kore, Puck, Charon)."),
    greeting: str | None = typer.Option(None, help="Make the agent speak first, e.g. 'Introduce yourself.'"),
    vad: str | None = typer.Option(None, help="Turn-taking preset for this call: phone, responsive or patient."),
    agent: str | None = typer.Option(None, "--agent", help="One of your server's agents, by name (see serve --agent)."),
    server: str | None = typer.Option(None, help="Public URL of your running `telephony serve` [TELEPHONY_PUBLIC_URL]."),
    follow: bool = typer.Option(True, "--follow/--no-follow", help="Show the call's progress until it ends."),
    machines: bool = typer.Option(
        True, "--machine-detection/--no-machine-detection", help="Detect answering machines and leave the agent's voicemail."
    ),
    call_list: Path | None = typer.Option(None, "--list", dir_okay=False, help="Call every number of a CSV file."),
    concurrency: int = typer.Option(5, min=1, max=500, help="--list: calls at the same time."),
    rate: float = typer.Option(1.0, min=0.01, help="--list: new calls per second at most."),
    retries: int = typer.Option(2, min=0, max=10, help="--list: further tries of a busy or unanswered number."),
    retry_delay: float = typer.Option(300.0, min=0, help="--list: seconds before trying a number again."),
    quiet_hours: str = typer.Option("21:00-09:00", help="--list: no calls then, in the callee's timezone column ('off': none)."),
    timezone: str | None = typer.Option(None, help="--list: timezone of rows without one (default: this machine's)."),
    results: Path | None = typer.Option(None, dir_okay=False, help="--list: results file, .csv or .json [LIST.results.csv]."),
) -> None:
    """Call a phone number (or every number of a list) and connect it to the agent on your running server.

    Example: telephony dial +15551234567 --agent clinic; telephony dial --list reminders.csv --concurrency 5"""
    import asyncio

    from telephony.gemini import catalog
    from telephony.gemini.config import VAD_PRESETS
    from telephony.twilio.dial import DialRequest, FollowError, check_number, follow_call, place_call
    from telephony.twilio.rest import TwilioRestError

    settings = settings_or_exit()
    public = server or settings.public_url
    try:
        if not public:
            raise ValueError("say where your server is reachable: --server https://... or TELEPHONY_PUBLIC_URL")
        if (to is None) == (call_list is None):
            raise ValueError("give one number to call, or --list FILE.csv")
        text = instructions.read_text(encoding="utf-8").strip() if instructions else None
        if text and len(text) > 4000:
            raise ValueError("per-call instructions are limited to 4000 characters; use TELEPHONY_INSTRUCTIONS_FILE on the server")
        request = DialRequest(
            to=check_number(to or "+10000000000", "the number to call"),
            from_=check_number(from_ or settings.from_number or "", "--from (or TWILIO_PHONE_NUMBER)"),
            server=public,
            voice=voice,
            instructions=text,
            greeting=greeting,
            vad=vad,
            agent=agent,
            detect_machines=machines,
        )
        if vad and vad not in VAD_PRESETS:
            raise ValueError(f"--vad must be one of {', '.join(VAD_PRESETS)}")
        if voice and (problem := catalog.voice_problem(voice, settings.extra_voices)):
            raise ValueError(f"--voice: {problem}")
        if call_list is not None:
            _dial_list(settings, request, call_list, concurrency, rate, retries, retry_delay, quiet_hours, timezone, results)
            return
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


def _dial_list(
    settings: Settings,
    template: DialRequest,
    path: Path,
    concurrency: int,
    rate: float,
    retries: int,
    retry_delay: float,
    quiet_hours: str,
    timezone: str | None,
    results: Path | None,
) -> None:
    from telephony.call_lists.list_file import CallListError, QuietHours, read_call_list
    from telephony.call_lists.list_run import ListOptions
    from telephony.cli.call_list import default_zone, results_path, run_list

    quiet = None if quiet_hours.strip().lower() in ("off", "none", "") else QuietHours.parse(quiet_hours)
    try:
        rows, skipped = read_call_list(path, default_zone(timezone))
    except CallListError as exc:
        console.print(f"[red]cannot dial the list:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if not rows:
        console.print(f"[red]cannot dial the list:[/red] {path}: no row to call ({len(skipped)} skipped)", highlight=False)
        for problem in skipped:
            console.print(f"  {problem}", highlight=False)
        raise typer.Exit(1)
    options = ListOptions(concurrency=concurrency, calls_per_second=rate, retries=retries, retry_delay_s=retry_delay, quiet_hours=quiet)
    run_list(console, settings, path, rows, skipped, template, options, results_path(path, results))


db_app = typer.Typer(help="The call history database (SQLite by default, or TELEPHONY_DATABASE_URL).", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _store(settings: Settings) -> Any:
    from telephony.store import CallStore

    url = settings.call_history_url
    if url == "off":
        console.print("call history is off (TELEPHONY_DATABASE_URL=off)")
        raise typer.Exit(1)
    if (problem := settings.call_history_problem()) is not None:
        console.print(f"[red]config:[/red] {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    return CallStore(url)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the call history tables (servers also do it on first use).

    Example: TELEPHONY_DATABASE_URL=postgresql://... telephony db upgrade"""
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
    """Recent calls from the call history, as a table.

    Example: telephony calls --number +15551234567"""
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
    """Before the phone rings: your agent's exact Gemini session, Twilio, your number's webhook, your public URL.

    Each check talks to the real thing as a call would. Example: telephony check --agent myagent:agent"""
    from telephony.agents.agent import Agent
    from telephony.cli.preflight import run_checks

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


REPLAY_SIGNED_MAX_SPEED = 1.25
"""The server's default TELEPHONY_MEDIA_RATE_LIMIT: faster signed audio is cut as `media_too_fast`."""


def _replay_url(url: str) -> str:
    """The voice webhook of a bare http(s)://HOST[:PORT]; a URL that can be neither, one line and exit 2."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.path in ("", "/"):
        return url.rstrip("/") + "/twiml"
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        console.print(
            f"[red]replay:[/red] --url must be http(s)://HOST/twiml (the whole Twilio flow) or ws(s)://HOST/media-stream, not {url!r}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2)
    return url


@app.command()
def replay(
    fixture: Path = typer.Argument(..., exists=True, dir_okay=False, help="Recorded call (.jsonl)."),
    url: str = typer.Option(..., help="http(s)://HOST/twiml (full Twilio flow) or ws(s)://HOST/media-stream."),
    speed: float = typer.Option(1.0, min=0.1, max=50.0, help="Play faster than real time."),
    auth_token: str | None = typer.Option(None, envvar="TWILIO_AUTH_TOKEN", help="Sign requests like Twilio."),
    account_sid: str | None = typer.Option(None, envvar="TWILIO_ACCOUNT_SID", help="To fetch the transcript."),
    out: Path = typer.Option(Path("out"), help="Where the WAV and transcript go."),
) -> None:
    """Play a recorded call into a running server as Twilio would; write what the caller heard.

    Example: telephony replay fixtures/one_sentence.jsonl --url http://127.0.0.1:8080"""
    import asyncio

    import httpx
    import websockets

    require_test_kit()
    from telephony.testing.replay import replay_call

    url = _replay_url(url)
    if auth_token and speed > REPLAY_SIGNED_MAX_SPEED:
        console.print(
            f"[red]replay:[/red] --speed {speed:g} is faster than a server that checks signatures takes caller audio "
            f"({REPLAY_SIGNED_MAX_SPEED:g}x real time, TELEPHONY_MEDIA_RATE_LIMIT): replay at --speed 1, or raise that limit on the server",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2)
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
    """A whole call, offline: our server, the Gemini emulator (echo agent) and a replayed caller.

    Example: telephony demo --out out"""
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


def audio_kernels_note(settings: Settings) -> str | None:
    """A line at start when the caller's gain control and the resamplers run in Python, not in
    their C kernels: the same sound, about a fifth more CPU per call (`telephony.audio.compiled`)."""
    from telephony.audio.compiled import COMPILED

    if settings.audio_kernels == "python":
        return "Audio: gain control and resamplers in Python (TELEPHONY_AUDIO_KERNELS=python): about a fifth more CPU per call"
    if not COMPILED:
        return (
            "Audio: gain control and resamplers in Python: the C kernels were not built at install (no C compiler or no "
            "Python headers); reinstall where one is found for about a fifth less CPU per call"
        )
    return None
