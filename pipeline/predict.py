"""`pipeline predict`: raw rows scored by the registry's champion (or any MLflow model URI or
folder), written in the sample submission's columns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.tracking.registry import (
    ALIAS,
    as_signature_types,
    champion_uri,
    fluent_mlflow,
    raw_frame,
)


@dataclass(frozen=True)
class Predictions:
    model_uri: str
    rows: int
    text: str  # the CSV, sample-submission columns
    path: Path | None  # where it was written (None: stdout)


def predict_csv(
    exp: Any, input_csv: Path, *, out: Path | None = None, model_uri: str | None = None,
    tracking_uri: str | None = None,
) -> Predictions:
    """Raw rows -> the model's predictions in the sample-submission format, written atomically."""
    from pipeline.files import write_text_atomic
    from pipeline.submission.format import to_csv_text

    uri = model_uri or champion_uri(exp.name)
    if model_uri and Path(model_uri).exists():
        uri = Path(model_uri).resolve().as_uri()
    model = load(uri, exp.name, tracking_uri)
    raw = raw_frame(Path(input_csv), exp.competition.id)
    if exp.competition.id not in raw.columns:  # else the predictions come back without ids
        raise PipelineError(f"{input_csv}: no id column {exp.competition.id!r} (each "
                            "prediction is written beside its row's id, as in test.csv)")
    df = as_signature_types(raw, model.metadata.signature, Path(input_csv), exp.competition.id)
    text = to_csv_text(model.predict(df))
    if out is not None:
        write_text_atomic(Path(out), text)
    return Predictions(uri, len(df), text, out)


def load(uri: str, name: str, tracking_uri: str | None) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        with fluent_mlflow(tracking_uri) as mlflow:
            return mlflow.pyfunc.load_model(uri)
    except MlflowException as e:
        if uri == champion_uri(name):
            raise PipelineError(f"no {ALIAS} model for {name!r} in the MLflow registry yet; "
                                f"run `pipeline submit {name}` first") from None
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PipelineError(f"--model {uri}: cannot load ({first[:200]})") from None
