"""Help without placeholder noise: typer (0.29) shows a value placeholder for every option,
flags included (`--help <bool>`, `--follow/--no-follow <bool>`). A flag takes no value, so it
shows none; an option that takes one keeps its type (`<path>`, `<float range>`)."""

from __future__ import annotations

from typing import Any

from typer.core import TyperOption

_typer_display_type_rich = TyperOption.display_type_rich


def _display_type_rich(self: TyperOption, ctx: Any) -> str | None:
    if self.is_flag or self.count:
        return None
    return _typer_display_type_rich(self, ctx)


def quiet_flag_placeholders() -> None:
    TyperOption.display_type_rich = _display_type_rich  # type: ignore[method-assign]
