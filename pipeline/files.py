"""Reading competition CSVs and writing files atomically, shared by every stage.

init, prepare and submit parse CSVs the same way, so a file that one stage accepts the
others accept too; every way a file can be bad becomes one `PipelineError` line.
"""

from __future__ import annotations

import os
import tempfile
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




def write_text_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a project file should be readable
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
