"""The fit loop: mini-batches, optimiser steps, the stopping rule, callbacks.

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
from .optimizers import make_optimizer, schedule_factor
from .params import TRAINING_PARAMS, config_class

EpochCallback = Callable[[int, dict[str, float]], object]

TrainConfig = config_class(
    "TrainConfig", TRAINING_PARAMS,
    "The fit loop's settings: a frozen dataclass of the hyperparameter table's training "
    "entries (names, defaults and meanings in params.PARAMS); values are already validated.",
)


@dataclass
class History:
    loss_curve: list[float] = field(default_factory=list)
    validation_scores: list[float] | None = None
    best_loss: float | None = None
    best_validation_score: float | None = None
    n_iter: int = 0
    best_epoch: int = 0  # the epoch whose weights were kept (early stopping), else the last
    converged: bool = False  # stopped by the tol / n_iter_no_change rule (else: max_iter)


class StoppingRule:
    """scikit-learn's rule: stop after ``n_iter_no_change`` epochs without a ``tol`` gain.

    With a validation score (early stopping) the best epoch's weights are kept in
    ``best_theta`` and ``restore`` puts them back; otherwise the training loss is watched.
    """

    def __init__(self, cfg: TrainConfig, theta: np.ndarray, h: History, early: bool) -> None:
        self.cfg, self.theta, self.h, self.early = cfg, theta, h, early
        self.best_theta = theta.copy() if early else None
        self.best_score, self.best_loss = -np.inf, np.inf
        self.no_improvement = 0
        h.validation_scores = [] if early else None

    def update(self, epoch: int, epoch_loss: float, score: float | None) -> None:
        tol, h = self.cfg.tol, self.h
        if self.early:
            h.validation_scores.append(score)
            self.no_improvement = self.no_improvement + 1 if score < self.best_score + tol else 0
            if score > self.best_score:
                self.best_score = score
                self.best_theta[...] = self.theta
                h.best_epoch = epoch
            h.best_validation_score = self.best_score
        else:
            h.best_epoch = epoch
            worse = epoch_loss > self.best_loss - tol
            self.no_improvement = self.no_improvement + 1 if worse else 0
            self.best_loss = min(self.best_loss, epoch_loss)
            h.best_loss = self.best_loss

    @property
    def stop(self) -> bool:
        return self.no_improvement > self.cfg.n_iter_no_change

    def restore(self) -> None:
        if self.early and self.h.validation_scores:
            self.theta[...] = self.best_theta


def fit_loop(
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
    batch = max(1, min(int(cfg.batch_size), idx.shape[0]))
    ws = Workspace(net, batch, Y.shape[1])
    opt = make_optimizer(
        cfg.solver, net.theta.size, net.dtype, learning_rate_init=cfg.learning_rate_init,
        momentum=cfg.momentum, nesterovs_momentum=cfg.nesterovs_momentum,
        beta_1=cfg.beta_1, beta_2=cfg.beta_2, epsilon=cfg.epsilon,
        weight_decay=cfg.weight_decay, n_decay=net.n_coef,
    )
    steps = Steps(cfg, math.ceil(idx.shape[0] / batch), batch, rng)
    rule = StoppingRule(cfg, net.theta, h, early=cfg.early_stopping and val_score is not None)
    try:
        for epoch in range(1, cfg.max_iter + 1):
            if cfg.shuffle:
                rng.shuffle(idx)
            epoch_loss = run_epoch(net, ws, opt, X, Y, idx, steps, epoch)
            h.loss_curve.append(epoch_loss)
            h.n_iter = epoch
            metrics = {"train_loss": epoch_loss}
            score = float(val_score()) if rule.early else None
            if score is not None:
                metrics["val_score"] = score
            rule.update(epoch, epoch_loss, score)
            if cfg.verbose:
                print(f"Iteration {epoch}, loss = {epoch_loss:.8f}")
                if score is not None:
                    print(f"Validation score: {score:f}")
            if eval_metrics is not None:
                metrics.update(eval_metrics())
            if on_epoch is not None:
                on_epoch(epoch, metrics)
            if rule.stop:
                if cfg.verbose:
                    what = "Validation score" if rule.early else "Training loss"
                    print(f"{what} did not improve more than tol={cfg.tol:f} for "
                          f"{cfg.n_iter_no_change} consecutive epochs. Stopping.")
                h.converged = True
                break
    finally:
        rule.restore()
    return h


class Steps:
    """What each optimiser step needs besides the batch: its learning rate (warm-up and
    schedule, over max_iter epochs) and, with dropout, fresh masks."""

    def __init__(self, cfg: TrainConfig, per_epoch: int, batch: int,
                 rng: np.random.Generator) -> None:
        self.cfg, self.per_epoch, self.batch, self.rng = cfg, per_epoch, batch, rng
        self.total = cfg.max_iter * per_epoch
        self.warmup = cfg.warmup_epochs * per_epoch
        self.scheduled = cfg.lr_schedule != "constant" or self.warmup > 0

    def before(self, step: int, opt: object, ws: Workspace, net: Network, m: int) -> None:
        if self.scheduled:
            opt.lr = self.cfg.learning_rate_init * schedule_factor(
                self.cfg.lr_schedule, step, self.total, self.warmup)
        if net.dropout > 0:
            ws.draw_masks(self.rng, m)


def run_epoch(net: Network, ws: Workspace, opt: object, X: np.ndarray, Y: np.ndarray,
              idx: np.ndarray, steps: Steps, epoch: int) -> float:
    """One pass over the rows ``idx`` in batches; returns the mean batch loss.

    A non-finite loss or weights put the epoch's starting weights back and raise
    DivergenceError.
    """
    theta, grad, last_good = net.theta, net.grad, ws.last_good
    last_good[...] = theta
    total, n, batch, alpha = 0.0, idx.shape[0], steps.batch, steps.cfg.alpha
    first = (epoch - 1) * steps.per_epoch
    with np.errstate(over="ignore", invalid="ignore", under="ignore", divide="ignore"):
        for k, start in enumerate(range(0, n, batch)):
            rows = idx[start:start + batch]
            m = rows.shape[0]
            ws.gather(X, Y, rows)
            steps.before(first + k, opt, ws, net, m)
            loss = net.loss_and_grad(ws, m, alpha)
            if not math.isfinite(loss):
                theta[...] = last_good
                raise DivergenceError(
                    f"training diverged in epoch {epoch} (batch {start // batch + 1}): "
                    f"loss = {loss}; lower learning_rate_init or scale the inputs"
                )
            opt.step(theta, grad)
            total += loss * m
    if not np.isfinite(theta).all():  # the epoch's very last step blew up
        theta[...] = last_good
        raise DivergenceError(f"training diverged in epoch {epoch}: non-finite weights "
                              "after the last batch; lower learning_rate_init")
    return total / n


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
