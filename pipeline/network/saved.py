"""A fitted estimator's model file: what ``save`` writes (header + arrays) and what a file must
hold to be read back (``_from_state``): weights checked against the header's layer sizes, the
periodic embedding, the numeric encoder, the categorical levels' rows and vectors, JSON-safe
parameters.

``SavedModel`` gives the estimators their ``save`` / ``_from_state``; each task adds its own
fields through the ``_task_state`` / ``_restore_task_state`` hooks. `io` only reads and writes
the file."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from . import io
from .core import FLOATS, Network
from .embeddings import CategoricalEmbedding, PeriodicEmbedding
from .encoders import ENCODERS, CategoryIndex
from .errors import ModelFileError
from .losses import OUT_ACTIVATION, TASKS
from .params import BY_NAME, validate
from .training import History


def embedding_of(params: dict[str, np.ndarray] | None) -> PeriodicEmbedding | None:
    """The embedding block whose fitted parameters these are (shapes say everything)."""
    if not params:
        return None
    n, k = params["c"].shape
    return PeriodicEmbedding(n, k, params["b"].shape[1], sigma=1.0)  # sigma: init only


def embedding_arrays(arrays: dict[str, np.ndarray], width: int,
                      bad: Callable[[str], ModelFileError]) -> dict[str, np.ndarray] | None:
    found = {k.removeprefix("emb_"): v for k, v in arrays.items() if k.startswith("emb_")}
    if not found:
        return None
    try:
        c, W, b = found["c"], found["W"], found["b"]
    except KeyError as e:
        raise bad(f"periodic embedding array {e} is missing") from None
    n, k = c.shape if c.ndim == 2 else (0, 0)
    if (not n or W.shape != (n, 2 * k, b.shape[-1]) or b.shape != (n, W.shape[-1])
            or n * b.shape[-1] > width):
        raise bad(f"periodic embedding arrays have inconsistent shapes {c.shape}, {W.shape}, "
                  f"{b.shape}")
    if not all(np.isfinite(a).all() for a in (c, W, b)):
        raise bad("periodic embedding holds NaN or infinite weights")
    return {"c": c, "W": W, "b": b}


def categorical_of(index: CategoryIndex | None,
                   table: np.ndarray | None) -> CategoricalEmbedding | None:
    """The categorical embedding block of a fitted level index and its (rows, d) vectors."""
    if index is None or table is None:
        return None
    return CategoricalEmbedding(index.sizes_, table.shape[1])


def categories_from_state(h: dict[str, Any], arrays: dict[str, np.ndarray],
                          bad: Callable[[str], ModelFileError]
                          ) -> tuple[CategoryIndex | None, np.ndarray | None]:
    """The level -> row index and the level vectors of a file (None, None: no categorical
    columns), checked against each other."""
    spec = h.get("categories")
    if spec is None:
        return None, None
    found = {k.removeprefix("cat_"): v for k, v in arrays.items() if k.startswith("cat_")}
    try:
        index = CategoryIndex.from_state(spec, found)
        table = found["table"]
    except (KeyError, TypeError, ValueError) as e:
        raise bad(f"categorical levels are invalid ({type(e).__name__}: {e})") from None
    if (table.ndim != 2 or table.shape[0] != sum(index.sizes_) or not table.shape[1]
            or table.dtype.kind != "f" or not np.isfinite(table).all()):
        raise bad(f"categorical embedding table has shape {table.shape} / dtype {table.dtype}; "
                  f"the levels need {sum(index.sizes_)} finite rows")
    return index, table


def encoder_from_state(h: dict[str, Any], arrays: dict[str, np.ndarray], n_inputs: int,
                        bad: Callable[[str], ModelFileError]) -> Any:
    spec = h.get("encoder")
    if spec is None:
        return None
    enc_arrays = {k.removeprefix("enc_"): v for k, v in arrays.items() if k.startswith("enc_")}
    try:
        if spec.get("kind") not in ENCODERS:
            raise ValueError(f"unknown encoder kind {spec.get('kind')!r}")
        encoder = ENCODERS[spec["kind"]].from_state(spec, enc_arrays)
    except (KeyError, TypeError, ValueError) as e:
        raise bad(f"numeric encoder is invalid ({type(e).__name__}: {e})") from None
    if encoder.n_features_out_ != n_inputs:
        raise bad(f"numeric encoder outputs {encoder.n_features_out_} columns, the network "
                  f"takes {n_inputs} numeric inputs")
    return encoder


def weights_from(arrays: dict[str, np.ndarray], sizes: list[int],
             bad: Callable[[str], ModelFileError]) -> tuple[list, list]:
    """(coefs, intercepts) checked against the header's layer sizes."""
    coefs, intercepts = [], []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        for name, shape, store in ((f"W_{i}", (fan_in, fan_out), coefs),
                                   (f"b_{i}", (fan_out,), intercepts)):
            if name not in arrays:
                raise bad(f"array {name!r} is missing")
            a = arrays[name]
            if a.shape != shape or a.dtype.kind != "f":
                raise bad(f"array {name!r} has shape {a.shape} / dtype {a.dtype}; "
                          f"the header says {shape}")
            if not np.isfinite(a).all():
                raise bad(f"array {name!r} holds NaN or infinite weights")
            store.append(a)
    if f"W_{len(sizes) - 1}" in arrays:
        raise bad(f"more weight arrays than the {len(sizes) - 1} layers in the header")
    return coefs, intercepts


