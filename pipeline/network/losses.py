"""Output layers and their losses, one per task, following scikit-learn's conventions.

Each pairs an output activation with its canonical loss, so d loss / d Z_out = P - Y. Losses are
computed from the logits Z (never from clipped probabilities): the softplus and log-sum-exp forms
cannot take log(0) or overflow.

    binary      logistic + mean log-loss           (1 output)
    multiclass  softmax + mean cross-entropy       (k outputs, one-hot Y)
    regression  identity + half mean squared error, averaged over outputs too

Each ``*_loss_delta_`` takes the logits Z (m, k) and targets Y (m, k), writes
D <- d(mean batch loss)/dZ into D (T is scratch), and returns the *summed* data loss.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .activations import OUTPUT, sigmoid_, softmax_

TASKS = ("binary", "multiclass", "regression")
OUT_ACTIVATION = {"binary": "logistic", "multiclass": "softmax", "regression": "identity"}


def binary_loss_delta_(Z: np.ndarray, Y: np.ndarray, D: np.ndarray, T: np.ndarray) -> float:
    m = Z.shape[0]
    # -[y log p + (1-y) log(1-p)] with p = sigmoid(z)  ==  softplus(z) - y z
    np.logaddexp(0, Z, out=T)
    loss = float(T.sum()) - float(np.vdot(Y, Z))
    np.copyto(D, Z)
    sigmoid_(D)
    D -= Y
    D *= 1.0 / m
    return loss


def multiclass_loss_delta_(Z: np.ndarray, Y: np.ndarray, D: np.ndarray, T: np.ndarray) -> float:
    m = Z.shape[0]
    np.copyto(D, Z)
    log_norm = softmax_(D)  # (m, 1)
    # -log softmax(z)_y = log sum exp(z) - z_y
    loss = float(log_norm.sum()) - float(np.vdot(Y, Z))
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
    OUTPUT[OUT_ACTIVATION[task]](Z)


def data_loss(task: str, Z: np.ndarray, Y: np.ndarray) -> float:
    """Mean loss (no L2 term) of logits Z against targets Y; allocates, for evaluation only."""
    return LOSS_DELTA[task](Z, Y, np.empty_like(Z), np.empty_like(Z)) / Z.shape[0]
