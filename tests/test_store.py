"""The call store's own mechanics on SQLite files: the schema check that spares a server
alembic, and the connections on threads of their own (cancellation, the write lock, the loop
left free)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from importlib import resources

from sqlalchemy import insert, select

from telephony.store.claims import StreamClaims
from telephony.store.database import SQLITE_LANES, CallStore
from telephony.store.schema import SCHEMA_REVISION, call_signals

from helpers.fresh_process import modules_loaded


def test_the_schema_revision_the_store_checks_is_alembics_head():
    """A new migration without SCHEMA_REVISION moved on would make every server skip it."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(resources.files("telephony.store") / "migrations"))
    assert ScriptDirectory.from_config(config).get_current_head() == SCHEMA_REVISION


def test_a_process_on_a_current_sqlite_store_never_loads_alembic_the_orm_or_greenlet(tmp_path):
    """Alembic (12 MB) ran in every server on first use, and SQLAlchemy's asyncio layer (ORM and
    greenlet, 7 MB) carried SQLite: a server process now does without both."""
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    env = os.environ | {"TELEPHONY_DATABASE_URL": url}
    upgraded = subprocess.run([sys.executable, "-m", "telephony", "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    code = (
        "import asyncio\n"
        "from telephony.store.database import CallStore, CallQuery\n"
        "from telephony.store.claims import StreamClaims\n"
        "async def main():\n"
        f"    store = CallStore({url!r})\n"
        "    claims = StreamClaims(store)\n"
        "    assert await claims.claim([('token-1', 1e12)], 0.0) is None\n"
        "    assert await claims.claim([('token-1', 1e12)], 0.0) == 'token-1'\n"
        "    assert await store.calls(CallQuery()) == ([], 0)\n"
        "    await store.close()\n"
        "asyncio.run(main())"
    )
    assert modules_loaded(code, ("alembic", "sqlalchemy.orm", "greenlet", "aiosqlite")) == []


async def test_a_cancelled_transaction_is_rolled_back_and_its_connection_serves_the_next(tmp_path):
    store = CallStore(f"sqlite:///{tmp_path / 'calls.db'}")
    await store.ensure_schema()
    entered = asyncio.Event()

    async def cancelled_midway() -> None:
        async with store.begin() as connection:
            await connection.execute(insert(call_signals).values(call_sid="CA1", kind="amd", value="human", created_at=1.0))
            entered.set()
            await asyncio.sleep(30)

    tasks = [asyncio.create_task(cancelled_midway()) for _ in range(SQLITE_LANES)]
    await entered.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    async with store.connect() as connection:  # every connection is free again, none holds the write lock
        assert (await connection.execute(select(call_signals))).all() == []
    async with store.begin() as connection:
        await connection.execute(insert(call_signals).values(call_sid="CA2", kind="amd", value="machine", created_at=2.0))
    async with store.connect() as connection:
        assert await connection.scalar(select(call_signals.c.call_sid)) == "CA2"
    await store.close()


async def test_a_writer_waiting_for_sqlites_write_lock_leaves_the_event_loop_and_the_readers_free(tmp_path):
    """The wait is on the connection's own thread: the loop keeps its 20 ms beat and a stream's
    claim, another connection, goes through while a second writer waits for the first."""
    store = CallStore(f"sqlite:///{tmp_path / 'calls.db'}")
    await store.ensure_schema()
    holding = asyncio.Event()
    release = asyncio.Event()

    async def first_writer() -> None:
        async with store.begin() as connection:
            await connection.execute(insert(call_signals).values(call_sid="CA1", kind="amd", value="human", created_at=1.0))
            holding.set()
            await release.wait()

    async def second_writer() -> float:
        async with store.begin() as connection:
            await connection.execute(insert(call_signals).values(call_sid="CA2", kind="amd", value="human", created_at=2.0))
        return time.monotonic()

    first = asyncio.create_task(first_writer())
    await holding.wait()
    second = asyncio.create_task(second_writer())
    beats = 0
    started = time.monotonic()
    while time.monotonic() - started < 0.5:  # the second writer is blocked all along, on its thread
        await asyncio.sleep(0.02)
        beats += 1
    async with store.connect() as connection:  # a reader is not blocked by either (WAL)
        assert await connection.scalar(select(call_signals.c.call_sid)) is None
    assert not second.done()
    assert beats >= 10, f"the event loop ran {beats} times in 0.5 s"
    released_at = time.monotonic()
    release.set()
    await first
    assert await second >= released_at
    async with store.connect() as connection:
        assert sorted((await connection.execute(select(call_signals.c.call_sid))).scalars()) == ["CA1", "CA2"]
    assert await StreamClaims(store).claim([("token", 1e12)], 0.0) is None
    await store.close()


async def test_after_a_burst_an_idle_store_holds_one_connections_files(tmp_path):
    """Each SQLite connection in WAL mode holds three files; connections opened for work that
    came at once close when done (the soak's descriptor count at idle caught them kept: 16 -> 25)."""

    def descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    store = CallStore(f"sqlite:///{tmp_path / 'calls.db'}")
    await store.ensure_schema()
    idle = descriptors()

    async def reader() -> None:
        async with store.connect() as connection:
            await connection.execute(select(call_signals))
            await asyncio.sleep(0.05)

    for _ in range(3):
        await asyncio.gather(*(reader() for _ in range(SQLITE_LANES * 3)))
        await asyncio.sleep(0.1)  # the closes run on the lanes' threads
        # SQLite keeps a closed connection's files while another connection of the process
        # holds locks on them (closing would drop those), and reuses them: one set at most.
        assert descriptors() <= idle + 3, f"{SQLITE_LANES} connections' files kept"
    await store.close()


async def test_serve_with_its_database_down_starts_at_once_and_says_so_in_one_line(tmp_path):
    """serve upgrades the store before it listens, in a child process: a database that refuses
    connections must not hold the start (nor print its password); calls need no store."""
    from conftest import free_port, wait_until_healthy

    port, dead = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    env = os.environ | {
        "GEMINI_API_KEY": "offline",
        "TWILIO_AUTH_TOKEN": "t" * 32,
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TELEPHONY_PORT": str(port),
        "TELEPHONY_PUBLIC_URL": base,
        "TELEPHONY_DATA_DIR": str(tmp_path),
        "TELEPHONY_DATABASE_URL": f"postgresql://telephony:s3cret-pw@127.0.0.1:{dead}/calls",
    }
    server = subprocess.Popen([sys.executable, "-m", "telephony", "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        await wait_until_healthy(base, process=server)
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0].decode()
    warning = [line for line in output.splitlines() if line.startswith("call history:")]
    assert len(warning) == 1 and "retried on first use" in warning[0], output
    assert "s3cret-pw" not in output


def test_every_postgresql_url_runs_on_asyncpg_the_driver_the_store_is_written_for():
    """A URL naming another driver (psycopg2's, as Django and alembic examples do) failed at the
    first call with SQLAlchemy's 'asyncio extension requires an async driver'."""
    from telephony.store.database import async_url

    for given in ("postgresql://u:p@db/calls", "postgres://u:p@db/calls", "postgresql+psycopg2://u:p@db/calls"):
        assert async_url(given) == "postgresql+asyncpg://u:p@db/calls"
