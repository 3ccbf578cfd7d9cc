"""Numeric encodings fitted with the network, so they live (and travel) inside the model.

``PiecewiseLinearEncoder`` is the piecewise-linear encoding (PLE) of Gorishniy et al. 2022, "On
Embeddings for Numerical Features in Tabular Deep Learning": each continuous column x is cut into
T bins [e_0, e_1), ..., [e_{T-1}, e_T] and becomes T components

    component t = clip((x - e_{t-1}) / (e_t - e_{t-1}), 0, 1)    t = 1 .. T

0 below bin t, 1 above it, linear inside: a "thermometer" with a linear reading inside the bin the
value falls in. A ReLU network then bends its response at every edge almost for free, which is how
gradient-boosted trees read numbers. Edges come from quantiles, or from a small decision tree
fitted on the training labels (each split threshold is an edge). Columns with at most two values
(one-hot levels, missing flags, booleans) pass through unchanged.

``ContinuousFirst`` only moves the continuous columns to the front, for the periodic embedding
(``embeddings.py``), which encodes them inside the network.

Because tree edges use labels, the encoder is fitted inside the estimator's ``fit``: in
cross-validation that is each fold's training rows and nothing else. The fitted edges are plain
arrays (``state`` / ``from_state``), saved in the model file without pickle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BINNINGS = ("quantile", "tree")


def continuous_columns(X: np.ndarray) -> np.ndarray:
    """Indices of columns with more than two distinct values (the others pass through)."""
    cols = []
    for j in range(X.shape[1]):
        column = X[:, j]
        first = column[0]
        other = column[column != first]
        if other.size and np.any(other != other[0]):
            cols.append(j)
    return np.asarray(cols, dtype=np.intp)


class ContinuousFirst:
    """The continuous columns first, then the others: what a periodic embedding (the network's
    first block, which takes the first n_c columns) reads."""

    def fit(self, X: np.ndarray, y: np.ndarray | None = None,
            classification: bool = True) -> ContinuousFirst:
        X = np.asarray(X)
        self.n_features_in_ = X.shape[1]
        self.columns_ = continuous_columns(X)
        self.passthrough_ = np.setdiff1d(np.arange(X.shape[1]), self.columns_)
        self.n_features_out_ = X.shape[1]
        return self

    def transform(self, X: np.ndarray, dtype: Any = np.float64) -> np.ndarray:
        order = np.concatenate([self.columns_, self.passthrough_])
        return np.ascontiguousarray(np.asarray(X)[:, order], dtype=dtype)

    def feature_groups(self) -> list[tuple[int, int]]:
        return [(int(j), 1) for j in (*self.columns_, *self.passthrough_)]

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"n_features_in": int(self.n_features_in_)}, {
            "columns": self.columns_.astype(np.int64)}

    @classmethod
    def from_state(cls, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> ContinuousFirst:
        enc = cls()
        n_in, columns = int(header["n_features_in"]), arrays["columns"]
        if columns.ndim != 1 or (columns.size and (columns.min() < 0 or columns.max() >= n_in)):
            raise ValueError("encoder columns are out of range")
        enc.n_features_in_, enc.n_features_out_ = n_in, n_in
        enc.columns_ = columns.astype(np.intp)
        enc.passthrough_ = np.setdiff1d(np.arange(n_in), enc.columns_)
        return enc


class PiecewiseLinearEncoder:
    """PLE of the continuous columns, then the other columns as they are.

    fit(X, y, classification) / transform(X); ``n_bins`` bins at most per column (fewer where a
    column has fewer distinct values or the tree stops splitting).
    """

    def __init__(self, n_bins: int = 16, binning: str = "tree", min_samples_leaf: int = 64,
                 random_state: int = 0) -> None:
        self.n_bins = n_bins
        self.binning = binning
        self.min_samples_leaf = min_samples_leaf
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray | None = None,
            classification: bool = True) -> PiecewiseLinearEncoder:
        if self.binning not in BINNINGS:
            raise ValueError(f"binning must be one of {BINNINGS}; got {self.binning!r}")
        X = np.asarray(X, dtype=np.float64)
        self.n_features_in_ = X.shape[1]
        self.columns_ = continuous_columns(X)
        self.passthrough_ = np.setdiff1d(np.arange(X.shape[1]), self.columns_)
        self.edges_ = [self._edges(X[:, j], y, classification) for j in self.columns_]
        self.n_features_out_ = sum(len(e) - 1 for e in self.edges_) + len(self.passthrough_)
        return self

    def _edges(self, x: np.ndarray, y: np.ndarray | None, classification: bool) -> np.ndarray:
        lo, hi = float(x.min()), float(x.max())
        if self.binning == "quantile" or y is None:
            inner = np.quantile(x, np.linspace(0, 1, self.n_bins + 1)[1:-1])
        else:
            from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

            tree_cls = DecisionTreeClassifier if classification else DecisionTreeRegressor
            leaf = max(1, min(self.min_samples_leaf, len(x) // (2 * self.n_bins)))
            tree = tree_cls(max_leaf_nodes=self.n_bins, min_samples_leaf=leaf,
                            random_state=self.random_state).fit(x.reshape(-1, 1), y)
            inner = tree.tree_.threshold[tree.tree_.feature == 0]  # split nodes only
        edges = np.unique(np.concatenate([[lo], inner[(inner > lo) & (inner < hi)], [hi]]))
        return edges if len(edges) > 1 else np.array([lo, lo + 1.0])  # constant: one bin

    def transform(self, X: np.ndarray, dtype: Any = np.float64) -> np.ndarray:
        """(n, n_features_out_): the T_j components of each continuous column j, in order,
        then the passthrough columns."""
        X = np.asarray(X)
        out = np.empty((X.shape[0], self.n_features_out_), dtype)
        start = 0
        for j, edges in zip(self.columns_, self.edges_, strict=True):
            left, width = edges[:-1], np.diff(edges)  # (T,)
            block = out[:, start:start + len(width)]  # (n, T)
            np.subtract(X[:, j, None], left, out=block, casting="unsafe")
            block /= width
            np.clip(block, 0.0, 1.0, out=block)
            start += len(width)
        out[:, start:] = X[:, self.passthrough_]
        return out

    def feature_groups(self) -> list[tuple[int, int]]:
        """(input column, output width) in output order: which inputs each block encodes."""
        groups = [(int(j), len(e) - 1) for j, e in zip(self.columns_, self.edges_, strict=True)]
        return groups + [(int(j), 1) for j in self.passthrough_]

    # ---------------------------------------------------------------- saved state
    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        header = {"n_bins": int(self.n_bins), "binning": self.binning,
                  "n_features_in": int(self.n_features_in_)}
        lengths = np.array([len(e) for e in self.edges_], dtype=np.int64)
        edges = np.concatenate(self.edges_) if self.edges_ else np.empty(0)
        return header, {"columns": self.columns_.astype(np.int64), "edge_counts": lengths,
                        "edges": edges}

    @classmethod
    def from_state(cls, header: dict[str, Any],
                   arrays: dict[str, np.ndarray]) -> PiecewiseLinearEncoder:
        enc = cls(n_bins=int(header["n_bins"]), binning=str(header["binning"]))
        n_in = int(header["n_features_in"])
        columns, counts, edges = arrays["columns"], arrays["edge_counts"], arrays["edges"]
        if (columns.ndim != 1 or counts.shape != columns.shape or counts.sum() != edges.size
                or (columns.size and (columns.min() < 0 or columns.max() >= n_in))
                or (counts < 2).any() or not np.isfinite(edges).all()):
            raise ValueError("encoder arrays are inconsistent")
        enc.n_features_in_ = n_in
        enc.columns_ = columns.astype(np.intp)
        enc.passthrough_ = np.setdiff1d(np.arange(n_in), enc.columns_)
        enc.edges_ = np.split(edges.astype(np.float64), np.cumsum(counts)[:-1])
        if any((np.diff(e) <= 0).any() for e in enc.edges_):
            raise ValueError("encoder edges must increase")
        enc.n_features_out_ = int((counts - 1).sum()) + len(enc.passthrough_)
        return enc


ENCODERS = {"ple": PiecewiseLinearEncoder, "periodic": ContinuousFirst}
