"""scikit-learn estimators around the NumPy network: validation, label encoding, fitted state.

The math lives in ``core`` / ``training`` (NumPy only). This module is the only one that imports
scikit-learn, and only its base classes and input-validation helpers, so the estimators pass
``check_estimator`` and drop in wherever ``MLPClassifier`` / ``MLPRegressor`` do.

Threads: training holds BLAS to one thread (threadpoolctl, a scikit-learn dependency). Our GEMMs
are small (batch x width x width), so a second thread gains little, while on a busy machine
(parallel tuning workers, other jobs) a descheduled BLAS thread stalls every call: we measured a
10-epoch fit going from 0.8 s to 16-36 s. One thread also makes results independent of the
machine's thread settings, so ``random_state`` alone fixes them bit for bit.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

from .activations import canonical
from .core import Network
from .losses import OUT_ACTIVATION, data_loss, output_
from .training import EpochCallback, History, TrainConfig, train, validation_split

_FLOATS = (np.float64, np.float32)


def _one_blas_thread() -> AbstractContextManager:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - installed with scikit-learn
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _make_rng(random_state: Any) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):  # sklearn-style: draw a seed from it
        return np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
    if random_state is None or isinstance(random_state, numbers.Integral):
        return np.random.default_rng(random_state)
    raise ValueError(f"random_state must be None, an int or a RandomState; got {random_state!r}")


def _r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination averaged over outputs (scikit-learn's r2_score default)."""
    y_true, y_pred = y_true.reshape(len(y_true), -1), y_pred.reshape(len(y_pred), -1)
    ss_res = ((y_true - y_pred) ** 2).sum(axis=0)
    ss_tot = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
    ok = ss_tot > 0
    r2 = np.where(ss_res > 0, 0.0, 1.0)  # constant target: perfect fit 1, otherwise 0
    r2[ok] = 1.0 - ss_res[ok] / ss_tot[ok]
    return float(r2.mean())


