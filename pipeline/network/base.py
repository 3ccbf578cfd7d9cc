"""The estimators' shared base: parameter checks, the fit loop's wiring (numeric encoder,
periodic embedding, early-stopping split, eval_set and layer-health reporting) and the fitted
state (``coefs_``, ``intercepts_``, ``loss_curve_``, ...) that predictions read.

What differs by task (target encoding, score, error, what a model file adds) are the hooks the
classifier and the regressor fill in (``classifier``, ``regressor``); saving and loading is
``saved.SavedModel``'s. The math lives in ``core`` / ``training`` (NumPy only).

Threads: ``threads`` (one BLAS thread per fit, measured).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .core import FLOATS, Network
from .diagnostics import LayerHealth, stop_reason
from .embeddings import CategoricalEmbedding, PeriodicEmbedding
from .encoders import CategoryIndex, ContinuousFirst, PiecewiseLinearEncoder
from .errors import ModelFileError
from .losses import OUT_ACTIVATION, data_loss, output_
from .params import DEFAULTS, TRAINING_PARAMS, validate, validate_all
from .rows import EncodedRows, identity
from .saved import SavedModel, categorical_of, embedding_of
from .threads import training_threads
from .training import EpochCallback, History, TrainConfig, fit_loop, validation_split


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




def _make_rng(random_state: Any) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):  # sklearn-style: draw a seed from it
        return np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
    return np.random.default_rng(random_state)


class BaseSigmoidNetwork(SavedModel, BaseEstimator):
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
        rows: np.ndarray | None = None,
        eval_set: tuple[Any, Any] | None = None,
        eval_rows: np.ndarray | None = None,
        on_epoch: EpochCallback | None = None,
        diagnostics: LayerHealth | None = None,
    ) -> BaseSigmoidNetwork:
        """Train from scratch on (X, y), or on its ``rows`` only (row indices: the same as
        fitting X[rows], y[rows], without copying X; cross-validation's folds).

        eval_set: an external (X_val, y_val) (its ``eval_rows`` only, when given), only
        reported (``val_loss``, ``val_error``) to ``on_epoch(epoch, metrics)``, never used
        for stopping. An exception raised by ``on_epoch`` propagates unchanged and leaves
        the weights reached so far in place. diagnostics: a ``LayerHealth`` whose per-layer
        values join ``on_epoch``'s metrics, measured on eval_set's rows (else the training
        rows). ``stop_reason_`` says why the fit ended, even when it raised.
        """
        X, y = self._validate_y(X, y)
        if rows is not None:
            rows = np.asarray(rows, dtype=np.intp)
            y = y[rows]
        p = self._params()
        dt = np.dtype(p["dtype"])
        cfg = self._config(p, y.shape[0])
        rng = _make_rng(p["random_state"])
        Y = self._encode_y(y, dt, p)
        codes = self.__dict__.pop("_y_codes", None)  # class codes, fit-time only
        train_idx = val_idx = None
        if cfg.early_stopping:  # stratified by class for classifiers (codes None: regression)
            train_idx, val_idx = validation_split(codes, y.shape[0], p["validation_fraction"],
                                                  rng)
        Xd = self._fit_encoder(p, X, rows, Y if codes is None else codes, train_idx, dt)
        embedding = categorical = None
        if p["numeric_encoding"] == "periodic" and len(self.encoder_.columns_):
            embedding = PeriodicEmbedding(len(self.encoder_.columns_), p["periodic_frequencies"],
                                          p["embedding_dim"], p["periodic_scale"])
        if self.categories_ is not None:
            categorical = CategoricalEmbedding(self.categories_.sizes_, p["categorical_dim"])
        width = Xd.shape[1] + sum(e.width - e.n for e in (embedding, categorical) if e is not None)
        net = Network([width, *p["hidden_layer_sizes"], Y.shape[1]], p["activation"],
                      self._task, dt, p["dropout"], embedding, loss=p.get("loss", "squared"),
                      categorical=categorical)
        net.init(rng)
        val_score = None if val_idx is None else self._val_score(
            net, Xd.subset(val_idx), Y[val_idx], p["early_stopping_metric"])
        evaluated = None if eval_set is None else self._eval_rows(eval_set, eval_rows, dt, Y)
        eval_metrics = None if evaluated is None else self._eval_metrics(net, *evaluated)
        if diagnostics is not None:
            eval_metrics = _with_health(eval_metrics, diagnostics, net,
                                        *((Xd, Y) if evaluated is None else evaluated))
        history, error = History(), None
        try:
            with training_threads():
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

    def _fit_encoder(self, p: dict[str, Any], X: np.ndarray, rows: np.ndarray | None,
                     y: np.ndarray, train_idx: np.ndarray | None, dt: np.dtype) -> EncodedRows:
        """The network's input, X's ``rows`` encoded on demand: the numeric encoding fitted on
        the training rows only (not the early-stopping split ``train_idx`` leaves out: tree
        bins read labels). With ``categorical_columns``, the encoding is of the other
        columns, and the categorical columns' table rows (``CategoryIndex``, rare levels
        counted on the same training rows) come last. X is read a column at a time."""
        kind = p["numeric_encoding"]
        self.encoder_ = self.categories_ = None
        fit_rows = rows if train_idx is None else (
            train_idx if rows is None else rows[train_idx])
        if p["categorical_columns"]:
            self.categories_ = CategoryIndex(p["categorical_columns"],
                                             p["categorical_min_count"]).fit(X, fit_rows)
        if kind != "none":
            encoder = (PiecewiseLinearEncoder(p["n_bins"], p["binning"]) if kind == "ple"
                       else ContinuousFirst())
            numeric = None if self.categories_ is None else self.categories_.numeric_
            self.encoder_ = encoder.fit(X, y if train_idx is None else y[train_idx],
                                        classification=self._task != "regression",
                                        rows=fit_rows, columns=numeric)
        return self._encoded(X, dt, rows)

    def _encoded(self, X: np.ndarray, dt: Any, rows: np.ndarray | None = None) -> EncodedRows:
        """The network's input from X's ``rows`` (all when None), by the fitted encodings
        (``_fit_encoder``), encoded block by block as the network reads them."""
        cats, enc = self.categories_, self.encoder_
        if cats is None and enc is None:
            return EncodedRows(X, rows, identity(dt), X.shape[1], dt)
        n_cat = 0 if cats is None else len(cats.columns_)
        k = (X.shape[1] - n_cat) if enc is None else enc.n_features_out_  # numeric outputs
        numeric = np.arange(X.shape[1] - n_cat) if cats is None else cats.numeric_
        # no encoding, or the periodic one's reordering: one gather of X's columns per batch
        moved = None if isinstance(enc, PiecewiseLinearEncoder) else (
            numeric if enc is None else numeric[enc.order_])

        def encode(raw: np.ndarray, out: np.ndarray | None) -> np.ndarray:
            if out is None:
                out = np.empty((raw.shape[0], k + n_cat), dt)
            if moved is not None:
                out[:, :k] = raw[:, moved]
            else:
                enc.transform(raw if cats is None else raw[:, numeric], dt, out=out[:, :k])
            if cats is not None:
                cats.transform(raw, dt, out=out[:, k:])
            return out

        return EncodedRows(X, rows, encode, k + n_cat, dt)

    def _val_score(self, net: Network, Xv: EncodedRows, Yv: np.ndarray,
                   metric: str) -> Callable[[], float]:
        """Early stopping's criterion on the held-out split, higher is better: scikit-learn's
        score (accuracy / R^2) or the negated loss."""
        if metric == "score":
            return lambda: self._score_outputs(net.predict(Xv), Yv)
        Yv64 = Yv.astype(np.float64)
        return lambda: -data_loss(self._task, net.logits(Xv).astype(np.float64), Yv64,
                                  net.loss_kind)

    def _eval_rows(self, eval_set: Any, rows: np.ndarray | None, dt: np.dtype,
                   Y: np.ndarray) -> tuple[EncodedRows, np.ndarray]:
        """eval_set's (encoded rows, encoded targets), checked against the training data."""
        try:
            Xe, ye = eval_set
        except (TypeError, ValueError):
            raise ValueError("eval_set must be a pair (X_val, y_val)") from None
        Xe = check_array(Xe, dtype=FLOATS)
        if Xe.shape[1] != self.n_features_in_:
            raise ValueError(f"eval_set X has {Xe.shape[1]} features, but the training X has "
                             f"{self.n_features_in_}")
        ye = np.asarray(ye)
        if ye.shape[0] != Xe.shape[0]:
            raise ValueError(f"eval_set has {Xe.shape[0]} rows in X but {ye.shape[0]} in y")
        Ye = self._transform_y(ye if rows is None else ye[rows], dt)
        if Ye.shape[1] != Y.shape[1]:
            raise ValueError(f"eval_set y has {Ye.shape[1]} outputs; expected {Y.shape[1]}")
        return self._encoded(Xe, dt, rows), Ye

    def _eval_metrics(self, net: Network, Xe: EncodedRows,
                      Ye: np.ndarray) -> Callable[[], dict[str, float]]:
        """Per-epoch ``val_loss`` (the training loss's scale) and ``val_error`` on eval_set."""
        Ye64 = Ye.astype(np.float64)

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
        self.embedding_ = {k: v.copy() for k, v in net.E.items() if k != "table"} or None
        # the categorical levels' vectors, (table rows of every column, categorical_dim)
        self.categorical_embedding_ = net.E["table"].copy() if "table" in net.E else None
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
                      embedding=embedding_of(self.embedding_),
                      categorical=categorical_of(self.categories_, self.categorical_embedding_))
        table = self.categorical_embedding_
        net.set_params(self.coefs_, self.intercepts_,
                       {**(self.embedding_ or {}), **({} if table is None else {"table": table})})
        return net

    def _outputs(self, X: Any) -> np.ndarray:
        """Probabilities / values (n, n_outputs) in float64.

        Inference always runs in float64 (float32 weights are exact there): a row's prediction
        then does not depend, beyond ~1e-16, on which other rows share its BLAS call.
        """
        net = self._network()
        X = validate_data(self, X, dtype=FLOATS, reset=False)
        return net.predict(self._encoded(X, np.float64))  # block by block: bounded memory


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
