"""A trial's stored files read back from its MLflow run, for a machine whose trials/ folder
lacks them (PostgreSQL + an MLflow server: the artifact store is the shared place)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from pipeline.tracking.store import resolve_uri
from pipeline.trials.store import ARTIFACT_PATH


def trial_fetcher(tracking_uri: str | None) -> Callable[[str, Path], None]:
    """`trials.Fetch`: copy run `run_id`'s `trial/` artifacts into `folder` (all or nothing);
    OSError when the run has none or the server cannot be read."""
    uri = resolve_uri(tracking_uri)

    def fetch(run_id: str, folder: Path) -> None:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
        try:
            got = Path(MlflowClient(tracking_uri=uri).download_artifacts(
                run_id, ARTIFACT_PATH, str(tmp)))
            if not any(got.iterdir()):
                raise OSError(f"run {run_id} has no {ARTIFACT_PATH}/ artifacts")
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(got, folder)
        except MlflowException as e:
            raise OSError(f"run {run_id}: {e}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    return fetch
