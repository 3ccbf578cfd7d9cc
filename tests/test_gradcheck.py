"""Backpropagation against central finite differences, every activation x every task."""

import numpy as np
import pytest

from pipeline.network.activations import HIDDEN_ACTIVATIONS
from pipeline.network.gradcheck import THRESHOLD, check_case, main, run_gradcheck
from pipeline.network.losses import TASKS


def test_run_gradcheck_covers_every_case_below_threshold():
    results = run_gradcheck()
    names = [name for name, _ in results]
    assert names == [f"{a}/{t}" for a in HIDDEN_ACTIVATIONS for t in TASKS] + [
        f"{v}/{t}" for v in ("linear", "periodic", "categorical", "dropout") for t in TASKS] + [
        "multilabel/binary", "multioutput/regression", "huber/regression"]
    for name, err in results:
        assert err < 1e-6, f"{name}: relative error {err:.2e}"


@pytest.mark.parametrize("seed", [1, 2])
def test_gradcheck_other_seeds(seed):
    assert check_case("sigmoid", "multiclass", seed=seed) < THRESHOLD
    assert check_case("relu", "regression", seed=seed) < THRESHOLD


def test_gradcheck_of_several_sigmoid_outputs_detects_a_wrong_loss(monkeypatch):
    """Several binary targets: the summed log-loss's gradient; a loss that drops a column's
    share (the mean over outputs instead of the sum) is caught."""
    from pipeline.network import losses

    assert check_case("sigmoid", "binary", n_outputs=4) < THRESHOLD

    def averaged(Z, Y, D, T):
        loss = losses.binary_loss_delta_(Z, Y, D, T)
        return loss / Z.shape[1]  # D left as the summed loss's gradient

    monkeypatch.setitem(losses.LOSS_DELTA, "binary", averaged)
    assert check_case("sigmoid", "binary", n_outputs=4) > 1e-3


def test_gradcheck_detects_a_wrong_gradient(monkeypatch):
    """The check is not vacuous: a broken sigmoid derivative must fail it."""
    from pipeline.network import activations

    def wrong(D, A, T):
        D *= A  # forgot the (1 - A) factor

    monkeypatch.setitem(activations.DERIVATIVE, "sigmoid", wrong)
    assert check_case("sigmoid", "binary") > 1e-3


def test_gradcheck_of_categorical_embeddings_detects_a_lost_repeated_level(monkeypatch):
    """A level looked up by several rows must get the sum of their gradients: a plain fancy
    assignment (the last row wins) instead of the scatter-add fails the check."""
    from pipeline.network.embeddings import CategoricalEmbedding

    assert check_case("relu", "binary", categorical=True, periodic=True) < THRESHOLD
    assert check_case("sigmoid", "multiclass", categorical=True, hidden=()) < THRESHOLD
    assert check_case("tanh", "regression", categorical=True, dropout=0.3) < THRESHOLD

    def overwritten(self, g, buf, D):
        m = D.shape[0]
        g["table"].fill(0.0)
        g["table"][buf["rows"][:m]] = D.reshape(m, self.n, self.d)

    monkeypatch.setattr(CategoricalEmbedding, "backward", overwritten)
    assert check_case("relu", "binary", categorical=True) > 1e-3


def test_main_prints_and_exits_zero(capsys):
    assert main() == 0
    out = capsys.readouterr().out
    assert "sigmoid/binary" in out and "worst relative error" in out


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_gradcheck_through_public_estimator():
    """Finite differences of the estimator-level loss (predict_proba + L2) match backprop."""
    from pipeline.network import SigmoidNetworkClassifier

    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 3))
    y = rng.integers(0, 3, 20)
    clf = SigmoidNetworkClassifier(hidden_layer_sizes=(4,), max_iter=1, dtype="float64",
                                   alpha=0.0, random_state=0)
    clf.fit(X, y)
    net = clf._network()
    Y = np.eye(3)[y]
    net.loss(X, Y)
    analytic = net.grad.copy()

    def loss_of(W0):
        clf.coefs_[0] = W0
        P = clf.predict_proba(X)
        return -np.mean(np.log(P[np.arange(20), y]))

    W0, h = clf.coefs_[0].copy(), 1e-6
    numeric = np.empty_like(W0)
    for idx in np.ndindex(W0.shape):
        Wp, Wm = W0.copy(), W0.copy()
        Wp[idx] += h
        Wm[idx] -= h
        numeric[idx] = (loss_of(Wp) - loss_of(Wm)) / (2 * h)
    g = net.views(analytic)[0][0]
    assert np.linalg.norm(g - numeric) / (np.linalg.norm(g) + np.linalg.norm(numeric)) < 1e-6
