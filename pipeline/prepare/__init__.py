"""Data prep: a competition's raw CSVs -> numeric arrays plus a fitted preprocessor (JSON).

Fit on train only (median imputation + missing indicators, one-hot encoding, standardisation),
apply to test aligned by column name, and cache the result under
data/<competition>/prepared/<fingerprint>/ so a second run with the same inputs is free.
Every problem with the input is a `PipelineError` that names the file, column or key.

This module reads the CSVs, checks ids and hands the parts to their owners: ``user_features``
(the experiment's own feature code, run first), ``targets`` (the target and the fold keys),
``features`` (the feature transform and its JSON form, `transform`) and ``cache`` (the
fingerprint and the cache on disk).
"""

from pipeline.prepare.cache import DATA_DIR, cache_root
from pipeline.prepare.features import PREP_VERSION, transform
from pipeline.prepare.stage import Prepared, big_inputs, fingerprint, load_preprocessor, prepare
from pipeline.prepare.targets import encode_target, encode_targets
from pipeline.prepare.user_features import SOURCE_FILE, as_read, load_function

# the stage's public names, where callers import them from
__all__ = [
    "DATA_DIR",
    "PREP_VERSION",
    "SOURCE_FILE",
    "Prepared",
    "as_read",
    "big_inputs",
    "cache_root",
    "encode_target",
    "encode_targets",
    "fingerprint",
    "load_function",
    "load_preprocessor",
    "prepare",
    "transform",
]
