"""Numeric encodings inside the model: the PLE definition, bin edges, leak-free fitting, files."""

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold

from pipeline.network import ModelFileError, SigmoidNetworkClassifier, load_model
from pipeline.network.encoders import (
    ContinuousFirst,
    PiecewiseLinearEncoder,
    continuous_columns,
)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def test_components_are_zero_below_one_above_linear_inside():
    X = np.array([[0.0], [1.0], [2.0], [3.0], [4.0]])
    enc = PiecewiseLinearEncoder(n_bins=4, binning="quantile").fit(X)
    np.testing.assert_allclose(enc.edges_[0], [0, 1, 2, 3, 4])
    out = enc.transform(np.array([[-1.0], [0.5], [2.25], [4.0], [9.0]]))
    np.testing.assert_allclose(out, [[0, 0, 0, 0],
                                     [0.5, 0, 0, 0],
                                     [1, 1, 0.25, 0],
                                     [1, 1, 1, 1],
                                     [1, 1, 1, 1]])


def test_binary_and_one_hot_columns_pass_through_after_the_encoded_ones():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, 2, 100), rng.standard_normal(100),
                         np.full(100, 3.0), rng.standard_normal(100)])
    assert list(continuous_columns(X)) == [1, 3]
    enc = PiecewiseLinearEncoder(n_bins=8, binning="quantile").fit(X)
    out = enc.transform(X)
    assert out.shape == (100, 8 + 8 + 2)
    np.testing.assert_array_equal(out[:, -2:], X[:, [0, 2]])
    assert enc.feature_groups() == [(1, 8), (3, 8), (0, 1), (2, 1)]
    order = ContinuousFirst().fit(X)
    np.testing.assert_array_equal(order.transform(X), X[:, [1, 3, 0, 2]])


def test_tree_edges_follow_the_label_and_stay_within_n_bins():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 10, 2000)
    y = ((x > 3) & (x < 7)).astype(int)  # the label changes at 3 and at 7 only
    enc = PiecewiseLinearEncoder(n_bins=3, binning="tree").fit(x[:, None], y)
    inner = enc.edges_[0][1:-1]
    assert len(inner) == 2
    np.testing.assert_allclose(inner, [3, 7], atol=0.05)
    many = PiecewiseLinearEncoder(n_bins=16, binning="tree").fit(x[:, None], y)
    assert len(many.edges_[0]) - 1 <= 16


def test_tree_bins_are_fitted_on_the_training_rows_only(monkeypatch):
    """Each fit's encoder sees the rows it was given, minus the early-stopping split: in
    cross-validation, that fold's training rows only (column 0 carries the row number)."""
    seen = []
    fit = PiecewiseLinearEncoder.fit

    def spy(self, X, y=None, classification=True):
        seen.append(set(X[:, 0].astype(int)))
        return fit(self, X, y, classification)

    monkeypatch.setattr(PiecewiseLinearEncoder, "fit", spy)
    rng = np.random.default_rng(0)
    n = 300
    X = np.column_stack([np.arange(n, dtype=float), rng.standard_normal((n, 2))])
    y = rng.integers(0, 2, n)
    for train, _ in StratifiedKFold(3, shuffle=True, random_state=0).split(X, y):
        for early in (False, True):
            SigmoidNetworkClassifier(numeric_encoding="ple", max_iter=2, early_stopping=early,
                                     validation_fraction=0.2, random_state=0).fit(X[train],
                                                                                  y[train])
            rows = seen.pop()
            assert rows <= set(train)
            assert len(rows) == (len(train) - int(np.ceil(0.2 * len(train))) if early
                                 else len(train))


@pytest.mark.parametrize("encoding", ["ple", "periodic"])
def test_encoded_models_round_trip_and_bad_encoder_arrays_are_one_line(tmp_path, encoding):
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.standard_normal((200, 2)), rng.integers(0, 2, 200)])
    y = (X[:, 0] + X[:, 2] > 0.5).astype(int)
    clf = SigmoidNetworkClassifier(numeric_encoding=encoding, max_iter=5, random_state=0)
    clf.fit(X, y)
    path = tmp_path / "m.npz"
    clf.save(path)
    np.testing.assert_array_equal(load_model(path).predict_proba(X), clf.predict_proba(X))
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["enc_columns"] = np.array([7])  # a column the model never had
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match="encoder") as info:
        load_model(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
