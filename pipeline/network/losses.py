"""Output layers and their losses, one per task, following scikit-learn's conventions.

Each pairs an output activation with its canonical loss, so d loss / d Z_out = P - Y. Losses are
computed from the logits Z (never from clipped probabilities): the softplus and log-sum-exp forms
cannot take log(0) or overflow.

    binary      logistic + mean log-loss           (1 output)
    multiclass  softmax + mean cross-entropy       (k outputs, one-hot Y)
    regression  identity + half mean squared error, averaged over outputs too
                or identity + Huber (``loss = "huber"``): squared within HUBER_DELTA of the
                target, linear beyond it, so outliers pull with a bounded force (for mae / mape)

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


HUBER_DELTA = 1.0  # on the standardised target: one standard deviation


def huber_loss_delta_(Z: np.ndarray, Y: np.ndarray, D: np.ndarray, T: np.ndarray) -> float:
    """Huber: r^2 / 2 for |r| <= delta, delta (|r| - delta / 2) beyond; d/dr = clip(r, +-delta)."""
    m, k = Z.shape
    d = HUBER_DELTA
    np.subtract(Z, Y, out=D)  # r
    np.abs(D, out=T)
    inside = T <= d
    loss = float(np.sum(np.where(inside, 0.5 * T * T, d * (T - 0.5 * d)))) / k
    np.clip(D, -d, d, out=D)
    D *= 1.0 / (m * k)
    return loss


LossDelta = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], float]
REGRESSION_LOSSES: dict[str, LossDelta] = {
    "squared": regression_loss_delta_,
    "huber": huber_loss_delta_,
}

LOSS_DELTA: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], float]] = {
    "binary": binary_loss_delta_,
    "multiclass": multiclass_loss_delta_,
    "regression": regression_loss_delta_,
}


def loss_delta(task: str, loss: str = "squared") -> LossDelta:
    """The task's loss; a regression network takes ``loss`` ("squared" | "huber")."""
    return REGRESSION_LOSSES[loss] if task == "regression" else LOSS_DELTA[task]


def output_(task: str, Z: np.ndarray) -> None:
    """Logits -> predictions in place: probabilities for classifiers, identity for regression."""
    OUTPUT[OUT_ACTIVATION[task]](Z)


def data_loss(task: str, Z: np.ndarray, Y: np.ndarray, loss: str = "squared") -> float:
    """Mean loss (no L2 term) of logits Z against targets Y; allocates, for evaluation only."""
    return loss_delta(task, loss)(Z, Y, np.empty_like(Z), np.empty_like(Z)) / Z.shape[0]
