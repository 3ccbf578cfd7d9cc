"""The network itself: parameters, forward pass and backpropagation on preallocated buffers.

Layout. All parameters live in one flat vector ``theta`` = [W_0, ..., W_{L-1}, b_0, ..., b_{L-1}]
(coefficients first, like scikit-learn's ``_pack``), and ``W[i]`` / ``b[i]`` are reshaped views of
it. The optimiser then updates everything with a few vector ops, and the L2 term touches the
contiguous coefficient block ``theta[:n_coef]`` only.

Speed. Training runs ~4 small GEMMs per layer per batch; at batch 256 the per-call overhead of
NumPy matters as much as the FLOPs. So ``Workspace`` owns every buffer a batch needs
(activations ``A``, deltas ``D``, scratch ``T``) and a step allocates nothing: ``np.dot(...,
out=)`` (the same BLAS call as matmul, half the dispatch overhead on small matrices), in-place
ufuncs, ``A.T @ D`` for weight gradients and a ones-vector GEMV for bias gradients (faster here
than ``sum(axis=0)``). Prediction runs the same ``forward`` on blocks of rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .activations import ACTIVATE, DERIVATIVE, init_layer
from .embeddings import CategoricalEmbedding, PeriodicEmbedding
from .losses import TASKS, loss_delta, output_

FLOATS = (np.float64, np.float32)  # the dtypes a network trains and predicts in
PREDICT_CHUNK = 8192  # rows per forward block at predict time: bounded memory, cache friendly
# ... and fewer where a row's forward buffers are wide (periodic embeddings: ~12 KB a row in
# float64, so 8192 rows would take ~100 MB per call; measured on issue 21's 300k rows)
PREDICT_BYTES = 8 << 20


class Network:
    """A fully connected network: ``sizes[0]`` inputs -> hidden layers -> ``sizes[-1]`` outputs.

    With ``sizes = [n_in, n_out]`` (no hidden layer) it is a linear model: logistic, softmax or
    linear regression, trained by the same code. With an ``embedding``, the first
    ``embedding.n`` input columns go through it first; with ``categorical``, the last
    ``categorical.n`` columns (table rows of categorical levels) are looked up in its tables.
    ``sizes[0]`` counts the MLP's input: [periodic outputs, other columns, category vectors].
    """

    def __init__(self, sizes: Sequence[int], activation: str, task: str,
                 dtype: np.dtype | str = np.float32, dropout: float = 0.0,
                 embedding: PeriodicEmbedding | None = None, loss: str = "squared",
                 categorical: CategoricalEmbedding | None = None) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}; got {task!r}")
        self.loss_kind = loss  # regression only: "squared" | "huber"
        self.loss_delta = loss_delta(task, loss)
        self.sizes = [int(s) for s in sizes]
        self.activation = activation
        self.task = task
        self.dropout = float(dropout)  # share of hidden units zeroed per training step
        self.embedding = embedding
        self.categorical = categorical
        self.blocks = [e for e in (embedding, categorical) if e is not None]
        self.dtype = np.dtype(dtype)
        self.n_layers = len(self.sizes) - 1  # number of weight matrices
        self.shapes = list(zip(self.sizes[:-1], self.sizes[1:], strict=True))
        emb_coef = sum(e.n_coef for e in self.blocks)
        emb_other = sum(e.n_other for e in self.blocks)
        self.n_inputs = self.sizes[0] - sum(e.width - e.n for e in self.blocks)
        self.n_coef = sum(i * o for i, o in self.shapes) + emb_coef
        self.theta = np.zeros(self.n_coef + sum(self.sizes[1:]) + emb_other, self.dtype)
        self.grad = np.zeros_like(self.theta)
        self.W, self.b, self.E = self.views(self.theta)
        self.gW, self.gb, self.gE = self.views(self.grad)

    def views(self, flat: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], dict]:
        """Per-layer (W, b) views into a flat vector laid out like ``theta``, and the
        embeddings' ({} without one). Layout: [W_0 .. W_{L-1}, periodic W, category tables |
        b_0 .. b_{L-1}, periodic b and frequencies]: every coefficient first, for L2 and
        weight decay."""
        W, b, start = [], [], 0
        for fan_in, fan_out in self.shapes:
            W.append(flat[start:start + fan_in * fan_out].reshape(fan_in, fan_out))
            start += fan_in * fan_out
        emb_coef = flat[start:self.n_coef]
        start = self.n_coef
        for _, fan_out in self.shapes:
            b.append(flat[start:start + fan_out])
            start += fan_out
        E: dict[str, np.ndarray] = {}
        if self.embedding is not None:
            n = self.embedding.n_coef
            E |= self.embedding.views(emb_coef[:n], flat[start:])
            emb_coef = emb_coef[n:]
        if self.categorical is not None:
            E |= self.categorical.views(emb_coef)
        return W, b, E

    def init(self, rng: np.random.Generator) -> None:
        """Draw initial weights (in float64, then cast: same values whatever the dtype)."""
        for i, (fan_in, fan_out) in enumerate(self.shapes):
            W, b = init_layer(rng, fan_in, fan_out, self.activation)
            self.W[i][...] = W
            self.b[i][...] = b
        if self.blocks:
            values = {k: np.empty(v.shape) for k, v in self.E.items()}
            for block in self.blocks:
                block.init(rng, values)
            for k, v in values.items():
                self.E[k][...] = v

    def set_params(self, coefs: Sequence[np.ndarray], intercepts: Sequence[np.ndarray],
                   embedding: dict[str, np.ndarray] | None = None) -> None:
        for i in range(self.n_layers):
            self.W[i][...] = coefs[i]
            self.b[i][...] = intercepts[i]
        for k, v in (embedding or {}).items():
            self.E[k][...] = v

    # ---------------------------------------------------------------- the chain rule
    def forward(self, ws: Workspace, m: int, training: bool = False) -> None:
        """A[i+1] = act(A[i] @ W[i] + b[i]) on the first m rows of ws.X; A[L] keeps the logits.

        Training with dropout, hidden outputs enter the next layer as A[i] * M[i] (ws.AM[i]),
        M[i] holding 0 or 1 / (1 - dropout) per unit (inverted dropout: nothing to undo later).
        """
        A, (AM, M) = ws.views(m)[0], ws.dropout_views(m)
        act, last = ACTIVATE[self.activation], self.n_layers - 1
        if self.blocks:  # A[0] = [embedded continuous columns, the others, level vectors]
            self._first_block(ws, A[0], m)
        for i in range(self.n_layers):
            inputs = A[i]
            if training and i > 0 and AM[i] is not None:
                inputs = np.multiply(A[i], M[i], out=AM[i])
            np.dot(inputs, self.W[i], out=A[i + 1])  # (m, n_{i+1})
            A[i + 1] += self.b[i]
            if i < last:
                act(A[i + 1])

    def backward(self, ws: Workspace, m: int, training: bool = False) -> None:
        """From D[L] = d loss / d Z_out, fill ``grad``, output layer to input layer:

        gW[i] = A[i].T @ D[i+1];  gb[i] = sum over rows of D[i+1];
        D[i]  = (D[i+1] @ W[i].T) * act'(A[i])          (times M[i] with dropout)
        """
        A, D, T, _, ones = ws.views(m)
        AM, M = ws.dropout_views(m)
        act_grad = DERIVATIVE[self.activation]
        for i in range(self.n_layers - 1, -1, -1):
            dropped = training and i > 0 and AM[i] is not None
            np.dot((AM if dropped else A)[i].T, D[i + 1], out=self.gW[i])  # (n_i, n_{i+1})
            np.dot(ones, D[i + 1], out=self.gb[i])  # column sums, (n_{i+1},)
            if i > 0:
                _times_transpose(D[i + 1], self.W[i], out=D[i])  # (m, n_i)
                if dropped:
                    D[i] *= M[i]
                act_grad(D[i], A[i], T[i])
        if self.blocks:  # on into the embeddings: d loss / d A[0], their blocks
            _times_transpose(D[1], self.W[0], out=D[0])
            if self.embedding is not None:
                self.embedding.backward(self.E, self.gE, ws.E, D[0][:, :self.embedding.width])
            if self.categorical is not None:
                self.categorical.backward(self.gE, ws.C, D[0][:, -self.categorical.width:])

    def _first_block(self, ws: Workspace, A0: np.ndarray, m: int) -> None:
        """A[0] from the batch ws.X: [periodic outputs | other columns | category vectors]."""
        X, start, stop = ws.X[:m], 0, self.n_inputs
        left, right = 0, self.sizes[0]
        if self.embedding is not None:
            start, left = self.embedding.n, self.embedding.width
            A0[:, :left] = self.embedding.forward(self.E, ws.E, X[:, :start])
        if self.categorical is not None:
            stop, right = stop - self.categorical.n, right - self.categorical.width
            A0[:, right:] = self.categorical.forward(self.E, ws.C, X[:, stop:])
        A0[:, left:right] = X[:, start:stop]

    def loss_and_grad(self, ws: Workspace, m: int, alpha: float) -> float:
        """Forward, loss, backward on the first m rows held in the workspace (ws.X, ws.Y),
        with the dropout masks ws.M drawn last (``Workspace.draw_masks``).

        Returns the batch loss (mean data loss + alpha ||W||^2 / (2 m), scikit-learn's per-batch
        formula) and leaves d loss / d theta in ``self.grad``.
        """
        A, D, T, Y, _ = ws.views(m)
        L = self.n_layers
        self.forward(ws, m, training=True)
        loss = self.loss_delta(A[L], Y, D[L], T[L]) / m  # D[L] = dloss/dZ / m
        self.backward(ws, m, training=True)
        if alpha > 0.0:
            loss += self._l2(ws.coef_tmp, m, alpha)
        return loss

    def _l2(self, tmp: np.ndarray, m: int, alpha: float) -> float:
        """Adds alpha W / m to the coefficient gradients (not the biases, as scikit-learn);
        returns the penalty alpha ||W||^2 / (2 m)."""
        W_flat, gW_flat = self.theta[:self.n_coef], self.grad[:self.n_coef]
        np.multiply(W_flat, alpha / m, out=tmp)
        gW_flat += tmp
        return 0.5 * alpha * float(np.dot(W_flat, W_flat)) / m

    # ---------------------------------------------------------------- inference (allocates)
    def logits(self, X: np.ndarray) -> np.ndarray:
        """Output-layer pre-activations Z_out, (n, sizes[-1]): ``forward`` on blocks of rows."""
        n = X.shape[0]
        out = np.empty((n, self.sizes[-1]), self.dtype)
        per_row = self.dtype.itemsize * (sum(self.sizes) + self.n_inputs
                                         + sum(b.row_floats for b in self.blocks))
        chunk = max(256, min(PREDICT_CHUNK, PREDICT_BYTES // per_row))
        ws = Workspace(self, min(n, chunk), self.sizes[-1], inference=True)
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            for start in range(0, n, chunk):
                m = min(chunk, n - start)
                ws.X[:m] = X[start:start + m]
                self.forward(ws, m)
                out[start:start + m] = ws.A[-1][:m]
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Probabilities (classifiers) or values (regression), (n, sizes[-1])."""
        Z = self.logits(X)
        output_(self.task, Z)
        return Z

    def loss(self, X: np.ndarray, Y: np.ndarray, alpha: float = 0.0) -> float:
        """Full-batch loss (with the L2 term); also leaves the full-batch gradient in ``grad``."""
        ws = Workspace(self, X.shape[0], Y.shape[1])
        ws.X[...] = X
        ws.Y[...] = Y
        return self.loss_and_grad(ws, X.shape[0], alpha)


