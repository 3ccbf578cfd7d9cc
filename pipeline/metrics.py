"""Competition metrics as pure functions of (y_true, prediction).

Predictions are what the network outputs: P(class 1) for binary, an (n, k) probability
matrix for multiclass, values for regression, an (n, m) matrix of P(1) for several binary
targets. Label metrics take class codes (an integer array) or probabilities, which they turn
into codes here (threshold 0.5 / argmax), so every stage passes the same raw predictions around
and a decision chosen elsewhere (a tuned threshold) can hand in codes instead.

Each metric matches scikit-learn where scikit-learn has it (tests compare them); MAP@k and the
mean column-wise AUC follow Kaggle's published definitions (cited at the functions).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


class _SklearnMetrics:
    """`sklearn.metrics`, imported at the first metric computed: the experiment file checks
    metric names against this module, and every command loads one (scikit-learn and SciPy
    cost ~1.5 s to import; `pipeline prepare` on a cached experiment needs neither)."""

    def __getattr__(self, name: str) -> Any:
        from sklearn import metrics

        return getattr(metrics, name)


skm = _SklearnMetrics()

# What a submission holds for a metric.
PROBA = "proba"  # probabilities: P(class 1), one column per class, or one per target
LABEL = "label"  # class labels (integers for an ordinal target)
VALUE = "value"  # regression values
TOP_K = "top_k"  # the k likeliest labels, space-separated, likeliest first

TASKS = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class Metric:
    name: str
    direction: str  # "maximize" | "minimize"
    needs: str  # what a submission holds: PROBA | LABEL | VALUE | TOP_K
    tasks: tuple[str, ...]  # the tasks it fits
    fn: Callable[[np.ndarray, np.ndarray], float]
    multi_target: bool = False  # scores several target columns and only those

    def fits(self, task: str, multi_target: bool = False) -> bool:
        """Value metrics score one target or several ((n, m) arrays, every cell alike)."""
        if task not in self.tasks:
            return False
        return self.multi_target == multi_target or (multi_target and self.needs == VALUE)

    def __call__(self, y_true: np.ndarray, pred: np.ndarray) -> float:
        return float(self.fn(np.asarray(y_true), np.asarray(pred)))

    @property
    def key(self) -> str:
        """The name as an MLflow metric key (letters, digits, `_-./ ` only): map@3 -> map_at_3."""
        return self.name.replace("@", "_at_")

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "maximize" else a < b


def to_labels(pred: np.ndarray) -> np.ndarray:
    """Class codes from probabilities: threshold 0.5 for binary, argmax for multiclass.
    Integer arrays are codes already and pass through."""
    pred = np.asarray(pred)
    if pred.dtype.kind in "iub":
        return pred.astype(np.int64)
    if pred.ndim == 1:
        return (pred >= 0.5).astype(np.int64)
    return pred.argmax(axis=1)


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    if p.ndim == 1:
        p = np.column_stack([1 - p, p])
    return skm.log_loss(y, p, labels=np.arange(p.shape[1]))


def _rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(y, float) - np.asarray(p, float)) ** 2)))


def _rmsle(y: np.ndarray, p: np.ndarray) -> float:
    """sklearn's root_mean_squared_log_error, which refuses negative values: a prediction
    below 0 is scored as 0, the value a submission writes for it (the target is >= 0)."""
    y, p = np.asarray(y, float), np.maximum(np.asarray(p, float), 0.0)
    if (y < 0).any():
        raise ValueError("rmsle needs a target >= 0 (it compares log(1 + y))")
    return float(np.sqrt(np.mean((np.log1p(y) - np.log1p(p)) ** 2)))


def _ordinal(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(true, predicted) integer ratings: codes for classes, rounded values for a regression
    target (clipped to the ratings seen in y_true, as a submission of ratings would be)."""
    if p.ndim == 2 or p.dtype.kind in "iub" or y.dtype.kind in "iub":
        return np.asarray(y).astype(np.int64), to_labels(p)
    y = np.rint(np.asarray(y, float)).astype(np.int64)
    return y, np.clip(np.rint(p), y.min(), y.max()).astype(np.int64)


def _qwk(y: np.ndarray, p: np.ndarray) -> float:
    """Quadratic weighted kappa (sklearn's cohen_kappa_score, weights="quadratic")."""
    t, q = _ordinal(y, p)
    labels = np.union1d(t, q)
    if len(labels) < 2:
        return 1.0 if np.array_equal(t, q) else 0.0
    return skm.cohen_kappa_score(t, q, weights="quadratic", labels=labels)


def _roc_auc_ovr(y: np.ndarray, p: np.ndarray) -> float:
    """Macro one-vs-rest AUC (sklearn's roc_auc_score(multi_class="ovr")); rows need not sum
    to 1 exactly, so they are renormalised as sklearn requires."""
    p = np.asarray(p, float)
    p = p / p.sum(axis=1, keepdims=True)
    return skm.roc_auc_score(y, p, multi_class="ovr", labels=np.arange(p.shape[1]))


