"""Embeddings: the network's first block, learned by backprop with everything else.

``PeriodicEmbedding`` (continuous columns) and ``CategoricalEmbedding`` (level codes of
high-cardinality categorical columns, at the end of this module).

The "PLR" embedding of Gorishniy et al. 2022 ("On Embeddings for Numerical Features in Tabular
Deep Learning"): each continuous column j (of n_c) has k learned frequencies c_j and its own
linear layer (W_j, b_j) to d units:

    p_j = 2 pi c_j x_j                        (m, k)     per row x
    v_j = [cos p_j, sin p_j]                  (m, 2k)
    h_j = relu(v_j @ W_j + b_j)               (m, d)

and the MLP reads [h_1, ..., h_{n_c}, other columns]. The frequencies start from N(0, sigma):
sigma sets how fast the embedding may vary with the (standardised) input, the one setting that
matters most (``periodic_scale``). All buffers are laid out per column, (n_c, rows, .), so each
linear layer is one batched matmul.
"""

from __future__ import annotations

import math

import numpy as np

TWO_PI = 2.0 * math.pi
INIT_SCALE = 0.01  # spread of the categorical levels' initial vectors


class PeriodicEmbedding:
    """Shapes, parameter views and the forward / backward pass of the embedding block."""

    def __init__(self, n_columns: int, n_frequencies: int, dim: int, sigma: float) -> None:
        self.n, self.k, self.d, self.sigma = n_columns, n_frequencies, dim, float(sigma)
        self.n_coef = self.n * 2 * self.k * self.d  # W: decayed like the MLP's coefficients
        self.n_other = self.n * self.d + self.n * self.k  # b and the frequencies c
        self.width = self.n * self.d  # columns it feeds the MLP
        self.row_floats = self.n * (1 + 2 * self.k + 2 * self.d)  # forward buffers, per row

    def views(self, coef: np.ndarray, other: np.ndarray) -> dict[str, np.ndarray]:
        """{"W": (n, 2k, d), "b": (n, d), "c": (n, k)} as views of two flat blocks."""
        n, k, d = self.n, self.k, self.d
        return {"W": coef.reshape(n, 2 * k, d), "b": other[:n * d].reshape(n, d),
                "c": other[n * d:].reshape(n, k)}

    def init(self, rng: np.random.Generator, p: dict[str, np.ndarray]) -> None:
        """c ~ N(0, sigma); W, b uniform in +-1/sqrt(2k) (a linear layer's usual start)."""
        bound = 1.0 / math.sqrt(2 * self.k)
        p["c"][...] = rng.normal(0.0, self.sigma, p["c"].shape)
        p["W"][...] = rng.uniform(-bound, bound, p["W"].shape)
        p["b"][...] = rng.uniform(-bound, bound, p["b"].shape)

    def buffers(self, rows: int, dtype: np.dtype, inference: bool = False
                ) -> dict[str, np.ndarray]:
        """Forward buffers (``row_floats`` per row); training adds the backward ones."""
        n, k, d = self.n, self.k, self.d
        forward = {"xt": np.empty((n, rows, 1), dtype),  # 2 pi x, per column
                   "V": np.empty((n, rows, 2 * k), dtype), "H": np.empty((n, rows, d), dtype),
                   "E": np.empty((rows, n, d), dtype)}  # row-major copy of H for the MLP
        if inference:
            return forward
        return forward | {"G": np.empty((n, rows, d), dtype), "S": np.empty((n, rows, d), dtype),
                          "GV": np.empty((n, rows, 2 * k), dtype),
                          "ones": np.ones((n, 1, rows), dtype)}

    def forward(self, p: dict, buf: dict, X: np.ndarray) -> np.ndarray:
        """[h_1 .. h_n], (m, n d), for the continuous columns X (m, n); a view of buf["E"]."""
        m, k = X.shape[0], self.k
        xt, V, H = buf["xt"][:, :m], buf["V"][:, :m], buf["H"][:, :m]
        np.multiply(X.T[:, :, None], TWO_PI, out=xt)  # (n, m, 1)
        np.multiply(xt, p["c"][:, None, :], out=V[:, :, :k])  # phases (n, m, k)
        np.sin(V[:, :, :k], out=V[:, :, k:])
        np.cos(V[:, :, :k], out=V[:, :, :k])
        np.matmul(V, p["W"], out=H)  # (n, m, d)
        H += p["b"][:, None, :]
        np.maximum(H, 0, out=H)
        E = buf["E"][:m]
        E[...] = H.transpose(1, 0, 2)
        return E.reshape(m, self.n * self.d)

    def backward(self, p: dict, g: dict, buf: dict, D: np.ndarray) -> None:
        """Fill the gradients g["W"], g["b"], g["c"] from D = d loss / d out, (m, n d) (may be
        a column slice: it is copied through the row-major buffer E, never reshaped)."""
        m, k = D.shape[0], self.k
        xt, V, H = buf["xt"][:, :m], buf["V"][:, :m], buf["H"][:, :m]
        G, GV, S, E = buf["G"][:, :m], buf["GV"][:, :m], buf["S"][:, :m], buf["E"][:m]
        E.reshape(m, self.n * self.d)[...] = D
        G[...] = E.transpose(1, 0, 2)  # (n, m, d)
        np.sign(H, out=S)  # relu': H = max(z, 0), so sign(H) is 0 or 1
        G *= S
        np.matmul(V.transpose(0, 2, 1), G, out=g["W"])  # (n, 2k, d)
        np.matmul(buf["ones"][:, :, :m], G, out=g["b"][:, None, :])  # row sums, faster than sum

        np.matmul(G, p["W"].transpose(0, 2, 1), out=GV)  # d loss / d v, (n, m, 2k)
        # d cos(p)/dp = -sin(p), d sin(p)/dp = cos(p); d p / d c = 2 pi x
        cos, sin = V[:, :, :k], V[:, :, k:]
        GV[:, :, k:] *= cos
        GV[:, :, :k] *= sin
        GV[:, :, k:] -= GV[:, :, :k]  # d loss / d p, (n, m, k)
        np.matmul(xt.transpose(0, 2, 1), GV[:, :, k:], out=g["c"][:, None, :])


