"""A multilayer sigmoid network written from scratch in NumPy, with scikit-learn's interface.

    from pipeline.network import SigmoidNetworkClassifier, load_model
    clf = SigmoidNetworkClassifier(hidden_layer_sizes=(64, 64), solver="sgd").fit(X, y)
    clf.save("model.npz", metadata={"fingerprint": "..."})
    clf = load_model("model.npz")

Modules: ``activations`` and ``losses`` (lookup tables), ``optimizers`` (``step(params, grads)``),
``core`` (forward / backward on preallocated buffers), ``training`` (the fit loop),
``estimators`` (the scikit-learn wrappers), ``io`` (.npz save / load), ``gradcheck``.
Nothing here imports the rest of ``pipeline``.
"""

from .errors import DivergenceError, ModelFileError
from .estimators import SigmoidNetworkClassifier, SigmoidNetworkRegressor
from .io import load_model

__all__ = [
    "DivergenceError",
    "ModelFileError",
    "SigmoidNetworkClassifier",
    "SigmoidNetworkRegressor",
    "load_model",
]
