"""scikit-learn estimators around the NumPy network: validation, label encoding, fitted state.

The math lives in ``core`` / ``training`` (NumPy only). This module imports scikit-learn's base
classes and input-validation helpers, so the estimators pass ``check_estimator`` and drop in
wherever ``MLPClassifier`` / ``MLPRegressor`` do. Their parameters, defaults and constraints are
the hyperparameter table's (``params.PARAMS``).

Threads: training holds BLAS to one thread (threadpoolctl, a scikit-learn dependency). Our GEMMs
are small (batch x width x width), so a second thread gains little, while on a busy machine
(parallel tuning workers, other jobs) a descheduled BLAS thread stalls every call: we measured a
10-epoch fit going from 0.8 s to 16-36 s. One thread also makes results independent of the
machine's thread settings, so ``random_state`` alone fixes them bit for bit.
"""

from __future__ import annotations

import inspect
import math
import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

from . import io
from .core import Network
from .diagnostics import LayerHealth, stop_reason
from .embeddings import PeriodicEmbedding
from .encoders import ENCODERS, ContinuousFirst, PiecewiseLinearEncoder
from .errors import ModelFileError
from .losses import OUT_ACTIVATION, TASKS, data_loss, output_
from .params import DEFAULTS, PARAMS, TRAINING_PARAMS, validate, validate_all
from .saved import (
    embedding_arrays,
    embedding_of,
    encoder_from_state,
    json_safe_params,
    weights_from,
)
from .training import EpochCallback, History, TrainConfig, fit_loop, validation_split

_FLOATS = (np.float64, np.float32)
CLASSIFIER_PARAMS = tuple(p.name for p in PARAMS if not p.regressor_only)
REGRESSOR_PARAMS = tuple(p.name for p in PARAMS)


def table_init(names: tuple[str, ...]) -> Callable[..., None]:
    """An ``__init__`` taking the named hyperparameters as keywords, defaults from the table.

    Its signature lists every parameter explicitly, which is what scikit-learn's ``get_params``
    and ``clone`` read; like every scikit-learn ``__init__`` it only stores the values.
    """

    def __init__(self: Any, **params: Any) -> None:
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword argument(s) "
                            f"{', '.join(unknown)}")
        for name in names:
            setattr(self, name, params.get(name, DEFAULTS[name]))

    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    __init__.__signature__ = inspect.Signature([self_param] + [  # type: ignore[attr-defined]
        inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=DEFAULTS[n]) for n in names
    ])
    return __init__


def _one_blas_thread() -> Any:
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    return threadpool_limits(limits=1, user_api="blas")


