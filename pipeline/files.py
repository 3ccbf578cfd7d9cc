"""Reading competition CSVs and writing files atomically, shared by every stage.

init, prepare and submit parse CSVs the same way, so a file that one stage accepts the
others accept too; every way a file can be bad becomes one `PipelineError` line.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError

# Missing-value markers on top of pandas' defaults (which include the empty field): adult's '?'.
NA_VALUES = ["?"]
COMPETITION_FILES = ("train.csv", "test.csv", "sample_submission.csv")


def read_csv(path: Path, *, id_col: str | None = None, str_cols: tuple[str, ...] = ()) -> Any:
    """Read one competition CSV (-> pandas.DataFrame); ids and `str_cols` stay strings.

    Every way a file can be bad becomes one `PipelineError` line naming the file.
    """
    import pandas as pd

    if not path.is_file():
        raise PipelineError(f"{path}: file not found (expected a Kaggle-layout CSV)")
    opts: dict[str, Any] = {"skipinitialspace": True}
    try:
        header = pd.read_csv(path, nrows=0, **opts).columns
        dtype = {c: str for c in (id_col, *str_cols) if c is not None and c in header}
        df = pd.read_csv(path, dtype=dtype or None, na_values=NA_VALUES, **opts)
    except pd.errors.EmptyDataError:
        raise PipelineError(f"{path}: empty file (expected a CSV with a header row)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise PipelineError(f"{path}: not a readable UTF-8 CSV ({one_line(e)})") from None
    except OSError as e:
        raise PipelineError(f"{path}: cannot read ({one_line(e)})") from None
    if df.empty:
        raise PipelineError(f"{path}: no data rows (only a header)")
    return df


def one_line(e: BaseException, limit: int = 160) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."



@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed over `path` only on success.

    A failed or interrupted write never leaves half a file, and never a temporary one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` durably (fsync) to `path` via a temporary file and a rename."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))