class _BaseSigmoidNetwork(BaseEstimator):
    """Shared constructor, parameter checks, fit loop wiring and fitted state."""

    _task: str  # set in _encode_y: "binary" | "multiclass" | "regression"

    def __init__(
        self,
        hidden_layer_sizes: int | Iterable[int] = (32,),
        activation: str = "sigmoid",
        solver: str = "adam",
        alpha: float = 1e-4,
        batch_size: int | str = 64,
        learning_rate_init: float = 1e-3,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        dtype: str = "float32",
        verbose: bool = False,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.dtype = dtype
        self.verbose = verbose

    # ------------------------------------------------------------------ parameter checks
    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, numbers.Integral) else list(sizes)
        if not all(isinstance(s, numbers.Integral) and s > 0 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive integers; got {sizes}")
        return [int(s) for s in sizes]

    def _np_dtype(self) -> np.dtype:
        try:
            dt = np.dtype(self.dtype)
        except TypeError:
            dt = None
        if dt not in (np.float32, np.float64):
            raise ValueError(f"dtype must be 'float32' or 'float64'; got {self.dtype!r}")
        return dt

    def _config(self, n_samples: int) -> TrainConfig:
        def check(name: str, ok: bool, expected: str) -> None:
            if not ok:
                raise ValueError(f"{name} must be {expected}; got {getattr(self, name)!r}")

        def real(v: Any) -> bool:
            return isinstance(v, numbers.Real) and not isinstance(v, bool)

        def integer(v: Any) -> bool:
            return isinstance(v, numbers.Integral) and not isinstance(v, bool)

        check("solver", self.solver in ("sgd", "adam"), "'sgd' or 'adam'")
        check("alpha", real(self.alpha) and self.alpha >= 0, "a float >= 0")
        check("learning_rate_init", real(self.learning_rate_init)
              and self.learning_rate_init > 0, "a float > 0")
        check("max_iter", integer(self.max_iter) and self.max_iter >= 1, "an int >= 1")
        check("tol", real(self.tol) and self.tol >= 0, "a float >= 0")
        check("momentum", real(self.momentum) and 0 <= self.momentum <= 1, "in [0, 1]")
        check("validation_fraction", real(self.validation_fraction)
              and 0 < self.validation_fraction < 1, "in (0, 1)")
        check("n_iter_no_change", integer(self.n_iter_no_change) and self.n_iter_no_change >= 1,
              "an int >= 1")
        for name in ("beta_1", "beta_2"):
            check(name, real(getattr(self, name)) and 0 <= getattr(self, name) < 1, "in [0, 1)")
        check("epsilon", real(self.epsilon) and self.epsilon > 0, "a float > 0")
        if isinstance(self.batch_size, str) and self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            check("batch_size", integer(self.batch_size) and self.batch_size >= 1,
                  "'auto' or an int >= 1")
            batch_size = min(int(self.batch_size), n_samples)  # clipped, as scikit-learn
        return TrainConfig(
            solver=self.solver, alpha=float(self.alpha), batch_size=batch_size,
            learning_rate_init=float(self.learning_rate_init), max_iter=int(self.max_iter),
            shuffle=bool(self.shuffle), tol=float(self.tol), momentum=float(self.momentum),
            nesterovs_momentum=bool(self.nesterovs_momentum),
            early_stopping=bool(self.early_stopping),
            n_iter_no_change=int(self.n_iter_no_change), beta_1=float(self.beta_1),
            beta_2=float(self.beta_2), epsilon=float(self.epsilon), verbose=bool(self.verbose),
        )

    # ------------------------------------------------------------------ task-specific hooks
    def _validate_y(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _encode_y(self, y: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """Fit-time target encoding -> (n, n_outputs) float array; sets ``_task``."""
        raise NotImplementedError

    def _transform_y(self, y: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """Encode the targets of another set (eval_set) the way ``_encode_y`` did."""
        raise NotImplementedError

    def _score_outputs(self, P: np.ndarray, Y: np.ndarray) -> float:
        """scikit-learn's ``score`` semantics (accuracy / R^2) on encoded targets."""
        raise NotImplementedError

    def _error(self, P: np.ndarray, Y: np.ndarray) -> float:
        """Reported error: 1 - accuracy (classifiers), RMSE (regressors)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ fit / predict
    def fit(
        self,
        X: Any,
        y: Any,
        *,
        eval_set: tuple[Any, Any] | None = None,
        on_epoch: EpochCallback | None = None,
    ) -> _BaseSigmoidNetwork:
        """Train from scratch.

        eval_set: an external (X_val, y_val), only reported (``val_loss``, ``val_error``) to
        ``on_epoch(epoch, metrics)``, never used for stopping. An exception raised by
        ``on_epoch`` propagates unchanged and leaves the weights reached so far in place.
        """
        X, y = self._validate_y(X, y)
        activation = canonical(self.activation)
        sizes_hidden = self._hidden_sizes()
        dt = self._np_dtype()
        cfg = self._config(X.shape[0])
        rng = _make_rng(self.random_state)

        Xd = np.ascontiguousarray(X, dtype=dt)  # the only full-size copy (float64 -> float32)
        Y = self._encode_y(y, dt)
        codes = self.__dict__.pop("_y_codes", None)  # class codes, fit-time only
        net = Network([X.shape[1], *sizes_hidden, Y.shape[1]], activation, self._task, dt)
        net.init(rng)

        train_idx, val_score = None, None
        if cfg.early_stopping:
            # stratified by class for classifiers (codes is None for regression)
            train_idx, val_idx = validation_split(codes, X.shape[0], self.validation_fraction, rng)
            Xv, Yv = Xd[val_idx], Y[val_idx]

            def val_score() -> float:
                return self._score_outputs(net.predict(Xv), Yv)

        eval_metrics = None
        if eval_set is not None:
            Xe, Ye = self._check_eval_set(eval_set, dt, Y.shape[1])

            def eval_metrics() -> dict[str, float]:
                Z = net.logits(Xe).astype(np.float64)
                val_loss = data_loss(self._task, Z, Ye.astype(np.float64))
                output_(self._task, Z)  # logits -> probabilities / values, in place
                return {"val_loss": val_loss, "val_error": self._error(Z, Ye)}

        history = History()
        try:
            with _one_blas_thread():
                train(net, Xd, Y, cfg, rng, train_idx=train_idx, val_score=val_score,
                      eval_metrics=eval_metrics, on_epoch=on_epoch, history=history)
        finally:  # publish whatever was reached, so the estimator stays usable after an error
            self._publish(net, history)
        if not history.converged and history.n_iter == cfg.max_iter:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({cfg.max_iter}) reached and the "
                "optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self

    def _check_eval_set(
        self, eval_set: Any, dt: np.dtype, n_outputs: int
    ) -> tuple[np.ndarray, np.ndarray]:
        try:
            Xe, ye = eval_set
        except (TypeError, ValueError):
            raise ValueError("eval_set must be a pair (X_val, y_val)") from None
        Xe = check_array(Xe, dtype=_FLOATS)
        if Xe.shape[1] != self.n_features_in_:
            raise ValueError(f"eval_set X has {Xe.shape[1]} features, but the training X has "
                             f"{self.n_features_in_}")
        Ye = self._transform_y(np.asarray(ye), dt)
        if Ye.shape[0] != Xe.shape[0]:
            raise ValueError(f"eval_set has {Xe.shape[0]} rows in X but {Ye.shape[0]} in y")
        if Ye.shape[1] != n_outputs:
            raise ValueError(f"eval_set y has {Ye.shape[1]} outputs; expected {n_outputs}")
        return np.ascontiguousarray(Xe, dtype=dt), Ye

    def _publish(self, net: Network, h: History) -> None:
        self.coefs_ = [W.copy() for W in net.W]
        self.intercepts_ = [b.copy() for b in net.b]
        self.loss_curve_ = list(h.loss_curve)
        self.loss_ = h.loss_curve[-1] if h.loss_curve else None
        scores = h.validation_scores
        self.validation_scores_ = None if scores is None else list(scores)
        self.best_validation_score_ = h.best_validation_score
        self.best_loss_ = h.best_loss
        self.n_iter_ = h.n_iter
        self.n_layers_ = net.n_layers + 1
        self.n_outputs_ = net.sizes[-1]
        self.out_activation_ = OUT_ACTIVATION[net.task]

    def _network(self, dtype: Any = np.float64) -> Network:
        """A network holding the current ``coefs_`` / ``intercepts_`` (edits are honoured)."""
        check_is_fitted(self)
        sizes = [self.coefs_[0].shape[0]] + [W.shape[1] for W in self.coefs_]
        net = Network(sizes, canonical(self.activation), self._task, dtype)
        net.set_params(self.coefs_, self.intercepts_)
        return net

    def _outputs(self, X: Any) -> np.ndarray:
        """Probabilities / values (n, n_outputs) in float64.

        Inference always runs in float64 (float32 weights are exact there): a row's prediction
        then does not depend, beyond ~1e-16, on which other rows share its BLAS call.
        """
        net = self._network()
        X = validate_data(self, X, dtype=_FLOATS, reset=False)
        return net.predict(X)

    def save(self, path: Any, metadata: dict | None = None) -> None:
        """Write weights + a JSON header to ``path`` (.npz); see ``pipeline.network.io``."""
        from .io import save_model

        save_model(self, path, metadata)


class SigmoidNetworkClassifier(ClassifierMixin, _BaseSigmoidNetwork):
    """Multilayer sigmoid network classifier (MLPClassifier's parameters and attributes).

    Two classes: one sigmoid output + log-loss; more: softmax + cross-entropy.
    """

    def _validate_y(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        X, y = validate_data(self, X, y, dtype=_FLOATS)
        check_classification_targets(y)
        return X, y

    def _encode_y(self, y: np.ndarray, dtype: np.dtype) -> np.ndarray:
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
        y = column_or_1d(y)
        codes = np.clip(np.searchsorted(self.classes_, y), 0, len(self.classes_) - 1)
        unknown = self.classes_[codes] != y
        if unknown.any():
            raise ValueError(f"eval_set y has labels not seen in fit: {np.unique(y[unknown])}")
        return self._one_hot(codes, dtype)

    @staticmethod
    def _codes(P: np.ndarray) -> np.ndarray:
        return (P[:, 0] > 0.5).astype(np.intp) if P.shape[1] == 1 else P.argmax(axis=1)

    def _score_outputs(self, P: np.ndarray, Y: np.ndarray) -> float:
        return float(np.mean(self._codes(P) == self._codes(Y)))

    def _error(self, P: np.ndarray, Y: np.ndarray) -> float:
        return 1.0 - self._score_outputs(P, Y)

    def predict(self, X: Any) -> np.ndarray:
        """Class labels, (n,)."""
        codes = self._codes(self._outputs(X))
        return self.classes_[codes]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, (n, n_classes), columns in the order of ``classes_``."""
        P = self._outputs(X)
        return np.hstack([1.0 - P, P]) if P.shape[1] == 1 else P

    def predict_log_proba(self, X: Any) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))


class SigmoidNetworkRegressor(RegressorMixin, _BaseSigmoidNetwork):
    """Multilayer sigmoid network regressor: identity output + half squared error.

    Multi-output y is allowed; the loss is averaged over outputs as well as rows (as
    scikit-learn reports it), and the gradient is that loss's exact gradient.
    """

    def _validate_y(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        X, y = validate_data(self, X, y, dtype=_FLOATS, multi_output=True, y_numeric=True)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def _encode_y(self, y: np.ndarray, dtype: np.dtype) -> np.ndarray:
        self._task = "regression"
        return np.ascontiguousarray(y.reshape(y.shape[0], -1), dtype=dtype)

    def _transform_y(self, y: np.ndarray, dtype: np.dtype) -> np.ndarray:
        return np.asarray(y, dtype=dtype).reshape(len(y), -1)

    def _score_outputs(self, P: np.ndarray, Y: np.ndarray) -> float:
        return _r2(Y.astype(np.float64), P.astype(np.float64))

    def _error(self, P: np.ndarray, Y: np.ndarray) -> float:
        return float(np.sqrt(np.mean((P.astype(np.float64) - Y) ** 2)))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values, (n,) for a single output, else (n, n_outputs); float64."""
        P = self._outputs(X)
        return P.ravel() if P.shape[1] == 1 else P

    def __sklearn_tags__(self):  # noqa: ANN204 - sklearn's Tags type
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
