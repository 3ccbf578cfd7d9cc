"""Drift check (adversarial validation): can a classifier tell train.csv's rows from test.csv's?

A HistGradientBoostingClassifier (a diagnostic, not our model: it reads raw columns, gaps and
text as they are) learns to separate the two files on the raw feature columns (the id, the
target and `drop` left out). Its cross-validated ROC AUC says how different they are: ~0.5 means
the test rows look like training rows, so CV should predict the leaderboard; well above means
some columns moved. The columns that drive it are ranked by permutation importance on each
fold's held-out rows: how much the AUC drops when that column's values are shuffled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.errors import PipelineError
from pipeline.experiment import Experiment

MAX_ROWS = 100_000  # rows per file at most (a random sample beyond): a diagnostic, not a model
MAX_CATEGORIES = 250  # text columns with more levels become their levels' sorted codes
REPEATS = 3  # permutation importance: shuffles per column and fold
ALIKE, SHIFTED = 0.55, 0.70  # AUC bands of the verdict


@dataclass(frozen=True)
class Column:
    name: str
    importance: float  # mean AUC drop when shuffled, over folds and repeats
    std: float
    kind: str  # number | text | codes (text with many levels)
    # every test.csv value lies past train.csv's last (dates or numbers): (train's last,
    # test's first), else None
    later: tuple[str, str] | None = None


@dataclass(frozen=True)
class DriftReport:
    experiment: str
    auc: float
    auc_std: float
    folds: int
    train_rows: int
    test_rows: int
    columns: list[Column]  # the `top` strongest, strongest first
    time_split: bool = False  # [cv] kind = "time" already validates on later rows

    @property
    def verdict(self) -> str:
        if self.auc < ALIKE:
            return "train and test look alike: CV should carry over to the test rows"
        if self.auc < SHIFTED:
            return "mild shift: check the top columns before trusting CV"
        return "strong shift: the top columns differ in test; CV may mislead"


def features(exp: Experiment) -> tuple[Any, Any, dict[str, str]]:
    """train and test's feature columns as numbers or categories, and each column's kind."""
    import pandas as pd

    from pipeline.files import read_csv

    comp = exp.competition
    train = read_csv(comp.data_dir / "train.csv", id_col=comp.id)
    test = read_csv(comp.data_dir / "test.csv", id_col=comp.id)
    skip = {comp.id, *comp.targets, *comp.drop}
    cols = [c for c in train.columns if c not in skip and c in test.columns]
    if not cols:
        raise PipelineError(f"{comp.data_dir / 'test.csv'}: no feature column shared with "
                            "train.csv to compare")
    both = pd.concat([train[cols], test[cols]], ignore_index=True)
    kinds: dict[str, str] = {}
    for c in cols:
        if pd.api.types.is_numeric_dtype(both[c]) or pd.api.types.is_bool_dtype(both[c]):
            both[c] = both[c].astype("float64")
            kinds[c] = "number"
            continue
        text = both[c].astype("string")
        levels = text.dropna().unique()
        if len(levels) <= MAX_CATEGORIES:
            both[c] = text.astype(pd.CategoricalDtype(sorted(levels)))
            kinds[c] = "text"
        else:  # too many levels for a categorical split: their sorted order, as numbers
            both[c] = pd.Categorical(text, categories=sorted(levels)).codes.astype("float64")
            both.loc[text.isna(), c] = np.nan
            kinds[c] = "codes"
    return both.iloc[:len(train)], both.iloc[len(train):], kinds


def _sample(frame: Any, rng: np.random.Generator) -> Any:
    if len(frame) <= MAX_ROWS:
        return frame
    return frame.iloc[np.sort(rng.choice(len(frame), MAX_ROWS, replace=False))]


def drift(exp: Experiment, *, folds: int = 5, top: int = 10, seed: int = 0) -> DriftReport:
    """Cross-validated AUC of train-vs-test and the `top` columns by permutation importance."""
    import pandas as pd
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    train, test, kinds = features(exp)
    train, test = _sample(train, rng), _sample(test, rng)
    if min(len(train), len(test)) < folds:
        raise PipelineError(f"{exp.competition.data_dir}: too few rows for {folds} folds "
                            f"(train {len(train)}, test {len(test)})")
    X = pd.concat([train, test], ignore_index=True)
    y = np.r_[np.zeros(len(train), dtype=np.int64), np.ones(len(test), dtype=np.int64)]
    aucs, drops = [], []
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    # one thread: on a busy machine OpenMP's threads spin (a 800-row fit took 2.1 s, not 0.06 s)
    with threadpool_limits(1):
        for tr, va in split.split(X, y):
            aucs.append(_fold(X, y, tr, va, seed, drops))
    every = np.concatenate(drops, axis=1)

    order = np.argsort(-every.mean(axis=1), kind="stable")[:top]
    names = list(X.columns)
    # every shown column, not only those whose shuffling costs AUC: two columns that each
    # tell the files apart (a date and a counter) hide each other from permutation importance.
    # `later` reads those columns again: the raw frames kept through the fits would hold
    # whole files in memory at Playground sizes, where the fits see a sample
    past = later(exp, [names[i] for i in order]) if len(order) else {}
    columns = [Column(names[i], float(every[i].mean()), float(every[i].std()), kinds[names[i]],
                      past.get(names[i]))
               for i in order]
    return DriftReport(exp.name, float(np.mean(aucs)), float(np.std(aucs)), folds, len(train),
                       len(test), columns, exp.cv.kind == "time")


def later(exp: Experiment, columns: list[str]) -> dict[str, tuple[str, str]]:
    """(train's last, test's first) of each column whose test values all come after every
    training value: numbers, or dates read as prepare reads them (the experiment's format,
    else the one the data decides). Test rows from the future are what a time split
    validates on."""
    from pipeline.files import date_formats, past_end, read_csv

    comp = exp.competition
    train, test = (read_csv(comp.data_dir / f, id_col=comp.id, only=tuple(columns))
                   for f in ("train.csv", "test.csv"))
    out = {}
    for column in columns:
        fmt = comp.dates.get(column)
        if fmt is None and len(found := date_formats(train[column], test[column])) == 1:
            fmt = found[0]
        if ends := past_end(train[column], test[column], fmt):
            out[column] = ends
    return out


def _fold(X: Any, y: np.ndarray, tr: np.ndarray, va: np.ndarray, seed: int,
          drops: list[np.ndarray]) -> float:
    """Fit on `tr`, the AUC on `va`; each column's AUC drops when shuffled go to `drops`."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import roc_auc_score

    clf = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed)
    clf.fit(X.iloc[tr], y[tr])
    imp = permutation_importance(clf, X.iloc[va], y[va], scoring="roc_auc", n_repeats=REPEATS,
                                 random_state=seed)
    drops.append(imp.importances)  # (columns, repeats)
    return float(roc_auc_score(y[va], clf.predict_proba(X.iloc[va])[:, 1]))
