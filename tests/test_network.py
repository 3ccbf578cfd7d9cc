"""The NumPy sigmoid network: math against scikit-learn, learning, callbacks, errors, files."""

import json
import math
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.neural_network import MLPClassifier, MLPRegressor

from pipeline.network import (
    DivergenceError,
    ModelFileError,
    SigmoidNetworkClassifier,
    SigmoidNetworkRegressor,
    load_model,
)
from pipeline.network.core import Network
from pipeline.network.losses import binary_loss_delta_, multiclass_loss_delta_
from pipeline.network.optimizers import SGD, Adam
from pipeline.network.training import History, TrainConfig, fit_loop

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def blobs(n=300, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0], [5.0, 5.0]])[:k]
    codes = rng.integers(0, k, n)
    return centers[codes] + rng.normal(0, 1, (n, 2)), codes


# ---------------------------------------------------------------- math against scikit-learn
@pytest.mark.parametrize("n_classes", [2, 3])
def test_loss_and_probabilities_match_sklearn_on_identical_weights(n_classes):
    X, y = blobs(n=200, k=n_classes)
    alpha = 0.01
    mlp = MLPClassifier(hidden_layer_sizes=(5, 4), activation="logistic", alpha=alpha,
                        max_iter=3, random_state=0).fit(X, y)
    ours = SigmoidNetworkClassifier(hidden_layer_sizes=(5, 4), dtype="float64", max_iter=1)
    ours.fit(X, y)
    ours.coefs_ = [W.copy() for W in mlp.coefs_]
    ours.intercepts_ = [b.copy() for b in mlp.intercepts_]
    np.testing.assert_allclose(ours.predict_proba(X), mlp.predict_proba(X), rtol=1e-10)
    np.testing.assert_array_equal(ours.predict(X), mlp.predict(X))

    l2 = 0.5 * alpha * sum(float((W**2).sum()) for W in mlp.coefs_) / len(X)
    expected = log_loss(y, mlp.predict_proba(X)) + l2
    Y = np.eye(n_classes)[y] if n_classes > 2 else y.reshape(-1, 1).astype(float)
    assert ours._network().loss(X, Y, alpha) == pytest.approx(expected, rel=1e-10)


def test_regression_loss_matches_sklearn_on_identical_weights():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((100, 3))
    y = X @ [1.0, -2.0, 0.5] + 0.1 * rng.standard_normal(100)
    mlp = MLPRegressor(hidden_layer_sizes=(6,), activation="tanh", max_iter=2,
                       random_state=0).fit(X, y)
    ours = SigmoidNetworkRegressor(hidden_layer_sizes=(6,), activation="tanh", dtype="float64",
                                   max_iter=1, scale_target=False).fit(X, y)
    ours.coefs_, ours.intercepts_ = mlp.coefs_, mlp.intercepts_
    np.testing.assert_allclose(ours.predict(X), mlp.predict(X), rtol=1e-10)
    expected = 0.5 * np.mean((y - mlp.predict(X)) ** 2)  # sklearn's squared_loss, alpha=0
    assert ours._network().loss(X, y.reshape(-1, 1)) == pytest.approx(expected, rel=1e-10)


def test_stopping_rule_matches_sklearn():
    """With a huge tol no epoch counts as an improvement: both stop after n_iter_no_change + 2."""
    X, y = blobs(n=100, k=2)
    kw = dict(hidden_layer_sizes=(4,), tol=1e9, n_iter_no_change=3, max_iter=50, random_state=0)
    ours = SigmoidNetworkClassifier(**kw).fit(X, y)
    mlp = MLPClassifier(activation="logistic", **kw).fit(X, y)
    assert ours.n_iter_ == mlp.n_iter_ == 5
    assert ours.best_loss_ == min(ours.loss_curve_)
    assert ours.validation_scores_ is None


def _sgd(nesterov):
    from sklearn.neural_network._stochastic_optimizers import SGDOptimizer

    return (lambda: SGD(10, np.float64, learning_rate=0.1, momentum=0.9, nesterov=nesterov),
            lambda ref: SGDOptimizer(ref, learning_rate_init=0.1, momentum=0.9,
                                     nesterov=nesterov))


def _adam():
    from sklearn.neural_network._stochastic_optimizers import AdamOptimizer

    return (lambda: Adam(10, np.float64, learning_rate=0.01),
            lambda ref: AdamOptimizer(ref, learning_rate_init=0.01))


