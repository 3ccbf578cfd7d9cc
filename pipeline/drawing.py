"""The network, drawn: layers as columns of nodes, edges as thick as |weight|, coloured by sign.

Input nodes are the prepared columns, not the network's input units: the units an encoded
column expands into (PLE bins, the periodic embedding's block, one-hot levels `colour=red`)
are one node under the column's name, its edge to a hidden unit their mean |weight|.
With many inputs the heaviest (by total outgoing |weight|) are drawn and the rest share one
node ("+ 96 more"). Biases colour the nodes (blue +, red -) and, in small layers, label them.

Reads a fitted estimator's public attributes only (coefs_, intercepts_, encoder_, embedding_);
matplotlib is imported inside the functions, so importing this module is free.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

MAX_INPUTS = 12  # input nodes drawn; the rest share one node
MAX_UNITS = 16  # hidden units drawn per layer (the heaviest); the rest share one node
LABEL_BIASES = 8  # layers up to this size get a bias label on each node
POSITIVE, NEGATIVE = "#2166ac", "#b2182b"


def column_of_unit(model: Any, feature_names: list[str] | None = None) -> list[str]:
    """The prepared column each network input unit (row of ``coefs_[0]``) comes from."""
    n_in = int(getattr(model, "n_features_in_", model.coefs_[0].shape[0]))
    names = list(feature_names or getattr(model, "feature_names_in_", None) or
                 [f"x{j}" for j in range(n_in)])
    if len(names) != n_in:
        names = [f"x{j}" for j in range(n_in)]
    names = [n.split("=", 1)[0] for n in names]  # one-hot levels under their column
    encoder = getattr(model, "encoder_", None)
    index = getattr(model, "categories_", None)  # categorical columns: embedded, last
    if encoder is None and index is None:
        return names
    numeric = range(n_in) if index is None else index.numeric_
    groups = ([(int(numeric[j]), w) for j, w in encoder.feature_groups()]
              if encoder is not None else [(int(j), 1) for j in numeric])
    embedding = getattr(model, "embedding_", None)
    if embedding is not None:  # the embedding's block: d units per continuous column
        n_c, d = embedding["b"].shape
        groups = [(j, d) for j, _ in groups[:n_c]] + groups[n_c:]
    if index is not None:
        groups += [(j, model.categorical_embedding_.shape[1]) for j in index.columns_]
    return [names[j] for j, width in groups for _ in range(width)]


def column_edges(model: Any, feature_names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Per prepared column, its edge to each first-layer unit: the mean |weight| of the units
    it expands into (so a 7-level one-hot or 16 PLE bins do not outweigh one plain column),
    signed like their sum."""
    W0 = np.asarray(model.coefs_[0], dtype=np.float64)
    units = column_of_unit(model, feature_names)
    out = {}
    for name in dict.fromkeys(units):
        rows = W0[[u for u, c in enumerate(units) if c == name]]
        out[name] = np.abs(rows).mean(axis=0) * np.where(rows.sum(axis=0) < 0, -1.0, 1.0)
    return out


def input_ranking(model: Any, feature_names: list[str] | None = None) -> list[tuple[str, float]]:
    """Columns by total outgoing |weight| (their drawn edges), heaviest first: the talk's
    "some arrows are thicker than others"."""
    edges = column_edges(model, feature_names)
    totals = {name: float(np.abs(e).sum()) for name, e in edges.items()}
    return sorted(totals.items(), key=lambda kv: -kv[1])


def selection(groups: list[list[int]], n: int) -> np.ndarray:
    """(n, len(groups)) 0/1 matrix: unit u belongs to drawn node g (``S.T @ W @ S'``: the
    weights between drawn nodes)."""
    S = np.zeros((n, len(groups)))
    for g, units in enumerate(groups):
        S[units, g] = 1.0
    return S


def _top(order: list, groups: list[list[int]], names: list[str], k: int) -> tuple[list, list]:
    """The first k nodes of ``order`` and one node for the rest (when more than one is left)."""
    if len(order) <= k + 1:
        return [groups[o] for o in order], [names[o] for o in order]
    rest = [u for o in order[k:] for u in groups[o]]
    return ([groups[o] for o in order[:k]] + [rest],
            [names[o] for o in order[:k]] + [f"+ {len(order) - k} more"])


def layers_to_draw(model: Any, feature_names: list[str] | None = None,
                   classes: Sequence | None = None) -> tuple[list, list, list]:
    """(node labels per layer, summed weights between drawn layers, mean biases per layer).

    Inputs: one node per prepared column (``column_edges``), the heaviest MAX_INPUTS, the rest
    as one node with their mean edges; hidden layers: their MAX_UNITS heaviest units (by
    |weight| in and out), the rest as one node: the mean of their edges and biases.
    """
    coefs = [np.asarray(W, dtype=np.float64) for W in model.coefs_]
    intercepts = [np.asarray(b, dtype=np.float64) for b in model.intercepts_]
    edges = column_edges(model, feature_names)  # the input layer: one row per column
    columns = [name for name, _ in input_ranking(model, feature_names)]
    coefs[0] = np.array([edges[name] for name in columns])
    groups, labels = _top(list(range(len(columns))), [[c] for c in range(len(columns))],
                          columns, MAX_INPUTS)
    S_prev = selection(groups, len(columns))
    S_prev /= S_prev.sum(axis=0)  # the rest's node: the mean of its columns' edges
    layers, matrices, biases = [labels], [], [None]
    for i, (W, b) in enumerate(zip(coefs, intercepts, strict=True)):
        n = W.shape[1]
        if i == len(coefs) - 1:
            groups, labels = [[u] for u in range(n)], _outputs(model, classes)
        else:
            score = np.abs(W).sum(axis=0) + np.abs(coefs[i + 1]).sum(axis=1)
            order = sorted(range(n), key=lambda u: -score[u])
            groups, labels = _top(order, [[u] for u in range(n)],
                                  [f"h{i + 1}.{u + 1}" for u in range(n)], MAX_UNITS)
        S = selection(groups, n)
        S /= S.sum(axis=0)  # a summary node is the mean of the units it stands for
        matrices.append(S_prev.T @ W @ S)
        biases.append(b @ S)
        layers.append(labels)
        S_prev = S
    return layers, matrices, biases


