"""Every metric against scikit-learn's implementation, or Kaggle's definition where sklearn has
none; the task each fits; MLflow-safe keys."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from pipeline.metrics import METRICS, fit_problem, metrics_for, to_labels, top_k, top_k_of

rng = np.random.default_rng(0)
N = 200
y_bin = rng.integers(0, 2, N)
p_bin = np.clip(y_bin * 0.3 + rng.random(N) * 0.7, 0, 1)
y_multi = rng.integers(0, 4, N)
p_multi = rng.dirichlet(np.ones(4), N)
p_multi[np.arange(N), y_multi] += 0.3
p_multi /= p_multi.sum(axis=1, keepdims=True)
y_reg = rng.gamma(2.0, 50.0, N)
p_reg = y_reg * rng.uniform(0.7, 1.3, N)


@pytest.mark.parametrize(("name", "y", "p", "reference"), [
    ("f1", y_bin, p_bin, lambda: skm.f1_score(y_bin, p_bin >= 0.5)),
    ("mcc", y_bin, p_bin, lambda: skm.matthews_corrcoef(y_bin, p_bin >= 0.5)),
    ("f1_macro", y_multi, p_multi,
     lambda: skm.f1_score(y_multi, p_multi.argmax(1), average="macro")),
    ("roc_auc_ovr", y_multi, p_multi,
     lambda: skm.roc_auc_score(y_multi, p_multi, multi_class="ovr")),
    ("qwk", y_multi, p_multi,
     lambda: skm.cohen_kappa_score(y_multi, p_multi.argmax(1), weights="quadratic")),
    ("rmsle", y_reg, p_reg, lambda: skm.root_mean_squared_log_error(y_reg, p_reg)),
    ("mae", y_reg, p_reg, lambda: skm.mean_absolute_error(y_reg, p_reg)),
    ("r2", y_reg, p_reg, lambda: skm.r2_score(y_reg, p_reg)),
    ("mape", y_reg, p_reg, lambda: skm.mean_absolute_percentage_error(y_reg, p_reg)),
    ("rmse", y_reg, p_reg, lambda: skm.root_mean_squared_error(y_reg, p_reg)),
    ("accuracy", y_multi, p_multi, lambda: skm.accuracy_score(y_multi, p_multi.argmax(1))),
    ("log_loss", y_bin, p_bin, lambda: skm.log_loss(y_bin, p_bin)),
    ("roc_auc", y_bin, p_bin, lambda: skm.roc_auc_score(y_bin, p_bin)),
])
def test_matches_scikit_learn(name, y, p, reference):
    assert METRICS[name](y, p) == pytest.approx(reference(), rel=1e-12, abs=1e-12)


def test_label_metrics_take_codes_as_well_as_probabilities():
    codes = (p_bin >= 0.3).astype(np.int64)  # a tuned threshold, decided elsewhere
    assert METRICS["f1"](y_bin, codes) == pytest.approx(skm.f1_score(y_bin, codes))
    assert np.array_equal(to_labels(codes), codes)
    assert METRICS["f1_macro"](y_multi, p_multi.argmax(1)) == METRICS["f1_macro"](y_multi, p_multi)


def test_qwk_on_a_regression_target_rounds_and_clips_to_the_ratings():
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 3.0])
    p = np.array([0.6, 2.4, 3.5, 4.49, 9.0, 2.6])  # -> 1, 2, 4, 4, 5 (clipped), 3
    expected = skm.cohen_kappa_score([1, 2, 3, 4, 5, 3], [1, 2, 4, 4, 5, 3], weights="quadratic")
    assert METRICS["qwk"](y, p) == pytest.approx(expected)


def test_rmsle_scores_a_negative_prediction_as_zero():
    y = np.array([0.0, 1.0, 10.0])
    assert METRICS["rmsle"](y, np.array([-3.0, 1.0, 10.0])) == pytest.approx(0.0)


def apk(actual: int, predicted: list[int], k: int) -> float:
    """benhamner/Metrics' apk (Kaggle's reference code), one true label."""
    score, hits = 0.0, 0.0
    for i, p in enumerate(predicted[:k]):
        if p == actual and p not in predicted[:i]:
            hits += 1.0
            score += hits / (i + 1.0)
    return score / min(1, k)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_map_at_k_is_kaggles_mean_average_precision(k):
    metric = METRICS[f"map@{k}"]
    ranked = np.argsort(-p_multi, axis=1, kind="stable")
    expected = np.mean([apk(int(t), list(r), k) for t, r in zip(y_multi, ranked, strict=True)])
    assert metric(y_multi, p_multi) == pytest.approx(expected)
    assert metric(y_multi, ranked[:, :k]) == pytest.approx(expected)  # ranked codes as well
    assert top_k_of(metric) == k and metric.key == f"map_at_{k}"


def test_map_hand_example():
    y = np.array([0, 1, 2, 3])
    top = np.array([[0, 1, 2], [0, 1, 2], [0, 1, 2], [0, 1, 2]])
    assert METRICS["map@3"](y, top) == pytest.approx((1 + 1 / 2 + 1 / 3 + 0) / 4)
    assert np.array_equal(top_k(np.array([[0.2, 0.5, 0.3]]), 2), [[1, 2]])


def test_mean_roc_auc_is_the_mean_of_the_columns_auc():
    y = np.column_stack([y_bin, 1 - y_bin, rng.integers(0, 2, N)])
    p = np.column_stack([p_bin, rng.random(N), rng.random(N)])
    expected = np.mean([skm.roc_auc_score(y[:, j], p[:, j]) for j in range(3)])
    assert METRICS["mean_roc_auc"](y, p) == pytest.approx(expected)


def test_every_metric_names_its_task_and_an_mlflow_safe_key():
    import re

    for name in [*metrics_for("binary"), *metrics_for("multiclass"), *metrics_for("regression"),
                 "mean_roc_auc", "map@12"]:
        m = METRICS[name]
        assert m.direction in ("maximize", "minimize") and m.tasks
        assert re.fullmatch(r"[\w\-./ ]+", m.key), m.key
    assert metrics_for("binary", multi_target=True) == ("mean_roc_auc",)
    assert "rmsle" in metrics_for("regression", multi_target=True)  # value metrics: any columns


@pytest.mark.parametrize(("name", "task", "fits"), [
    ("rmsle", "regression", True), ("mae", "regression", True), ("r2", "regression", True),
    ("mape", "regression", True), ("f1", "binary", True), ("mcc", "binary", True),
    ("f1_macro", "multiclass", True), ("roc_auc_ovr", "multiclass", True),
    ("qwk", "multiclass", True), ("qwk", "regression", True), ("map@3", "multiclass", True),
    ("f1", "multiclass", False), ("f1_macro", "binary", False), ("qwk", "binary", False),
    ("map@3", "binary", False), ("rmsle", "binary", False), ("roc_auc_ovr", "binary", False),
    ("mean_roc_auc", "binary", False),
])
def test_which_metric_fits_which_task(name, task, fits):
    assert (fit_problem(name, task) is None) == fits
    if not fits:
        assert task in fit_problem(name, task)


def test_unknown_metric_lists_the_known_ones():
    assert "map@k" in fit_problem("auc", "binary")
    assert "map@100" not in METRICS and "map@0" not in METRICS and 3 not in METRICS


def test_loading_an_experiment_does_not_import_scikit_learn():
    """Every command loads an experiment, which checks its metric here: scikit-learn (~1.5 s)
    is imported at the first score, not then."""
    import subprocess
    import sys

    code = ("import sys, pipeline.experiment, pipeline.metrics; "
            "print(','.join(m for m in ('sklearn', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
