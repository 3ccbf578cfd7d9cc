"""Predictions kept for stacking: out-of-fold and test predictions by id, as CSV text.

Metric form (P(class) per class, P(positive class), or the value), full precision, one row per
id, so a user can blend them with other models' predictions. They live under
submissions/<experiment>/predictions/, never beside the submission files (those get uploaded).
A row without a prediction (NaN: time folds never validate their first block) is left out of
the file, so every value in it is a real out-of-fold prediction.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np


def columns(classes: tuple | None, pred: np.ndarray) -> list[str]:
    """Prediction column names: p_<class> per class, p_<positive class>, or prediction."""
    if pred.ndim == 2:
        return [f"p_{c}" for c in classes or range(pred.shape[1])]
    return [f"p_{classes[-1]}"] if classes is not None else ["prediction"]


def to_csv(ids: np.ndarray, pred: np.ndarray, classes: tuple | None,
           target: np.ndarray | None = None) -> str:
    """id[, target], prediction column(s); `target` (class codes or values) for OOF files."""
    buffer = io.StringIO()
    w = csv.writer(buffer, lineterminator="\n")
    w.writerow(["id", *(["target"] if target is not None else []), *columns(classes, pred)])
    labels: Any = None
    if target is not None:
        labels = target if classes is None else np.asarray(classes, dtype=object)[target]
    for i, row in enumerate(np.atleast_2d(pred.T).T):
        if np.isnan(row).any():  # never validated: no out-of-fold prediction to keep
            continue
        values = [repr(float(v)) for v in np.atleast_1d(row)]
        w.writerow([ids[i], *([labels[i]] if labels is not None else []), *values])
    return buffer.getvalue()
