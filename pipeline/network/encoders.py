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

``CategoryIndex`` maps the level codes of high-cardinality categorical columns to rows of their
embedding tables (``embeddings.CategoricalEmbedding``), pooling rare levels into one row.

Because tree edges use labels, the encoder is fitted inside the estimator's ``fit``: in
cross-validation that is each fold's training rows and nothing else. The fitted edges are plain
arrays (``state`` / ``from_state``), saved in the model file without pickle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BINNINGS = ("quantile", "tree")
MAX_CODE = 2**24  # level codes stay exact in float32 below this


def column(X: np.ndarray, j: int, rows: np.ndarray | None = None) -> np.ndarray:
    """Column j of X on ``rows`` (all rows when None): one column is copied, never X."""
    return X[:, j] if rows is None else X[rows, j]


def continuous_columns(X: np.ndarray, rows: np.ndarray | None = None,
                       columns: np.ndarray | None = None) -> np.ndarray:
    """Positions in ``columns`` (all of X's by default) of the columns with more than two
    distinct values on ``rows`` (the others pass through)."""
    cols = []
    for k, j in enumerate(range(X.shape[1]) if columns is None else columns):
        values = column(X, j, rows)
        first = values[0]
        other = values[values != first]
        if other.size and np.any(other != other[0]):
            cols.append(k)
    return np.asarray(cols, dtype=np.intp)


class ContinuousFirst:
    """The continuous columns first, then the others: what a periodic embedding (the network's
    first block, which takes the first n_c columns) reads."""

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, classification: bool = True, *,
            rows: np.ndarray | None = None, columns: np.ndarray | None = None
            ) -> ContinuousFirst:
        """Fitted on X[rows][:, columns] (defaults: all), read a column at a time."""
        n_in = X.shape[1] if columns is None else len(columns)
        self.n_features_in_ = n_in
        self.columns_ = continuous_columns(X, rows, columns)
        self.passthrough_ = np.setdiff1d(np.arange(n_in), self.columns_)
        self.n_features_out_ = n_in
        return self

    @property
    def order_(self) -> np.ndarray:
        """Input column of each output column."""
        return np.concatenate([self.columns_, self.passthrough_])

    def transform(self, X: np.ndarray, dtype: Any = np.float64,
                  out: np.ndarray | None = None) -> np.ndarray:
        order = self.order_
        if out is None:
            return np.ascontiguousarray(np.asarray(X)[:, order], dtype=dtype)
        out[...] = X[:, order]
        return out

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

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, classification: bool = True, *,
            rows: np.ndarray | None = None, columns: np.ndarray | None = None
            ) -> PiecewiseLinearEncoder:
        """Fitted on X[rows][:, columns] (defaults: all) and y (one label per fitted row),
        read a column at a time (in float64)."""
        if self.binning not in BINNINGS:
            raise ValueError(f"binning must be one of {BINNINGS}; got {self.binning!r}")
        X = np.asarray(X)
        picked = np.arange(X.shape[1]) if columns is None else np.asarray(columns)
        self.n_features_in_ = len(picked)
        self.columns_ = continuous_columns(X, rows, picked)
        self.passthrough_ = np.setdiff1d(np.arange(len(picked)), self.columns_)
        self.edges_ = [self._edges(column(X, picked[k], rows).astype(np.float64), y,
                                   classification) for k in self.columns_]
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

    def transform(self, X: np.ndarray, dtype: Any = np.float64,
                  out: np.ndarray | None = None) -> np.ndarray:
        """(n, n_features_out_): the T_j components of each continuous column j, in order,
        then the passthrough columns (written into ``out`` when given)."""
        X = np.asarray(X)
        if out is None:
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


