"""A multilayer sigmoid network written from scratch in NumPy, with scikit-learn's interface.

    from pipeline.network import SigmoidNetworkClassifier, load_model
    clf = SigmoidNetworkClassifier(hidden_layer_sizes=(64, 64), solver="sgd").fit(X, y)
    clf.save("model.npz", metadata={"fingerprint": "..."})
    clf = load_model("model.npz")

Modules: ``params`` (the hyperparameter table: names, defaults, constraints, meanings),
``activations`` and ``losses`` (lookup tables), ``optimizers`` (``step(params, grads)``),
``core`` (forward / backward on preallocated buffers), ``training`` (the fit loop),
``estimators`` (the scikit-learn wrappers and ``load_model``): ``base`` (their shared fit
wiring and fitted state), ``classifier``, ``regressor``, ``saved`` (their save / load: what a
model file holds), ``io`` (the .npz + JSON codec), ``gradcheck``, ``rows`` (a fold's rows of
a shared matrix, encoded batch by batch), ``threads`` (one BLAS thread per fit).
Nothing here imports the rest of ``pipeline``.

The estimators are imported on first use (PEP 562): they pull in scikit-learn (~1 s), which the
experiment-file checks that read ``params`` do not need.
"""

from typing import Any

from .errors import DivergenceError, ModelFileError

__all__ = [
    "DivergenceError",
    "ModelFileError",
    "SigmoidNetworkClassifier",
    "SigmoidNetworkRegressor",
    "load_model",
]


def __getattr__(name: str) -> Any:
    if name in ("SigmoidNetworkClassifier", "SigmoidNetworkRegressor", "load_model"):
        from . import estimators

        return getattr(estimators, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
