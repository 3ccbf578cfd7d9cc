"""The submitted model in MLflow: logged as a pyfunc on the study's parent run (models-from-code,
artifacts = our .npz / JSON files), registered as `<experiment>`, alias `champion`; and the
champion's URI and the raw-row typing `pipeline predict` (`pipeline.predict`) scores with.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.provenance import git_commit
from pipeline.tracking.scoring import FEATURES, PREPROCESSOR, SCORING, output_spec
from pipeline.tracking.store import resolve_uri

ALIAS = "champion"
MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
EXAMPLE_ROWS = 5
# scoring needs these; `--env-manager local` (our tests, `pipeline predict`) uses the venv as is
REQUIREMENTS = ["numpy", "pandas", "scikit-learn"]


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    model_uri: str  # models:/<name>/<version>
    promoted: bool  # the alias now points at this version
    reason: str  # why it moved or stayed
    previous: str | None = None  # the champion's version before


def champion_uri(name: str) -> str:
    return f"models:/{name}@{ALIAS}"


@contextmanager
def fluent_mlflow(tracking_uri: str | None) -> Iterator[Any]:
    """mlflow with its global tracking URI set (log_model needs the fluent API), and the
    MLFLOW_TRACKING_URI that `set_tracking_uri` exports put back afterwards, so a later
    command in this process (or a test) does not inherit this store."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # stage output: ours
    import logging

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(resolve_uri(tracking_uri))
    try:
        yield mlflow
    finally:
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before


# --- logging and registering ---------------------------------------------------------------


def raw_frame(path: Path, id_col: str) -> Any:
    from pipeline.files import read_csv

    return read_csv(path, id_col=id_col)


def signature_of(exp: Any) -> Any:
    """train.csv's columns minus the target. Float columns are `double` (a gap is NaN); integer
    columns are `any`, because MLflow will not cast int64 to double and a CSV column without a
    gap reads as int64, with one as float64; text is `string`. The id (any type, only echoed
    back) and dropped columns are optional, unless the experiment has feature code (which may
    read a column that `drop` then leaves out)."""
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    comp = exp.competition
    train = pd.read_csv(comp.data_dir / "train.csv", nrows=10_000).drop(
        columns=list(comp.targets))
    optional = {comp.id, *(comp.drop if comp.features is None else ())}

    def kind(c: str) -> Any:
        if c == comp.id or pd.api.types.is_bool_dtype(train[c]):
            return AnyType()
        if pd.api.types.is_float_dtype(train[c]):
            return "double"
        return AnyType() if pd.api.types.is_numeric_dtype(train[c]) else "string"

    cols = [ColSpec(kind(c), str(c), required=c not in optional) for c in train.columns]
    if comp.id not in train.columns:  # numbered train rows: raw rows still bring their id
        cols.append(ColSpec(AnyType(), comp.id, required=False))
    return ModelSignature(inputs=Schema(cols))


def input_example(exp: Any, signature: Any) -> Any:
    comp = exp.competition
    test = raw_frame(comp.data_dir / "test.csv", comp.id).head(EXAMPLE_ROWS)
    return as_signature_types(test, signature, comp.data_dir / "test.csv", comp.id)


def as_signature_types(df: Any, signature: Any, file: Path, id_col: str) -> Any:
    """The signature's columns with its types; a missing or mistyped column is one line."""
    import pandas as pd

    out = {}
    for spec in signature.inputs.inputs:
        if spec.name not in df.columns:
            if spec.required:
                raise PipelineError(f"{file}: no column {spec.name!r} (the model needs it)")
            continue
        col = df[spec.name]
        if spec.name == id_col:
            out[spec.name] = col
        elif getattr(spec.type, "name", "any") in ("double", "any"):  # numbers in train.csv
            parsed = pd.to_numeric(col, errors="coerce")
            bad = col[parsed.isna() & col.notna()]
            if len(bad):
                raise PipelineError(f"{file}: column {spec.name!r} must be numeric, "
                                    f"holds {bad.iloc[:3].tolist()!r}")
            out[spec.name] = parsed.astype("float64")
        else:
            out[spec.name] = col.map(lambda v: None if pd.isna(v) else str(v)).astype(object)
    return pd.DataFrame(out, index=df.index)


def members_of(paths: list[Path]) -> list[list[str]]:
    """Model files grouped as `submit` averaged them: one member per trial (its folds or its
    refit), in file order. A file without our metadata is a member of its own."""
    from pipeline.network import load_model

    groups: dict[Any, list[str]] = {}
    for i, path in enumerate(paths):
        meta = getattr(load_model(path), "metadata_", None) or {}
        groups.setdefault(meta.get("trial", f"file{i}"), []).append(f"model{i}")
    return list(groups.values())


