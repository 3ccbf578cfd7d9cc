"""What a fitted estimator's saved arrays must hold: weights checked against the header's
layer sizes, the periodic embedding, the numeric encoder, JSON-safe parameters.

The estimators' `save` / `_from_state` call these; `io` only reads and writes the file."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .embeddings import PeriodicEmbedding
from .encoders import ENCODERS
from .errors import ModelFileError
from .params import BY_NAME


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
                  f"takes {n_inputs}")
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