@pytest.mark.parametrize("make", [lambda: _sgd(True), lambda: _sgd(False), _adam],
                         ids=["sgd-nesterov", "sgd", "adam"])
def test_optimizer_step_matches_sklearn(make):
    make_ours, make_sk = make()
    rng = np.random.default_rng(0)
    theta = rng.standard_normal(10)
    ref = [theta.copy()]
    ours, sk = make_ours(), make_sk(ref)
    for _ in range(5):
        g = rng.standard_normal(10)
        sk.update_params(ref, [g.copy()])
        ours.step(theta, g.copy())
    np.testing.assert_allclose(theta, ref[0], rtol=1e-12)


def test_losses_are_stable_for_extreme_logits():
    Z = np.array([[1000.0], [-1000.0], [0.0]], dtype=np.float32)
    Y = np.array([[0.0], [1.0], [1.0]], dtype=np.float32)
    D = np.empty_like(Z)
    loss = binary_loss_delta_(Z, Y, D, np.empty_like(Z))
    assert loss == pytest.approx(2000.0 + math.log(2), rel=1e-6)
    np.testing.assert_allclose(D[:, 0], [1 / 3, -1 / 3, -0.5 / 3], rtol=1e-6)
    Z3 = np.array([[1e4, -1e4, 0.0]], dtype=np.float32)
    Y3 = np.array([[0.0, 1.0, 0.0]], dtype=np.float32)
    D3 = np.empty_like(Z3)
    assert multiclass_loss_delta_(Z3, Y3, D3, np.empty_like(Z3)) == pytest.approx(2e4)
    assert np.isfinite(D3).all()


def test_predict_proba_is_finite_for_huge_inputs():
    X, y = blobs(n=100, k=3)
    clf = SigmoidNetworkClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        P = clf.predict_proba(X * 1e8)
    assert np.isfinite(P).all()
    np.testing.assert_allclose(P.sum(axis=1), 1.0)


# ---------------------------------------------------------------- learning
def test_learns_xor_which_a_linear_model_cannot():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (400, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    assert LogisticRegression().fit(X, y).score(X, y) < 0.7
    clf = SigmoidNetworkClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.03,
                                   max_iter=300, random_state=0).fit(X, y)
    assert clf.score(X, y) > 0.95


def test_learns_a_band_with_two_sigmoid_layers_and_sgd():
    rng = np.random.default_rng(1)
    X = rng.uniform(-2, 2, (500, 1))
    y = (np.abs(X[:, 0]) < 1).astype(int)  # 1 inside the band: not linearly separable
    clf = SigmoidNetworkClassifier(hidden_layer_sizes=(8, 8), solver="sgd",
                                   learning_rate_init=0.5, batch_size=32, max_iter=400,
                                   random_state=0).fit(X, y)
    assert clf.score(X, y) > 0.95


def test_multiclass_with_string_labels():
    X, codes = blobs(n=300, k=3)
    y = np.array(["red", "green", "blue"])[codes]
    clf = SigmoidNetworkClassifier(hidden_layer_sizes=(8,), learning_rate_init=0.02,
                                   max_iter=100, random_state=0).fit(X, y)
    assert list(clf.classes_) == ["blue", "green", "red"]
    assert clf.predict(X[:5]).dtype.kind == "U"
    P = clf.predict_proba(X)
    assert P.shape == (300, 3)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    assert clf.score(X, y) > 0.9
    assert clf.out_activation_ == "softmax" and clf.n_outputs_ == 3


def test_regression_single_and_multi_output():
    rng = np.random.default_rng(2)
    X = rng.uniform(-2, 2, (400, 2))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1]
    reg = SigmoidNetworkRegressor(hidden_layer_sizes=(16,), learning_rate_init=0.02,
                                  max_iter=200, random_state=0).fit(X, y)
    assert reg.predict(X).shape == (400,)
    assert reg.score(X, y) > 0.9
    Y2 = np.column_stack([y, -y])
    reg2 = SigmoidNetworkRegressor(hidden_layer_sizes=(16,), learning_rate_init=0.02,
                                   max_iter=100, random_state=0).fit(X, Y2)
    assert reg2.predict(X).shape == (400, 2)
    assert reg2.score(X, Y2) > 0.8


