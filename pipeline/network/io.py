"""Save / load fitted networks as .npz: weight arrays plus one JSON header, never pickle.

File layout: ``header`` (0-d unicode array holding JSON), ``W_0 .. W_{L-1}``, ``b_0 .. b_{L-1}``
and, for classifiers, ``classes``. Loading uses ``np.load(allow_pickle=False)``, so it executes no
code; every field is checked, and any problem raises ``ModelFileError`` with one line naming the
file and what is wrong.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
from importlib import metadata as _md
from pathlib import Path
from typing import Any

import numpy as np

from .activations import canonical
from .errors import ModelFileError
from .losses import OUT_ACTIVATION, TASKS

FORMAT = "pipeline.network"
FORMAT_VERSION = 1


def _package_version() -> str:
    try:
        return _md.version("avocado-pipeline")
    except _md.PackageNotFoundError:
        return "unknown"


def _json_safe_params(params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in params.items():
        if isinstance(value, np.generic):
            value = value.item()
        if key == "hidden_layer_sizes":
            value = [int(value)] if isinstance(value, int | np.integer) else [int(v) for v in value]
        if key == "random_state" and not (value is None or isinstance(value, int)):
            value = None  # a RandomState / Generator object has no faithful JSON form
        if key == "dtype":
            value = str(np.dtype(value))
        out[key] = value
    return out


def save_model(est: Any, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Write a fitted estimator to ``path`` atomically (temp file + rename)."""
    if not hasattr(est, "coefs_"):
        raise ValueError(f"cannot save an unfitted {type(est).__name__}; call fit first")
    arrays: dict[str, np.ndarray] = {}
    for i, (W, b) in enumerate(zip(est.coefs_, est.intercepts_, strict=True)):
        arrays[f"W_{i}"], arrays[f"b_{i}"] = np.asarray(W), np.asarray(b)
    classes = None
    if hasattr(est, "classes_"):
        cls = np.asarray(est.classes_)
        if cls.dtype == object:  # e.g. strings from pandas: store as a unicode array
            if not all(isinstance(c, str) for c in cls):
                raise ValueError("classes_ of mixed / object types cannot be saved without pickle")
            cls = cls.astype(str)
        if cls.dtype.kind not in "biufU":
            raise ValueError(f"classes_ of dtype {cls.dtype} cannot be saved without pickle")
        arrays["classes"] = cls
        classes = cls.tolist()
    names = getattr(est, "feature_names_in_", None)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": _package_version(),
        "estimator": type(est).__name__,
        "task": est._task,
        "layer_sizes": [int(est.coefs_[0].shape[0])] + [int(W.shape[1]) for W in est.coefs_],
        "activation": canonical(est.activation),
        "out_activation": OUT_ACTIVATION[est._task],
        "dtype": str(np.dtype(est.dtype)),
        "classes": classes,
        "n_features_in": int(est.n_features_in_),
        "feature_names_in": None if names is None else [str(n) for n in names],
        "params": _json_safe_params(est.get_params()),
        "n_iter": int(est.n_iter_),
        "loss_curve": [float(v) for v in est.loss_curve_],
        "validation_scores": est.validation_scores_,
        "best_loss": est.best_loss_,
        "metadata": metadata or {},
    }
    try:
        arrays["header"] = np.array(json.dumps(header, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ValueError(f"metadata must be JSON-serialisable: {e}") from None
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def load_model(path: str | os.PathLike) -> Any:
    """Read a model saved by ``save``; returns a fitted estimator with ``metadata_`` set."""
    from .estimators import SigmoidNetworkClassifier, SigmoidNetworkRegressor

    path = Path(path)

    def bad(what: str) -> ModelFileError:
        return ModelFileError(f"{path}: {what}".replace("\n", " "))

    try:
        arrays = _read(path)
    except FileNotFoundError:
        raise bad("no such file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise bad(f"not a readable .npz model file ({type(e).__name__}: {e})") from None
    if "header" not in arrays:
        raise bad("not a model file: no 'header' array")
    try:
        h = json.loads(str(arrays["header"][()]))
    except (ValueError, TypeError) as e:
        raise bad(f"header is not valid JSON ({e})") from None
    if not isinstance(h, dict) or h.get("format") != FORMAT:
        raise bad(f"header does not describe a {FORMAT} model")
    if h.get("format_version") != FORMAT_VERSION:
        raise bad(f"format_version {h.get('format_version')!r} is not supported "
                  f"(this code reads {FORMAT_VERSION})")
    classes_by_name = {c.__name__: c for c in (SigmoidNetworkClassifier, SigmoidNetworkRegressor)}
    try:
        cls = classes_by_name[h["estimator"]]
        task, sizes, dtype = h["task"], [int(s) for s in h["layer_sizes"]], np.dtype(h["dtype"])
        activation = canonical(h["activation"])
        params, n_iter = dict(h["params"]), int(h["n_iter"])
        loss_curve = [float(v) for v in h["loss_curve"]]
        metadata = h.get("metadata") or {}
    except (KeyError, TypeError, ValueError) as e:
        raise bad(f"header field missing or invalid ({type(e).__name__}: {e})") from None
    expected_task = ("regression",) if cls is SigmoidNetworkRegressor else ("binary", "multiclass")
    if task not in TASKS or task not in expected_task:
        raise bad(f"task {task!r} does not fit estimator {cls.__name__}")
    if len(sizes) < 2 or min(sizes) < 1 or dtype not in (np.float32, np.float64):
        raise bad(f"invalid layer_sizes {sizes} or dtype {dtype}")
    if not all(math.isfinite(v) for v in loss_curve):
        raise bad("loss_curve holds non-finite values")

    coefs, intercepts = [], []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        for name, shape, store in ((f"W_{i}", (fan_in, fan_out), coefs),
                                   (f"b_{i}", (fan_out,), intercepts)):
            if name not in arrays:
                raise bad(f"array {name!r} is missing")
            a = arrays[name]
            if a.shape != shape or a.dtype.kind != "f":
                raise bad(f"array {name!r} has shape {a.shape} / dtype {a.dtype}; "
                          f"the header says {shape} / {dtype}")
            if not np.isfinite(a).all():
                raise bad(f"array {name!r} holds NaN or infinite weights")
            store.append(a.astype(dtype))
    if f"W_{len(sizes) - 1}" in arrays:
        raise bad(f"more weight arrays than the {len(sizes) - 1} layers in the header")

    known = cls().get_params()
    try:
        est = cls(**{k: v for k, v in params.items() if k in known})
    except TypeError as e:
        raise bad(f"invalid params in header ({e})") from None
    est.hidden_layer_sizes = tuple(sizes[1:-1])
    est.activation, est.dtype = activation, str(dtype)
    if cls is SigmoidNetworkClassifier:
        if "classes" not in arrays:
            raise bad("classifier file has no 'classes' array")
        classes = arrays["classes"]
        n_out = 1 if len(classes) == 2 else len(classes)
        want_task = "binary" if len(classes) == 2 else "multiclass"
        if len(classes) < 2 or sizes[-1] != n_out or task != want_task:
            raise bad(f"{len(classes)} classes do not match {sizes[-1]} outputs / task {task!r}")
        est.classes_ = classes
    est._task = task
    est.coefs_, est.intercepts_ = coefs, intercepts
    est.n_features_in_ = sizes[0]
    if h.get("feature_names_in"):
        est.feature_names_in_ = np.asarray(h["feature_names_in"], dtype=object)
    est.n_iter_, est.loss_curve_ = n_iter, loss_curve
    est.loss_ = loss_curve[-1] if loss_curve else None
    est.best_loss_ = h.get("best_loss")
    est.validation_scores_ = h.get("validation_scores")
    scores = est.validation_scores_
    est.best_validation_score_ = max(scores) if scores else None
    est.n_layers_, est.n_outputs_ = len(sizes), sizes[-1]
    est.out_activation_ = OUT_ACTIVATION[task]
    est.metadata_ = metadata
    return est
