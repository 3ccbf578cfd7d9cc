"""Activations as small lookup tables, each written once, in place on preallocated buffers.

Hidden layers: ``ACTIVATE[name](Z)`` overwrites Z with A = f(Z), and ``DERIVATIVE[name](D, A, T)``
multiplies D by f'(Z) computed from the *output* A (never from Z), so the forward pass keeps a
single buffer per layer. Output layers: ``OUTPUT[name](Z)`` turns logits into predictions.

    sigmoid   A = 1 / (1 + exp(-Z))      f' = A (1 - A)
    tanh      A = tanh(Z)                f' = 1 - A^2
    relu      A = max(Z, 0)              f' = [A > 0]
    identity  A = Z                      f' = 1
    softmax   A = exp(Z) / sum exp(Z)    (output only: its loss supplies the gradient)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def sigmoid_(Z: np.ndarray) -> None:
    """Z <- 1 / (1 + exp(-Z)), computed as 0.5 + 0.5 * tanh(Z / 2).

    Same function, but tanh never overflows and was faster here than exp + reciprocal.
    """
    Z *= 0.5
    np.tanh(Z, out=Z)
    Z *= 0.5
    Z += 0.5


def sigmoid_grad_(D: np.ndarray, A: np.ndarray, T: np.ndarray) -> None:
    """D <- D * A * (1 - A); T is scratch of D's shape."""
    D *= A
    np.subtract(1, A, out=T)
    D *= T


def tanh_(Z: np.ndarray) -> None:
    np.tanh(Z, out=Z)


def tanh_grad_(D: np.ndarray, A: np.ndarray, T: np.ndarray) -> None:
    """D <- D * (1 - A^2)."""
    np.multiply(A, A, out=T)
    np.subtract(1, T, out=T)
    D *= T


def relu_(Z: np.ndarray) -> None:
    np.maximum(Z, 0, out=Z)


def relu_grad_(D: np.ndarray, A: np.ndarray, T: np.ndarray) -> None:
    """D <- D * [A > 0]; sign(A) is exactly 0 or 1 because A = max(Z, 0)."""
    np.sign(A, out=T)
    D *= T


def identity_(Z: np.ndarray) -> None:
    """Z <- Z: a linear unit (and the regression output)."""


def identity_grad_(D: np.ndarray, A: np.ndarray, T: np.ndarray) -> None:
    """D <- D * 1."""


def softmax_(Z: np.ndarray) -> np.ndarray:
    """Z <- softmax(Z) row by row; returns log sum exp(Z), (m, 1), which the loss needs.

    The row maximum is subtracted first, so exp never overflows and the sum is >= 1.
    """
    z_max = Z.max(axis=1, keepdims=True)  # (m, 1)
    Z -= z_max
    np.exp(Z, out=Z)
    s = Z.sum(axis=1, keepdims=True)  # (m, 1)
    Z /= s
    return np.log(s) + z_max


ACTIVATE: dict[str, Callable[[np.ndarray], None]] = {
    "sigmoid": sigmoid_,
    "tanh": tanh_,
    "relu": relu_,
    "identity": identity_,
}
DERIVATIVE: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], None]] = {
    "sigmoid": sigmoid_grad_,
    "tanh": tanh_grad_,
    "relu": relu_grad_,
    "identity": identity_grad_,
}
HIDDEN_ACTIVATIONS = tuple(ACTIVATE)
# Output layers, by scikit-learn's out_activation_ names.
OUTPUT: dict[str, Callable[[np.ndarray], object]] = {
    "logistic": sigmoid_,
    "softmax": softmax_,
    "identity": identity_,
}


def init_layer(
    rng: np.random.Generator, fan_in: int, fan_out: int, activation: str
) -> tuple[np.ndarray, np.ndarray]:
    """Initial (W, b) in float64.

    sigmoid/tanh/identity: scikit-learn's Glorot uniform, bound sqrt(f / (fan_in + fan_out))
    with f = 2 for the sigmoid (its slope at 0 is 1/4) and 6 otherwise; biases from the same
    range. relu: He uniform, bound sqrt(6 / fan_in), zero biases.
    """
    if activation == "relu":
        bound = np.sqrt(6.0 / fan_in)
        return rng.uniform(-bound, bound, (fan_in, fan_out)), np.zeros(fan_out)
    factor = 2.0 if activation == "sigmoid" else 6.0
    bound = np.sqrt(factor / (fan_in + fan_out))
    return rng.uniform(-bound, bound, (fan_in, fan_out)), rng.uniform(-bound, bound, fan_out)