def test_multilabel_trains_one_sigmoid_per_target_on_the_summed_log_loss(tmp_path):
    """A 2-D 0/1 y is several binary targets: (n, k) P(1), a 0/1 indicator from predict, the
    loss the sum of the columns' log-losses, and a save / load round trip."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((240, 3))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 2] < -0.5]).astype(int)
    clf = SigmoidNetworkClassifier(hidden_layer_sizes=(8,), learning_rate_init=0.03,
                                   max_iter=40, early_stopping=True, dtype="float64",
                                   random_state=0).fit(X, Y, eval_set=(X[:40], Y[:40]))
    P = clf.predict_proba(X)
    assert P.shape == (240, 3) and clf.multilabel_ and list(clf.classes_) == [0, 1, 2]
    assert set(np.unique(clf.predict(X))) <= {0, 1} and clf.predict(X).shape == (240, 3)
    assert (clf.predict(X) == Y).mean() > 0.85
    summed = sum(log_loss(Y[:, j], P[:, j]) for j in range(3))
    Z = clf._network().logits(X)
    T = np.empty_like(Z)
    assert binary_loss_delta_(Z, Y.astype(float), np.empty_like(Z), T) / 240 == (
        pytest.approx(summed, rel=1e-6))
    clf.save(tmp_path / "ml.npz")
    loaded = load_model(tmp_path / "ml.npz")
    assert loaded.multilabel_ and np.array_equal(loaded.predict_proba(X), P)
    assert np.array_equal(loaded.predict(X), clf.predict(X))


def test_multilabel_rejects_a_2d_y_that_is_not_0_1():
    X = np.zeros((6, 2))
    with pytest.raises(ValueError, match="0/1 columns"):
        SigmoidNetworkClassifier(max_iter=1).fit(X, np.arange(12).reshape(6, 2) % 3)


def test_float32_default_and_float64_option():
    X, y = blobs(n=100, k=2)
    c32 = SigmoidNetworkClassifier(max_iter=3, random_state=0).fit(X, y)
    c64 = SigmoidNetworkClassifier(max_iter=3, random_state=0, dtype="float64").fit(X, y)
    assert all(W.dtype == np.float32 for W in c32.coefs_ + c32.intercepts_)
    assert all(W.dtype == np.float64 for W in c64.coefs_ + c64.intercepts_)
    # same initial weights (drawn in float64), so the two runs track each other closely
    np.testing.assert_allclose(c32.loss_curve_, c64.loss_curve_, rtol=1e-4)
    assert c32.predict_proba(X).dtype == np.float64


def test_reproducible_bit_for_bit():
    X, y = blobs(n=200, k=3)
    kw = dict(hidden_layer_sizes=(8, 8), max_iter=5, random_state=42)
    a = SigmoidNetworkClassifier(**kw).fit(X, y)
    b = SigmoidNetworkClassifier(**kw).fit(X, y)
    assert a.loss_curve_ == b.loss_curve_
    for Wa, Wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True):
        assert np.array_equal(Wa, Wb)
    c = SigmoidNetworkClassifier(**{**kw, "random_state": 7}).fit(X, y)
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])


def test_batch_size_auto_and_clipping():
    X, y = blobs(n=50, k=2)
    for batch_size in ("auto", 10_000):
        clf = SigmoidNetworkClassifier(batch_size=batch_size, max_iter=2, random_state=0)
        assert clf.fit(X, y).n_iter_ == 2


def test_convergence_warning_when_max_iter_reached():
    X, y = blobs(n=50, k=2)
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        SigmoidNetworkClassifier(max_iter=2, random_state=0).fit(X, y)


def test_invalid_parameters_are_reported():
    X, y = blobs(n=50, k=2)
    with pytest.raises(ValueError, match="activation"):
        SigmoidNetworkClassifier(activation="swish").fit(X, y)
    with pytest.raises(ValueError, match="solver"):
        SigmoidNetworkClassifier(solver="lbfgs").fit(X, y)
    with pytest.raises(ValueError, match="dtype"):
        SigmoidNetworkClassifier(dtype="float16").fit(X, y)
    assert SigmoidNetworkClassifier(activation="logistic", max_iter=1).fit(X, y).score(X, y) >= 0


# ---------------------------------------------------------------- callbacks, stopping, errors
def test_on_epoch_receives_metrics_with_eval_set():
    X, y = blobs(n=200, k=3)
    Xv, yv = blobs(n=60, k=3, seed=0)
    seen = []
    clf = SigmoidNetworkClassifier(max_iter=4, random_state=0)
    clf.fit(X, y, eval_set=(Xv, yv), on_epoch=lambda e, m: seen.append((e, dict(m))))
    assert [e for e, _ in seen] == [1, 2, 3, 4]
    for (_, m), loss in zip(seen, clf.loss_curve_, strict=True):
        assert set(m) == {"train_loss", "val_loss", "val_error"}
        assert m["train_loss"] == loss
        assert 0 <= m["val_error"] <= 1 and m["val_loss"] > 0
    assert seen[-1][1]["val_error"] == pytest.approx(1 - clf.score(Xv, yv))

    reg_seen = []
    rng = np.random.default_rng(0)
    Xr = rng.standard_normal((100, 2))
    yr = Xr.sum(axis=1)
    reg = SigmoidNetworkRegressor(max_iter=3, early_stopping=True, random_state=0,
                                  scale_target=False)  # val_loss and val_error on one scale
    reg.fit(Xr, yr, eval_set=(Xr, yr), on_epoch=lambda e, m: reg_seen.append(m))
    assert set(reg_seen[0]) == {"train_loss", "val_loss", "val_error", "val_score"}
    rmse = np.sqrt(np.mean((reg.predict(Xr) - yr) ** 2))
    assert reg_seen[-1]["val_error"] == pytest.approx(rmse, rel=1e-4) or reg.n_iter_ < 3
    assert reg_seen[-1]["val_loss"] == pytest.approx(0.5 * reg_seen[-1]["val_error"] ** 2,
                                                     rel=1e-3) or reg.n_iter_ < 3


class Pruned(Exception):
    pass


def test_exception_in_on_epoch_propagates_and_leaves_a_usable_estimator():
    X, y = blobs(n=200, k=2)

    def prune(epoch, metrics):
        if epoch == 3:
            raise Pruned(f"pruned at {epoch}")

    clf = SigmoidNetworkClassifier(max_iter=50, random_state=0)
    with pytest.raises(Pruned, match="pruned at 3"):
        clf.fit(X, y, on_epoch=prune)
    assert clf.n_iter_ == 3 and len(clf.loss_curve_) == 3
    assert clf.predict(X).shape == (200,)


def test_divergence_raises_a_clear_catchable_error():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3)) * 100
    y = X.sum(axis=1) * 1e3
    reg = SigmoidNetworkRegressor(activation="relu", solver="sgd", learning_rate_init=1e3,
                                  max_iter=20, random_state=0)
    with pytest.raises(DivergenceError, match=r"diverged in epoch 1 .*loss = (nan|inf)"):
        reg.fit(X, y)
    with pytest.raises(FloatingPointError):  # the documented base class
        reg.fit(X, y)
    assert all(np.isfinite(W).all() for W in reg.coefs_)  # last good weights kept


def test_early_stopping_restores_the_best_weights():
    """Drive train() with scripted validation scores: the best epoch's weights must come back."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3)).astype(np.float32)
    Y = (X[:, :1] > 0).astype(np.float32)
    net = Network([3, 4, 1], "sigmoid", "binary", np.float32)
    net.init(rng)
    scores = iter([0.5, 0.9, 0.6, 0.7, 0.65, 0.6, 0.6, 0.6])
    snapshots = []
    cfg = TrainConfig(solver="sgd", learning_rate_init=0.5, batch_size=16, max_iter=8,
                      early_stopping=True, n_iter_no_change=3)
    h = fit_loop(net, X, Y, cfg, rng, val_score=lambda: next(scores),
              on_epoch=lambda e, m: snapshots.append(net.theta.copy()), history=History())
    assert h.validation_scores == [0.5, 0.9, 0.6, 0.7, 0.65, 0.6]  # 4 epochs without gain > 3
    assert h.best_validation_score == 0.9 and h.converged
    assert np.array_equal(net.theta, snapshots[1])
    assert not np.array_equal(net.theta, snapshots[-1])


