"""Checks of one value of a TOML table, each a `PipelineError` naming the file, the table and
the key: shared by every section of the experiment file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError


def is_type(value: Any, expected: type) -> bool:
    if isinstance(value, bool):
        return expected is bool
    if expected is float:
        return isinstance(value, int | float)
    return isinstance(value, expected)


def table_of(raw: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise PipelineError(f"{path}: [{name}] must be a table, got {value!r}")
    return value


def check_keys(raw: dict[str, Any], known: set[str], path: Path, section: str) -> None:
    for key in raw:
        if key not in known:
            where = f"[{section}] {key}" if section else f"[{key}]"
            raise PipelineError(
                f"{path}: unknown key {where} (expected one of {', '.join(sorted(known))})"
            )


def typed(raw: dict[str, Any], key: str, expected: type, path: Path, section: str) -> Any:
    value = raw[key]
    if not is_type(value, expected) or (expected is str and not value):
        raise PipelineError(
            f"{path}: [{section}] {key} must be a non-empty {expected.__name__}, got {value!r}"
        )
    return value


def one_of(
    raw: dict[str, Any], key: str, options: tuple[str, ...], path: Path, section: str
) -> str:
    value = raw[key]
    if value not in options:
        raise PipelineError(
            f"{path}: [{section}] {key} must be one of {', '.join(options)}, got {value!r}"
        )
    return value


def str_list(raw: dict[str, Any], key: str, path: Path, section: str) -> list[str]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PipelineError(
            f"{path}: [{section}] {key} must be a list of column names, got {value!r}"
        )
    return value


def int_value(
    raw: dict[str, Any], key: str, path: Path, section: str, default: int, minimum: int
) -> int:
    value = raw.get(key, default)
    if not is_type(value, int) or value < minimum:
        raise PipelineError(
            f"{path}: [{section}] {key} must be an integer >= {minimum}, got {value!r}"
        )
    return value
