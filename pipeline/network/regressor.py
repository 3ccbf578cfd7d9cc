"""The regressor: target scaling and ``target_transform`` (log1p) on the way in, back to y's
units on the way out, R^2 as its score, and the target scaling a model file adds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.utils.validation import column_or_1d, validate_data

from .base import BaseSigmoidNetwork, table_init
from .core import FLOATS
from .errors import ModelFileError
from .params import PARAMS

REGRESSOR_PARAMS = tuple(p.name for p in PARAMS)


def _r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination averaged over outputs (scikit-learn's r2_score default)."""
    y_true, y_pred = y_true.reshape(len(y_true), -1), y_pred.reshape(len(y_pred), -1)
    ss_res = ((y_true - y_pred) ** 2).sum(axis=0)
    ss_tot = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
    ok = ss_tot > 0
    r2 = np.where(ss_res > 0, 0.0, 1.0)  # constant target: perfect fit 1, otherwise 0
    r2[ok] = 1.0 - ss_res[ok] / ss_tot[ok]
    return float(r2.mean())


class SigmoidNetworkRegressor(RegressorMixin, BaseSigmoidNetwork):
    """Multilayer sigmoid network regressor: identity output + half squared error.

    With ``scale_target`` (the default) it trains on (y - mean) / std of its training rows and
    predicts in y's units: the network starts with outputs near 0 and steps of about the learning
    rate, so a target like a house price (~1e5) is out of its reach otherwise. Losses are on the
    training scale; ``val_error`` (RMSE) is in y's units. ``scale_target=False`` is scikit-learn's
    MLPRegressor. Multi-output y is allowed; the loss is averaged over outputs as well as rows.

    ``target_transform="log1p"`` trains on log(1 + y) (then standardised) and predicts
    expm1 of the output, clipped at 0: squared error there is what rmsle scores. ``loss="huber"``
    swaps the squared error for Huber's (``losses.huber_loss_delta_``).
    """

    __init__ = table_init(REGRESSOR_PARAMS)
    _tasks = ("regression",)

    def _validate_y(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        X, y = validate_data(self, X, y, dtype=FLOATS, multi_output=True, y_numeric=True)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def _encode_y(self, y: np.ndarray, dtype: np.dtype, p: dict[str, Any]) -> np.ndarray:
        self._task = "regression"
        self.target_transform_ = p["target_transform"]
        Y = np.asarray(y, dtype=np.float64).reshape(y.shape[0], -1)
        if self.target_transform_ == "log1p":
            if (Y < 0).any():
                raise ValueError(f"target_transform='log1p' needs a target >= 0; y has "
                                 f"{int((Y < 0).sum())} negative value(s), min {Y.min():g}")
            Y = np.log1p(Y)
        if p["scale_target"]:
            self.target_mean_ = Y.mean(axis=0)
            scale = Y.std(axis=0)
            self.target_scale_ = np.where(scale > 0, scale, 1.0)
        else:
            self.target_mean_, self.target_scale_ = np.zeros(Y.shape[1]), np.ones(Y.shape[1])
        return self._standardised(Y, dtype)

    def _transform_y(self, y: np.ndarray, dtype: np.dtype) -> np.ndarray:
        Y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        if self._log1p():
            Y = np.log1p(np.maximum(Y, 0.0))  # eval_set rows: scored as a prediction would be
        return self._standardised(Y, dtype)

    def _standardised(self, Y: np.ndarray, dtype: np.dtype) -> np.ndarray:
        return np.ascontiguousarray((Y - self.target_mean_) / self.target_scale_, dtype=dtype)

    def _log1p(self) -> bool:
        return getattr(self, "target_transform_", "none") == "log1p"

    def _in_units(self, P: np.ndarray) -> np.ndarray:
        P = P * self.target_scale_ + self.target_mean_
        if self._log1p():  # clipped below exp's overflow; y >= 0 so predictions are too
            return np.maximum(np.expm1(np.minimum(P, 700.0)), 0.0)
        return P

    def _score_outputs(self, P: np.ndarray, Y: np.ndarray) -> float:
        return _r2(Y.astype(np.float64), P.astype(np.float64))

    def _error(self, P: np.ndarray, Y: np.ndarray) -> float:
        diff = self._in_units(P.astype(np.float64)) - self._in_units(Y.astype(np.float64))
        return float(np.sqrt(np.mean(diff**2)))

    def _task_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"target_mean": [float(v) for v in self.target_mean_],
                "target_scale": [float(v) for v in self.target_scale_],
                "target_transform": self.target_transform_}, {}

    def _restore_task_state(self, h: dict[str, Any], arrays: dict[str, np.ndarray],
                            sizes: list[int], bad: Callable[[str], ModelFileError]) -> None:
        k = sizes[-1]
        if "target_mean" in h:
            mean, scale = h["target_mean"], h["target_scale"]
        else:  # format 1: pipeline regressors kept their scaling in the metadata
            meta = h.get("metadata") or {}
            mean = [meta.get("target_mean", 0.0)] * k
            scale = [meta.get("target_scale", 1.0)] * k
        try:
            mean, scale = np.asarray(mean, dtype=np.float64), np.asarray(scale, dtype=np.float64)
        except (TypeError, ValueError):
            raise bad("target_mean / target_scale are not numbers") from None
        if mean.shape != (k,) or scale.shape != (k,) or not (np.isfinite(mean).all()
                                                             and (scale > 0).all()):
            raise bad(f"target_mean / target_scale must be {k} finite numbers (scale > 0)")
        self.target_mean_, self.target_scale_ = mean, scale
        transform = h.get("target_transform", "none")  # files before it: none
        if transform not in ("none", "log1p"):
            raise bad(f"target_transform {transform!r} is not 'none' or 'log1p'")
        self.target_transform_ = transform

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values in y's units, (n,) for a single output, else (n, n_outputs)."""
        P = self._in_units(self._outputs(X))
        return P.ravel() if P.shape[1] == 1 else P

    def __sklearn_tags__(self):  # noqa: ANN204 - sklearn's Tags type
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
