"""The classifier: class labels <-> one-hot / 0-1 targets (binary, multiclass, multilabel),
accuracy as its score, ``predict_proba``, and the ``classes`` a model file adds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d, validate_data

from .base import BaseSigmoidNetwork, table_init
from .core import FLOATS
from .errors import ModelFileError
from .params import PARAMS

CLASSIFIER_PARAMS = tuple(p.name for p in PARAMS if not p.regressor_only)


class SigmoidNetworkClassifier(ClassifierMixin, BaseSigmoidNetwork):
    """Multilayer sigmoid network classifier (MLPClassifier's parameters and attributes).

    Two classes: one sigmoid output + log-loss; more: softmax + cross-entropy. A 2-D 0/1 y
    (n, k) is k binary targets (multilabel, as MLPClassifier takes it): k sigmoid outputs
    trained on the summed log-loss, ``classes_`` = 0..k-1, ``predict`` the (n, k) 0/1
    indicator and ``predict_proba`` the (n, k) P(1) of each target.
    """

    __init__ = table_init(CLASSIFIER_PARAMS)
    _tasks = ("binary", "multiclass")

    def _validate_y(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.utils.multiclass import type_of_target

        X, y = validate_data(self, X, y, dtype=FLOATS, multi_output=True)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if y.ndim == 2 and type_of_target(y) != "multilabel-indicator":
            raise ValueError("a 2-D y must be 0/1 columns (multilabel), one per binary target")
        return X, y

    def _encode_y(self, y: np.ndarray, dtype: np.dtype, p: dict[str, Any]) -> np.ndarray:
        self.multilabel_ = y.ndim == 2
        if self.multilabel_:  # no stratified early-stopping split: no single class per row
            self.classes_, self._task = np.arange(y.shape[1]), "binary"
            return np.ascontiguousarray(y, dtype=dtype)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                "SigmoidNetworkClassifier needs samples of at least 2 classes in y; got 1 class: "
                f"{self.classes_[0]!r}"
            )
        self._task = "binary" if len(self.classes_) == 2 else "multiclass"
        self._y_codes = codes
        return self._one_hot(codes, dtype)

    def _one_hot(self, codes: np.ndarray, dtype: np.dtype) -> np.ndarray:
        if self._task == "binary":
            return codes.astype(dtype).reshape(-1, 1)  # (n, 1): 1 for classes_[1]
        Y = np.zeros((codes.shape[0], len(self.classes_)), dtype)
        Y[np.arange(codes.shape[0]), codes] = 1
        return Y

    def _transform_y(self, y: np.ndarray, dtype: np.dtype) -> np.ndarray:
        if getattr(self, "multilabel_", False):
            Y = np.asarray(y).reshape(len(y), -1)
            if Y.shape[1] != len(self.classes_) or not np.isin(Y, (0, 1)).all():
                raise ValueError(f"eval_set y must be {len(self.classes_)} 0/1 columns")
            return np.ascontiguousarray(Y, dtype=dtype)
        y = column_or_1d(y)
        codes = np.clip(np.searchsorted(self.classes_, y), 0, len(self.classes_) - 1)
        unknown = self.classes_[codes] != y
        if unknown.any():
            raise ValueError(f"eval_set y has labels not seen in fit: {np.unique(y[unknown])}")
        return self._one_hot(codes, dtype)

    def _codes(self, P: np.ndarray) -> np.ndarray:
        if getattr(self, "multilabel_", False):
            return (P > 0.5).astype(np.intp)  # (n, k) indicator
        return (P[:, 0] > 0.5).astype(np.intp) if P.shape[1] == 1 else P.argmax(axis=1)

    def _score_outputs(self, P: np.ndarray, Y: np.ndarray) -> float:
        """Accuracy; for several targets the share of rows right on every one (sklearn's
        subset accuracy)."""
        same = self._codes(P) == self._codes(Y)
        return float(np.mean(same.all(axis=1) if same.ndim == 2 else same))

    def _error(self, P: np.ndarray, Y: np.ndarray) -> float:
        return 1.0 - self._score_outputs(P, Y)

    def _task_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        cls = np.asarray(self.classes_)
        if cls.dtype == object:  # e.g. strings from pandas: store as a unicode array
            if not all(isinstance(c, str) for c in cls):
                raise ValueError("classes_ of mixed / object types cannot be saved without pickle")
            cls = cls.astype(str)
        if cls.dtype.kind not in "biufU":
            raise ValueError(f"classes_ of dtype {cls.dtype} cannot be saved without pickle")
        multilabel = bool(getattr(self, "multilabel_", False))
        return {"classes": cls.tolist(), "multilabel": multilabel}, {"classes": cls}

    def _restore_task_state(self, h: dict[str, Any], arrays: dict[str, np.ndarray],
                            sizes: list[int], bad: Callable[[str], ModelFileError]) -> None:
        if "classes" not in arrays:
            raise bad("classifier file has no 'classes' array")
        classes, multilabel = arrays["classes"], bool(h.get("multilabel", False))
        n_out = len(classes) if multilabel or len(classes) > 2 else 1
        want_task = "binary" if multilabel or len(classes) == 2 else "multiclass"
        if len(classes) < 2 or sizes[-1] != n_out or self._task != want_task:
            raise bad(f"{len(classes)} classes do not match {sizes[-1]} outputs / "
                      f"task {self._task!r}")
        self.classes_, self.multilabel_ = classes, multilabel

    def predict(self, X: Any) -> np.ndarray:
        """Class labels, (n,); several binary targets: the (n, k) 0/1 indicator."""
        codes = self._codes(self._outputs(X))
        return codes if self.multilabel_ else self.classes_[codes]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, (n, n_classes), columns in the order of ``classes_``; several
        binary targets: P(1) of each, (n, k)."""
        P = self._outputs(X)
        return np.hstack([1.0 - P, P]) if P.shape[1] == 1 and not self.multilabel_ else P

    def predict_log_proba(self, X: Any) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))