def _mean_roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Mean column-wise ROC AUC: the AUC of each target column, averaged (Kaggle's
    "mean column-wise ROC AUC", e.g. the Jigsaw Toxic Comment Classification Challenge,
    kaggle.com/c/jigsaw-toxic-comment-classification-challenge/overview/evaluation)."""
    y, p = np.atleast_2d(y.T).T, np.atleast_2d(p.T).T
    if y.shape != p.shape:
        raise ValueError(f"mean_roc_auc: targets {y.shape} and predictions {p.shape} differ")
    return float(np.mean([skm.roc_auc_score(y[:, j], p[:, j]) for j in range(y.shape[1])]))


def map_at_k(k: int) -> Callable[[np.ndarray, np.ndarray], float]:
    """MAP@k with one true label per row, Kaggle's definition (e.g. "Expedia Hotel
    Recommendations", kaggle.com/c/expedia-hotel-recommendations/overview/evaluation, and
    benhamner/Metrics' `apk`): a row scores 1/rank of its true label among the k predicted
    (0 if absent), and MAP@k is the mean. `pred` is (n, classes) probabilities (the top k taken,
    likeliest first, ties to the lower code) or (n, k) integer codes already ranked."""

    def score(y: np.ndarray, p: np.ndarray) -> float:
        top = p[:, :k] if p.dtype.kind in "iub" else top_k(p, k)
        hits = top == np.asarray(y).astype(np.int64)[:, None]  # (n, k), one True at most
        ranks = np.arange(1, top.shape[1] + 1)
        return float(np.mean((hits / ranks).sum(axis=1)))

    return score


def top_k(proba: np.ndarray, k: int) -> np.ndarray:
    """The k likeliest class codes per row, likeliest first; ties go to the lower code."""
    return np.argsort(-np.asarray(proba), axis=1, kind="stable")[:, :k]


def _labels(fn: Callable[..., float]) -> Callable[[np.ndarray, np.ndarray], float]:
    return lambda y, p: fn(np.asarray(y).astype(np.int64), to_labels(p))


_BINARY, _MULTI, _REG = ("binary",), ("multiclass",), ("regression",)
_CLS = ("binary", "multiclass")

# Per task, the first metric that fits is the one `init` guesses when the sample says nothing.
_ALL = [
    Metric("roc_auc", "maximize", PROBA, _BINARY, lambda y, p: skm.roc_auc_score(y, p)),
    Metric("log_loss", "minimize", PROBA, _CLS, _log_loss),
    Metric("accuracy", "maximize", LABEL, _CLS, _labels(lambda y, p: skm.accuracy_score(y, p))),
    Metric("f1", "maximize", LABEL, _BINARY, _labels(lambda y, p: skm.f1_score(y, p))),
    Metric("mcc", "maximize", LABEL, _BINARY, _labels(lambda y, p: skm.matthews_corrcoef(y, p))),
    Metric("f1_macro", "maximize", LABEL, _MULTI,
           _labels(lambda y, p: skm.f1_score(y, p, average="macro"))),
    Metric("roc_auc_ovr", "maximize", PROBA, _MULTI, _roc_auc_ovr),
    Metric("qwk", "maximize", LABEL, ("multiclass", "regression"), _qwk),
    Metric("map@3", "maximize", TOP_K, _MULTI, map_at_k(3)),
    Metric("mean_roc_auc", "maximize", PROBA, _BINARY, _mean_roc_auc, multi_target=True),
    Metric("rmse", "minimize", VALUE, _REG, _rmse),
    Metric("rmsle", "minimize", VALUE, _REG, _rmsle),
    Metric("mae", "minimize", VALUE, _REG, lambda y, p: skm.mean_absolute_error(y, p)),
    Metric("r2", "maximize", VALUE, _REG, lambda y, p: skm.r2_score(y, p)),
    Metric("mape", "minimize", VALUE, _REG,
           lambda y, p: skm.mean_absolute_percentage_error(y, p)),
]
MAP_AT = re.compile(r"map@([1-9][0-9]?)")


class _Metrics(dict[str, Metric]):
    """name -> Metric; `map@k` for any k from 1 to 99 is built on first use."""

    def __missing__(self, name: str) -> Metric:
        if not isinstance(name, str) or not (m := MAP_AT.fullmatch(name)):
            raise KeyError(name)
        k = int(m[1])
        self[name] = Metric(name, "maximize", TOP_K, _MULTI, map_at_k(k))
        return self[name]

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name) or (
            isinstance(name, str) and MAP_AT.fullmatch(name) is not None)


METRICS: dict[str, Metric] = _Metrics({m.name: m for m in _ALL})


def top_k_of(metric: Metric) -> int:
    """k of a TOP_K metric (map@3 -> 3)."""
    m = MAP_AT.fullmatch(metric.name)
    if m is None:
        raise ValueError(f"{metric.name} is not a top-k metric")
    return int(m[1])


def metrics_for(task: str, *, multi_target: bool = False) -> tuple[str, ...]:
    """The metrics that fit `task` (several binary targets: the multi-target ones), in
    `init`'s order of preference."""
    return tuple(m.name for m in _ALL if m.fits(task, multi_target))


def fit_problem(name: str, task: str, *, multi_target: bool = False) -> str | None:
    """Why metric `name` does not fit the task (text to follow the name), or None if it does."""
    if name not in METRICS:
        known = ", ".join(m.name for m in _ALL).replace("map@3", "map@k")
        return f"is not a metric (expected one of {known})"
    metric = METRICS[name]
    if metric.fits(task, multi_target):
        return None
    what = f"{task} with several targets" if multi_target else task
    fits = " or ".join(metric.tasks) + (" with several targets" if metric.multi_target else "")
    allowed = ", ".join(metrics_for(task, multi_target=multi_target)) or "none"
    return f"scores {fits}, not task {what!r} (metrics for {what}: {allowed})"