def model_files(exp: Any, result: Any, folder: Path) -> dict[str, str]:
    """The artifacts: the networks, the fitted preprocessor, the output spec, and the feature
    code exactly as prepare ran it (its copy in the prepared folder)."""
    from pipeline.prepare import prepare
    from pipeline.submission.format import load_format

    prepared = prepare(exp)  # cached: the arrays `submit` trained on
    spec = output_spec(load_format(exp), prepared.classes, members_of(result.model_paths),
                       getattr(result, "decision", None))
    scoring = folder / "scoring.json"
    scoring.write_text(json.dumps(spec, indent=1), encoding="utf-8")
    artifacts = {f"model{i}": str(p) for i, p in enumerate(result.model_paths)}
    artifacts[PREPROCESSOR] = str(prepared.path / "preprocessor.json")
    artifacts[SCORING] = str(scoring)
    if exp.competition.features is not None:
        from pipeline.prepare import SOURCE_FILE

        artifacts[FEATURES] = str(prepared.path / SOURCE_FILE)
    return artifacts


def model_tags(exp: Any, result: Any, fingerprint: str) -> dict[str, str]:
    return {
        "trials": " ".join(map(str, result.trials)),
        "cv_score": repr(float(result.cv_score)),
        "metric": result.metric or exp.competition.metric,
        "fingerprint": fingerprint,
        "git_commit": git_commit(),
        "refit": str(result.refit),
        "submission": Path(result.path).name,
    }


def log_and_register(
    exp: Any, result: Any, run_id: str, *, tracking_uri: str | None = None,
    promote: bool = False,
) -> Registered:
    """Log the submission's model on `run_id` (the study's parent run), register a new version
    of `<experiment>` and move `champion` when it should (see `should_promote`)."""
    with fluent_mlflow(tracking_uri) as mlflow:
        return log_model_version(mlflow, exp, result, run_id, promote)


def log_model_version(mlflow: Any, exp: Any, result: Any, run_id: str, promote: bool) -> Registered:
    from pipeline.prepare import fingerprint as data_fingerprint

    client = mlflow.MlflowClient()
    fingerprint = data_fingerprint(exp)
    signature = signature_of(exp)
    example = input_example(exp, signature)
    status = client.get_run(run_id).info.status
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model", python_model=str(MODEL_CODE),
            artifacts=model_files(exp, result, Path(tmp)), signature=signature,
            input_example=example, pip_requirements=REQUIREMENTS,
        )
    client.update_run(run_id, status=status)  # start_run ended it FINISHED: leave it as it was
    tags = model_tags(exp, result, fingerprint)
    with redirect_stderr(io.StringIO()):  # its "Successfully registered" lines: we say it once
        version = mlflow.register_model(info.model_uri, exp.name, tags=tags).version
    promoted, reason, previous = decide(client, exp.name, tags, promote)
    if promoted:
        client.set_registered_model_alias(exp.name, ALIAS, version)
    return Registered(exp.name, str(version), f"models:/{exp.name}/{version}", promoted, reason,
                      previous)


def is_registered(exp: Any, submission: Path, tracking_uri: str | None) -> bool:
    """Has a model version of `exp` been registered for this submission file? (A submit whose
    MLflow logging failed wrote the CSV and the ledger row: its re-run finishes the job.)"""
    from mlflow.exceptions import MlflowException

    with fluent_mlflow(tracking_uri) as mlflow:
        try:
            versions = mlflow.MlflowClient().search_model_versions(f"name='{exp.name}'")
        except MlflowException:
            return False
    return any(v.tags.get("submission") == Path(submission).name for v in versions)


def decide(client: Any, name: str, tags: dict[str, str], promote: bool) -> tuple[bool, str, Any]:
    """(move the alias?, why, the champion's version): no champion, other data (scores on
    different data don't compare), a better CV score, or --promote."""
    from mlflow.exceptions import MlflowException

    try:
        champ = client.get_model_version_by_alias(name, ALIAS)
    except MlflowException:
        return True, "no champion yet", None
    old = champ.tags
    if promote:
        return True, "--promote", champ.version
    if old.get("fingerprint") != tags["fingerprint"]:
        return True, "trained on other data than the champion", champ.version
    if old.get("metric", tags["metric"]) != tags["metric"]:  # CVs of two metrics don't compare
        return True, f"the champion was scored with another metric ({old['metric']})", \
            champ.version
    better, why = should_promote(tags["metric"], float(tags["cv_score"]),
                                 float(old.get("cv_score", "nan")))
    return better, why, champ.version


def should_promote(metric: str, new: float, old: float) -> tuple[bool, str]:
    from pipeline.metrics import METRICS

    if math.isnan(old):
        return True, "the champion has no CV score"
    if math.isnan(new):
        return False, "no CV score"
    maximize = METRICS[metric].direction == "maximize"
    if (new > old) if maximize else (new < old):
        return True, f"CV {new:.5f} beats the champion's {old:.5f}"
    return False, f"CV {new:.5f} does not beat the champion's {old:.5f}"
