"""The `telephony` command, one module per command group: `commands` (serve, dial, calls, db,
check, replay, demo), `evals` (eval), `talk`, `emulate`, `bench`; `common` is what they share."""

from __future__ import annotations

from telephony.cli import evals as _evals  # noqa: F401 - registers `telephony eval`
from telephony.cli import talk as _talk  # noqa: F401 - registers `telephony talk`
from telephony.cli.bench import bench_app
from telephony.cli.commands import app
from telephony.cli.common import DEMO_CALL, console
from telephony.cli.emulate import emulate_app
from telephony.cli.help_format import quiet_flag_placeholders

quiet_flag_placeholders()

app.add_typer(bench_app, name="bench")
app.add_typer(emulate_app, name="emulate")

__all__ = ["DEMO_CALL", "app", "console", "main"]


def main() -> None:  # pragma: no cover - console script entry
    app()
