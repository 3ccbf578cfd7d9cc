"""Decisions chosen on out-of-fold predictions: thresholds, class weights, ordinal cuts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from pipeline.decision import Decision, apply, choose, fold_scores, kind_for
from pipeline.metrics import METRICS

rng = np.random.default_rng(0)


def imbalanced(n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """10% positives whose probabilities sit mostly below 0.5: 0.5 misses most of them."""
    y = (rng.random(n) < 0.1).astype(np.int64)
    p = np.clip(0.15 + 0.25 * y + 0.12 * rng.standard_normal(n), 0, 1)
    return y, p


@pytest.mark.parametrize("metric", ["f1", "mcc", "accuracy"])
def test_threshold_beats_one_half_on_an_imbalanced_set(metric):
    y, p = imbalanced()
    d = choose(metric, "binary", y, p)
    assert d.kind == "threshold"
    decided, plain = METRICS[metric](y, apply(d, p)), METRICS[metric](y, p)
    assert decided >= plain
    if metric == "f1":
        assert decided > plain + 0.1 and d.values[0] < 0.5
    # the search is exhaustive over cuts between OOF values: no threshold scores higher
    grid = [METRICS[metric](y, (p >= t).astype(np.int64)) for t in np.linspace(0, 1, 41)]
    assert decided >= max(grid) - 1e-12


def test_threshold_scores_match_scikit_learn_at_the_chosen_threshold():
    y, p = imbalanced(500)
    d = choose("mcc", "binary", y, p)
    codes = apply(d, p)
    assert codes.dtype == np.int64
    assert METRICS["mcc"](y, codes) == pytest.approx(skm.matthews_corrcoef(y, p >= d.values[0]))


def test_threshold_stays_at_one_half_when_nothing_beats_it():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.8, 0.9])
    assert choose("accuracy", "binary", y, p).values == (0.5,)


def multiclass(n: int = 1500, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Rare classes 2 and 3 are under-predicted by argmax: their probabilities run low."""
    y = rng.choice(k, n, p=[0.45, 0.35, 0.12, 0.08])
    logits = rng.standard_normal((n, k)) * 0.8
    logits[np.arange(n), y] += 1.2
    logits[:, 2:] -= 1.0
    p = np.exp(logits)
    return y, p / p.sum(axis=1, keepdims=True)


def test_class_weights_raise_f1_macro():
    y, p = multiclass()
    d = choose("f1_macro", "multiclass", y, p)
    assert d.kind == "class_weights" and len(d.values) == 4
    decided = METRICS["f1_macro"](y, apply(d, p))
    assert decided == pytest.approx(skm.f1_score(y, apply(d, p), average="macro"))
    assert decided > METRICS["f1_macro"](y, p) + 0.02


