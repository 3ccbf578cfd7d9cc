"""Predictions kept for stacking: out-of-fold and test predictions by id, as CSV text.

Metric form (P(class) per class, P(positive class), or the value; one column per target for
several targets), full precision, one row per id, so a user can blend them with other models'
predictions. They live under
submissions/<experiment>/predictions/, never beside the submission files (those get uploaded).
A row without a prediction (NaN: time folds never validate their first block) is left out of
the file, so every value in it is a real out-of-fold prediction. An OOF file's `fold` column
names the fold that validated each row (0 = the first), so a blend can choose its weights on
the other folds and an outside model can be trained on the same folds.

Layout: `id`, [`fold`,] `target` (or `target_<name>` per target), then the prediction columns;
test files hold `id` and the prediction columns. `read` checks a file against that layout.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import PipelineError

FOLD = "fold"


def columns(classes: tuple | None, pred: np.ndarray,
            targets: tuple[str, ...] = ()) -> list[str]:
    """Prediction column names: p_<class> per class, p_<positive class>, or prediction; for
    several targets the target names."""
    if targets:
        return list(targets)
    if pred.ndim == 2:
        return [f"p_{c}" for c in classes or range(pred.shape[1])]
    return [f"p_{classes[-1]}"] if classes is not None else ["prediction"]


def fold_of(n: int, folds: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The fold (0-based) whose validation rows hold each of n rows; -1: no fold validated it."""
    out = np.full(n, -1, dtype=np.int64)
    for f, (_, va) in enumerate(folds):
        out[va] = f
    return out


def to_csv(ids: np.ndarray, pred: np.ndarray, classes: tuple | None,
           target: np.ndarray | None = None, targets: tuple[str, ...] = (),
           fold: np.ndarray | None = None) -> str:
    """id[, fold][, target], prediction column(s); `target` (class codes or values) and `fold`
    (`fold_of`) for OOF files. Several targets (`targets`, their names): `target_<name>` per
    target, then `<name>`."""
    buffer = io.StringIO()
    w = csv.writer(buffer, lineterminator="\n")
    truth = [f"target_{t}" for t in targets] if targets else ["target"]
    w.writerow(["id", *([FOLD] if fold is not None else []),
                *(truth if target is not None else []), *columns(classes, pred, targets)])
    labels: Any = None
    if target is not None:
        labels = target if classes is None else np.asarray(classes, dtype=object)[target]
    for i, row in enumerate(np.atleast_2d(pred.T).T):
        if np.isnan(row).any():  # never validated: no out-of-fold prediction to keep
            continue
        values = [repr(float(v)) for v in np.atleast_1d(row)]
        known = [] if labels is None else (
            [repr(float(v)) for v in labels[i]] if targets else [labels[i]])
        w.writerow([ids[i], *([int(fold[i])] if fold is not None else []), *known, *values])
    return buffer.getvalue()


# --- reading a predictions file (ours, or an outside model's in the same layout) -----------


@dataclass(frozen=True)
class Table:
    path: Path
    header: tuple[str, ...]
    ids: np.ndarray  # str, file order
    fold: np.ndarray | None  # int per row, when the file has a `fold` column
    truth: np.ndarray | None  # the target cells as spelled, (n,) or (n, targets); OOF only
    pred: np.ndarray  # float64, (n,) for one prediction column, else (n, columns)
    columns: tuple[str, ...]  # the prediction columns: what follows id, fold and target(s)


def truth_columns(header: tuple[str, ...] | list[str]) -> list[str]:
    return [c for c in header if c == "target" or c.startswith("target_")]


def read(path: Path, *, oof: bool) -> Table:
    """A predictions file in our layout; PipelineError naming the file and what is wrong."""
    from pipeline.submission.format import read_csv_text

    frame = read_csv_text(Path(path))
    header = tuple(str(c) for c in frame.columns)
    what = "out-of-fold" if oof else "test"
    layout = "id, [fold,] target, prediction columns" if oof else "id, prediction columns"
    if len(set(header)) != len(header) or not header or header[0] != "id":
        raise PipelineError(f"{path}: header {list(header)} is not a {what} predictions file "
                            f"({layout})")
    has_fold = len(header) > 1 and header[1] == FOLD
    truth = truth_columns(header)
    start = 1 + has_fold
    if (oof and (not truth or list(header[start:start + len(truth)]) != truth)) or (
            not oof and (truth or has_fold)):
        raise PipelineError(f"{path}: header {list(header)} is not a {what} predictions file "
                            f"({layout})")
    names = header[start + len(truth):]
    if not names:
        raise PipelineError(f"{path}: no prediction column after {list(header)}")
    ids = frame["id"].to_numpy(dtype=str)
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if (ids == i).sum() > 1)
        raise PipelineError(f"{path}: id {dup!r} appears more than once")
    pred = _numbers(frame, list(names), path)
    fold = None
    if has_fold:
        folds = _numbers(frame, [FOLD], path)
        if not np.all(folds == np.round(folds)) or (folds < 0).any():
            raise PipelineError(f"{path}: column 'fold' must hold fold numbers 0, 1, ...")
        fold = folds.astype(np.int64)
    cells = frame[truth].to_numpy(dtype=str) if truth else None
    return Table(Path(path), header, ids, fold,
                 None if cells is None else (cells[:, 0] if len(truth) == 1 else cells),
                 pred, names)


def _numbers(frame: Any, names: list[str], path: Path) -> np.ndarray:
    import pandas as pd

    values = frame[names].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = (int(v[0]) for v in np.nonzero(bad))
        raise PipelineError(f"{path}: column {names[col]!r} holds "
                            f"{frame[names[col]].iloc[row]!r} (row {row + 2}): expected a number")
    return values[:, 0] if len(names) == 1 else values