def test_early_stopping_through_the_estimator():
    X, y = blobs(n=300, k=3)
    clf = SigmoidNetworkClassifier(early_stopping=True, n_iter_no_change=3, max_iter=200,
                                   learning_rate_init=0.05, random_state=0).fit(X, y)
    assert clf.n_iter_ < 200
    assert len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert clf.best_loss_ is None


def test_eval_set_with_unknown_labels_is_rejected():
    X, y = blobs(n=100, k=2)
    with pytest.raises(ValueError, match="not seen in fit"):
        SigmoidNetworkClassifier(max_iter=1).fit(X, y, eval_set=(X[:5], np.full(5, 7)))


def test_single_class_is_rejected():
    X, _ = blobs(n=20, k=2)
    with pytest.raises(ValueError, match="1 class"):
        SigmoidNetworkClassifier().fit(X, np.zeros(20))


def test_categorical_embeddings_learn_what_each_level_means():
    """The level carries the signal: as a number, its code teaches nothing; embedded, each
    level's vector learns its effect."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    n, levels = 3000, 200
    effect = rng.standard_normal(levels) * 2
    codes = rng.integers(0, levels, n)
    x = rng.standard_normal(n)
    y = (effect[codes] + x + 0.5 * rng.standard_normal(n) > 0).astype(int)
    X = np.column_stack([x, codes]).astype(float)
    scores = {}
    for cats in ((), (1,)):
        clf = SigmoidNetworkClassifier(hidden_layer_sizes=(16,), activation="relu", max_iter=20,
                                       batch_size=64, random_state=0, categorical_columns=cats)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X[:2000], y[:2000])
        scores[cats] = roc_auc_score(y[2000:], clf.predict_proba(X[2000:])[:, 1])
    assert scores[(1,)] > scores[()] + 0.1, scores


# ---------------------------------------------------------------- save / load
def test_save_load_round_trip_classifier(tmp_path):
    X, codes = blobs(n=120, k=3)
    y = np.array(["a", "b", "c"])[codes]
    clf = SigmoidNetworkClassifier(hidden_layer_sizes=(6, 5), activation="tanh", max_iter=5,
                                   random_state=0).fit(X, y)
    path = tmp_path / "model.npz"
    clf.save(path, metadata={"fingerprint": "abc123", "cv": 0.9})
    loaded = load_model(path)
    assert isinstance(loaded, SigmoidNetworkClassifier)
    assert np.array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert np.array_equal(loaded.predict(X), clf.predict(X))
    assert loaded.metadata_ == {"fingerprint": "abc123", "cv": 0.9}
    assert loaded.get_params() == {**clf.get_params(), "hidden_layer_sizes": (6, 5)}
    assert loaded.loss_curve_ == clf.loss_curve_ and loaded.n_iter_ == clf.n_iter_
    with np.load(path, allow_pickle=False) as npz:  # plain arrays, no pickle needed
        header = json.loads(str(npz["header"][()]))
    assert header["layer_sizes"] == [2, 6, 5, 3] and header["activation"] == "tanh"
    assert header["task"] == "multiclass" and header["classes"] == ["a", "b", "c"]
    assert header["dtype"] == "float32" and "package_version" in header


def test_save_load_round_trip_regressor_float64(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 3))
    Y = np.column_stack([X.sum(axis=1), X[:, 0]])
    reg = SigmoidNetworkRegressor(dtype="float64", max_iter=3, random_state=0).fit(X, Y)
    reg.save(tmp_path / "reg.npz")
    loaded = load_model(tmp_path / "reg.npz")
    assert np.array_equal(loaded.predict(X), reg.predict(X))
    assert loaded.coefs_[0].dtype == np.float64 and loaded.metadata_ == {}


@pytest.mark.parametrize("n_classes", [0, 2, 3], ids=["regression", "binary", "multiclass"])
def test_every_task_round_trips_and_predicts_in_the_targets_units(tmp_path, n_classes):
    """A saved model alone (no pipeline around it) predicts what the fitted one did, and a
    regressor's predictions are in y's units (it trained on the standardised target)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((150, 3))
    if n_classes:
        y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 1 if n_classes == 3 else 0)
        est = SigmoidNetworkClassifier(max_iter=20, random_state=0).fit(X, y)
        outputs = est.predict_proba
    else:
        y = 50_000 + 20_000 * X[:, 0]  # house-price sized
        est = SigmoidNetworkRegressor(max_iter=60, learning_rate_init=0.01,
                                      random_state=0).fit(X, y)
        outputs = est.predict
        assert abs(est.predict(X).mean() - y.mean()) < 0.05 * y.std()
        assert est.score(X, y) > 0.9
    est.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert type(loaded) is type(est)
    np.testing.assert_array_equal((loaded.predict_proba if n_classes else loaded.predict)(X),
                                  outputs(X))


