"""The target and the fold keys: train.csv's target column(s) -> class codes or values (with
the classes for the JSON preprocessor), and each row's group or time when the folds need one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import PipelineError
from pipeline.experiment import Competition, Experiment
from pipeline.files import date_format, parse_dates
from pipeline.prepare.features import category_labels, is_numeric, require_columns


def _plain(v: Any) -> Any:
    """numpy scalar -> the Python value, so labels go to JSON as they were."""
    return v.item() if isinstance(v, np.generic) else v


def encode_target(
    y: pd.Series, comp: Competition, file: Path, ids: np.ndarray
) -> tuple[np.ndarray, dict[str, Any]]:
    """Class codes (sorted original labels) or float values, plus the mapping for the JSON."""
    where = f"{file}: target {comp.target!r}"
    if y.isna().any():
        missing = ", ".join(repr(str(i)) for i in ids[y.isna().to_numpy()][:5])
        raise PipelineError(
            f"{where} has {int(y.isna().sum())} missing value(s) (ids {missing}); "
            "expected a value in every row"
        )
    if comp.task == "regression":
        if not is_numeric(y) or pd.api.types.is_bool_dtype(y):
            bad = y[pd.to_numeric(y, errors="coerce").isna()].iloc[:3].tolist()
            raise PipelineError(f"{where} must be numeric for task regression, got {bad!r}")
        return y.to_numpy(dtype=np.float64), {"classes": None}
    classes = sorted(_plain(v) for v in y.unique())
    if len(classes) < 2:
        raise PipelineError(
            f"{where} has only one class {classes!r} (task {comp.task} expects at least 2)"
        )
    if comp.task == "binary" and len(classes) > 2:
        shown = ", ".join(map(repr, classes[:6])) + (" ..." if len(classes) > 6 else "")
        raise PipelineError(
            f"{where} has {len(classes)} classes ({shown}); task binary expects 2 "
            "(set task = \"multiclass\" in the experiment file)"
        )
    codes = pd.Categorical(y.map(_plain), categories=classes).codes
    return codes.astype(np.int64), {"classes": classes}


def encode_targets(
    train: pd.DataFrame, comp: Competition, file: Path, ids: np.ndarray
) -> tuple[np.ndarray, dict[str, Any]]:
    """Several target columns -> (n, m) float64 in the experiment's order: each a number
    (regression) or 0/1 (binary: one sigmoid output each), none missing."""
    columns = []
    for name in comp.targets:
        y = train[name]
        where = f"{file}: target {name!r}"
        if y.isna().any():
            missing = ", ".join(repr(str(i)) for i in ids[y.isna().to_numpy()][:5])
            raise PipelineError(f"{where} has {int(y.isna().sum())} missing value(s) "
                                f"(ids {missing}); expected a value in every row")
        values = pd.to_numeric(y, errors="coerce") if not pd.api.types.is_bool_dtype(y) else y
        if values.isna().any():
            bad = y[values.isna()].iloc[:3].tolist()
            raise PipelineError(f"{where} must be numeric, got {bad!r}")
        values = values.to_numpy(dtype=np.float64)
        if comp.task == "binary" and not np.isin(values, (0.0, 1.0)).all():
            bad = sorted(set(values[~np.isin(values, (0.0, 1.0))].tolist()))[:3]
            raise PipelineError(f"{where} must be 0 or 1 for task binary with several "
                                f"targets, got {bad!r}")
        columns.append(values)
    return np.column_stack(columns), {"classes": None}


def fold_column(exp: Experiment) -> str | None:
    """`group:<column>` / `time:<column>` when the folds need a column of train.csv."""
    kind = exp.fold_kind
    column = {"group": exp.cv.group, "time": exp.cv.time}.get(kind)
    return f"{kind}:{column}" if column is not None else None


def fold_keys(exp: Experiment, train: pd.DataFrame, file: Path) -> dict[str, np.ndarray]:
    """What evaluate.folds needs besides y: each row's group, or its time as a number (a date
    column in days since 1970, parsed as prepare parses dates). The column may be a feature."""
    if (kind_column := fold_column(exp)) is None:
        return {}
    kind, column = kind_column.split(":", 1)
    require_columns(train, file, (column,), why=f"[cv] {kind} in {exp.path}")
    s = train[column]
    if s.isna().any():
        rows = ", ".join(str(i + 2) for i in np.flatnonzero(s.isna().to_numpy())[:5])
        raise PipelineError(
            f"{file}: column {column!r} ([cv] {kind}) has {int(s.isna().sum())} empty value(s) "
            f"(lines {rows}); every row needs its {kind} for the folds"
        )
    if kind == "group":
        return {"groups": category_labels(s).to_numpy(dtype=str)}
    fmt = exp.competition.dates.get(column) or date_format(s, file=file)
    if fmt is not None:  # the declared format, or the one that reads the whole column
        order = (parse_dates(s, fmt) - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
    else:
        order = pd.to_numeric(s, errors="coerce")  # numbers (or an id column read as text)
    bad = s[order.isna().to_numpy()]
    if len(bad):
        raise PipelineError(
            f"{file}: column {column!r} ([cv] time) holds {bad.iloc[:3].tolist()!r}; "
            "expected dates or numbers to order the rows by"
        )
    return {"order": order.to_numpy(dtype=np.float64)}
