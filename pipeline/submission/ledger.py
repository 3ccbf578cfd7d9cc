"""submissions/ledger.csv: one row per submission file, appended, never rewritten.

Each row goes out in a single `write` on an O_APPEND descriptor and is fsynced, so concurrent
submitters cannot interleave half lines and a crash leaves either the whole row or none.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import replace
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.experiment import EXPERIMENTS_DIR, Experiment, load

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
    "status",  # empty: submitted; "withdrawn": a later row takes the file back
    # the experiment file's resolved path: another file claiming the name is told apart
    # (last, so rows appended to a ledger begun without it still line up with its header)
    "experiment_file",
)
WITHDRAWN = "withdrawn"
MANIFEST = "blend.json"  # submissions/NAME/blend.json: the experiment whose competition it is


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


def _row(raw: dict) -> dict[str, str]:
    row = {k: v or "" for k, v in raw.items() if k is not None}
    # a ledger begun before the last columns: a later row's extra fields are those columns,
    # in COLUMNS order (status, then experiment_file)
    missing = [c for c in COLUMNS if c not in row]
    row.update(zip(missing, raw.get(None) or [], strict=False))
    return row


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
            return [_row(r) for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise PipelineError(f"{path}: cannot read the ledger ({e})") from None



def current(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The submissions as they stand: one row per file and per CSV content (the first),
    withdrawn files left out.

    The ledger only grows: a withdrawal is a later row for the same file, so the history
    (who submitted what, and when it was taken back) stays readable.
    """
    withdrawn = {r["file"] for r in rows if r.get("status") == WITHDRAWN}
    seen: set[tuple[str, str]] = set()
    out = []
    for r in rows:
        # identical CSVs (same sha256) written before re-runs were idempotent count once
        keys = {("file", r["file"])} | ({("sha", r.get("experiment", "") + r["sha256"])}
                                        if r.get("sha256") else set())
        if r.get("status") == WITHDRAWN or r["file"] in withdrawn or keys & seen:
            continue
        seen |= keys
        out.append(r)
    return out


def find_sha(sha256: str, experiment: str, path: Path = LEDGER) -> dict[str, str] | None:
    """The standing submission of `experiment` whose CSV has this sha256 and still exists."""
    for r in current(read(path)):
        if (r.get("experiment") == experiment and r.get("sha256") == sha256
                and Path(r["file"]).is_file()):
            return r
    return None


def withdraw(experiment: str, file: str, message: str, time: str,
             path: Path = LEDGER) -> dict[str, str]:
    """Append a row that withdraws a standing submission of `experiment` (its file is kept)."""
    rows = current(read(path))
    mine = [r for r in rows if r.get("experiment") == experiment]
    match = [r for r in mine if r["file"] == file or Path(r["file"]).name == Path(file).name]
    if not match:
        names = ", ".join(Path(r["file"]).name for r in mine[-3:]) or "none"
        raise PipelineError(
            f"{path}: no standing submission {file!r} of {experiment!r} (latest: {names})")
    row = dict(match[0]) | {"status": WITHDRAWN, "message": message, "time": time}
    append(row, path)
    return row


# --- which experiment a ledger name scores against -----------------------------------------


def experiment_of(name: str) -> Experiment | None:
    """The experiment a blend's leaderboard scores against (its first member's, renamed),
    or None when `name` is no blend."""
    manifest = SUBMISSIONS / name / MANIFEST
    if not manifest.is_file():
        return None
    try:
        source = json.loads(manifest.read_text(encoding="utf-8"))["experiment"]
    except (OSError, ValueError, KeyError, TypeError):
        raise PipelineError(f"{manifest}: not a blend manifest (expected "
                            '{"experiment": "experiments/<name>.toml"})') from None
    return replace(load(source), name=name)


def experiment_named(name: str) -> Experiment:
    """A ledger name's experiment: a blend's (its manifest) or experiments/NAME.toml."""
    return experiment_of(name) or load(name)


def names_on(exp: Experiment, path: Path = LEDGER) -> tuple[list[str], list[str]]:
    """Every standing ledger name scored like `exp` (same competition folder, targets and
    metric: experiments and blends alike), `exp.name` first; and a line for each name left
    out because its experiment file is gone or does not load."""
    names = dict.fromkeys([exp.name, *(r.get("experiment", "") for r in current(read(path)))])
    same, skipped = [exp.name], []
    for name in [n for n in names if n and n != exp.name]:
        file = EXPERIMENTS_DIR / f"{name}.toml"
        try:
            other = experiment_of(name) or (load(name) if file.is_file() else None)
        except PipelineError as e:  # a broken file: said, and the board goes on
            skipped.append(f"{name}: {e}")
            continue
        if other is None:
            skipped.append(f"{name}: no {file} to say its competition")
            continue
        a, b = exp.competition, other.competition
        if (a.data_dir.resolve(), a.targets, a.metric) == (b.data_dir.resolve(), b.targets,
                                                           b.metric):
            same.append(name)
    return same, skipped
