"""`python -m telephony` is the `telephony` command."""

from telephony.cli import app

app()
