"""`pipeline ui`'s links: each study opens on its trials sorted by the CV score (best first)
and on the val_loss charts of the ten best (the fold mean's chart first, then one per fold);
its registered model (the submissions' versions and the champion alias), which MLflow's
default sidebar does not reach.

The sort fits in the URL (`orderByKey`); columns, the charted runs and the chart filter do not,
so the chart link names a shared view state: an experiment tag `mlflow.sharedViewState.<key>`
holding the UI's state as JSON, which MLflow's UI loads for `?viewStateShareKey=<key>`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from pipeline.curves import MEAN_PREFIX
from pipeline.tracking.store import resolve_uri

SHARED_VIEW = "mlflow.sharedViewState."
SHARE_KEY = "pipeline-trials"
CHARTED = "FIRST_10_RUNS"  # the UI's own mode: the top ten rows of the table's order
# the main network parameters, shown as columns when a trial has them
MAIN_PARAMS = ("hidden_layer_sizes", "activation", "learning_rate_init", "numeric_encoding",
               "dropout", "alpha", "batch_size", "solver")


@dataclass(frozen=True)
class StudyLinks:
    experiment: str
    metric: str  # the child runs' CV metric, e.g. cv_roc_auc
    runs: str  # the runs table sorted by it (URL parameters only)
    chart: str  # the chart view: val_loss of the ten best trials, mean first (shared view)
    columns: str  # the table sorted, with score / std / state / parameters as columns (shared)
    model: str | None = None  # the registered model of the same name, once `submit` made one


def study_links(base_url: str, tracking_uri: str | None) -> list[StudyLinks]:
    """One entry per experiment whose runs carry a CV metric; nothing for an empty store."""
    import os

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient

    client = MlflowClient(resolve_uri(tracking_uri))
    models = {m.name for m in client.search_registered_models()}
    out = []
    for experiment in client.search_experiments():
        found = sort_key(client, experiment.experiment_id)
        if found is None:
            continue
        metric, ascending, params = found
        eid = experiment.experiment_id
        client.set_experiment_tag(eid, SHARED_VIEW + SHARE_KEY,
                                  json.dumps(view_state(metric, ascending, params)))
        query = (f"orderByKey={quote(f'metrics.`{metric}`', safe='')}"
                 f"&orderByAsc={str(ascending).lower()}")
        page = f"{base_url}/#/experiments/{eid}/runs"
        shared = f"{page}?viewStateShareKey={SHARE_KEY}"
        model = (f"{base_url}/#/models/{quote(experiment.name, safe='')}"
                 if experiment.name in models else None)
        out.append(StudyLinks(experiment.name, metric, f"{page}?{query}",
                              f"{shared}&compareRunsMode=CHART", shared, model))
    return out


def view_state(metric: str, ascending: bool, params: list[str]) -> dict[str, Any]:
    """Sorted by the CV score, score / std / state / main parameters as columns; the charts
    show the first CHARTED rows of that order (the best trials; the eye icon adds others) and
    only val_loss cards: the fold mean's section (`cv_mean/`) first, then one per fold."""
    columns = [f"metrics.`{metric}`", f"metrics.`{metric}_std`", "tags.`state`",
               *(f"params.`{p}`" for p in params)]  # no wide Dataset column: the score
    # then shows without scrolling at 1400 px (the Columns menu and the plain link keep it)
    return {"orderByKey": f"metrics.`{metric}`", "orderByAsc": ascending,
            "selectedColumns": columns, "runsHiddenMode": CHARTED,
            "chartsSearchFilter": "val_loss", "hideEmptyCharts": True,
            # the fold mean's section as one wide card (the UI's default: 3 small ones a row);
            # no cards given: the UI adds one per metric, into this section by its name
            # (MEAN_PREFIX) and into new sections for the rest, sorted after it
            "compareRunSections": [{
                "uuid": "pipeline-cv-mean", "name": MEAN_PREFIX.rstrip("/"), "display": True,
                "isReordered": False, "deleted": False, "isGenerated": True,
                "columns": 1, "cardHeight": 480}],
            "compareRunCharts": []}


def sort_key(client: Any, experiment_id: str) -> tuple[str, bool, list[str]] | None:
    """(the trials' CV metric, ascending?, main parameters) from the latest complete trial and
    its study's direction."""
    trials = client.search_runs([experiment_id], "tags.kind = 'trial' AND tags.state = 'complete'",
                                max_results=20,  # a linear trial has no activation
                                order_by=["attributes.start_time DESC"])
    if not trials:
        return None
    names = [k for k in trials[0].data.metrics  # not cv_roc_auc_std / _plain, cv_mean/ curves
             if k.startswith("cv_") and "/" not in k and not k.endswith(("_std", "_plain"))]
    if not names:
        return None
    parents = client.search_runs([experiment_id], "tags.kind = 'study'", max_results=1,
                                 order_by=["attributes.start_time DESC"])
    direction = parents[0].data.tags.get("direction", "maximize") if parents else "maximize"
    params = [p for p in MAIN_PARAMS if any(p in t.data.params for t in trials)]
    return names[0], direction == "minimize", params
