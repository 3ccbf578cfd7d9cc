"""Decisions chosen on out-of-fold predictions: how probabilities or values become what a label
metric scores, fitted to the metric instead of fixed at 0.5 / argmax / rounding.

    threshold      binary accuracy, f1, mcc: P(class 1) >= t, t maximising the metric
    class_weights  multiclass accuracy, f1_macro: argmax of P * w, w by coordinate ascent
    ordinal_cuts   qwk: the expected rating (sum_k k P_k, or the regression value) cut at
                   points found by coordinate search from the midpoints (plain rounding)
    none           every other metric: predictions are scored as they are

`choose` fits a decision on (y, out-of-fold predictions); `apply` turns predictions into class
codes (or integer ratings for qwk on a regression target), which `metrics` scores as labels.
`fold_scores` is the honest CV score of a decided metric: each fold is scored with the decision
chosen on the other folds' out-of-fold predictions, so no row helps choose its own decision.
A decision is a small frozen record that round-trips through JSON (`as_dict` / `from_dict`):
`submit` saves the one chosen on every out-of-fold row with the models and in the MLflow
model's scoring.json, so `pipeline predict` decides exactly as the submission did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.metrics import METRICS

KINDS = ("none", "threshold", "class_weights", "ordinal_cuts")
THRESHOLD_METRICS = ("accuracy", "f1", "mcc")  # binary
WEIGHT_METRICS = ("accuracy", "f1_macro")  # multiclass
WEIGHT_GRID = np.geomspace(0.25, 4.0, 25)  # multiplicative steps tried per class and round
ROUNDS = 4  # coordinate passes at most (each stops early once nothing improves)
CUT_STEPS = 40  # candidate positions per cut and pass
MAX_SEARCHED_RATINGS = 50  # more ratings than this: qwk keeps the midpoints (rounding)


@dataclass(frozen=True)
class Decision:
    kind: str = "none"  # one of KINDS
    values: tuple[float, ...] = ()  # threshold: (t,); class_weights: w per class; cuts, rising
    ratings: tuple[int, ...] = ()  # ordinal_cuts: the rating each interval gives, lowest first

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "values": [float(v) for v in self.values],
                "ratings": [int(r) for r in self.ratings]}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Decision:
        """The decision a file holds (None or {}: none); ValueError when it is not one."""
        if not d:
            return cls()
        kind, values, ratings = d.get("kind"), d.get("values", []), d.get("ratings", [])
        if kind not in KINDS:
            raise ValueError(f"decision kind {kind!r} is not one of {', '.join(KINDS)}")
        values = tuple(float(v) for v in values)
        ratings = tuple(int(r) for r in ratings)
        if kind == "ordinal_cuts" and len(ratings) != len(values) + 1:
            raise ValueError(f"ordinal_cuts needs one rating more than cuts: {d}")
        if kind == "threshold" and len(values) != 1:
            raise ValueError(f"a threshold decision holds one value: {d}")
        return cls(kind, values, ratings)

    def describe(self) -> str:
        """One line for a console or a log: `threshold 0.31`, `class_weights 1, 1.4, 0.8`."""
        if self.kind == "none":
            return "none"
        return f"{self.kind} " + ", ".join(f"{v:.4g}" for v in self.values)


def kind_for(metric: str, task: str) -> str:
    """The decision a metric on a task takes."""
    if task == "binary" and metric in THRESHOLD_METRICS:
        return "threshold"
    if task == "multiclass" and metric in WEIGHT_METRICS:
        return "class_weights"
    if metric == "qwk" and task in ("multiclass", "regression"):
        return "ordinal_cuts"
    return "none"


def choose(metric: str, task: str, y: np.ndarray, oof: np.ndarray) -> Decision:
    """The decision that maximises `metric` on the out-of-fold predictions `oof` of `y`.
    Rows without a prediction (NaN: time folds never validate their first block) are left out."""
    kind = kind_for(metric, task)
    y, oof = np.asarray(y), np.asarray(oof, dtype=np.float64)
    seen = ~np.isnan(oof.reshape(len(oof), -1)).any(axis=1)
    y, oof = y[seen], oof[seen]
    if kind == "threshold":
        return Decision(kind, (best_threshold(METRICS[metric], y.astype(np.int64), oof),))
    if kind == "class_weights":
        return Decision(kind, tuple(best_weights(METRICS[metric], y.astype(np.int64), oof)))
    if kind == "ordinal_cuts":
        return best_cuts(task, y, oof)
    return Decision()


def apply(decision: Decision, pred: np.ndarray) -> np.ndarray:
    """Class codes (threshold, class_weights), integer ratings (ordinal_cuts), or `pred` as it
    is (none). Deterministic: the same predictions always give the same answer."""
    pred = np.asarray(pred)
    kind, v = decision.kind, np.asarray(decision.values, dtype=np.float64)
    if kind == "threshold":
        return (pred >= v[0]).astype(np.int64)
    if kind == "class_weights":
        return np.argmax(pred * v, axis=1).astype(np.int64)
    if kind == "ordinal_cuts":
        rated = expected_rating(pred)
        return np.asarray(decision.ratings, dtype=np.int64)[np.searchsorted(v, rated,
                                                                            side="right")]
    return pred


def decide(metric: str, task: str, y: np.ndarray, oof: np.ndarray,
           folds: list[np.ndarray]) -> tuple[list[float], Decision]:
    """(fold scores, decision) in one pass over the folds.

    Per fold (its held-out rows), the metric of the decision chosen on the other folds'
    out-of-fold predictions, and `choose` on every row. The plain rule (0.5 / argmax /
    rounding) and its fold scores instead, for a metric without a decision and when the
    decisions do not beat it on average (tiny data: a weight per class chosen on 100 rows is
    noise)."""
    m = METRICS[metric]
    y, oof = np.asarray(y), np.asarray(oof)
    plain = [m(y[va], oof[va]) for va in folds]
    if kind_for(metric, task) == "none":
        return plain, Decision()
    decided = []
    for va in folds:
        rest = np.ones(len(y), dtype=bool)
        rest[va] = False
        decision = choose(metric, task, y[rest], oof[rest])
        decided.append(m(y[va], apply(decision, oof[va])))
    if _better(float(np.mean(decided)), float(np.mean(plain))):
        return decided, choose(metric, task, y, oof)
    if kind_for(metric, task) == "ordinal_cuts" and task == "regression":  # rounding
        return plain, best_cuts(task, y, oof, search=False)
    return plain, Decision()


def fold_scores(metric: str, task: str, y: np.ndarray, oof: np.ndarray,
                folds: list[np.ndarray]) -> list[float]:
    """The honest CV fold scores of `decide`."""
    return decide(metric, task, y, oof, folds)[0]


def choose_if_better(metric: str, task: str, y: np.ndarray, oof: np.ndarray,
                     folds: list[np.ndarray]) -> Decision:
    """The decision of `decide`: chosen on every out-of-fold row, kept only when the ones
    chosen on other folds beat the plain rule."""
    return decide(metric, task, y, oof, folds)[1]


# --- the searches --------------------------------------------------------------------------


def _better(score: float, best: float) -> bool:
    return score > best + 1e-12  # ties keep what we have: the plain rule, or the earlier step


def best_threshold(metric: Any, y: np.ndarray, p: np.ndarray) -> float:
    """The threshold maximising the metric over every cut between distinct OOF values (a
    quantile grid of 1,000 above that many), scored from cumulative counts in one pass; ties
    go to the threshold nearest 0.5. Thresholds sit midway between neighbouring values."""
    u = np.unique(p)
    if len(u) > 1000:
        u = np.unique(np.quantile(p, np.linspace(0, 1, 1001)))
    cuts = np.concatenate([[u[0]], (u[1:] + u[:-1]) / 2, [np.nextafter(u[-1], np.inf)]])
    pos = np.sort(p[y == 1])
    neg = np.sort(p[y == 0])
    tp = len(pos) - np.searchsorted(pos, cuts, side="left")  # predicted 1: p >= cut
    fp = len(neg) - np.searchsorted(neg, cuts, side="left")
    fn, tn = len(pos) - tp, len(neg) - fp
    scores = _confusion_score(metric.name, tp, fp, fn, tn)
    best = scores.max()
    near = np.flatnonzero(scores >= best - 1e-12)
    plain = _confusion_score(metric.name, *_counts_at(pos, neg, 0.5))[0]
    if not _better(float(best), float(plain)):
        return 0.5
    return float(cuts[near[np.argmin(np.abs(cuts[near] - 0.5))]])


def _counts_at(pos: np.ndarray, neg: np.ndarray, t: float) -> tuple[np.ndarray, ...]:
    tp = np.array([np.sum(pos >= t)])
    fp = np.array([np.sum(neg >= t)])
    return tp, fp, len(pos) - tp, len(neg) - fp


def _confusion_score(name: str, tp: np.ndarray, fp: np.ndarray, fn: np.ndarray,
                     tn: np.ndarray) -> np.ndarray:
    """accuracy / f1 / mcc from counts, as scikit-learn defines them (0 where undefined)."""
    tp, fp, fn, tn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn, tn))
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "accuracy":
            return (tp + tn) / (tp + fp + fn + tn)
        if name == "f1":
            return np.nan_to_num(2 * tp / (2 * tp + fp + fn))
        denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        return np.where(denom > 0, (tp * tn - fp * fn) / np.where(denom > 0, denom, 1), 0.0)


def _multiclass_score(name: str, y: np.ndarray, codes: np.ndarray, k: int) -> float:
    """accuracy / f1_macro from the confusion matrix (f1_macro over the classes present in y
    or the predictions, as scikit-learn averages)."""
    cm = np.bincount(y * k + codes, minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(np.float64)
    if name == "accuracy":
        return float(tp.sum() / cm.sum())
    support = cm.sum(axis=1) + cm.sum(axis=0)
    present = support > 0
    return float(np.mean(2 * tp[present] / support[present]))


def best_weights(metric: Any, y: np.ndarray, p: np.ndarray) -> list[float]:
    """Per-class weights on the probabilities by coordinate ascent: each class's weight in
    turn is multiplied by the grid's factors, keeping the best; rounds until nothing helps."""
    k = p.shape[1]
    w = np.ones(k)
    best = _multiclass_score(metric.name, y, np.argmax(p, axis=1), k)
    for _ in range(ROUNDS):
        improved = False
        for j in range(k):
            for factor in WEIGHT_GRID:
                trial = w.copy()
                trial[j] *= factor
                score = _multiclass_score(metric.name, y, np.argmax(p * trial, axis=1), k)
                if _better(score, best):
                    best, w, improved = score, trial, True
        if not improved:
            break
    return list(w / w.max())


