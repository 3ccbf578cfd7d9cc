"""`pipeline data`: the built-in competitions by name, each a generator of a Kaggle-layout
folder from a seed."""


from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline.competitions import avocado
from pipeline.errors import PipelineError

Generator = Callable[..., list[Path]]

BUILTIN: dict[str, Generator] = {"avocado": avocado.generate}


def generate(name: str, out_dir: Path, *, seed: int, rows: int | None = None) -> list[Path]:
    """Write built-in competition `name` into out_dir; rows=None keeps its default size."""
    try:
        make = BUILTIN[name]
    except KeyError:
        known = ", ".join(sorted(BUILTIN))
        raise PipelineError(f"unknown competition {name!r}: expected one of {known}") from None
    size = {} if rows is None else {"rows": rows}
    return make(Path(out_dir), seed=seed, **size)