def test_version_1_regressor_file_loads_with_its_target_scaling(tmp_path):
    """Before format 2 the pipeline kept the regression target's scaling in the metadata."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 2))
    y = X.sum(axis=1)
    reg = SigmoidNetworkRegressor(max_iter=5, scale_target=False, random_state=0).fit(X, y)
    path = tmp_path / "old.npz"
    reg.save(path, metadata={"target_mean": 100.0, "target_scale": 10.0})
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(str(arrays["header"][()]))
    for key in ("target_mean", "target_scale"):
        del header[key]
    header["format_version"] = 1
    header["params"].pop("scale_target")
    arrays["header"] = np.array(json.dumps(header))
    np.savez(path, **arrays)
    old = load_model(path)
    np.testing.assert_allclose(old.predict(X), reg.predict(X) * 10.0 + 100.0)


def test_zero_hidden_layers_is_logistic_regression():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 2))
    y = (rng.random(400) < 1 / (1 + np.exp(-(X @ [1.5, -1.0] + 0.3)))).astype(int)
    clf = SigmoidNetworkClassifier(hidden_layer_sizes=[], solver="sgd", batch_size=400,
                                   learning_rate_init=0.5, max_iter=500, alpha=0.0, tol=0.0,
                                   n_iter_no_change=500, dtype="float64", random_state=0)
    clf.fit(X, y)  # full-batch gradient descent: converges to the maximum likelihood
    assert clf.n_layers_ == 2 and clf.coefs_[0].shape == (2, 1)
    ref = LogisticRegression(C=1e6).fit(X, y)
    np.testing.assert_allclose(clf.predict_proba(X), ref.predict_proba(X), atol=1e-4)


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(str(arrays["header"][()]))
    for key, value in changes.items():
        if key in header:
            header[key] = value
        else:
            arrays[key] = value
    arrays["header"] = np.array(json.dumps(header))
    np.savez(path, **arrays)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda p: p.write_bytes(b"not a zip file at all"), "not a readable .npz"),
        (lambda p: p.write_bytes(p.read_bytes()[:200]), "not a readable .npz"),
        (lambda p: np.savez(p, W_0=np.zeros(3)), "no 'header'"),
        (lambda p: _rewrite(p, format="something-else"), "does not describe"),
        (lambda p: _rewrite(p, format_version=99), "format_version 99"),
        (lambda p: _rewrite(p, layer_sizes=[2, 7, 1]), "array 'W_0' has shape"),
        (lambda p: _rewrite(p, W_1=np.full((4, 1), np.nan, np.float32)), "NaN"),
        (lambda p: _rewrite(p, task="regression"), "does not fit estimator"),
        (lambda p: _rewrite(p, classes=None, activation="swish"), "activation"),
    ],
)
def test_corrupted_or_mismatched_files_raise_model_file_error(tmp_path, corrupt, message):
    X, y = blobs(n=60, k=2)
    path = tmp_path / "m.npz"
    SigmoidNetworkClassifier(hidden_layer_sizes=(4,), max_iter=1).fit(X, y).save(path)
    corrupt(path)
    with pytest.raises(ModelFileError, match=message) as info:
        load_model(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_file_and_unfitted_save(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        load_model(tmp_path / "nope.npz")
    with pytest.raises(ValueError, match="unfitted"):
        SigmoidNetworkClassifier().save(tmp_path / "x.npz")


@pytest.mark.parametrize(
    "solver, task", [("sgd", "binary"), ("adam", "binary"), ("sgd", "multiclass"),
                     ("adam", "multiclass"), ("sgd", "regression")]
)
def test_training_curve_matches_sklearn_from_identical_initial_weights(solver, task, monkeypatch):
    """Same start, no shuffling, float64: the whole loop (batches, per-batch L2, optimiser,
    epoch loss) reproduces scikit-learn's loss_curve_ to rounding error."""
    X, codes = blobs(n=120, k=2 if task == "binary" else 3, seed=3)
    y = X.sum(axis=1) if task == "regression" else codes
    theirs, ours_cls = ((MLPRegressor, SigmoidNetworkRegressor) if task == "regression"
                        else (MLPClassifier, SigmoidNetworkClassifier))
    kw = dict(hidden_layer_sizes=(5, 4), activation="logistic", solver=solver, alpha=0.01,
              batch_size=50, learning_rate_init=0.05, shuffle=False, tol=0.0,
              n_iter_no_change=1000, random_state=0)
    ref = theirs(max_iter=1, warm_start=True, **kw).fit(X, y)
    W0 = [W.copy() for W in ref.coefs_]
    b0 = [b.copy() for b in ref.intercepts_]
    ref.set_params(max_iter=6)
    ref.fit(X, y)  # warm start: continues from (W0, b0) with a fresh optimiser
    expected = ref.loss_curve_[-6:]

    monkeypatch.setattr(Network, "init", lambda self, rng: self.set_params(W0, b0))
    unscaled = {"scale_target": False} if task == "regression" else {}  # MLPRegressor's scale
    ours = ours_cls(max_iter=6, dtype="float64", **kw, **unscaled).fit(X, y)
    np.testing.assert_allclose(ours.loss_curve_, expected, rtol=1e-9)
    for W_ours, W_ref in zip(ours.coefs_, ref.coefs_, strict=True):
        np.testing.assert_allclose(W_ours, W_ref, rtol=1e-8, atol=1e-12)


