"""Reading the test kit's YAML files (eval scenarios, model scripts) with mistakes told in one
line: the file, where in it, and what is wrong; never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class YamlFileError(ValueError):
    """A mistake in a YAML file of the test kit, as one line."""


def read_yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise YamlFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise YamlFileError(f"{path}: not a text file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise YamlFileError(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None


def one_line(path: Path, exc: ValidationError, data: Any, items: str, item: str) -> str:
    """The first mistake of `exc`, naming the `item` (e.g. scenario) by its `name` when the
    mistake is inside the list `items` of `data`."""
    error = exc.errors(include_input=False, include_url=False)[0]
    loc = list(error["loc"])
    where = ""
    if len(loc) >= 2 and loc[0] == items and isinstance(loc[1], int):
        listed = data.get(items) or [] if isinstance(data, dict) else []
        entry = listed[loc[1]] if loc[1] < len(listed) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        where = f" {item} {name!r}" if name else f" {item} #{loc[1] + 1}"
        loc = loc[2:]
    key = ".".join(str(part) for part in loc)
    message = "unknown key" if error["type"] == "extra_forbidden" else str(error["msg"]).removeprefix("Value error, ")
    return f"{path}:{where}{f' `{key}`' if key else ''}: {message}"


def load_validated(path: Path, model: type[M], items: str, item: str, error: type[YamlFileError], expected: str) -> M:
    """A YAML file as `model`: a bare list is its `items`; any mistake raises `error` in one
    line (`expected` says what the file should hold)."""
    try:
        data = read_yaml(path)
    except YamlFileError as exc:
        raise error(str(exc)) from None
    if isinstance(data, list):
        data = {items: data}
    if not isinstance(data, dict):
        raise error(f"{path}: expected {expected}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(one_line(path, exc, data, items, item)) from None
