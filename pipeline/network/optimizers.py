"""Optimisers behind one interface: ``step(params, grads)`` updates ``params`` in place.

Both act on the network's single flat parameter vector, so one step is a handful of vector ops
whatever the depth. Update rules are scikit-learn's (``_stochastic_optimizers.py``), plus
decoupled weight decay (Loshchilov & Hutter, "Decoupled Weight Decay Regularization": AdamW),
which shrinks the first ``n_decay`` entries (the coefficients, not the biases) by
``lr * weight_decay`` each step, apart from the gradient. ``lr`` may be changed between steps
(the learning-rate schedule sets it).
"""

from __future__ import annotations

import math

import numpy as np


class SGD:
    """Constant-learning-rate SGD with (Nesterov) momentum.

    v <- mu v - lr g;   theta <- theta + v                    (momentum)
                        theta <- theta + mu v - lr g          (Nesterov, as scikit-learn)
    """

    def __init__(self, n_params: int, dtype: np.dtype, learning_rate: float,
                 momentum: float = 0.9, nesterov: bool = True, weight_decay: float = 0.0,
                 n_decay: int = 0) -> None:
        self.lr, self.mu, self.nesterov = learning_rate, momentum, nesterov
        self.weight_decay, self.n_decay = weight_decay, n_decay
        self.v = np.zeros(n_params, dtype)
        self._tmp = np.empty(n_params, dtype)

    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        """Consumes grads (scaled in place)."""
        decay(params, self.lr * self.weight_decay, self.n_decay)
        grads *= self.lr  # grads <- lr g
        if self.mu == 0.0:
            params -= grads
            return
        self.v *= self.mu
        self.v -= grads
        if self.nesterov:
            params -= grads
            np.multiply(self.v, self.mu, out=self._tmp)
            params += self._tmp
        else:
            params += self.v


class Adam:
    """Adam (Kingma & Ba) with scikit-learn's bias correction folded into the step size;
    AdamW when ``weight_decay`` > 0."""

    def __init__(self, n_params: int, dtype: np.dtype, learning_rate: float = 1e-3,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8,
                 weight_decay: float = 0.0, n_decay: int = 0) -> None:
        self.lr, self.beta_1, self.beta_2, self.epsilon = learning_rate, beta_1, beta_2, epsilon
        self.weight_decay, self.n_decay = weight_decay, n_decay
        self.t = 0
        self.m = np.zeros(n_params, dtype)
        self.v = np.zeros(n_params, dtype)
        self._tmp = np.empty(n_params, dtype)

    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        """Consumes grads (overwritten)."""
        self.t += 1
        decay(params, self.lr * self.weight_decay, self.n_decay)
        b1, b2, tmp = self.beta_1, self.beta_2, self._tmp
        self.m *= b1  # m <- b1 m + (1 - b1) g
        np.multiply(grads, 1.0 - b1, out=tmp)
        self.m += tmp
        np.multiply(grads, grads, out=grads)  # v <- b2 v + (1 - b2) g^2
        grads *= 1.0 - b2
        self.v *= b2
        self.v += grads
        lr_t = self.lr * math.sqrt(1.0 - b2**self.t) / (1.0 - b1**self.t)
        np.sqrt(self.v, out=tmp)  # theta <- theta - lr_t m / (sqrt(v) + eps)
        tmp += self.epsilon
        np.divide(self.m, tmp, out=tmp)
        tmp *= lr_t
        params -= tmp


def decay(params: np.ndarray, rate: float, n: int) -> None:
    """Decoupled weight decay: params[:n] <- (1 - rate) params[:n]."""
    if rate > 0.0 and n > 0:
        params[:n] *= 1.0 - rate


def make_optimizer(solver: str, n_params: int, dtype: np.dtype, *, learning_rate_init: float,
                   momentum: float, nesterovs_momentum: bool, beta_1: float, beta_2: float,
                   epsilon: float, weight_decay: float = 0.0, n_decay: int = 0) -> SGD | Adam:
    if solver == "sgd":
        return SGD(n_params, dtype, learning_rate_init, momentum, nesterovs_momentum,
                   weight_decay, n_decay)
    if solver == "adam":
        return Adam(n_params, dtype, learning_rate_init, beta_1, beta_2, epsilon,
                    weight_decay, n_decay)
    raise ValueError(f"solver must be 'sgd' or 'adam'; got {solver!r}")


def schedule_factor(kind: str, step: int, total: int, warmup: int) -> float:
    """The learning rate's multiplier at ``step`` (0-based) of ``total``: a linear warm-up over
    ``warmup`` steps, then constant, or a cosine decay to 0 at ``total`` (Loshchilov & Hutter,
    "SGDR"; the usual recipe for tabular MLPs)."""
    if step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))