# ---------------------------------------------------------------- the training recipe
def test_decoupled_weight_decay_shrinks_coefficients_not_biases():
    """AdamW: theta <- theta (1 - lr wd) on the first n_decay entries, then Adam's step."""
    rng = np.random.default_rng(0)
    theta = rng.standard_normal(10)
    g = rng.standard_normal(10)
    plain, decayed = theta.copy(), theta.copy()
    Adam(10, np.float64, learning_rate=0.01).step(plain, g.copy())
    Adam(10, np.float64, learning_rate=0.01, weight_decay=0.5, n_decay=6).step(decayed, g.copy())
    expected = plain.copy()
    expected[:6] -= 0.01 * 0.5 * theta[:6]
    np.testing.assert_allclose(decayed, expected, rtol=1e-12)


def test_learning_rate_schedule_warms_up_then_decays_to_zero():
    from pipeline.network.optimizers import schedule_factor

    factors = [schedule_factor("cosine", s, total=10, warmup=2) for s in range(10)]
    assert factors[:2] == [0.5, 1.0] and factors[2] == 1.0
    assert all(a >= b for a, b in zip(factors[2:], factors[3:], strict=False))
    assert schedule_factor("cosine", 10, total=10, warmup=2) == pytest.approx(0.0)
    assert schedule_factor("constant", 7, total=10, warmup=2) == 1.0


