"""Why a fit stopped, and per-layer health measured between epochs (issue #15).

``LayerHealth`` is an optional hook the estimators call with the network after each epoch
(``fit(..., diagnostics=LayerHealth())``); plain ``fit`` never builds one, so it costs nothing
there. Per hidden layer k (1-based, ``W[k-1]`` feeds it) it returns:

    saturation/layer_k    share of saturated outputs on a sample of rows: sigmoid within 0.02
                          of 0 or 1, tanh within 0.04 of +-1; ReLU: share of units dead
                          (output 0) on every sampled row
    grad_norm/layer_k     ||dL/dW|| on the same rows (the data loss, no L2 term)
    weight_norm/layer_k   ||W||
    update_ratio/layer_k  ||W - W one epoch ago|| / ||W one epoch ago||

One forward and backward pass on a sample of the evaluation rows (1 in 8, at most 256): that
keeps the cost a few percent of an epoch (benchmarks/bench_network.py --diagnostics).
"""

from __future__ import annotations

import numpy as np

from .core import Network, Workspace
from .training import History

# How close to a bound counts as saturated: sigmoid's derivative a (1 - a) is below 0.02 there,
# tanh's 1 - a^2 below 0.08: the unit passes almost no gradient back.
SATURATION_MARGIN = {"sigmoid": 0.02, "tanh": 0.04}
# Rows measured on: one in ROWS_PER_SAMPLE of the evaluation rows, MIN_ROWS to MAX_ROWS. A
# held-out fold is ~1/4 of the training rows, so that is ~1/30 of an epoch's rows (measured:
# benchmarks/bench_network.py --diagnostics).
MAX_ROWS = 256
MIN_ROWS = 16
ROWS_PER_SAMPLE = 8


def stop_reason(h: History, max_iter: int, error: BaseException | None = None) -> str:
    """`converged`, `max_iter`, `diverged` or, when a callback stopped the fit, `stopped at
    epoch k` (the caller knows why: a pruned trial, an interrupt)."""
    from .errors import DivergenceError

    if isinstance(error, DivergenceError):
        return "diverged"
    if error is not None:
        return f"stopped at epoch {h.n_iter}"
    if h.converged:
        return "converged"
    return "max_iter" if h.n_iter >= max_iter else f"stopped at epoch {h.n_iter}"


def saturation(activation: str, A: np.ndarray) -> float:
    """Share of saturated outputs in A (rows, units) of a hidden layer (see module doc)."""
    if A.size == 0:
        return 0.0
    if activation == "relu":
        return float(np.mean(~(A > 0).any(axis=0)))  # dead units: 0 on every row
    margin = SATURATION_MARGIN.get(activation)
    if margin is None:  # identity never saturates
        return 0.0
    low = 0.0 if activation == "sigmoid" else -1.0
    return float(np.mean((A <= low + margin) | (A >= 1.0 - margin)))


class LayerHealth:
    """The per-epoch hook: ``start(net)`` before the first epoch, then ``health(net, X, Y)``
    after each, with (X, Y) the network's (encoded) input and target rows to measure on."""

    def __init__(self, max_rows: int = MAX_ROWS, seed: int = 0) -> None:
        self.max_rows, self.seed = max_rows, seed
        self.previous: list[np.ndarray] = []
        self.rows: np.ndarray | None = None
        self.ws: Workspace | None = None

    def start(self, net: Network) -> None:
        self.previous = [W.copy() for W in net.W]

    def sample(self, net: Network, X: np.ndarray, Y: np.ndarray) -> int:
        """Copy the sampled rows into the workspace (the same rows every epoch: comparable
        values); returns their number."""
        if self.rows is None:
            n = X.shape[0]
            rng = np.random.default_rng(self.seed)
            take = min(n, self.max_rows, max(MIN_ROWS, n // ROWS_PER_SAMPLE))
            self.rows = np.sort(rng.choice(n, take, replace=False))
            self.ws = Workspace(net, len(self.rows), Y.shape[1])
            for mask in self.ws.M:  # no dropout here: masks of ones
                if mask is not None:
                    mask.fill(1.0)
        self.ws.gather(X, Y, self.rows)
        return len(self.rows)

    def health(self, net: Network, X: np.ndarray, Y: np.ndarray) -> dict[str, float]:
        hidden = net.n_layers - 1
        if hidden < 1:
            return {}
        m = self.sample(net, X, Y)
        # the optimiser consumed the last batch's gradient: the data gradient on the sample
        # (``grad`` is scratch between epochs; the next batch overwrites it)
        with np.errstate(over="ignore", invalid="ignore", under="ignore", divide="ignore"):
            net.loss_and_grad(self.ws, m, 0.0)
        out: dict[str, float] = {}
        for k in range(1, hidden + 1):
            W, before = net.W[k - 1], self.previous[k - 1]
            b_norm = float(np.linalg.norm(before))
            out[f"saturation/layer_{k}"] = saturation(net.activation, self.ws.A[k][:m])
            out[f"grad_norm/layer_{k}"] = float(np.linalg.norm(net.gW[k - 1]))
            out[f"weight_norm/layer_{k}"] = float(np.linalg.norm(W))
            out[f"update_ratio/layer_{k}"] = (float(np.linalg.norm(W - before)) / b_norm
                                              if b_norm > 0 else 0.0)
            before[...] = W
        return out