def _make_rng(random_state: Any) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):  # sklearn-style: draw a seed from it
        return np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
    return np.random.default_rng(random_state)


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
    """Shared parameter checks, fit loop wiring, fitted state and its save / load."""

    _task: str  # "binary" | "multiclass" | "regression", set by _encode_y or from a file

    # ------------------------------------------------------------------ parameters
    def _params(self) -> dict[str, Any]:
        """Every hyperparameter, validated against the table and canonical."""
        return validate_all(self.get_params())

    def _config(self, p: dict[str, Any], n_samples: int) -> TrainConfig:
        batch = p["batch_size"]
        batch = min(200, n_samples) if batch == "auto" else min(batch, n_samples)  # as sklearn
        return TrainConfig(**{name: p[name] for name in TRAINING_PARAMS}
                           | {"batch_size": batch})

    # ------------------------------------------------------------------ task-specific hooks
    def _validate_y(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _encode_y(self, y: np.ndarray, dtype: np.dtype, p: dict[str, Any]) -> np.ndarray:
        """Fit-time target encoding -> (n, n_outputs) float array; sets ``_task``."""
        raise NotImplementedError

    def _transform_y(self, y: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """Encode the targets of another set (eval_set) the way ``_encode_y`` did."""
        raise NotImplementedError

    def _score_outputs(self, P: np.ndarray, Y: np.ndarray) -> float:
        """scikit-learn's ``score`` semantics (accuracy / R^2) on encoded targets."""
        raise NotImplementedError

    def _error(self, P: np.ndarray, Y: np.ndarray) -> float:
        """Reported error: 1 - accuracy (classifiers), RMSE in y's units (regressors)."""
        raise NotImplementedError

    def _task_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(header fields, arrays) that the task adds to a model file."""
        raise NotImplementedError

    def _restore_task_state(self, h: dict[str, Any], arrays: dict[str, np.ndarray],
                            sizes: list[int], bad: Callable[[str], ModelFileError]) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ fit / predict
    def fit(
        self,
        X: Any,
        y: Any,
        *,
        eval_set: tuple[Any, Any] | None = None,
        on_epoch: EpochCallback | None = None,
        diagnostics: LayerHealth | None = None,
    ) -> _BaseSigmoidNetwork:
        """Train from scratch.

        eval_set: an external (X_val, y_val), only reported (``val_loss``, ``val_error``) to
        ``on_epoch(epoch, metrics)``, never used for stopping. An exception raised by
        ``on_epoch`` propagates unchanged and leaves the weights reached so far in place.
        diagnostics: a ``LayerHealth`` whose per-layer values join ``on_epoch``'s metrics,
        measured on eval_set's rows (else the training rows). ``stop_reason_`` says why the
        fit ended, even when it raised.
        """
        X, y = self._validate_y(X, y)
        p = self._params()
        dt = np.dtype(p["dtype"])
        cfg = self._config(p, X.shape[0])
        rng = _make_rng(p["random_state"])
        Y = self._encode_y(y, dt, p)
        codes = self.__dict__.pop("_y_codes", None)  # class codes, fit-time only
        train_idx = val_idx = None
        if cfg.early_stopping:  # stratified by class for classifiers (codes None: regression)
            train_idx, val_idx = validation_split(codes, X.shape[0], p["validation_fraction"],
                                                  rng)
        Xd = self._fit_encoder(p, X, Y if codes is None else codes, train_idx, dt)
        embedding = None
        if p["numeric_encoding"] == "periodic" and len(self.encoder_.columns_):
            embedding = PeriodicEmbedding(len(self.encoder_.columns_), p["periodic_frequencies"],
                                          p["embedding_dim"], p["periodic_scale"])
        width = Xd.shape[1] if embedding is None else Xd.shape[1] - embedding.n + embedding.width
        net = Network([width, *p["hidden_layer_sizes"], Y.shape[1]], p["activation"],
                      self._task, dt, p["dropout"], embedding, loss=p.get("loss", "squared"))
        net.init(rng)
        val_score = None if val_idx is None else self._val_score(
            net, Xd[val_idx], Y[val_idx], p["early_stopping_metric"])
        eval_metrics = None if eval_set is None else self._eval_metrics(net, eval_set, dt, Y)
        if diagnostics is not None:
            rows = (Xd, Y) if eval_set is None else (
                self._encoded(check_array(eval_set[0], dtype=_FLOATS), dt),
                self._transform_y(np.asarray(eval_set[1]), dt))
            eval_metrics = _with_health(eval_metrics, diagnostics, net, *rows)
        history, error = History(), None
        try:
            with _one_blas_thread():
                fit_loop(net, Xd, Y, cfg, rng, train_idx=train_idx, val_score=val_score,
                         eval_metrics=eval_metrics, on_epoch=on_epoch, history=history)
        except BaseException as e:
            error = e
            raise
        finally:  # publish whatever was reached, so the estimator stays usable after an error
            self._publish(net, history)
            self.stop_reason_ = stop_reason(history, cfg.max_iter, error)
        if not history.converged and history.n_iter == cfg.max_iter:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({cfg.max_iter}) reached and the "
                "optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self

    def _fit_encoder(self, p: dict[str, Any], X: np.ndarray, y: np.ndarray,
                     rows: np.ndarray | None, dt: np.dtype) -> np.ndarray:
        """The network's input: X, or its numeric encoding fitted on the training rows only
        (not the early-stopping split: tree bins read labels)."""
        kind = p["numeric_encoding"]
        self.encoder_ = None
        if kind == "none":
            return np.ascontiguousarray(X, dtype=dt)  # the only full-size copy (-> float32)
        encoder = (PiecewiseLinearEncoder(p["n_bins"], p["binning"]) if kind == "ple"
                   else ContinuousFirst())
        fit_rows = slice(None) if rows is None else rows
        self.encoder_ = encoder.fit(X[fit_rows], y[fit_rows],
                                    classification=self._task != "regression")
        return encoder.transform(X, dt)

    def _encoded(self, X: np.ndarray, dt: Any) -> np.ndarray:
        if self.encoder_ is None:
            return np.ascontiguousarray(X, dtype=dt)
        return self.encoder_.transform(X, dt)

    def _val_score(self, net: Network, Xv: np.ndarray, Yv: np.ndarray,
                   metric: str) -> Callable[[], float]:
        """Early stopping's criterion on the held-out split, higher is better: scikit-learn's
        score (accuracy / R^2) or the negated loss."""
        if metric == "score":
            return lambda: self._score_outputs(net.predict(Xv), Yv)
        Yv64 = Yv.astype(np.float64)
        return lambda: -data_loss(self._task, net.logits(Xv).astype(np.float64), Yv64,
                                  net.loss_kind)

    def _eval_metrics(self, net: Network, eval_set: Any, dt: np.dtype,
                      Y: np.ndarray) -> Callable[[], dict[str, float]]:
        """Per-epoch ``val_loss`` (the training loss's scale) and ``val_error`` on eval_set."""
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
        if Ye.shape[1] != Y.shape[1]:
            raise ValueError(f"eval_set y has {Ye.shape[1]} outputs; expected {Y.shape[1]}")
        Xe, Ye64 = self._encoded(Xe, dt), Ye.astype(np.float64)

        def eval_metrics() -> dict[str, float]:
            Z = net.logits(Xe).astype(np.float64)
            val_loss = data_loss(self._task, Z, Ye64, net.loss_kind)
            output_(self._task, Z)  # logits -> probabilities / values, in place
            return {"val_loss": val_loss, "val_error": self._error(Z, Ye64)}

        return eval_metrics

    def _publish(self, net: Network, h: History) -> None:
        """The fitted attributes, from a network and its training history (fit and load)."""
        self.coefs_ = [W.copy() for W in net.W]
        self.intercepts_ = [b.copy() for b in net.b]
        # the periodic embedding's frequencies "c", weights "W" (n_c, 2k, d) and biases "b"
        self.embedding_ = {k: v.copy() for k, v in net.E.items()} or None
        self.loss_curve_ = list(h.loss_curve)
        self.loss_ = h.loss_curve[-1] if h.loss_curve else None
        scores = h.validation_scores
        self.validation_scores_ = None if scores is None else list(scores)
        self.best_validation_score_ = h.best_validation_score
        self.best_loss_ = h.best_loss
        self.n_iter_ = h.n_iter
        self.best_epoch_ = h.best_epoch or h.n_iter
        self.n_layers_ = net.n_layers + 1
        self.n_outputs_ = net.sizes[-1]
        self.out_activation_ = OUT_ACTIVATION[net.task]

    def _network(self, dtype: Any = np.float64) -> Network:
        """A network holding the current ``coefs_`` / ``intercepts_`` (edits are honoured)."""
        check_is_fitted(self)
        sizes = [self.coefs_[0].shape[0]] + [W.shape[1] for W in self.coefs_]
        net = Network(sizes, validate("activation", self.activation), self._task, dtype,
                      embedding=embedding_of(self.embedding_))
        net.set_params(self.coefs_, self.intercepts_, self.embedding_)
        return net

    def _outputs(self, X: Any) -> np.ndarray:
        """Probabilities / values (n, n_outputs) in float64.

        Inference always runs in float64 (float32 weights are exact there): a row's prediction
        then does not depend, beyond ~1e-16, on which other rows share its BLAS call.
        """
        net = self._network()
        X = validate_data(self, X, dtype=_FLOATS, reset=False)
        return net.predict(self._encoded(X, np.float64))

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | os.PathLike, metadata: dict | None = None) -> None:
        """Write weights + a JSON header to ``path`` (.npz, atomically); ``load_model`` reads it."""
        if not hasattr(self, "coefs_"):
            raise ValueError(f"cannot save an unfitted {type(self).__name__}; call fit first")
        arrays: dict[str, np.ndarray] = {}
        for i, (W, b) in enumerate(zip(self.coefs_, self.intercepts_, strict=True)):
            arrays[f"W_{i}"], arrays[f"b_{i}"] = np.asarray(W), np.asarray(b)
        task_header, task_arrays = self._task_state()
        encoder = getattr(self, "encoder_", None)
        if encoder is not None:
            enc_header, enc_arrays = encoder.state()
            kind = next(k for k, cls in ENCODERS.items() if isinstance(encoder, cls))
            task_header["encoder"] = {"kind": kind, **enc_header}
            task_arrays.update({f"enc_{k}": v for k, v in enc_arrays.items()})
        for k, v in (self.embedding_ or {}).items():
            task_arrays[f"emb_{k}"] = np.asarray(v)
        names = getattr(self, "feature_names_in_", None)
        header = {
            "estimator": type(self).__name__,
            "task": self._task,
            "layer_sizes": [int(self.coefs_[0].shape[0])] + [int(W.shape[1]) for W in self.coefs_],
            "activation": validate("activation", self.activation),
            "out_activation": OUT_ACTIVATION[self._task],
            "dtype": str(np.dtype(self.dtype)),
            "n_features_in": int(self.n_features_in_),
            "feature_names_in": None if names is None else [str(n) for n in names],
            "params": json_safe_params(self.get_params()),
            "n_iter": int(self.n_iter_),
            "best_epoch": int(self.best_epoch_),
            "loss_curve": [float(v) for v in self.loss_curve_],
            "validation_scores": self.validation_scores_,
            "best_loss": self.best_loss_,
            "stop_reason": getattr(self, "stop_reason_", None),
            **task_header,
            "metadata": metadata or {},
        }
        io.write(path, header, {**arrays, **task_arrays})

    @classmethod
    def _from_state(cls, h: dict[str, Any], arrays: dict[str, np.ndarray],
                    path: str | os.PathLike) -> _BaseSigmoidNetwork:
        """The one way to build a fitted estimator from a saved header and arrays."""
        def bad(what: str) -> ModelFileError:
            return io.bad_file(path, what)

        try:
            task, sizes, dtype = h["task"], [int(s) for s in h["layer_sizes"]], np.dtype(h["dtype"])
            activation = validate("activation", h["activation"])
            params, n_iter = dict(h["params"]), int(h["n_iter"])
            loss_curve = [float(v) for v in h["loss_curve"]]
        except (KeyError, TypeError, ValueError) as e:
            raise bad(f"header field missing or invalid ({type(e).__name__}: {e})") from None
        if task not in TASKS or task not in cls._tasks:
            raise bad(f"task {task!r} does not fit estimator {cls.__name__}")
        if len(sizes) < 2 or min(sizes) < 1 or dtype not in _FLOATS:
            raise bad(f"invalid layer_sizes {sizes} or dtype {dtype}")
        if not all(math.isfinite(v) for v in loss_curve):
            raise bad("loss_curve holds non-finite values")
        known = set(cls._get_param_names())
        params = {k: math.inf if v == "inf" else v for k, v in params.items() if k in known}
        try:
            est = cls(**params)
        except TypeError as e:
            raise bad(f"invalid params in header ({e})") from None
        est.hidden_layer_sizes, est.activation = tuple(sizes[1:-1]), activation
        est.dtype = str(dtype)
        est._task = task
        est._restore_task_state(h, arrays, sizes, bad)
        emb_params = embedding_arrays(arrays, sizes[0], bad)
        net = Network(sizes, activation, task, dtype, embedding=embedding_of(emb_params))
        net.set_params(*weights_from(arrays, sizes, bad), emb_params)
        est.encoder_ = encoder_from_state(h, arrays, net.n_inputs, bad)
        scores = h.get("validation_scores")
        est._publish(net, History(loss_curve, scores, h.get("best_loss"),
                                  max(scores) if scores else None, n_iter,
                                  int(h.get("best_epoch") or n_iter)))
        est.n_features_in_ = int(h.get("n_features_in") or sizes[0])
        if h.get("feature_names_in"):
            est.feature_names_in_ = np.asarray(h["feature_names_in"], dtype=object)
        est.metadata_ = h.get("metadata") or {}
        est.stop_reason_ = str(h.get("stop_reason") or "unknown")
        return est


def _with_health(eval_metrics: Callable[[], dict[str, float]] | None, health: LayerHealth,
                 net: Network, X: np.ndarray, Y: np.ndarray) -> Callable[[], dict[str, float]]:
    """``eval_metrics`` plus the layers' health on rows of (X, Y) (the network's input and
    encoded target)."""
    health.start(net)

    def metrics() -> dict[str, float]:
        out = {} if eval_metrics is None else eval_metrics()
        out.update(health.health(net, X, Y))
        return out

    return metrics


class SigmoidNetworkClassifier(ClassifierMixin, _BaseSigmoidNetwork):
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

        X, y = validate_data(self, X, y, dtype=_FLOATS, multi_output=True)
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


class SigmoidNetworkRegressor(RegressorMixin, _BaseSigmoidNetwork):
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
        X, y = validate_data(self, X, y, dtype=_FLOATS, multi_output=True, y_numeric=True)
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


ESTIMATORS = {cls.__name__: cls for cls in (SigmoidNetworkClassifier, SigmoidNetworkRegressor)}


def load_model(path: str | os.PathLike) -> _BaseSigmoidNetwork:
    """A fitted estimator from a file written by ``save``, with ``metadata_`` set.

    Loading executes no code (no pickle); any problem is one ModelFileError line naming the file.
    """
    header, arrays = io.read(path)
    cls = ESTIMATORS.get(header.get("estimator"))
    if cls is None:
        raise io.bad_file(path, f"unknown estimator {header.get('estimator')!r} "
                                f"(expected one of {', '.join(ESTIMATORS)})")
    return cls._from_state(header, arrays, path)
