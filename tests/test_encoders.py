"""Numeric encodings inside the model: the PLE definition, bin edges, leak-free fitting, files."""

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold

from pipeline.network import ModelFileError, SigmoidNetworkClassifier, load_model
from pipeline.network.encoders import (
    CategoryIndex,
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

    def spy(self, X, y=None, classification=True, *, rows=None, columns=None):
        seen.append(set((X[:, 0] if rows is None else X[rows, 0]).astype(int)))
        return fit(self, X, y, classification, rows=rows, columns=columns)

    monkeypatch.setattr(PiecewiseLinearEncoder, "fit", spy)
    rng = np.random.default_rng(0)
    n = 300
    X = np.column_stack([np.arange(n, dtype=float), rng.standard_normal((n, 2))])
    y = rng.integers(0, 2, n)
    for train, _ in StratifiedKFold(3, shuffle=True, random_state=0).split(X, y):
        for early in (False, True):
            est = SigmoidNetworkClassifier(numeric_encoding="ple", max_iter=2,
                                           early_stopping=early, validation_fraction=0.2,
                                           random_state=0)
            est.fit(X[train], y[train])
            est.fit(X, y, rows=train)  # the fold's rows as indices: the same rows
            by_index, rows = seen.pop(), seen.pop()
            assert rows == by_index and rows <= set(train)
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


# ---------------------------------------------------------------- categorical level codes
def test_levels_get_rows_rare_absent_and_unseen_levels_share_row_zero():
    # column 1: level 0 x3, level 1 x1, level 3 x2 (level 2 absent from the training rows)
    X = np.array([[0.5, 0], [0.1, 0], [0.2, 0], [0.3, 1], [0.4, 3], [0.6, 3]])
    index = CategoryIndex((1,), min_count=2).fit(X)
    assert index.sizes_ == [3] and list(index.numeric_) == [0]
    codes = np.array([[9, 0], [9, 1], [9, 2], [9, 3], [9, -1], [9, 77]], dtype=float)
    np.testing.assert_array_equal(index.transform(codes)[:, 0], [1, 0, 0, 2, 0, 0])
    every = CategoryIndex((1,), min_count=1).fit(X)
    np.testing.assert_array_equal(every.transform(codes)[:, 0], [1, 2, 0, 3, 0, 0])


@pytest.mark.parametrize("bad", [0.5, np.inf, 2.0**24])
def test_level_codes_must_be_integers(bad):
    X = np.array([[0.0, 1.0], [1.0, bad]])
    with pytest.raises(ValueError, match="categorical_columns: column 1"):
        CategoryIndex((1,)).fit(X)
    with pytest.raises(ValueError, match="out of range"):
        CategoryIndex((2,)).fit(X)


def test_rare_levels_are_counted_on_each_folds_training_rows_only():
    """A level frequent in the held-out rows but rare in the fold's training rows is pooled:
    its count never sees the rows it is scored on."""
    codes = np.array([5] * 2 + [6] * 10 + [5] * 10, dtype=float)
    X = np.column_stack([np.linspace(-1, 1, 22), codes])
    y = np.arange(22) % 2
    clf = SigmoidNetworkClassifier(categorical_columns=[1], categorical_min_count=3,
                                   max_iter=2, random_state=0).fit(X[:12], y[:12])
    assert clf.categories_.sizes_ == [2]  # level 6, and "other" holding level 5
    assert clf.categorical_embedding_.shape == (2, 8)
    full = SigmoidNetworkClassifier(categorical_columns=[1], categorical_min_count=3,
                                    max_iter=2, random_state=0).fit(X, y)
    assert full.categories_.sizes_ == [3]


def test_categorical_models_round_trip_and_bad_level_arrays_are_one_line(tmp_path):
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 40, 400)
    X = np.column_stack([rng.standard_normal(400), codes, rng.standard_normal(400)])
    y = (codes % 3 == 0).astype(int)
    clf = SigmoidNetworkClassifier(categorical_columns=[1], numeric_encoding="periodic",
                                   categorical_dim=3, max_iter=5, random_state=0).fit(X, y)
    path = tmp_path / "m.npz"
    clf.save(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert loaded.get_params() == {**clf.get_params(), "categorical_columns": (1,)}
    unseen = X.copy()
    unseen[:, 1] = [-1, 40, 1000, 10**6] * 100  # never seen: all read the "other" row
    other = unseen.copy()
    other[:, 1] = -1
    np.testing.assert_array_equal(loaded.predict_proba(unseen), loaded.predict_proba(other))
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for key, value in (("cat_table", arrays["cat_table"][:-1]),
                       ("cat_rows", arrays["cat_rows"] + 1),
                       ("cat_columns", np.array([5]))):
        np.savez(path, **{**arrays, key: value})
        with pytest.raises(ModelFileError, match="categorical") as info:
            load_model(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_encoders_fitted_on_row_indices_equal_those_fitted_on_the_copied_rows():
    """fit(X, rows=...) reads the rows it is given, a column at a time: the same fitted state
    as fitting the copy X[rows] (several categorical columns, several continuous ones)."""
    rng = np.random.default_rng(4)
    n = 600
    X = np.column_stack([rng.standard_normal((n, 3)), rng.integers(0, 2, n),
                         rng.integers(0, 7, n), rng.integers(0, 300, n)]).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    rows = rng.permutation(n)[:250]
    a = CategoryIndex((4, 5), min_count=2).fit(X[rows])
    b = CategoryIndex((4, 5), min_count=2).fit(X, rows)
    assert a.sizes_ == b.sizes_
    for ra, rb in zip(a.level_rows_, b.level_rows_, strict=True):
        np.testing.assert_array_equal(ra, rb)
    numeric = a.numeric_
    for enc in (PiecewiseLinearEncoder(n_bins=4), ContinuousFirst()):
        fa = type(enc)(**({"n_bins": 4} if isinstance(enc, PiecewiseLinearEncoder) else {}))
        fa.fit(X[rows][:, numeric], y[rows])
        enc.fit(X, y[rows], rows=rows, columns=numeric)
        np.testing.assert_array_equal(fa.columns_, enc.columns_)
        np.testing.assert_array_equal(fa.transform(X[:, numeric], np.float32),
                                      enc.transform(X[:, numeric], np.float32))
