"""scikit-learn estimators around the NumPy network, and ``load_model`` for their files.

They pass ``check_estimator`` and drop in wherever ``MLPClassifier`` / ``MLPRegressor`` do; their
parameters, defaults and constraints are the hyperparameter table's (``params.PARAMS``). The
shared fit wiring is ``base``'s, the task-specific parts ``classifier``'s and ``regressor``'s,
the model file ``saved``'s (what it holds) and ``io``'s (the codec).
"""

from __future__ import annotations

import os

from . import io
from .base import BaseSigmoidNetwork
from .classifier import SigmoidNetworkClassifier
from .regressor import SigmoidNetworkRegressor

ESTIMATORS = {cls.__name__: cls for cls in (SigmoidNetworkClassifier, SigmoidNetworkRegressor)}


def load_model(path: str | os.PathLike) -> BaseSigmoidNetwork:
    """A fitted estimator from a file written by ``save``, with ``metadata_`` set.

    Loading executes no code (no pickle); any problem is one ModelFileError line naming the file.
    """
    header, arrays = io.read(path)
    cls = ESTIMATORS.get(header.get("estimator"))
    if cls is None:
        raise io.bad_file(path, f"unknown estimator {header.get('estimator')!r} "
                                f"(expected one of {', '.join(ESTIMATORS)})")
    return cls._from_state(header, arrays, path)