def ordinal(n: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    """Ratings 1-5 and a regression output squeezed towards the middle (as a squared loss
    does): rounding puts too few rows in the outer ratings."""
    y = rng.integers(1, 6, n).astype(np.float64)
    pred = 3 + 0.5 * (y - 3) + 0.5 * rng.standard_normal(n)
    return y, pred


def test_qwk_cuts_beat_rounding_on_a_regression_target():
    y, pred = ordinal()
    d = choose("qwk", "regression", y, pred)
    assert d.kind == "ordinal_cuts" and d.ratings == (1, 2, 3, 4, 5)
    rated = apply(d, pred)
    assert rated.dtype == np.int64 and set(rated) <= {1, 2, 3, 4, 5}
    assert METRICS["qwk"](y, rated) > METRICS["qwk"](y, pred) + 0.02
    assert list(d.values) == sorted(d.values)


def test_qwk_cuts_on_class_probabilities_use_the_expected_rating():
    y, pred = ordinal()
    codes = (y - 1).astype(np.int64)
    centres = np.arange(5)
    p = np.exp(-((pred - 1)[:, None] - centres[None, :]) ** 2)
    p /= p.sum(axis=1, keepdims=True)
    d = choose("qwk", "multiclass", codes, p)
    assert d.ratings == (0, 1, 2, 3, 4)
    assert METRICS["qwk"](codes, apply(d, p)) > METRICS["qwk"](codes, p)


def test_apply_is_deterministic_and_round_trips_through_json():
    y, p = imbalanced(300)
    for metric, task, yy, pp in [("f1", "binary", y, p), ("f1_macro", "multiclass",
                                                          *multiclass(300)),
                                 ("qwk", "regression", *ordinal(300))]:
        d = choose(metric, task, yy, pp)
        again = Decision.from_dict(json.loads(json.dumps(d.as_dict())))
        assert again == d
        assert np.array_equal(apply(again, pp), apply(d, pp))
        assert np.array_equal(apply(d, pp.copy()), apply(d, pp))
        assert choose(metric, task, yy, pp) == d  # the search itself is deterministic


def test_metrics_without_a_decision_pass_predictions_through():
    assert kind_for("roc_auc", "binary") == "none" and kind_for("rmse", "regression") == "none"
    assert kind_for("f1", "binary") == "threshold" and kind_for("qwk", "regression") != "none"
    p = np.array([0.2, 0.7])
    assert apply(choose("roc_auc", "binary", np.array([0, 1]), p), p) is not None
    assert np.array_equal(apply(Decision(), p), p)
    assert Decision.from_dict(None) == Decision()
    with pytest.raises(ValueError, match="decision kind"):
        Decision.from_dict({"kind": "magic"})


def test_fold_scores_choose_on_the_other_folds_only():
    y, p = imbalanced(1000)
    folds = np.array_split(np.arange(1000), 4)
    honest = fold_scores("f1", "binary", y, p, folds)
    plain = [METRICS["f1"](y[va], p[va]) for va in folds]
    assert np.mean(honest) > np.mean(plain)
    chosen_here = [METRICS["f1"](y[va], apply(choose("f1", "binary", y[va], p[va]), p[va]))
                   for va in folds]
    assert np.mean(honest) <= np.mean(chosen_here)  # choosing on the scored rows flatters
    assert fold_scores("roc_auc", "binary", y, p, folds) == [
        METRICS["roc_auc"](y[va], p[va]) for va in folds]


def test_rows_without_an_oof_prediction_are_left_out():
    """Time folds never validate their first block: those rows hold NaN."""
    y, p = imbalanced(600)
    gap = p.copy()
    gap[:100] = np.nan
    assert choose("f1", "binary", y, gap) == choose("f1", "binary", y[100:], p[100:])
    folds = np.array_split(np.arange(100, 600), 3)
    assert np.isfinite(fold_scores("f1", "binary", y, gap, folds)).all()


def test_qwk_on_hundreds_of_ratings_keeps_rounding_instead_of_searching():
    y = np.arange(300, dtype=np.float64)
    d = choose("qwk", "regression", y, y + 0.3)
    assert d.values == tuple(np.arange(300)[:-1] + 0.5)
    assert np.array_equal(apply(d, y + 0.3), y.astype(np.int64))


def test_a_decision_that_does_not_beat_the_plain_rule_out_of_fold_is_not_kept():
    """Weights chosen in-sample on a few rows can look better and be noise: a decision is kept
    only when the ones chosen on other folds beat argmax on the held-out folds."""
    from pipeline.decision import choose_if_better

    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(3), 20)
    p = rng.dirichlet(np.ones(3), 60)  # no signal: in-sample weights still find "gains"
    folds = [np.arange(i, 60, 5) for i in range(5)]
    plain = [METRICS["f1_macro"](y[va], p[va]) for va in folds]
    assert choose("f1_macro", "multiclass", y, p).kind == "class_weights"  # in-sample: found
    assert choose_if_better("f1_macro", "multiclass", y, p, folds) == Decision()
    assert fold_scores("f1_macro", "multiclass", y, p, folds) == plain  # 0.197 decided: worse
    # a real gain is kept: a class the probabilities understate
    p2 = np.eye(3)[y] * 0.5 + 0.25
    p2[:, 2] *= 0.3
    kept = choose_if_better("f1_macro", "multiclass", y, p2, folds)
    assert kept.kind == "class_weights" and np.mean(
        fold_scores("f1_macro", "multiclass", y, p2, folds)) > np.mean(
        [METRICS["f1_macro"](y[va], p2[va]) for va in folds])
