"""The MLflow model of a blend, logged as code (models-from-code): never imported by the
pipeline, executed by MLflow when it loads the model. Its artifacts are the members' own files
(networks, preprocessor, scoring.json) under `m<i>_` keys and the blend's scoring.json."""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class BlendModel(PythonModel):
    """Raw rows -> the weighted mean of the members' predictions -> the sample's columns."""

    def load_context(self, context: Any) -> None:
        from pipeline.tracking.blend_scoring import BlendScorer

        self.scorer = BlendScorer.from_blend_artifacts(context.artifacts)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return self.scorer.predict(model_input)


mlflow.models.set_model(BlendModel())