def _times_transpose(D: np.ndarray, W: np.ndarray, out: np.ndarray) -> None:
    """out <- D @ W.T. With one output unit that is an outer product, where broadcasting
    beats a degenerate GEMM."""
    if W.shape[1] == 1:
        np.multiply(D, W.T, out=out)
    else:
        np.dot(D, W.T, out=out)


def _cut(bufs: list, m: int) -> list:
    return [None if a is None else a[:m] for a in bufs]


class Workspace:
    """Every buffer one step needs, for batches of up to ``batch_size`` rows.

    ``views(m)`` returns row-prefix views for a batch of m rows (cached: there are only ever two
    sizes, the full batch and the last, shorter one). Row prefixes of C-contiguous buffers are
    contiguous, so BLAS and ufuncs see plain dense arrays. ``inference`` workspaces hold the
    forward buffers only.
    """

    def __init__(self, net: Network, batch_size: int, n_targets: int,
                 inference: bool = False) -> None:
        dt, B = net.dtype, max(1, batch_size)
        self.X = np.empty((B, net.n_inputs), dt)  # the gathered input batch
        emb, cat = net.embedding, net.categorical
        # with an embedding, the MLP's input A[0] is a buffer of its own
        A0 = np.empty((B, net.sizes[0]), dt) if net.blocks else self.X
        self.E = {} if emb is None else emb.buffers(B, dt, inference)
        self.C = {} if cat is None else cat.buffers(B, dt, inference)
        self.A = [A0] + [np.empty((B, n), dt) for n in net.sizes[1:]]
        # dropout: per hidden layer a mask M and the masked outputs AM (None: no dropout)
        drop = net.dropout > 0 and not inference
        self.M = [None] + [np.empty((B, n), dt) if drop else None for n in net.sizes[1:-1]]
        self.AM = [None] + [np.empty((B, n), dt) if drop else None for n in net.sizes[1:-1]]
        self.keep = 1.0 - net.dropout
        if inference:
            self.Y = self.ones = self.coef_tmp = np.empty(0, dt)
            self.D = self.T = [None] * len(self.A)
        else:
            self.Y = np.empty((B, n_targets), dt)
            D0 = np.empty((B, net.sizes[0]), dt) if net.blocks else None
            self.D = [D0] + [np.empty((B, n), dt) for n in net.sizes[1:]]
            self.T = [None] + [np.empty((B, n), dt) for n in net.sizes[1:]]
            self.ones = np.ones(B, dt)
            self.coef_tmp = np.empty(net.n_coef, dt)
            self.last_good = np.empty_like(net.theta)  # weights at the start of an epoch
        self._views: dict[int, tuple] = {}
        self._drop_views: dict[int, tuple] = {}

    def views(self, m: int) -> tuple[list, list, list, np.ndarray, np.ndarray]:
        """(A, D, T, Y, ones) cut to the first m rows."""
        if m not in self._views:
            self._views[m] = (_cut(self.A, m), _cut(self.D, m), _cut(self.T, m), self.Y[:m],
                              self.ones[:m])
        return self._views[m]

    def dropout_views(self, m: int) -> tuple[list, list]:
        """(AM, M) cut to the first m rows (cached like ``views``)."""
        if m not in self._drop_views:
            self._drop_views[m] = (_cut(self.AM, m), _cut(self.M, m))
        return self._drop_views[m]

    def draw_masks(self, rng: np.random.Generator, m: int) -> None:
        """New dropout masks for a batch of m rows: 0 with probability dropout, else 1 / keep."""
        for mask in self.dropout_views(m)[1]:
            if mask is not None:
                rng.random(out=mask, dtype=mask.dtype)
                np.less(mask, self.keep, out=mask, casting="unsafe")
                mask *= 1.0 / self.keep

    def gather(self, X: np.ndarray, Y: np.ndarray, rows: np.ndarray) -> None:
        """Copy rows of (X, Y) into the batch buffers; mode='clip' skips take's extra buffering
        (the indices are valid by construction)."""
        m = rows.shape[0]
        X.take(rows, 0, self.X[:m], "clip")
        Y.take(rows, 0, self.Y[:m], "clip")
