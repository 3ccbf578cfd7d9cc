"""The network itself: parameters, forward pass, and backpropagation on preallocated buffers.

Layout. All parameters live in one flat vector ``theta`` = [W_0, ..., W_{L-1}, b_0, ..., b_{L-1}]
(coefficients first, like scikit-learn's ``_pack``), and ``W[i]`` / ``b[i]`` are reshaped views of
it. The optimiser then updates everything with a few vector ops, and the L2 term touches the
contiguous coefficient block ``theta[:n_coef]`` only.

Speed. Training runs ~4 small GEMMs per layer per batch; at batch 256 the per-call overhead of
NumPy matters as much as the FLOPs. So ``Workspace`` owns every buffer a batch needs
(activations ``A``, deltas ``D``, scratch ``T``) and a step allocates nothing: ``np.matmul(...,
out=)``, in-place ufuncs, ``A.T @ D`` for weight gradients and a ones-vector GEMV for bias
gradients (faster here than ``sum(axis=0)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .activations import ACTIVATE, DERIVATIVE, init_layer
from .losses import LOSS_DELTA, TASKS, output_

PREDICT_CHUNK = 8192  # rows per forward block at predict time: bounded memory, cache friendly


class Network:
    """A fully connected network: ``sizes[0]`` inputs -> hidden layers -> ``sizes[-1]`` outputs."""

    def __init__(self, sizes: Sequence[int], activation: str, task: str,
                 dtype: np.dtype | str = np.float32) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}; got {task!r}")
        self.sizes = [int(s) for s in sizes]
        self.activation = activation
        self.task = task
        self.dtype = np.dtype(dtype)
        self.n_layers = len(self.sizes) - 1  # number of weight matrices
        self.shapes = list(zip(self.sizes[:-1], self.sizes[1:], strict=True))
        self.n_coef = sum(i * o for i, o in self.shapes)
        self.theta = np.zeros(self.n_coef + sum(self.sizes[1:]), self.dtype)
        self.grad = np.zeros_like(self.theta)
        self.W, self.b = self.views(self.theta)
        self.gW, self.gb = self.views(self.grad)

    def views(self, flat: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per-layer (W, b) views into a flat vector laid out like ``theta``."""
        W, b, start = [], [], 0
        for fan_in, fan_out in self.shapes:
            W.append(flat[start:start + fan_in * fan_out].reshape(fan_in, fan_out))
            start += fan_in * fan_out
        for _, fan_out in self.shapes:
            b.append(flat[start:start + fan_out])
            start += fan_out
        return W, b

    def init(self, rng: np.random.Generator) -> None:
        """Draw initial weights (in float64, then cast: same values whatever the dtype)."""
        for i, (fan_in, fan_out) in enumerate(self.shapes):
            W, b = init_layer(rng, fan_in, fan_out, self.activation)
            self.W[i][...] = W
            self.b[i][...] = b

    def set_params(self, coefs: Sequence[np.ndarray], intercepts: Sequence[np.ndarray]) -> None:
        for i in range(self.n_layers):
            self.W[i][...] = coefs[i]
            self.b[i][...] = intercepts[i]

    # ---------------------------------------------------------------- inference (allocates)
    def logits(self, X: np.ndarray) -> np.ndarray:
        """Output-layer pre-activations Z_out, (n, sizes[-1]), computed in blocks of rows."""
        n = X.shape[0]
        out = np.empty((n, self.sizes[-1]), self.dtype)
        act = ACTIVATE[self.activation]
        last = self.n_layers - 1
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            for start in range(0, n, PREDICT_CHUNK):
                A = np.asarray(X[start:start + PREDICT_CHUNK], dtype=self.dtype)
                for i in range(self.n_layers):
                    Z = A @ self.W[i]  # (rows, n_{i+1})
                    Z += self.b[i]
                    if i < last:
                        act(Z)
                    A = Z
                out[start:start + A.shape[0]] = A
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Probabilities (classifiers) or values (regression), (n, sizes[-1])."""
        Z = self.logits(X)
        output_(self.task, Z)
        return Z

    # ---------------------------------------------------------------- training (no allocation)
    def loss_and_grad(self, ws: Workspace, m: int, alpha: float) -> float:
        """Forward + backward on the first m rows held in the workspace (ws.X, ws.Y).

        Returns the batch loss (mean data loss + alpha ||W||^2 / (2 m), scikit-learn's per-batch
        formula) and leaves d loss / d theta in ``self.grad``. ``np.dot(..., out=)`` rather than
        ``np.matmul``: same BLAS call, half the dispatch overhead on these small matrices.
        """
        A, D, T, Y, ones = ws.views(m)
        W, b, gW, gb = self.W, self.b, self.gW, self.gb
        L = self.n_layers
        act, act_grad = ACTIVATE[self.activation], DERIVATIVE[self.activation]
        dot = np.dot

        # forward: A[i+1] = act(A[i] @ W[i] + b[i]); the output layer keeps its logits
        for i in range(L):
            dot(A[i], W[i], out=A[i + 1])  # (m, n_{i+1})
            A[i + 1] += b[i]
            if i < L - 1:
                act(A[i + 1])

        # output: D[L] = d loss / d Z_out = (P - Y) / m
        loss = LOSS_DELTA[self.task](A[L], Y, D[L], T[L]) / m

        # backward: gW[i] = A[i].T @ D[i+1];  D[i] = (D[i+1] @ W[i].T) * act'(A[i])
        for i in range(L - 1, -1, -1):
            dot(A[i].T, D[i + 1], out=gW[i])  # (n_i, n_{i+1})
            dot(ones, D[i + 1], out=gb[i])  # column sums, (n_{i+1},)
            if i == 0:
                break
            if W[i].shape[1] == 1:  # an outer product: broadcasting beats a degenerate GEMM
                np.multiply(D[i + 1], W[i].T, out=D[i])
            else:
                dot(D[i + 1], W[i].T, out=D[i])  # (m, n_i)
            act_grad(D[i], A[i], T[i])

        if alpha > 0.0:  # L2 on coefficients only, as scikit-learn
            W_flat, gW_flat = self.theta[:self.n_coef], self.grad[:self.n_coef]
            loss += 0.5 * alpha * float(dot(W_flat, W_flat)) / m
            np.multiply(W_flat, alpha / m, out=ws.coef_tmp)
            gW_flat += ws.coef_tmp
        return loss

    def loss(self, X: np.ndarray, Y: np.ndarray, alpha: float = 0.0) -> float:
        """Full-batch loss (with the L2 term); also leaves the full-batch gradient in ``grad``."""
        ws = Workspace(self, X.shape[0], Y.shape[1])
        ws.X[...] = X
        ws.Y[...] = Y
        return self.loss_and_grad(ws, X.shape[0], alpha)


class Workspace:
    """Every buffer one training step needs, for batches of up to ``batch_size`` rows.

    ``views(m)`` returns row-prefix views for a batch of m rows (cached: there are only ever two
    sizes, the full batch and the last, shorter one). Row prefixes of C-contiguous buffers are
    contiguous, so BLAS and ufuncs see plain dense arrays.
    """

    def __init__(self, net: Network, batch_size: int, n_targets: int) -> None:
        dt, B = net.dtype, batch_size
        self.X = np.empty((B, net.sizes[0]), dt)  # the gathered input batch
        self.Y = np.empty((B, n_targets), dt)
        self.A = [self.X] + [np.empty((B, n), dt) for n in net.sizes[1:]]
        self.D = [None] + [np.empty((B, n), dt) for n in net.sizes[1:]]
        self.T = [None] + [np.empty((B, n), dt) for n in net.sizes[1:]]
        self.ones = np.ones(B, dt)
        self.coef_tmp = np.empty(net.n_coef, dt)
        self._views: dict[int, tuple] = {}

    def views(self, m: int) -> tuple[list, list, list, np.ndarray, np.ndarray]:
        """(A, D, T, Y, ones) cut to the first m rows."""
        if m not in self._views:
            def cut(bufs: list) -> list:
                return [None if a is None else a[:m] for a in bufs]

            self._views[m] = (cut(self.A), cut(self.D), cut(self.T), self.Y[:m], self.ones[:m])
        return self._views[m]

    def gather(self, X: np.ndarray, Y: np.ndarray, rows: np.ndarray) -> None:
        """Copy rows of (X, Y) into the batch buffers; mode='clip' skips take's extra buffering
        (the indices are valid by construction)."""
        m = rows.shape[0]
        A, _, _, Yb, _ = self.views(m)
        X.take(rows, 0, A[0], "clip")
        Y.take(rows, 0, Yb, "clip")