def _outputs(model: Any, labels: Sequence | None = None) -> list[str]:
    """Output nodes named by the competition's labels (`labels`, or those a submitted model's
    metadata records), not the network's class codes."""
    classes = getattr(model, "classes_", None)
    labels = labels or (getattr(model, "metadata_", None) or {}).get("classes")
    if classes is not None and labels is not None and len(labels) == len(classes):
        classes = list(labels)
    n_out = model.coefs_[-1].shape[1]
    if classes is not None and n_out == len(classes):
        return [f"P({c})" for c in classes]
    if classes is not None:
        return [f"P({classes[-1]})"]
    return ["output"] if n_out == 1 else [f"output {k}" for k in range(n_out)]


def network_figure(model: Any, feature_names: list[str] | None = None, title: str = "",
                   classes: Sequence | None = None) -> Any:
    """A matplotlib Figure of the network (see the module doc); nothing is shown or saved."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.collections import LineCollection
    from matplotlib.colors import to_rgba
    from matplotlib.figure import Figure

    layers, matrices, biases = layers_to_draw(model, feature_names, classes)
    tallest = max(len(nodes) for nodes in layers)
    fig = Figure(figsize=(2.2 + 2.4 * len(layers), max(3.5, 0.42 * tallest + 1.2)), dpi=100)
    ax = fig.add_axes((0.0, 0.0, 1.0, 0.92 if title else 1.0))
    ax.set_axis_off()
    ax.set_xlim(-0.9, len(layers) - 0.6)
    ax.set_ylim(-0.7, tallest - 0.3)
    pos = [_positions(len(nodes), tallest) for nodes in layers]
    heaviest = max((np.abs(W).max() for W in matrices if W.size), default=1.0) or 1.0
    # every edge in one collection: one artist instead of one Line2D each (~5x less drawing)
    segments, colours, widths = [], [], []
    for i, W in enumerate(matrices):
        for a, b in np.ndindex(W.shape):
            share = abs(W[a, b]) / heaviest
            segments.append([(i, pos[i][a]), (i + 1, pos[i + 1][b])])
            colours.append(to_rgba(POSITIVE if W[a, b] > 0 else NEGATIVE, 0.25 + 0.65 * share))
            widths.append(0.2 + 6.0 * share)
    ax.add_collection(LineCollection(segments, colors=colours, linewidths=widths,
                                     capstyle="round", zorder=1), autolim=False)
    for i, nodes in enumerate(layers):
        _draw_nodes(ax, i, nodes, pos[i], biases[i], last=i == len(layers) - 1)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.text(0.01, 0.01, "edges: width ∝ |weight|, blue + / red −; node colour: bias",
             fontsize=7, color="#555555")
    return fig


def _positions(n: int, tallest: int) -> np.ndarray:
    """Node heights, centred in the tallest layer's span, first node on top."""
    return (tallest - 1) / 2 + (n - 1) / 2 - np.arange(n)


def _draw_nodes(ax: Any, x: int, nodes: list[str], ys: np.ndarray, b: np.ndarray | None,
                last: bool) -> None:
    from matplotlib import colormaps

    cmap = colormaps["RdBu"]
    scale = max(1e-9, float(np.abs(b).max())) if b is not None and b.size else 1.0
    colours = (["#dddddd"] * len(nodes) if b is None  # one scatter per layer, not per node
               else [cmap(0.5 + 0.45 * v / scale) for v in b])
    ax.scatter(np.full(len(ys), x), ys, s=260, c=colours, edgecolors="#333333", linewidths=0.8,
               zorder=3)
    for k, (name, y) in enumerate(zip(nodes, ys, strict=True)):
        if x == 0:
            ax.text(x - 0.14, y, name, ha="right", va="center", fontsize=9)
        elif last:
            ax.text(x + 0.14, y, name, ha="left", va="center", fontsize=9)
        elif name.startswith("+"):
            ax.text(x, y - 0.38, name, ha="center", va="center", fontsize=7)
        if b is not None and len(nodes) <= LABEL_BIASES:
            ax.text(x, y + 0.33, f"b={b[k]:+.2f}", ha="center", va="bottom", fontsize=7,
                    color="#444444")


def save_network(model: Any, stem: Path, feature_names: list[str] | None = None,
                 title: str = "", formats: tuple[str, ...] = ("png", "svg"),
                 classes: Sequence | None = None) -> list[Path]:
    """Write the figure as <stem>.png / .svg (or the one file `stem` names, by its suffix)."""
    fig = network_figure(model, feature_names, title, classes)
    if stem.suffix.lstrip(".") in ("png", "svg", "pdf"):
        paths = [stem]
    else:
        paths = [stem.with_name(f"{stem.name}.{fmt}") for fmt in formats]
    for path in paths:
        fig.savefig(path)
    return paths