class CategoryIndex:
    """Level codes of the categorical columns -> rows of their embedding tables.

    Fitted on the training rows only (in cross-validation: each fold's), so rare-level counts
    never see held-out rows: a level seen on at least ``min_count`` of them gets a row of its
    own (1, 2, ... in code order); every other code (rare, absent from the training rows, or
    negative: a level prepare never saw) reads row 0, the shared "other" row, which is learned
    like the rest from the rare levels' rows.
    """

    def __init__(self, columns: tuple[int, ...], min_count: int = 2) -> None:
        self.columns = tuple(columns)
        self.min_count = min_count

    def fit(self, X: np.ndarray, rows: np.ndarray | None = None) -> CategoryIndex:
        """Level counts on X's ``rows`` (all when None), a column at a time."""
        X = np.asarray(X)
        self.n_features_in_ = X.shape[1]
        for j in self.columns:
            if j >= X.shape[1]:
                raise ValueError(f"categorical_columns: column {j} is out of range for X with "
                                 f"{X.shape[1]} columns")
        self.columns_ = np.asarray(self.columns, dtype=np.intp)
        self.numeric_ = np.setdiff1d(np.arange(X.shape[1]), self.columns_)
        self.level_rows_ = []
        for j in self.columns_:
            codes = _codes(column(X, j, rows), j)
            counts = np.bincount(codes[codes >= 0])
            kept = counts >= self.min_count
            table_rows = np.zeros(len(counts), np.int64)
            table_rows[kept] = np.arange(1, kept.sum() + 1)
            self.level_rows_.append(table_rows)
        return self

    @property
    def sizes_(self) -> list[int]:
        """Table rows per column: the kept levels and the "other" row."""
        return [int(rows.max(initial=0)) + 1 for rows in self.level_rows_]

    def transform(self, X: np.ndarray, dtype: Any = np.float64,
                  out: np.ndarray | None = None) -> np.ndarray:
        """(n, n_categorical) table rows, as ``dtype`` (the network's input is one array),
        written into ``out`` when given."""
        X = np.asarray(X)
        codes = X[:, self.columns_]  # (n, n_categorical): checked all at once (per batch)
        if not _integers(codes):
            for j in self.columns_:
                _codes(X[:, j], j)  # raises, naming the column
        codes = codes.astype(np.intp)
        if out is None:
            out = np.empty((X.shape[0], len(self.columns_)), dtype)
        for i, rows in enumerate(self.level_rows_):
            # a code out of range (unseen: negative, or a level these rows never had) reads
            # the appended 0, the "other" row
            lookup = np.append(rows, 0)
            np.clip(codes[:, i], -1, len(rows), out=codes[:, i])
            out[:, i] = lookup.take(codes[:, i])
        return out

    # ---------------------------------------------------------------- saved state
    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        header = {"min_count": int(self.min_count), "n_features_in": int(self.n_features_in_)}
        rows = np.concatenate(self.level_rows_) if self.level_rows_ else np.empty(0, np.int64)
        return header, {"columns": self.columns_.astype(np.int64), "rows": rows,
                        "row_counts": np.array([len(r) for r in self.level_rows_], np.int64)}

    @classmethod
    def from_state(cls, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> CategoryIndex:
        columns, rows, counts = arrays["columns"], arrays["rows"], arrays["row_counts"]
        n_in = int(header["n_features_in"])
        if (columns.ndim != 1 or not columns.size or counts.shape != columns.shape
                or counts.sum() != rows.size or columns.min() < 0 or columns.max() >= n_in
                or len(np.unique(columns)) != columns.size or rows.dtype.kind not in "iu"):
            raise ValueError("categorical level arrays are inconsistent")
        index = cls(tuple(int(j) for j in columns), int(header["min_count"]))
        index.n_features_in_ = n_in
        index.columns_ = columns.astype(np.intp)
        index.numeric_ = np.setdiff1d(np.arange(n_in), index.columns_)
        index.level_rows_ = np.split(rows.astype(np.int64), np.cumsum(counts)[:-1])
        for r in index.level_rows_:  # rows 1..k, each once; 0 is "other"
            kept = np.sort(r[r != 0])
            if (r < 0).any() or not np.array_equal(kept, np.arange(1, kept.size + 1)):
                raise ValueError("categorical level rows must number the kept levels 1..k")
        return index


def _integers(x: np.ndarray) -> bool:
    """Every value a finite integer below MAX_CODE (a level code)."""
    return bool(np.isfinite(x).all() and (x == np.round(x)).all() and (x < MAX_CODE).all())


def _codes(x: np.ndarray, j: int) -> np.ndarray:
    """A column of level codes as int64; ValueError when it holds anything but integers."""
    if not _integers(x):
        raise ValueError(f"categorical_columns: column {j} of X holds values that are not "
                         f"integer level codes below {MAX_CODE}")
    return x.astype(np.int64)
