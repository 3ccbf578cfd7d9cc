"""The local leaderboard: every ledger row of an experiment, scored like Kaggle scores it.

Where the competition folder holds `solution.csv` (id, target, Usage), each submission file is
scored on the Public rows and on the Private rows separately with the competition's metric.
Rows are ranked by Public, as Kaggle shows them during the competition, with the Private rank
beside it: the distance between the two is the "shake-up" the final standings bring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import PipelineError
from pipeline.experiment import Experiment
from pipeline.metrics import METRICS, Metric
from pipeline.submission import ledger
from pipeline.submission.format import (
    LABEL,
    Format,
    codes_of,
    id_problems,
    load_format,
    match_class_columns,
    metric_form,
    numeric,
    read_csv_text,
    spellings,
)
from pipeline.submission.format import check as check_frame


@dataclass(frozen=True)
class Solution:
    path: Path
    ids: list[str]
    y: np.ndarray  # class codes (classification) or values (regression), `ids` order;
    # (n, m) for several targets, one column each
    public: np.ndarray  # bool masks over `ids`
    private: np.ndarray


@dataclass
class Entry:
    file: str
    trials: str
    cv: float
    time: str = ""
    message: str = ""
    status: str = "ok"  # ok | missing | invalid: ... | oracle
    public: float | None = None
    private: float | None = None
    public_rank: int | None = None
    private_rank: int | None = None
    experiment: str = ""  # the ledger name: an experiment or a blend


@dataclass(frozen=True)
class Board:
    experiment: str
    metric: str
    direction: str  # maximize | minimize
    entries: list[Entry]  # ranked: by Public where a solution exists, else by CV
    oracle: Entry | None  # the ceiling, when the competition has oracle_submission.csv
    solution: Path | None  # the solution.csv Public / Private were scored on
    names: tuple[str, ...] = ()  # the ledger names shown: `experiment` alone, or with --all
    # its competition's other names; and the names --all left out, with why
    skipped: tuple[str, ...] = ()


# --- solution ------------------------------------------------------------------------------


def load_solution(exp: Experiment, fmt: Format, classes: tuple | None) -> Solution | None:
    path = exp.competition.data_dir / "solution.csv"
    if not path.is_file():
        return None
    frame = read_csv_text(path)
    comp = exp.competition
    if comp.id not in frame.columns:
        raise PipelineError(f"{path}: no id column {comp.id!r}")
    ids = list(frame[comp.id])
    problems = id_problems(ids, fmt.test_ids)
    if problems:
        raise PipelineError(f"{path}: ids do not match {fmt.test}: {'; '.join(problems)}")
    usage = frame["Usage"].str.strip().str.lower() if "Usage" in frame.columns else None
    public = usage.eq("public").to_numpy() if usage is not None else np.ones(len(ids), bool)
    private = usage.eq("private").to_numpy() if usage is not None else np.zeros(len(ids), bool)
    return Solution(path, ids, _truth(frame, exp, fmt, classes, path), public, private)


def _truth(
    frame: pd.DataFrame, exp: Experiment, fmt: Format, classes: tuple | None, path: Path
) -> np.ndarray:
    target = exp.competition.target
    if exp.competition.multi_target:  # one column per target, like the submission
        return np.column_stack([_values(frame, t, path) for t in exp.competition.targets])
    if exp.competition.task == "regression":
        return _values(frame, target, path)
    if target in frame.columns:
        return codes_of(frame[target], classes or (), str(path))
    # Kaggle's multiclass solutions are often one-hot: one column per class
    others = [c for c in frame.columns if c not in (exp.competition.id, "Usage")]
    matched = match_class_columns(others, fmt.labels)
    if matched is None:
        raise PipelineError(f"{path}: no target column {target!r} and no column per class")
    columns = [matched[s] for s in spellings(classes or (), fmt.labels)]
    return np.column_stack([numeric(frame[c]) for c in columns]).argmax(axis=1)


def _values(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    if column not in frame.columns:
        raise PipelineError(f"{path}: no target column {column!r}")
    y = numeric(frame[column])
    if not np.isfinite(y).all():
        raise PipelineError(f"{path}: column {column!r} has empty or non-numeric values")
    return y


# --- scoring -------------------------------------------------------------------------------


def _score(metric: Metric, y: np.ndarray, pred: np.ndarray, rows: np.ndarray) -> float | None:
    if not rows.any():
        return None
    try:
        value = metric(y[rows], pred[rows])
    except ValueError:  # e.g. AUC on a split holding one class only
        return None
    return value if math.isfinite(value) else None


def score_file(
    entry: Entry, fmt: Format, solution: Solution | None, classes: tuple | None, metric: Metric
) -> None:
    """Fill entry's status and Public / Private scores; a bad file is a status, not a crash."""
    path = Path(entry.file)
    if not path.is_file():
        entry.status = "missing"
        return
    try:
        frame = read_csv_text(path)
        if entry.status != "oracle":
            check_frame(frame, fmt, path)
        if solution is None:
            return
        if entry.status == "oracle":
            pred = _oracle_form(frame, fmt, solution.ids, classes, path)
        else:
            pred = metric_form(frame, fmt, solution.ids, classes, path)
    except (PipelineError, KeyError) as e:
        entry.status = f"invalid: {e}"
        return
    entry.public = _score(metric, solution.y, pred, solution.public)
    entry.private = _score(metric, solution.y, pred, solution.private)


