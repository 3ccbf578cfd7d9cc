"""scikit-learn's own estimator test suite over both estimators.

Instances: the defaults (Adam, float32), an SGD / float64 / tanh variant, and the modern recipe
(periodic embeddings or PLE, dropout, AdamW, cosine schedule, no hidden layer), with max_iter kept
small so the suite stays fast. Skipped checks (none are expected to fail):
- check_array_api_input: skipped by scikit-learn itself unless SCIPY_ARRAY_API=1; we are NumPy
  only by design.
Known limitation, not exercised here: with ``early_stopping=True`` on the suite's tiny data sets
(10 rows) the internal validation split would have < 2 rows, and fit raises a ValueError saying
so, exactly as MLPClassifier does.
"""

import warnings

from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from pipeline.network import SigmoidNetworkClassifier, SigmoidNetworkRegressor

ESTIMATORS = [
    SigmoidNetworkClassifier(max_iter=100),
    SigmoidNetworkRegressor(max_iter=100),
    SigmoidNetworkClassifier(solver="sgd", activation="tanh", learning_rate_init=0.05,
                             max_iter=60, dtype="float64"),
    SigmoidNetworkRegressor(solver="sgd", activation="relu", learning_rate_init=0.01,
                            max_iter=60, dtype="float64"),
    # the modern recipe: encodings, dropout, AdamW, cosine schedule
    SigmoidNetworkClassifier(numeric_encoding="periodic", dropout=0.1, weight_decay=1e-3,
                             lr_schedule="cosine", warmup_epochs=2, activation="relu",
                             max_iter=100),
    SigmoidNetworkRegressor(numeric_encoding="ple", hidden_layer_sizes=[], max_iter=100),
]


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda est: {})
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)
