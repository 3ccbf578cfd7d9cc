"""Reading competition CSVs and writing files atomically, shared by every stage.

init, prepare and submit parse CSVs the same way, so a file that one stage accepts the
others accept too; every way a file can be bad becomes one `PipelineError` line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError

# Missing-value markers on top of pandas' defaults (which include the empty field): adult's '?'.
NA_VALUES = ["?"]
COMPETITION_FILES = ("train.csv", "test.csv", "sample_submission.csv")
# ISO 8601 dates and times ('2015-07-31', '2011-01-20 00:00:00', '2016-03-14T17:24:55Z'):
# as text they are thousands of one-hot levels, and test's (later) dates are all unseen;
# init keeps them and prepare turns them into these numbers.
DATE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)
DATE_PARTS = ("year", "month", "day", "weekday", "days")  # days: since 1970, the trend


def read_csv(
    path: Path, *, id_col: str | None = None, str_cols: tuple[str, ...] = (),
    only: tuple[str, ...] | None = None,
) -> Any:
    """Read one competition CSV (-> pandas.DataFrame); ids and `str_cols` stay strings;
    `only` parses just those columns (a re-read of one column of a big train.csv).

    Every way a file can be bad becomes one `PipelineError` line naming the file.
    """
    import pandas as pd

    if not path.is_file():
        raise PipelineError(f"{path}: file not found (expected a Kaggle-layout CSV)")
    opts: dict[str, Any] = {"skipinitialspace": True}
    try:
        header = pd.read_csv(path, nrows=0, **opts).columns
        dtype = {c: str for c in (id_col, *str_cols) if c is not None and c in header}
        if only is not None:
            opts["usecols"] = [c for c in only if c in header]
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


def is_date_column(s: Any) -> bool:
    """A text column whose every value is an ISO 8601 date or date-time."""
    import pandas as pd

    values = s.dropna()
    if pd.api.types.is_numeric_dtype(s) or values.empty:
        return False
    return bool(values.astype(str).str.strip().str.fullmatch(DATE).all())
