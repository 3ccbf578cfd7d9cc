"""`pipeline ui`'s links: each study opens on its trials sorted by the CV score (best first)
and on the val_loss chart of every trial. MLflow's UI reads these from the URL's query."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from pipeline.tracking.store import resolve_uri


@dataclass(frozen=True)
class StudyLinks:
    experiment: str
    metric: str  # the child runs' CV metric, e.g. cv_roc_auc
    runs: str  # the runs table sorted by it
    chart: str  # the chart view (val_loss of all trials)


def study_links(base_url: str, tracking_uri: str | None) -> list[StudyLinks]:
    """One entry per experiment whose runs carry a CV metric; nothing for an empty store."""
    import os

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient

    client = MlflowClient(resolve_uri(tracking_uri))
    out = []
    for experiment in client.search_experiments():
        found = sort_key(client, experiment.experiment_id)
        if found is None:
            continue
        metric, ascending = found
        query = (f"orderByKey={quote(f'metrics.`{metric}`', safe='')}"
                 f"&orderByAsc={str(ascending).lower()}")
        page = f"{base_url}/#/experiments/{experiment.experiment_id}/runs?{query}"
        out.append(StudyLinks(experiment.name, metric, page, f"{page}&compareRunsMode=CHART"))
    return out


def sort_key(client: Any, experiment_id: str) -> tuple[str, bool] | None:
    """(the trials' CV metric, ascending?) from the latest trial and its study's direction."""
    trials = client.search_runs([experiment_id], "tags.kind = 'trial' AND tags.state = 'complete'",
                                max_results=1,
                                order_by=["attributes.start_time DESC"])
    if not trials:
        return None
    names = [k for k in trials[0].data.metrics if k.startswith("cv_") and not k.endswith("_std")]
    if not names:
        return None
    parents = client.search_runs([experiment_id], "tags.kind = 'study'", max_results=1,
                                 order_by=["attributes.start_time DESC"])
    direction = parents[0].data.tags.get("direction", "maximize") if parents else "maximize"
    return names[0], direction == "minimize"
