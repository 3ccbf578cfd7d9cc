"""The fit loop: mini-batches, optimiser steps, convergence, early stopping, callbacks.

Stopping follows scikit-learn's MLP exactly: after each epoch, a counter grows when the training
loss did not improve on the best loss by ``tol`` (or, with early stopping, the validation score
did not improve on the best score by ``tol``) and resets otherwise; training stops when it
exceeds ``n_iter_no_change``. ``max_iter`` caps the epochs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .core import Network, Workspace
from .errors import DivergenceError
from .optimizers import make_optimizer

EpochCallback = Callable[[int, dict[str, float]], object]


@dataclass(frozen=True)
class TrainConfig:
    solver: str = "adam"
    alpha: float = 1e-4
    batch_size: int = 64
    learning_rate_init: float = 1e-3
    max_iter: int = 200
    shuffle: bool = True
    tol: float = 1e-4
    momentum: float = 0.9
    nesterovs_momentum: bool = True
    early_stopping: bool = False
    n_iter_no_change: int = 10
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    verbose: bool = False


@dataclass
class History:
    loss_curve: list[float] = field(default_factory=list)
    validation_scores: list[float] | None = None
    best_loss: float | None = None
    best_validation_score: float | None = None
    n_iter: int = 0
    converged: bool = False  # stopped by the tol / n_iter_no_change rule (else: max_iter)


def train(
    net: Network,
    X: np.ndarray,
    Y: np.ndarray,
    cfg: TrainConfig,
    rng: np.random.Generator,
    *,
    train_idx: np.ndarray | None = None,
    val_score: Callable[[], float] | None = None,
    eval_metrics: Callable[[], dict[str, float]] | None = None,
    on_epoch: EpochCallback | None = None,
    history: History | None = None,
) -> History:
    """Train ``net`` in place on rows ``train_idx`` of (X, Y) (all rows when None).

    X and Y must already have ``net.dtype``; rows are gathered batch by batch into the
    workspace, so no further copy of X is made. ``val_score()`` scores the current weights on the
    internal validation split (early stopping); ``eval_metrics()`` returns extra per-epoch
    metrics for ``on_epoch``. ``history`` is filled as training goes, so a caller still sees a
    consistent record when an exception (from ``on_epoch``, or a DivergenceError) escapes. With
    early stopping the best weights are restored on every exit.
    """
    h = history if history is not None else History()
    idx = np.arange(X.shape[0]) if train_idx is None else np.array(train_idx, dtype=np.intp)
    n = idx.shape[0]
    B = max(1, min(int(cfg.batch_size), n))
    ws = Workspace(net, B, Y.shape[1])
    opt = make_optimizer(
        cfg.solver, net.theta.size, net.dtype, learning_rate_init=cfg.learning_rate_init,
        momentum=cfg.momentum, nesterovs_momentum=cfg.nesterovs_momentum,
        beta_1=cfg.beta_1, beta_2=cfg.beta_2, epsilon=cfg.epsilon,
    )
    early = cfg.early_stopping and val_score is not None
    h.validation_scores = [] if early else None
    best_theta = net.theta.copy() if early else None
    best_score, best_loss = -np.inf, np.inf
    no_improvement = 0
    last_good = net.theta.copy()  # weights at the start of the epoch, restored on divergence
    starts = range(0, n, B)
    theta, grad, alpha = net.theta, net.grad, cfg.alpha

    try:
        for epoch in range(1, cfg.max_iter + 1):
            if cfg.shuffle:
                rng.shuffle(idx)
            last_good[...] = theta
            total = 0.0
            with np.errstate(over="ignore", invalid="ignore", under="ignore", divide="ignore"):
                for start in starts:
                    rows = idx[start:start + B]
                    m = rows.shape[0]
                    ws.gather(X, Y, rows)
                    loss = net.loss_and_grad(ws, m, alpha)
                    if not math.isfinite(loss):
                        theta[...] = last_good
                        raise DivergenceError(
                            f"training diverged in epoch {epoch} (batch {start // B + 1}): "
                            f"loss = {loss}; lower learning_rate_init or scale the inputs"
                        )
                    opt.step(theta, grad)
                    total += loss * m
            if not np.isfinite(theta).all():  # the epoch's very last step blew up
                theta[...] = last_good
                raise DivergenceError(f"training diverged in epoch {epoch}: non-finite weights "
                                      "after the last batch; lower learning_rate_init")
            epoch_loss = total / n
            h.loss_curve.append(epoch_loss)
            h.n_iter = epoch
            if cfg.verbose:
                print(f"Iteration {epoch}, loss = {epoch_loss:.8f}")
            metrics = {"train_loss": epoch_loss}

            if early:
                score = float(val_score())
                h.validation_scores.append(score)
                metrics["val_score"] = score
                if cfg.verbose:
                    print(f"Validation score: {score:f}")
                no_improvement = no_improvement + 1 if score < best_score + cfg.tol else 0
                if score > best_score:
                    best_score = score
                    best_theta[...] = theta
                h.best_validation_score = best_score
            else:
                no_improvement = no_improvement + 1 if epoch_loss > best_loss - cfg.tol else 0
                best_loss = min(best_loss, epoch_loss)
                h.best_loss = best_loss

            if eval_metrics is not None:
                metrics.update(eval_metrics())
            if on_epoch is not None:
                on_epoch(epoch, metrics)

            if no_improvement > cfg.n_iter_no_change:
                if cfg.verbose:
                    what = "Validation score" if early else "Training loss"
                    print(f"{what} did not improve more than tol={cfg.tol:f} for "
                          f"{cfg.n_iter_no_change} consecutive epochs. Stopping.")
                h.converged = True
                break
    finally:
        if early and h.validation_scores:
            theta[...] = best_theta
    return h


def validation_split(
    y_codes: np.ndarray | None, n: int, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx): a random split, stratified by ``y_codes`` when given.

    Like scikit-learn's ``train_test_split``: ceil(fraction * n) validation rows, at least 2.
    """
    n_val = math.ceil(fraction * n)
    if n_val < 2 or n - n_val < 1:
        raise ValueError(
            f"the validation set is too small ({n_val} of {n} rows): increase "
            "validation_fraction or the number of samples, or set early_stopping=False"
        )
    perm = rng.permutation(n)
    if y_codes is None:
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])
    # stratified: each class gets its share of the validation rows (largest remainders first)
    codes = y_codes[perm]
    classes, counts = np.unique(codes, return_counts=True)
    exact = counts * (n_val / n)
    take = np.floor(exact).astype(int)
    order = np.argsort(-(exact - take), kind="stable")
    take[order[: n_val - take.sum()]] += 1
    val = np.concatenate([perm[codes == c][:k] for c, k in zip(classes, take, strict=True)])
    mask = np.ones(n, bool)
    mask[val] = False
    return np.flatnonzero(mask), np.sort(val)
