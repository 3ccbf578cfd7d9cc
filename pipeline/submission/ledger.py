"""submissions/ledger.csv: one row per submission file, appended, never rewritten.

Each row goes out in a single `write` on an O_APPEND descriptor and is fsynced, so concurrent
submitters cannot interleave half lines and a crash leaves either the whole row or none.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from pipeline.errors import PipelineError

SUBMISSIONS = Path("submissions")
LEDGER = SUBMISSIONS / "ledger.csv"
COLUMNS = (
    "file",
    "sha256",
    "experiment",
    "trials",
    "cv_score",
    "metric",
    "git_commit",
    "fingerprint",
    "message",
    "time",
)


def _line(values: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def append(row: dict[str, str], path: Path = LEDGER) -> None:
    """Append one row; create the ledger with its header when missing or empty."""
    unknown = set(row) - set(COLUMNS)
    if unknown:
        raise ValueError(f"unknown ledger columns {sorted(unknown)}")
    # one physical line per row: a multi-line message would break line-oriented tools
    values = [" ".join(str(row.get(c, "")).split()) for c in COLUMNS]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        text = _line(values)
        if os.fstat(fd).st_size == 0:
            text = _line(list(COLUMNS)) + text
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path = LEDGER) -> list[dict[str, str]]:
    """Every row of the ledger (empty when there is none yet)."""
    if not path.is_file():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            names = reader.fieldnames or []
            missing = [c for c in ("file", "experiment", "cv_score") if c not in names]
            if missing:
                raise PipelineError(
                    f"{path}: not a submissions ledger (missing column(s) {', '.join(missing)})"
                )
            return [{k: v or "" for k, v in r.items() if k is not None} for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise PipelineError(f"{path}: cannot read the ledger ({e})") from None

