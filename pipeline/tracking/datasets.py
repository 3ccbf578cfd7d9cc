"""What the MLflow UI shows about a study: which data every run saw (a dataset input, digest =
our data fingerprint) and that the experiment trains models (not MLflow 3's GenAI view)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# MLflow 3's experiment kind for classic model training: the UI opens on the runs table
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def log_train_dataset(client: Any, run_id: str, exp: Any, fingerprint: str) -> None:
    """train.csv as the run's `train` input; its digest is our fingerprint, so runs that saw
    the same prepared data show the same dataset. No frame is read: the entity is enough."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    train = Path(exp.competition.data_dir) / "train.csv"
    dataset = Dataset(
        name=f"{exp.name}-train", digest=fingerprint[:36], source_type="local",
        source=json.dumps({"uri": str(train.resolve())}),
        profile=json.dumps({"target": exp.competition.target}),
    )
    tag = InputTag("mlflow.data.context", "train")
    client.log_inputs(run_id, datasets=[DatasetInput(dataset, tags=[tag])])
