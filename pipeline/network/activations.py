"""Hidden-layer activations as small lookup tables, all in place on preallocated buffers.

Each derivative is computed from the activation's *output* ``A`` (never from ``Z``), so the
forward pass can overwrite ``Z`` with ``A`` and keep a single buffer per layer.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

ALIASES = {"logistic": "sigmoid"}
HIDDEN_ACTIVATIONS = ("sigmoid", "tanh", "relu")


def canonical(name: str) -> str:
    """'logistic' -> 'sigmoid'; raises ValueError for anything unknown."""
    name = ALIASES.get(name, name)
    if name not in HIDDEN_ACTIVATIONS:
        choices = ", ".join(repr(a) for a in (*HIDDEN_ACTIVATIONS, *ALIASES))
        raise ValueError(f"activation must be one of {choices}; got {name!r}")
    return name


def sigmoid_(Z: np.ndarray) -> None:
    """Z <- 1 / (1 + exp(-Z)), computed as 0.5 + 0.5 * tanh(Z / 2).

    Same function, but tanh never overflows and was faster here than exp + reciprocal.
    """
    Z *= 0.5
    np.tanh(Z, out=Z)
    Z *= 0.5
    Z += 0.5


def tanh_(Z: np.ndarray) -> None:
    np.tanh(Z, out=Z)


def relu_(Z: np.ndarray) -> None:
    np.maximum(Z, 0, out=Z)


def sigmoid_grad_(D: np.ndarray, A: np.ndarray, T: np.ndarray) -> None:
    """D <- D * A * (1 - A); T is scratch of D's shape."""
    D *= A
    np.subtract(1, A, out=T)
    D *= T


def tanh_grad_(D: np.ndarray, A: np.ndarray, T: np.ndarray) -> None:
    """D <- D * (1 - A^2)."""
    np.multiply(A, A, out=T)
    np.subtract(1, T, out=T)
    D *= T


def relu_grad_(D: np.ndarray, A: np.ndarray, T: np.ndarray) -> None:
    """D <- D * [A > 0]; sign(A) is exactly 0 or 1 because A = max(Z, 0)."""
    np.sign(A, out=T)
    D *= T


ACTIVATE: dict[str, Callable[[np.ndarray], None]] = {
    "sigmoid": sigmoid_,
    "tanh": tanh_,
    "relu": relu_,
}
DERIVATIVE: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], None]] = {
    "sigmoid": sigmoid_grad_,
    "tanh": tanh_grad_,
    "relu": relu_grad_,
}


def init_layer(
    rng: np.random.Generator, fan_in: int, fan_out: int, activation: str
) -> tuple[np.ndarray, np.ndarray]:
    """Initial (W, b) in float64.

    sigmoid/tanh: scikit-learn's Glorot uniform, bound sqrt(f / (fan_in + fan_out)) with f = 2
    for the sigmoid (its slope at 0 is 1/4) and 6 for tanh; biases from the same range.
    relu: He uniform, bound sqrt(6 / fan_in), zero biases.
    """
    if activation == "relu":
        bound = np.sqrt(6.0 / fan_in)
        return rng.uniform(-bound, bound, (fan_in, fan_out)), np.zeros(fan_out)
    factor = 2.0 if activation == "sigmoid" else 6.0
    bound = np.sqrt(factor / (fan_in + fan_out))
    return rng.uniform(-bound, bound, (fan_in, fan_out)), rng.uniform(-bound, bound, fan_out)
