"""Competition metrics as pure functions of (y_true, prediction).

Predictions are what the network outputs: P(class 1) for binary, an (n, k) probability
matrix for multiclass, values for regression. Label metrics threshold / argmax them here,
so every stage passes the same raw predictions around.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm


@dataclass(frozen=True)
class Metric:
    name: str
    direction: str  # "maximize" | "minimize"
    needs: str  # what a submission holds: "proba" | "label" | "value"
    fn: Callable[[np.ndarray, np.ndarray], float]

    def __call__(self, y_true: np.ndarray, pred: np.ndarray) -> float:
        return float(self.fn(np.asarray(y_true), np.asarray(pred)))


def to_labels(pred: np.ndarray) -> np.ndarray:
    """Class codes from probabilities: threshold 0.5 for binary, argmax for multiclass."""
    pred = np.asarray(pred)
    if pred.ndim == 1:
        return (pred >= 0.5).astype(np.int64)
    return pred.argmax(axis=1)


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    if p.ndim == 1:
        p = np.column_stack([1 - p, p])
    return skm.log_loss(y, p, labels=np.arange(p.shape[1]))


def _rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(y, float) - np.asarray(p, float)) ** 2)))


METRICS: dict[str, Metric] = {
    "roc_auc": Metric("roc_auc", "maximize", "proba", lambda y, p: skm.roc_auc_score(y, p)),
    "log_loss": Metric("log_loss", "minimize", "proba", _log_loss),
    "accuracy": Metric(
        "accuracy", "maximize", "label", lambda y, p: skm.accuracy_score(y, to_labels(p))
    ),
    "rmse": Metric("rmse", "minimize", "value", _rmse),
}
