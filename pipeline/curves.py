"""Per-epoch curves of a cross-validation: the keys, per-fold accumulation, the fold mean.

One fold's curve maps each key to one value per epoch. `evaluate` fills them for its result and
`tracking` for the run it logs, from the same per-epoch reports.
"""

from __future__ import annotations

from collections.abc import Mapping

CURVE_KEYS = ("train_loss", "val_loss", "val_error")
# per hidden layer k: `saturation/layer_k` ... (network.diagnostics), recorded when present
HEALTH_PREFIXES = ("saturation/", "grad_norm/", "weight_norm/", "update_ratio/")
Curve = dict[str, list[float]]
# A run's metric keys for the curves. MLflow 3's charts view groups cards into sections by the
# key's prefix (before the last '/'), sorted by name, with unprefixed keys last ("Model
# metrics"): the fold mean's prefix sorts before `fold0`, so its chart leads.
MEAN_PREFIX = "cv_mean/"


def mean_key(key: str) -> str:
    """`cv_mean/val_loss`: the fold mean of one curve key, as logged."""
    return MEAN_PREFIX + key


def fold_key(fold: int, key: str) -> str:
    """`fold0/val_loss`: one fold's curve, as logged."""
    return f"fold{fold}/{key}"


def record(curves: list[Curve], fold: int, metrics: Mapping[str, float]) -> None:
    """Append one epoch's values to fold `fold`'s curve, creating the folds up to it."""
    while len(curves) <= fold:
        curves.append({k: [] for k in CURVE_KEYS})
    for key in CURVE_KEYS:
        if key in metrics:
            curves[fold][key].append(float(metrics[key]))
    for key, value in metrics.items():
        if key.startswith(HEALTH_PREFIXES):
            curves[fold].setdefault(key, []).append(float(value))


def curve_keys(curves: list[Curve]) -> list[str]:
    """The loss keys, then the layers' health keys the folds hold, in first-seen order."""
    extra = dict.fromkeys(k for c in curves for k in c if k not in CURVE_KEYS)
    return [*CURVE_KEYS, *extra]


def mean_curves(curves: list[Curve]) -> Curve:
    """Fold mean per epoch, over the folds that reached that epoch (folds stop early)."""
    out: Curve = {}
    for key in curve_keys(curves):
        series = [c.get(key, []) for c in curves if c.get(key)]
        if not series:
            continue
        longest = max(len(s) for s in series)
        out[key] = [
            sum(s[i] for s in series if i < len(s)) / sum(1 for s in series if i < len(s))
            for i in range(longest)
        ]
    return out
