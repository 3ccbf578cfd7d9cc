"""Optimisers behind one interface: ``step(params, grads)`` updates ``params`` in place.

Both act on the network's single flat parameter vector, so one step is a handful of vector ops
whatever the depth. Update rules are scikit-learn's (``_stochastic_optimizers.py``).
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
                 momentum: float = 0.9, nesterov: bool = True) -> None:
        self.lr, self.mu, self.nesterov = learning_rate, momentum, nesterov
        self.v = np.zeros(n_params, dtype)
        self._tmp = np.empty(n_params, dtype)

    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        """Consumes grads (scaled in place)."""
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
    """Adam (Kingma & Ba) with scikit-learn's bias correction folded into the step size."""

    def __init__(self, n_params: int, dtype: np.dtype, learning_rate: float = 1e-3,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8) -> None:
        self.lr, self.beta_1, self.beta_2, self.epsilon = learning_rate, beta_1, beta_2, epsilon
        self.t = 0
        self.m = np.zeros(n_params, dtype)
        self.v = np.zeros(n_params, dtype)
        self._tmp = np.empty(n_params, dtype)

    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        """Consumes grads (overwritten)."""
        self.t += 1
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


def make_optimizer(solver: str, n_params: int, dtype: np.dtype, *, learning_rate_init: float,
                   momentum: float, nesterovs_momentum: bool, beta_1: float, beta_2: float,
                   epsilon: float) -> SGD | Adam:
    if solver == "sgd":
        return SGD(n_params, dtype, learning_rate_init, momentum, nesterovs_momentum)
    if solver == "adam":
        return Adam(n_params, dtype, learning_rate_init, beta_1, beta_2, epsilon)
    raise ValueError(f"solver must be 'sgd' or 'adam'; got {solver!r}")
