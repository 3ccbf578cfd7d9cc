"""A blend of our own submissions in the MLflow registry: a pyfunc (blend_pyfunc.py) whose
artifacts are every member's networks, preprocessor and scoring.json plus the blend's weights
and decision, logged on a run of the MLflow experiment NAME and registered as NAME (alias
`champion` as `submit`'s models earn it)."""

from __future__ import annotations

import io
import json
import tempfile
from contextlib import redirect_stderr
from pathlib import Path
from typing import Any

from pipeline.provenance import git_commit
from pipeline.tracking.blend_scoring import member_features_key, member_keys
from pipeline.tracking.registry import (
    ALIAS,
    REQUIREMENTS,
    Registered,
    decide,
    fluent_mlflow,
    input_example,
    members_of,
    signature_of,
)
from pipeline.tracking.scoring import SCORING, output_spec

BLEND_CODE = Path(__file__).with_name("blend_pyfunc.py")


def blend_artifacts(base: Any, parts: list[tuple[Any, list[Path]]], weights: list[float],
                    decision: Any, folder: Path) -> dict[str, str]:
    """Artifact key -> file: member i's under `m<i>_` keys, the blend's scoring.json."""
    from pipeline.prepare import prepare
    from pipeline.submission.format import load_format

    artifacts: dict[str, str] = {}
    for i, (exp, paths) in enumerate(parts):
        prepared = prepare(exp)
        pre, scoring, prefix = member_keys(i)
        groups = [[prefix + key.removeprefix("model") for key in g] for g in members_of(paths)]
        spec = output_spec(load_format(exp), prepared.classes, groups)  # no decision: the blend's
        (folder / f"{scoring}.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
        artifacts[pre] = str(prepared.path / "preprocessor.json")
        artifacts[scoring] = str(folder / f"{scoring}.json")
        artifacts.update({f"{prefix}{j}": str(p) for j, p in enumerate(paths)})
        if exp.competition.features is not None:
            from pipeline.prepare import SOURCE_FILE

            artifacts[member_features_key(i)] = str(prepared.path / SOURCE_FILE)
    spec = output_spec(load_format(base), prepare(base).classes, [], decision)
    (folder / "scoring.json").write_text(json.dumps(spec | {"weights": list(weights)}, indent=1),
                                         encoding="utf-8")
    artifacts[SCORING] = str(folder / "scoring.json")
    return artifacts


def register_blend(base: Any, parts: list[tuple[Any, list[Path]]], weights: list[float],
                   decision: Any, tags: dict[str, str], *,
                   tracking_uri: str | None = None) -> Registered:
    """Log the blend's model on a new run of the MLflow experiment `base.name` (the blend's
    name) and register it under that name; `champion` moves as `submit`'s models do."""
    from pipeline.tracking import make_tracker

    name = base.name
    experiment_id = make_tracker(tracking_uri).experiment_id(base)  # our artifact location
    with fluent_mlflow(tracking_uri) as mlflow:
        client = mlflow.MlflowClient()
        signature = signature_of(base)
        example = input_example(base, signature)
        with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(
                experiment_id=experiment_id, run_name=f"blend {tags['submission']}",
                tags={"kind": "blend"}):
            mlflow.log_params({"members": tags["members"][:500]})
            mlflow.log_metric("cv_score", float(tags["cv_score"]))
            info = mlflow.pyfunc.log_model(
                name="model", python_model=str(BLEND_CODE),
                artifacts=blend_artifacts(base, parts, weights, decision, Path(tmp)),
                signature=signature, input_example=example, pip_requirements=REQUIREMENTS,
            )
        tags = tags | {"git_commit": git_commit()}
        with redirect_stderr(io.StringIO()):  # its "Successfully registered" lines: we say it
            version = mlflow.register_model(info.model_uri, name, tags=tags).version
        promoted, reason, previous = decide(client, name, tags, False)
        if promoted:
            client.set_registered_model_alias(name, ALIAS, version)
    return Registered(name, str(version), f"models:/{name}/{version}", promoted, reason,
                      previous)
