"""Output layers and their losses, one per task, following scikit-learn's conventions.

All three pair an output activation with its canonical loss, so d loss / d Z_out = P - Y.
Losses are computed from the logits Z (never from clipped probabilities): log-sum-exp and
softplus forms cannot take log(0) or overflow.

    binary      sigmoid + mean log-loss           (1 output)
    multiclass  softmax + mean cross-entropy      (k outputs, one-hot Y)
    regression  identity + half mean squared error, averaged over outputs too

Each ``*_loss_delta_`` takes the logits Z (m, k) and targets Y (m, k), writes
D <- d(mean batch loss)/dZ into D (T is scratch), and returns the *summed* data loss.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

TASKS = ("binary", "multiclass", "regression")
OUT_ACTIVATION = {"binary": "logistic", "multiclass": "softmax", "regression": "identity"}


def binary_loss_delta_(Z: np.ndarray, Y: np.ndarray, D: np.ndarray, T: np.ndarray) -> float:
    m = Z.shape[0]
    # -[y log p + (1-y) log(1-p)] with p = sigmoid(z)  ==  softplus(z) - y z
    np.logaddexp(0, Z, out=T)
    loss = float(T.sum()) - float(np.vdot(Y, Z))
    np.multiply(Z, 0.5, out=D)  # sigmoid(z) = 0.5 + 0.5 tanh(z / 2)
    np.tanh(D, out=D)
    D *= 0.5
    D += 0.5
    D -= Y
    D *= 1.0 / m
    return loss


def multiclass_loss_delta_(Z: np.ndarray, Y: np.ndarray, D: np.ndarray, T: np.ndarray) -> float:
    m = Z.shape[0]
    z_max = Z.max(axis=1, keepdims=True)  # (m, 1)
    np.subtract(Z, z_max, out=D)
    np.exp(D, out=D)
    s = D.sum(axis=1, keepdims=True)  # (m, 1), >= 1 so the log is safe
    # -log softmax(z)_y = log sum exp(z - z_max) + z_max - z_y
    loss = float(np.log(s).sum() + z_max.sum()) - float(np.vdot(Y, Z))
    D /= s
    D -= Y
    D *= 1.0 / m
    return loss


def regression_loss_delta_(Z: np.ndarray, Y: np.ndarray, D: np.ndarray, T: np.ndarray) -> float:
    m, k = Z.shape
    np.subtract(Z, Y, out=D)
    loss = 0.5 * float(np.vdot(D, D)) / k
    D *= 1.0 / (m * k)
    return loss


LOSS_DELTA: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], float]] = {
    "binary": binary_loss_delta_,
    "multiclass": multiclass_loss_delta_,
    "regression": regression_loss_delta_,
}


def output_(task: str, Z: np.ndarray) -> None:
    """Logits -> predictions in place: probabilities for classifiers, identity for regression."""
    if task == "binary":
        Z *= 0.5
        np.tanh(Z, out=Z)
        Z *= 0.5
        Z += 0.5
    elif task == "multiclass":
        Z -= Z.max(axis=1, keepdims=True)
        np.exp(Z, out=Z)
        Z /= Z.sum(axis=1, keepdims=True)


def data_loss(task: str, Z: np.ndarray, Y: np.ndarray) -> float:
    """Mean loss (no L2 term) of logits Z against targets Y; allocates, for evaluation only."""
    D = np.empty_like(Z)
    return LOSS_DELTA[task](Z, Y, D, np.empty_like(Z)) / Z.shape[0]
