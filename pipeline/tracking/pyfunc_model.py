"""The MLflow model of a submission, logged as code (models-from-code): never imported by the
pipeline, executed by MLflow when it loads the model. The weights and the preprocessor are the
model's artifacts (.npz + JSON), so loading unpickles nothing; the one other piece of code it
runs is the experiment's feature file (an artifact too, `[competition] features`)."""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class SubmissionModel(PythonModel):
    """Raw rows (train.csv's columns, no target) -> the sample submission's columns."""

    def load_context(self, context: Any) -> None:
        from pipeline.tracking.scoring import Scorer

        self.scorer = Scorer.from_artifacts(context.artifacts)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return self.scorer.predict(model_input)


mlflow.models.set_model(SubmissionModel())
