"""Rows of a feature matrix as the network's input, encoded block by block (issue 21).

The fit loop, early stopping, the per-epoch eval set and prediction all read the network's
input through ``EncodedRows`` instead of an encoded copy of the whole matrix: X stays as given
(possibly a read-only memory map that every fold and tuning worker shares), a fold's rows are
indices into it, and only the batch in hand (or a block of ``PREDICT_CHUNK`` rows) is gathered
and encoded. Encodings are elementwise, so a batch encoded alone equals the same rows of an
encoded matrix bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# encode(raw rows of X, out or None) -> the encoded rows (written into out when given)
Encode = Callable[[np.ndarray, np.ndarray | None], np.ndarray]


def identity(dtype: np.dtype) -> Encode:
    """No encoding: the raw rows as ``dtype``."""

    def encode(raw: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        if out is None:
            return np.ascontiguousarray(raw, dtype=dtype)
        out[...] = raw
        return out

    return encode


class EncodedRows:
    """Rows ``rows`` of X (all of them when None), encoded by ``encode`` on demand.

    It answers like the (n, width) array the encoding would make, for what the network asks:
    ``shape``, ``dtype``, ``len``, ``self[a:b]`` and ``self[index array]`` (encoded copies of
    those rows) and ``take(positions, 0, out)`` (the fit loop's batch gather, into ``out``).
    ``subset(positions)`` is another lazy view, of some of these rows.
    """

    def __init__(self, X: np.ndarray, rows: np.ndarray | None, encode: Encode, width: int,
                 dtype: np.dtype) -> None:
        self.X, self.encode = X, encode
        self.rows = None if rows is None else np.asarray(rows, dtype=np.intp)
        n = X.shape[0] if self.rows is None else self.rows.shape[0]
        self.shape, self.dtype, self.ndim = (n, int(width)), np.dtype(dtype), 2

    def __len__(self) -> int:
        return self.shape[0]

    def _raw(self, positions: slice | np.ndarray) -> np.ndarray:
        """Raw rows of X at these positions of the view (a copy of those rows only)."""
        if self.rows is None:
            return self.X[positions]
        return self.X[self.rows[positions]]

    def __getitem__(self, positions: slice | np.ndarray) -> np.ndarray:
        return self.encode(self._raw(positions), None)

    def take(self, positions: np.ndarray, axis: int = 0, out: np.ndarray | None = None,
             mode: str = "raise") -> np.ndarray:
        """Encoded rows at ``positions`` into ``out`` (``ndarray.take``'s signature, rows only)."""
        if axis != 0:
            raise ValueError("EncodedRows.take gathers rows only (axis=0)")
        return self.encode(self._raw(positions), out)

    def subset(self, positions: np.ndarray) -> EncodedRows:
        """The rows at ``positions`` of this view, still lazy."""
        rows = positions if self.rows is None else self.rows[positions]
        return EncodedRows(self.X, rows, self.encode, self.shape[1], self.dtype)