class CategoricalEmbedding:
    """One learned d-vector per level of each categorical column (entity embeddings).

    The network's input holds, per categorical column j, the row r of its level in column j's
    table (``encoders.CategoryIndex`` maps level codes to rows; row 0 is the shared "other"
    row of rare and unseen levels). All tables are stacked in one (R, d) block ``T`` (R = the
    rows of every column; column j starts at ``offsets[j]``), so a lookup is one ``take``:

        e_j = T[offsets[j] + r_j]                 (m, d)      per row
        out = [e_1, ..., e_{n_cat}]               (m, n_cat d)

    Backward: d loss / d T[i] sums the rows' d loss / d e_j that looked row i up, a
    scatter-add (``np.add.at``). T is a coefficient block: L2 and weight decay shrink it like
    the weights, which pulls rarely seen levels towards 0 (the mean).

    Updates stay dense, measured against the sparse ones of PyTorch's SparseAdam / TF's LazyAdam
    (only the batch's rows, and their Adam moments, move; L2 on those rows only) on
    benchmarks/bench_embeddings.py, 3 data seeds x log-normal and Zipf levels: with periodic
    inputs +0.0024 OOF / +0.0009 private AUC, with plain inputs -0.0020 / -0.0027, so not kept.
    Dense Adam's momentum keeps moving a rare level's row for ~10 steps after its rows left the
    batch, which helps it learn; lazy L2 alone changed nothing at the alphas init searches.
    """

    def __init__(self, sizes: list[int] | tuple[int, ...], dim: int) -> None:
        self.sizes = tuple(int(s) for s in sizes)  # table rows per column, "other" included
        self.n, self.d = len(self.sizes), int(dim)
        self.offsets = np.cumsum((0, *self.sizes[:-1])).astype(np.intp)  # (n_cat,)
        self.n_coef = sum(self.sizes) * self.d
        self.n_other = 0
        self.width = self.n * self.d  # columns it feeds the MLP
        self.row_floats = self.n * (1 + self.d)  # forward buffers, per row

    def views(self, coef: np.ndarray) -> dict[str, np.ndarray]:
        return {"table": coef.reshape(sum(self.sizes), self.d)}

    def init(self, rng: np.random.Generator, p: dict[str, np.ndarray]) -> None:
        """N(0, 0.01^2) entries: every level starts near the others (the mean), and its own
        rows move it; from N(0, 1), a level seen a few times keeps much of its random start.
        Measured on benchmarks/bench_embeddings.py's data (5-fold AUC, init's [model],
        min_count 5): N(0, 1) 0.732, N(0, 0.1^2) 0.777, N(0, 0.01^2) 0.777; with plain numeric
        inputs and min_count 2: 0.809 (0.1) and 0.815 (0.01)."""
        p["table"][...] = rng.normal(0.0, INIT_SCALE, p["table"].shape)

    def buffers(self, rows: int, dtype: np.dtype, inference: bool = False
                ) -> dict[str, np.ndarray]:
        return {"rows": np.empty((rows, self.n), np.intp),  # table rows looked up
                "out": np.empty((rows, self.n, self.d), dtype)}

    def forward(self, p: dict, buf: dict, R: np.ndarray) -> np.ndarray:
        """[e_1 .. e_n], (m, n d), for the table rows R (m, n) (floats holding integers)."""
        m = R.shape[0]
        rows, out = buf["rows"][:m], buf["out"][:m]
        np.add(R, self.offsets, out=rows, casting="unsafe")  # (m, n): rows of T
        np.take(p["table"], rows, axis=0, out=out, mode="clip")  # (m, n, d)
        return out.reshape(m, self.width)

    def backward(self, g: dict, buf: dict, D: np.ndarray) -> None:
        """g["table"] from D = d loss / d out, (m, n d): scatter-add each row's gradient into
        the table rows it looked up (a row looked up twice gets both)."""
        m = D.shape[0]
        gT = g["table"]
        gT.fill(0.0)
        np.add.at(gT, buf["rows"][:m], D.reshape(m, self.n, self.d))
