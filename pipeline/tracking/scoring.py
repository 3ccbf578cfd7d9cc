"""Raw rows -> the submission's columns, from files only: what the MLflow model runs.

The registered model is these files (the networks' .npz, preprocessor.json and scoring.json)
plus `pyfunc_model.py`, which calls `Scorer`. Nothing here imports mlflow, so the same
scoring is testable on its own, and nothing is unpickled: the networks load from .npz + JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.decision import Decision

PREPROCESSOR = "preprocessor"  # artifact keys of the logged model
SCORING = "scoring"


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

    @classmethod
    def from_artifacts(cls, artifacts: dict[str, str]) -> Scorer:
        from pipeline.network import load_model

        spec = json.loads(Path(artifacts[PREPROCESSOR]).read_text(encoding="utf-8"))
        out = json.loads(Path(artifacts[SCORING]).read_text(encoding="utf-8"))
        members = [[load_model(artifacts[key]) for key in keys] for keys in out["members"]]
        return cls(spec, out, members)

    def metric_form(self, df: pd.DataFrame) -> np.ndarray:
        """The mean over members of each member's mean over its models, as `submit` averages."""
        from pipeline.evaluate import predict
        from pipeline.prepare import transform

        X = transform(self.spec, df)
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
