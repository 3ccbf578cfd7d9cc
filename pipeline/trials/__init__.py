"""Each complete trial's result, written once and read by submit, show and the registry.

`spec` (the trial as the later stages take it), `store` (the files under trials/).
"""

from pipeline.trials.spec import TrialSpec
from pipeline.trials.store import (
    ROOT,
    Fetch,
    StoredTrial,
    TrialKey,
    load,
    prune,
    remove_study,
    save,
)

__all__ = ["ROOT", "Fetch", "StoredTrial", "TrialKey", "TrialSpec", "load", "prune", "remove_study",
           "save"]