def expected_rating(pred: np.ndarray) -> np.ndarray:
    """The value to cut: sum_k k P_k for class probabilities, the prediction for values."""
    pred = np.asarray(pred, dtype=np.float64)
    return pred @ np.arange(pred.shape[1]) if pred.ndim == 2 else pred


def _qwk(t: np.ndarray, q: np.ndarray, r: int) -> float:
    """Quadratic weighted kappa of rating indices in [0, r), from the confusion matrix."""
    observed = np.bincount(t * r + q, minlength=r * r).reshape(r, r).astype(np.float64)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    i = np.arange(r)
    weights = (i[:, None] - i[None, :]) ** 2
    denom = float((weights * expected).sum())
    return 1.0 - float((weights * observed).sum()) / denom if denom > 0 else 0.0


def best_cuts(task: str, y: np.ndarray, oof: np.ndarray, *, search: bool = True) -> Decision:
    """Cut points on the expected rating, from the midpoints between ratings (rounding),
    moved one at a time to the best of CUT_STEPS positions between its neighbours
    (`search=False`: the midpoints, i.e. rounding to the nearest rating seen)."""
    if task == "multiclass":
        ratings = np.arange(oof.shape[1])
        t = np.asarray(y, dtype=np.int64)
    else:
        ratings = np.unique(np.rint(np.asarray(y, dtype=np.float64))).astype(np.int64)
        t = np.searchsorted(ratings, np.rint(np.asarray(y, dtype=np.float64)))
    value, r = expected_rating(oof), len(ratings)
    cuts = (ratings[1:] + ratings[:-1]) / 2.0 if task == "regression" else np.arange(r - 1) + 0.5
    if r < 2 or r > MAX_SEARCHED_RATINGS or not search:  # nothing to cut, or too many
        return Decision("ordinal_cuts", tuple(float(c) for c in cuts),
                        tuple(int(v) for v in ratings))
    best = _qwk(t, np.searchsorted(cuts, value, side="right"), r)
    lo_all, hi_all = float(value.min()), float(value.max())
    for _ in range(ROUNDS):
        improved = False
        for i in range(r - 1):
            lo = cuts[i - 1] if i > 0 else min(lo_all, cuts[i]) - 1e-9
            hi = cuts[i + 1] if i < r - 2 else max(hi_all, cuts[i]) + 1e-9
            for c in np.linspace(lo, hi, CUT_STEPS + 2)[1:-1]:
                trial = cuts.copy()
                trial[i] = c
                score = _qwk(t, np.searchsorted(trial, value, side="right"), r)
                if _better(score, best):
                    best, cuts, improved = score, trial, True
        if not improved:
            break
    return Decision("ordinal_cuts", tuple(float(c) for c in cuts), tuple(int(v) for v in ratings))
