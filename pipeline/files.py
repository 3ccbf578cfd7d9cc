"""Reading competition CSVs and writing files atomically, shared by every stage.

init, prepare and submit parse CSVs the same way, so a file that one stage accepts the
others accept too; every way a file can be bad becomes one `PipelineError` line.
"""

from __future__ import annotations

import json
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
# pandas' ISO reader also takes '2015' and '20150731', which are numbers, so it reads only these.
DATE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)
ISO = "ISO8601"  # pandas' name for it; also what a preprocessor.json without a format means
# Text dates as people write them, as strptime formats. Month-first comes before day-first:
# a column that reads both ways is ambiguous, and that order is pandas' guess. As text they
# are thousands of one-hot levels and test's (later) dates are all unseen, so init keeps
# them and prepare turns them into the DATE_PARTS numbers.
_DAYS = ("%Y-%m-%d", "%Y/%m/%d", "%m/%d/%Y", "%d/%m/%Y", "%m-%d-%Y", "%d-%m-%Y", "%d.%m.%Y",
         "%d %b %Y", "%d %B %Y", "%d-%b-%Y", "%b %d, %Y", "%B %d, %Y", "%b %d %Y", "%B %d %Y",
         "%Y-%b-%d")
_TIMES = ("", " %H:%M", " %H:%M:%S", " %I:%M %p", " %I:%M:%S %p")
DATE_FORMATS = (*(d + t for d in _DAYS for t in _TIMES), "%Y-%m-%dT%H:%M",
                "%Y-%m-%dT%H:%M:%S", ISO)
SAMPLE = 50  # distinct values tried first: a text column that is no date fails fast
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
    if len(df.columns) == 1:
        check_delimiter(path, str(df.columns[0]))
    _check_finite(df, path)
    return df


OTHER_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}


def check_delimiter(path: Path, header: str) -> None:
    """One column whose name holds another delimiter: the file is not comma-separated, and
    every later check would report a missing column instead."""
    for sep, name in OTHER_DELIMITERS.items():
        if sep in header:
            raise PipelineError(
                f"{path}: {name}-delimited ({header[:60]!r} is one column); the pipeline reads "
                "comma-separated files: save it with commas"
            )


def _check_finite(df: Any, path: Path) -> None:
    """An infinite number (`inf`, or `1e400`, which overflows to it) in a numeric column:
    the network cannot scale or learn from it, and scikit-learn would stop with a traceback."""
    import numpy as np
    import pandas as pd

    for col in df.columns:
        if not pd.api.types.is_float_dtype(df[col]):
            continue
        values = df[col].to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.flatnonzero(np.isinf(values))
        if len(bad):
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise PipelineError(
                f"{path}: row {bad[0] + 1} (line {bad[0] + 2}), column {col!r} holds "
                f"{values[bad[0]]}{more}; expected a finite number (1e400 and beyond "
                "overflow to inf): fix or empty that cell"
            )


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


def date_formats(*columns: Any) -> tuple[str, ...]:
    """The formats of DATE_FORMATS that read every non-empty value of `columns` (train and
    test together), one per distinct reading: () not dates, (fmt,) decided, more: ambiguous
    (every value fits month-first and day-first), month-first first. Numbers are never dates.
    """
    values = _distinct_text(columns)
    if values is None:
        return ()
    fits = [f for f in DATE_FORMATS if parse_dates(values[:SAMPLE], f).notna().all()]
    readings: dict[bytes, str] = {}
    for f in fits:
        t = parse_dates(values, f)
        if t.notna().all():
            readings.setdefault(t.to_numpy().tobytes(), f)
    return tuple(readings.values())


def date_format(*columns: Any, file: Path | str = "train.csv") -> str | None:
    """The one format that reads `columns` (None: not dates); a column that reads both
    month-first and day-first is a `PipelineError` naming `file` and the column."""
    found = date_formats(*columns)
    if len(found) > 1:
        name = str(columns[0].name)
        raise PipelineError(
            f"{file}: column {name!r} holds dates that read as {found[0]} and as {found[1]} "
            f"(no value tells which); declare the format in the experiment file: "
            f"[competition] {dates_line({name: found[1]})} (or {json.dumps(found[0])})"
        )
    return found[0] if found else None


def parse_dates(values: Any, fmt: str) -> Any:
    """Text (or whole numbers, for a format such as '%Y%m%d') -> a Series of naive datetimes
    read with `fmt`, zones converted to UTC; a value that does not fit is NaT.
    A bad directive in `fmt` is pandas' ValueError."""
    import pandas as pd

    s = values if isinstance(values, pd.Series) else pd.Series(values)
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        s = s.map(lambda v: None if pd.isna(v) else
                  (str(int(v)) if float(v).is_integer() else str(v)))
    text = s.astype("string").str.strip()
    if fmt == ISO:
        text = text.where(text.str.fullmatch(DATE).fillna(False).astype(bool))
    return pd.to_datetime(text, format=fmt, errors="coerce", utc=True).dt.tz_localize(None)


def past_end(train: Any, test: Any, fmt: str | None = None) -> tuple[str, str] | None:
    """(train's last, test's first) as the files write them, when every test value comes after
    every training value: numbers as they are, text as dates read with `fmt` (`parse_dates`);
    None otherwise, or when a value is no number and `fmt` does not read it."""
    import pandas as pd

    a, b = train.dropna(), test.dropna()
    if a.empty or b.empty:
        return None
    ordered = a, b
    if not all(pd.api.types.is_numeric_dtype(v) for v in (a, b)):
        if fmt is None:
            return None
        ordered = parse_dates(a, fmt), parse_dates(b, fmt)
        if any(v.isna().any() for v in ordered):
            return None
    if ordered[1].min() <= ordered[0].max():
        return None
    return str(a[ordered[0].idxmax()]), str(b[ordered[1].idxmin()])


def dates_line(formats: dict[str, str]) -> str:
    """The experiment file's `dates = { column = "format" }` line (TOML; JSON strings are
    valid TOML strings, and quote a column name that is no bare key)."""
    def key(name: str) -> str:
        return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)

    inner = ", ".join(f"{key(c)} = {json.dumps(f)}" for c, f in formats.items())
    return f"dates = {{ {inner} }}"


def _distinct_text(columns: tuple[Any, ...]) -> Any:
    """The distinct non-empty values of text columns, stripped; None when a column holds
    numbers or nothing is left."""
    import pandas as pd

    parts = []
    for s in columns:
        if pd.api.types.is_numeric_dtype(s):
            return None
        parts.append(s.dropna().astype(str).str.strip())
    values = pd.concat(parts, ignore_index=True).drop_duplicates()
    values = values[values != ""].reset_index(drop=True)
    return values if len(values) else None