def test_early_stopping_on_validation_loss_keeps_the_best_epoch():
    X, y = blobs(n=400, k=3)
    X = X + np.random.default_rng(1).normal(0, 2.0, X.shape)  # noisy: validation loss turns
    clf = SigmoidNetworkClassifier(hidden_layer_sizes=(64,), early_stopping=True,
                                   early_stopping_metric="loss", n_iter_no_change=5,
                                   learning_rate_init=0.05, max_iter=300, random_state=0)
    clf.fit(X, y)
    scores = clf.validation_scores_  # negated validation losses, higher is better
    assert clf.best_epoch_ == int(np.argmax(scores)) + 1 < clf.n_iter_
    assert clf.best_validation_score_ == max(scores) < 0


def test_dropout_trains_stochastically_and_predicts_deterministically():
    X, y = blobs(n=300, k=3)
    kw = dict(hidden_layer_sizes=(32,), max_iter=5, random_state=0)
    plain = SigmoidNetworkClassifier(**kw).fit(X, y)
    dropped = SigmoidNetworkClassifier(dropout=0.5, **kw).fit(X, y)
    assert plain.loss_curve_ != dropped.loss_curve_
    np.testing.assert_array_equal(dropped.predict_proba(X), dropped.predict_proba(X))


def test_gradcheck_detects_a_wrong_embedding_gradient(monkeypatch):
    from pipeline.network import embeddings
    from pipeline.network.gradcheck import check_case

    backward = embeddings.PeriodicEmbedding.backward

    def wrong(self, p, g, buf, D):
        backward(self, p, g, buf, D)
        g["c"] *= 0.5  # half the frequencies' gradient

    monkeypatch.setattr(embeddings.PeriodicEmbedding, "backward", wrong)
    assert check_case("relu", "binary", periodic=True) > 1e-3


