"""Raw rows -> the submission's columns, from files only: what the MLflow model runs.

The registered model is these files (the networks' .npz, preprocessor.json and scoring.json,
and the experiment's feature code when it has one) plus `pyfunc_model.py`, which calls
`Scorer`. Nothing here imports mlflow, so the same scoring is testable on its own, and nothing
is unpickled: the networks load from .npz + JSON. The feature file is the one piece of code
the model runs besides ours (README: Feature code).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.decision import Decision
from pipeline.errors import PipelineError

PREPROCESSOR = "preprocessor"  # artifact keys of the logged model
SCORING = "scoring"
FEATURES = "features"  # the feature code's copy from the prepared folder, when there is one


def output_spec(fmt: Any, classes: tuple | None, members: list[list[str]],
                decision: Decision | None = None) -> dict[str, Any]:
    """What `Scorer` needs to write the sample's columns: their names, the kind of values, the
    class spellings, which model artifacts form each averaged member (a trial's folds), and
    the decision `submit` chose on out-of-fold predictions (a threshold, ...)."""
    from pipeline.submission.format import CLASS_PROBA, spellings

    spelled = spellings(classes or (), fmt.labels) if classes is not None else []
    return {
        "id": fmt.id,
        "kind": fmt.kind,
        "columns": list(fmt.value_columns),
        "labels": spelled,  # code i -> train.csv's spelling
        "class_columns": [fmt.class_columns[s] for s in spelled] if fmt.kind == CLASS_PROBA else [],
        "k": fmt.k,  # labels listed per row (top_k)
        "targets": list(fmt.targets),  # prediction column j -> its column (multi_target)
        "members": members,
        "decision": (decision or Decision()).as_dict(),
    }


@dataclass
class Scorer:
    spec: dict[str, Any]  # preprocessor.json
    out: dict[str, Any]  # scoring.json
    members: list[list[Any]]  # loaded networks, grouped as `submit` averaged them
    features: Any = None  # the experiment's feature code (user_features.FeatureCode), if any

    @classmethod
    def from_artifacts(cls, artifacts: dict[str, str]) -> Scorer:
        from pipeline.network import load_model
        from pipeline.prepare import load_function

        spec = json.loads(Path(artifacts[PREPROCESSOR]).read_text(encoding="utf-8"))
        out = json.loads(Path(artifacts[SCORING]).read_text(encoding="utf-8"))
        members = [[load_model(artifacts[key]) for key in keys] for keys in out["members"]]
        code = None
        if FEATURES in artifacts:  # runs the file: the one piece of user code a model has
            code = load_function(Path(artifacts[FEATURES]), shown=spec["features"]["file"])
        return cls(spec, out, members, code)

    def with_features(self, df: pd.DataFrame) -> pd.DataFrame:
        """Raw rows -> the rows the preprocessor reads: the feature code's output, run on the
        rows typed as prepare read train.csv."""
        from pipeline.prepare import as_read

        if self.features is None:
            return df
        info = self.spec["features"]
        rows = self.features.apply(as_read(df, info["input"]), self.spec["id"], "the rows")
        if missing := [c for c in info["columns"] if c not in rows.columns]:
            raise PipelineError(f"{info['file']}: features() left out column(s) "
                                f"{missing[:5]!r} that it made in training")
        return rows

    def metric_form(self, df: pd.DataFrame) -> np.ndarray:
        """The mean over members of each member's mean over its models, as `submit` averages."""
        from pipeline.evaluate import predict
        from pipeline.prepare import transform

        X = transform(self.spec, self.with_features(df))
        return np.mean([np.mean([predict(m, X) for m in models], axis=0)
                        for models in self.members], axis=0)

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        from pipeline.submission.format import decided, value_cells

        out, cols = self.out, self.out["columns"]
        # as `submit` wrote the file: codes / ratings by the decision chosen on OOF
        pred = decided(out["kind"], Decision.from_dict(out.get("decision")), self.metric_form(df))
        frame: dict[str, Any] = {}
        if out["id"] in df.columns:
            frame[out["id"]] = df[out["id"]].to_numpy()  # as it came in
        frame.update(value_cells(out["kind"], pred, cols, out["labels"], k=out.get("k") or 0,
                                 targets=out.get("targets", []),
                                 class_columns=out["class_columns"]))
        ordered = [c for c in [out["id"], *cols] if c in frame]
        return pd.DataFrame(frame, index=range(len(df)))[ordered]
