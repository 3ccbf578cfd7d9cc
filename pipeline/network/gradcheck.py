"""Finite-difference check of backpropagation: every hidden activation x every task, float64.

    python -m pipeline.network.gradcheck      # prints one line per case, exits 1 above 1e-6

For each case a small random network (two hidden layers, L2 term on; and with no hidden
layer, the linear model) computes its analytic gradient with the same ``loss_and_grad`` used in
training; each parameter is then nudged by +-h and the central difference
(L(theta + h) - L(theta - h)) / 2h compared. The error of a parameter block (each W_l, b_l) is
||g - g_num|| / (||g|| + ||g_num||); a case reports its worst block.
"""

from __future__ import annotations

import sys

import numpy as np

from .activations import HIDDEN_ACTIVATIONS
from .core import Network, Workspace
from .embeddings import CategoricalEmbedding, PeriodicEmbedding
from .losses import TASKS

THRESHOLD = 1e-6
N_OUTPUTS = {"binary": 1, "multiclass": 3, "regression": 2}


def _targets(task: str, rng: np.random.Generator, m: int, k: int) -> np.ndarray:
    if task == "regression":
        return rng.standard_normal((m, k))
    if task == "binary":  # k > 1: several binary targets (multilabel), one sigmoid each
        return rng.integers(0, 2, (m, k)).astype(np.float64)
    return np.eye(k)[rng.integers(0, k, m)]


def check_case(activation: str, task: str, *, seed: int = 0, h: float = 1e-6,
               alpha: float = 0.1, hidden: tuple[int, ...] = (6, 5), periodic: bool = False,
               dropout: float = 0.0, n_outputs: int | None = None,
               loss: str = "squared", categorical: bool = False) -> float:
    """Worst relative error between backprop and central differences for one case.

    periodic: the first 2 of the 4 inputs go through a periodic embedding; categorical: the
    last 2 are levels (of 4 and 3) looked up in 3-d embedding tables, and every level of the
    first occurs twice or more in the batch (the scatter-add sums rows); dropout: one set of
    masks, drawn once, is used by every evaluation. n_outputs: the task's usual count
    unless given (binary with 3: a multilabel network, the summed log-loss of 3 sigmoids);
    loss: the regression loss ("huber").
    """
    rng = np.random.default_rng(seed)
    m, n_in = 9, 4
    embedding = PeriodicEmbedding(2, 3, 4, sigma=0.5) if periodic else None
    levels = CategoricalEmbedding((4, 3), 3) if categorical else None
    first = n_in + sum(e.width - e.n for e in (embedding, levels) if e is not None)
    k = N_OUTPUTS[task] if n_outputs is None else n_outputs
    sizes = [first, *hidden, k]
    net = Network(sizes, activation, task, np.float64, dropout=dropout, embedding=embedding,
                  loss=loss, categorical=levels)
    net.init(rng)
    net.theta += 0.1 * rng.standard_normal(net.theta.size)  # non-zero biases, off relu's kink
    ws = Workspace(net, m, sizes[-1])
    ws.X[...] = rng.standard_normal((m, n_in))
    if levels is not None:  # table rows: all 4 levels of the first column, 3 of the second
        ws.X[:, -2] = rng.permutation(np.arange(m) % 4)
        ws.X[:, -1] = rng.integers(0, 3, m)
    ws.Y[...] = _targets(task, rng, m, k) * (2.0 if loss == "huber" else 1.0)  # |r| both sides
    ws.draw_masks(rng, m)

    net.loss_and_grad(ws, m, alpha)
    analytic = net.grad.copy()
    numeric = np.empty_like(analytic)
    theta = net.theta
    for i in range(theta.size):
        saved = theta[i]
        theta[i] = saved + h
        loss_plus = net.loss_and_grad(ws, m, alpha)
        theta[i] = saved - h
        loss_minus = net.loss_and_grad(ws, m, alpha)
        theta[i] = saved
        numeric[i] = (loss_plus - loss_minus) / (2 * h)

    worst = 0.0
    g_W, g_b, g_E = net.views(analytic)
    n_W, n_b, n_E = net.views(numeric)
    for g, n in zip(g_W + g_b + list(g_E.values()), n_W + n_b + list(n_E.values()),
                    strict=True):
        denom = max(np.linalg.norm(g) + np.linalg.norm(n), 1e-12)
        worst = max(worst, float(np.linalg.norm(g - n) / denom))
    return worst


def run_gradcheck(seed: int = 0) -> list[tuple[str, float]]:
    """[(case_name, worst_rel_error)] for every hidden activation x every task, then every
    task with no hidden layer ("linear/<task>"), with periodic embeddings ("periodic/<task>"),
    with categorical embeddings ("categorical/<task>"), with dropout ("dropout/<task>"),
    several targets ("multilabel/binary": 3 sigmoid outputs; "multioutput/regression": 3
    linear outputs) and the Huber loss ("huber/regression")."""
    variants = {"linear": {"hidden": ()}, "periodic": {"periodic": True},
                "categorical": {"categorical": True}, "dropout": {"dropout": 0.3}}
    return [
        (f"{activation}/{task}", check_case(activation, task, seed=seed))
        for activation in HIDDEN_ACTIVATIONS
        for task in TASKS
    ] + [(f"{name}/{task}", check_case("relu" if name != "linear" else "sigmoid", task,
                                       seed=seed, **kw))
         for name, kw in variants.items() for task in TASKS] + [
        (f"{name}/{task}", check_case("tanh", task, seed=seed, n_outputs=3))
        for name, task in (("multilabel", "binary"), ("multioutput", "regression"))] + [
        ("huber/regression", check_case("tanh", "regression", seed=seed, loss="huber"))]


def main() -> int:
    results = run_gradcheck()
    width = max(len(name) for name, _ in results)
    for name, err in results:
        status = "ok" if err < THRESHOLD else "FAIL"
        print(f"{name:<{width}}  {err:.2e}  {status}")
    worst = max(err for _, err in results)
    print(f"worst relative error {worst:.2e} (threshold {THRESHOLD:.0e})")
    return 0 if worst < THRESHOLD else 1


if __name__ == "__main__":
    sys.exit(main())