@pytest.mark.parametrize("encoding", ["ple", "periodic"])
def test_several_targets_through_the_numeric_encodings(encoding):
    """Tree bins (ple) read a 2-D target too: several 0/1 columns or several values."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    clf = SigmoidNetworkClassifier(numeric_encoding=encoding, max_iter=3, early_stopping=True,
                                   random_state=0).fit(X, (X[:, :2] > 0).astype(int))
    assert clf.predict_proba(X).shape == (80, 2)
    reg = SigmoidNetworkRegressor(numeric_encoding=encoding, max_iter=3,
                                  random_state=0).fit(X, X[:, :2] * 100)
    assert reg.predict(X).shape == (80, 2)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_log1p_target_trains_on_the_log_and_round_trips_in_the_targets_units(tmp_path):
    """target_transform="log1p": predictions come back in y's units (expm1, never below 0),
    the transform is in the model file, and a negative target is refused in one line."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3))
    y = np.exp(2.0 + X[:, 0] + 0.1 * rng.standard_normal(200))  # log-normal, skewed
    reg = SigmoidNetworkRegressor(target_transform="log1p", max_iter=40,
                                  learning_rate_init=0.01, random_state=0).fit(X, y)
    pred = reg.predict(X)
    assert pred.min() >= 0 and np.sqrt(np.mean((np.log1p(pred) - np.log1p(y)) ** 2)) < 0.3
    assert reg.target_mean_[0] == pytest.approx(np.log1p(y).mean())  # it trained on log1p(y)
    reg.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert loaded.target_transform_ == "log1p"
    np.testing.assert_array_equal(loaded.predict(X), pred)
    with pytest.raises(ValueError, match=r"target_transform='log1p' needs a target >= 0"):
        SigmoidNetworkRegressor(target_transform="log1p", max_iter=1).fit(X, y - 100)


def test_huber_loss_is_squared_inside_delta_linear_outside_and_its_gradient_checks():
    from pipeline.network.gradcheck import THRESHOLD, check_case
    from pipeline.network.losses import HUBER_DELTA, huber_loss_delta_

    Z = np.array([[0.5], [3.0], [-2.0]])
    Y = np.zeros_like(Z)
    D, T = np.empty_like(Z), np.empty_like(Z)
    d = HUBER_DELTA
    loss = huber_loss_delta_(Z, Y, D, T)
    assert loss == pytest.approx(0.125 + d * (3.0 - d / 2) + d * (2.0 - d / 2))
    np.testing.assert_allclose(D.ravel(), np.array([0.5, d, -d]) / 3)
    for seed in (0, 1):  # targets drawn wide: residuals on both sides of delta
        assert check_case("sigmoid", "regression", seed=seed, loss="huber") < THRESHOLD


@pytest.mark.parametrize("encoding", ["none", "ple", "periodic"])
def test_fit_on_row_indices_equals_fit_on_the_copied_rows(encoding):
    """fit(X, y, rows=tr, eval_set=(X, y), eval_rows=va): cross-validation's way, X never
    copied; the same weights, curves and predictions as fitting the copies X[tr], X[va]."""
    rng = np.random.default_rng(3)
    n = 400
    X = np.column_stack([rng.standard_normal((n, 3)), rng.integers(0, 30, n),
                         rng.integers(0, 5, n)]).astype(np.float32)
    y = (X[:, 0] + np.sin(X[:, 1]) + (X[:, 3] % 3 == 0) > 0.3).astype(int)
    tr, va = np.arange(0, n, 4), np.setdiff1d(np.arange(n), np.arange(0, n, 4))[::-1]
    curves = ([], [])
    kw = dict(numeric_encoding=encoding, max_iter=4, early_stopping=True, random_state=1,
              categorical_columns=(3, 4), hidden_layer_sizes=(8,), batch_size=16)
    a = SigmoidNetworkClassifier(**kw).fit(X[tr], y[tr], eval_set=(X[va], y[va]),
                                           on_epoch=lambda e, m: curves[0].append(m))
    b = SigmoidNetworkClassifier(**kw).fit(X, y, rows=tr, eval_set=(X, y), eval_rows=va,
                                           on_epoch=lambda e, m: curves[1].append(m))
    for wa, wb in zip(a.coefs_, b.coefs_, strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert curves[0] == curves[1] and len(curves[0]) == 4
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