def _oracle_form(
    frame: pd.DataFrame, fmt: Format, order: list[str], classes: tuple | None, path: Path
) -> np.ndarray:
    """The oracle holds P(positive) even when the metric wants labels: metrics threshold it."""
    if list(frame.columns) != list(fmt.header):
        raise PipelineError(f"{path}: header is {list(frame.columns)}, expected {list(fmt.header)}")
    values = numeric(frame.set_index(fmt.id).loc[order, fmt.value_columns[0]])
    if fmt.kind == LABEL and len(fmt.value_columns) == 1 and np.isfinite(values).all():
        return values
    return metric_form(frame, fmt, order, classes, path)


# --- the board -----------------------------------------------------------------------------


def board(exp: Experiment, *, every: bool = False) -> Board:
    """Every ledger row of `exp` (with `every`, of every experiment and blend on its
    competition), scored and ranked, and the oracle's scores (if any)."""
    names, skipped = ledger.names_on(exp) if every else ([exp.name], [])
    rows = [r for r in ledger.current(ledger.read()) if r.get("experiment") in names]
    fmt = load_format(exp)
    metric = METRICS[exp.competition.metric]
    has_solution = (exp.competition.data_dir / "solution.csv").is_file()
    labelled = exp.competition.task != "regression" and not exp.competition.multi_target
    classes = _classes(exp) if has_solution and labelled else None
    solution = load_solution(exp, fmt, classes)
    found = [  # a CV scored with another metric (the experiment's changed since) is set aside
        Entry(r["file"], r.get("trials", ""),
              _float(r.get("cv_score")) if r.get("metric") in ("", None, metric.name)
              else math.nan, r.get("time", ""), r.get("message", ""),
              experiment=r.get("experiment", ""))
        for r in rows
    ]
    for entry in found:
        score_file(entry, fmt, solution, classes, metric)
    oracle = None
    oracle_path = exp.competition.data_dir / "oracle_submission.csv"
    if oracle_path.is_file():
        oracle = Entry(str(oracle_path), "oracle", math.nan, status="oracle")
        score_file(oracle, fmt, solution, classes, metric)
    _rank(found, metric, by_public=solution is not None)
    return Board(exp.name, metric.name, metric.direction, found, oracle,
                 solution.path if solution is not None else None, tuple(names), tuple(skipped))


def _classes(exp: Experiment) -> tuple | None:
    # prepare owns the class order (code i = classes[i]); its cache makes this cheap
    from pipeline.prepare import prepare

    return prepare(exp).classes


def _float(text: str | None) -> float:
    try:
        return float(text) if text else math.nan
    except ValueError:
        return math.nan


def _rank(found: list[Entry], metric: Metric, *, by_public: bool) -> None:
    """Kaggle's order: best Public first (ties: earlier submission first), unscored last."""
    sign = -1.0 if metric.direction == "maximize" else 1.0

    def key_of(attr: str):
        def key(e: Entry) -> tuple[int, float]:
            value = getattr(e, attr)
            ok = value is not None and math.isfinite(value)
            return (0, sign * value) if ok else (1, 0.0)

        return key

    primary = "public" if by_public else "cv"
    found.sort(key=key_of(primary))
    for rank, e in enumerate((e for e in found if key_of(primary)(e)[0] == 0), start=1):
        e.public_rank = rank
    if by_public:
        by_private = sorted((e for e in found if e.private is not None), key=key_of("private"))
        for rank, e in enumerate(by_private, start=1):
            e.private_rank = rank