def json_safe_params(params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in params.items():
        if isinstance(value, np.generic):
            value = value.item()
        if key == "hidden_layer_sizes":
            value = list(BY_NAME[key].validate(value))
        if key == "random_state" and not (value is None or isinstance(value, int)):
            value = None  # a RandomState / Generator object has no faithful JSON form
        if key == "dtype":
            value = str(np.dtype(value))
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)  # n_iter_no_change = inf: JSON has no inf
        out[key] = value
    return out


def _check_columns(est: Any, n_numeric: int, bad: Callable[[str], ModelFileError]) -> None:
    """With categorical columns, the level index splits X as the encoder and network read it."""
    index = est.categories_
    if index is None:
        return
    takes = n_numeric if est.encoder_ is None else est.encoder_.n_features_in_
    if index.n_features_in_ != est.n_features_in_ or len(index.numeric_) != takes:
        raise bad(f"categorical columns {index.columns} leave {len(index.numeric_)} of "
                  f"{index.n_features_in_} columns; the model reads {takes} of "
                  f"{est.n_features_in_}")


class SavedModel:
    """``save`` and ``_from_state`` for an estimator that has the fitted state ``_publish``
    sets and the hooks ``_task_state`` / ``_restore_task_state``."""

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
        if getattr(self, "categories_", None) is not None:
            cat_header, cat_arrays = self.categories_.state()
            task_header["categories"] = cat_header
            cat_arrays["table"] = np.asarray(self.categorical_embedding_)
            task_arrays.update({f"cat_{k}": v for k, v in cat_arrays.items()})
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
                    path: str | os.PathLike) -> Any:
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
        if len(sizes) < 2 or min(sizes) < 1 or dtype not in FLOATS:
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
        try:  # JSON keeps a list
            est.categorical_columns = validate("categorical_columns", est.categorical_columns)
        except ValueError as e:
            raise bad(f"invalid params in header ({e})") from None
        est.dtype = str(dtype)
        est._task = task
        est._restore_task_state(h, arrays, sizes, bad)
        emb_params = embedding_arrays(arrays, sizes[0], bad)
        est.categories_, table = categories_from_state(h, arrays, bad)
        categorical = categorical_of(est.categories_, table)
        if categorical is not None and categorical.width > sizes[0]:
            raise bad(f"categorical embeddings output {categorical.width} columns, the "
                      f"network takes {sizes[0]}")
        net = Network(sizes, activation, task, dtype, embedding=embedding_of(emb_params),
                      categorical=categorical)
        net.set_params(*weights_from(arrays, sizes, bad),
                       {**(emb_params or {}), **({} if table is None else {"table": table})})
        n_categorical = 0 if categorical is None else categorical.n
        est.encoder_ = encoder_from_state(h, arrays, net.n_inputs - n_categorical, bad)
        scores = h.get("validation_scores")
        est._publish(net, History(loss_curve, scores, h.get("best_loss"),
                                  max(scores) if scores else None, n_iter,
                                  int(h.get("best_epoch") or n_iter)))
        est.n_features_in_ = int(h.get("n_features_in") or sizes[0])
        _check_columns(est, net.n_inputs - n_categorical, bad)
        if h.get("feature_names_in"):
            est.feature_names_in_ = np.asarray(h["feature_names_in"], dtype=object)
        est.metadata_ = h.get("metadata") or {}
        est.stop_reason_ = str(h.get("stop_reason") or "unknown")
        return est
