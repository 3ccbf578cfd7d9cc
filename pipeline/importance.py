"""`pipeline importance`: which columns a trial's score rests on.

Permutation importance with scikit-learn's `permutation_importance` semantics, on out-of-fold
rows: each fold's model scores its own held-out rows as they are, then with one column's
values shuffled among those rows; the column's importance is the drop in the competition's
metric (the fold scores' mean), over `repeats` shuffles: their mean and standard deviation. A
column is a column of train.csv: its one-hot levels, missing-value flag and date parts are
shuffled together (the same permutation), so a 7-level column is not split into 7 small ones.

The fold models are the trial's own, read from the trials store (`pipeline.trials`); when it
no longer keeps them they are trained again as its cross-validation trained them (same rows,
same seeds), with one line saying so. A label metric scores with the decision chosen on the
trial's out-of-fold predictions, as its CV score does.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from pipeline.decision import Decision
    from pipeline.experiment import Experiment
    from pipeline.prepare import Prepared
    from pipeline.trials import Fetch, TrialSpec

REPEATS = 5


@dataclass(frozen=True)
class ColumnImportance:
    column: str
    mean: float  # drop in the metric when shuffled (positive: the model relies on it)
    std: float  # over the repeats
    drops: tuple[float, ...]  # one per repeat


@dataclass(frozen=True)
class Importance:
    experiment: str
    trial: int
    metric: str
    direction: str  # the metric's: a drop is always "worse", whichever way it points
    baseline: float  # the fold models' mean score on their out-of-fold rows, unshuffled
    cv_score: float  # the trial's CV score as the study recorded it
    repeats: int
    columns: list[ColumnImportance]  # most important first
    paths: list[Path] = field(default_factory=list)  # the CSV and the chart, once written
    notes: list[str] = field(default_factory=list)  # e.g. the fold models trained again
    because: str = "best"  # which trial: "chosen" (--trial), "submitted" or "best"
    warnings: list[str] = field(default_factory=list)  # the MLflow side; the files stand


def importance(
    exp: Experiment, *, trial: int | None = None, repeats: int = REPEATS,
    output: Path | None = None, storage: str | None = None, study: str | None = None,
    tracking_uri: str | None = None,
) -> Importance:
    """The `importance` stage: the chosen (else submitted, else best) trial's importance,
    written as a chart and a table and logged on the study's MLflow run."""
    from pipeline.tracking.artifacts import trial_fetcher
    from pipeline.tune import best_trials, study_run_id

    submitted = submitted_trial(exp) if trial is None else None
    because = "chosen" if trial is not None else "submitted" if submitted is not None else "best"
    (chosen,) = best_trials(exp, trial=trial if trial is not None else submitted,
                            storage=storage, study_name=study)
    result = save(permutation_importance(exp, chosen, repeats=repeats,
                                         fetch=trial_fetcher(tracking_uri)),
                  output or Path(f"{exp.name}-importance.png"))
    result = replace(result, because=because)
    if parent := study_run_id(exp, storage=storage, study_name=study):
        from pipeline.tracking import make_tracker

        try:  # on the study's run, beside submission/network.png
            make_tracker(tracking_uri).log_files(parent, result.paths, "importance")
        except Exception as e:  # the files are written; a tracking hiccup must not undo them
            return replace(result, warnings=[f"could not log the importance to MLflow ({e})"])
    return result


def fold_models(exp: Experiment, prepared: Prepared, trial: TrialSpec,
                fetch: Fetch | None = None) -> tuple[list, Decision, list[str]]:
    """The trial's fold models and decision: the stored ones, else trained again (a note)."""
    from pipeline.decision import Decision
    from pipeline.evaluate import cross_validate
    from pipeline.submission.members import stored_trial

    notes: list[str] = []
    stored = stored_trial(exp, prepared, trial, fetch, notes, need_models=True)
    if stored is not None:
        return stored.models, Decision.from_dict(stored.info.get("decision")), notes
    res = cross_validate(prepared, exp, trial.params, keep_models=True)
    return res.models, res.decision, notes


def permutation_importance(exp: Experiment, trial: TrialSpec, *, repeats: int = REPEATS,
                           seed: int = 0, fetch: Fetch | None = None) -> Importance:
    """Every column's importance to `trial`, most important first (module docstring)."""
    from pipeline.decision import apply
    from pipeline.evaluate import folds, predict
    from pipeline.metrics import METRICS
    from pipeline.prepare import prepare

    if repeats < 1:
        raise PipelineError(f"--repeats {repeats}: at least 1 shuffle per column")
    prepared = prepare(exp)
    models, decision, notes = fold_models(exp, prepared, trial, fetch)
    metric = METRICS[exp.competition.metric]
    sign = 1.0 if metric.direction == "maximize" else -1.0
    rows = [va for _, va in folds(prepared, exp)]
    X, y = prepared.X_train, prepared.y

    def score(shuffled: list[np.ndarray]) -> float:
        return float(np.mean([metric(y[va], apply(decision, predict(model, Xf)))
                              for model, va, Xf in zip(models, rows, shuffled, strict=True)]))

    baseline = score([X[va] for va in rows])
    rng = np.random.default_rng(seed)
    out = []
    for column, units in source_columns(prepared).items():
        drops = []
        for _ in range(repeats):
            shuffled = []
            for va in rows:
                Xf = X[va].copy()
                Xf[:, units] = Xf[rng.permutation(len(va))][:, units]
                shuffled.append(Xf)
            drops.append(sign * (baseline - score(shuffled)))
        out.append(ColumnImportance(column, float(np.mean(drops)), float(np.std(drops)),
                                    tuple(drops)))
    out.sort(key=lambda c: -c.mean)
    return Importance(exp.name, trial.number, exp.competition.metric, metric.direction,
                      baseline, trial.score, repeats, out, notes=notes)


def source_columns(prepared: Prepared) -> dict[str, list[int]]:
    """train.csv column -> the prepared feature columns made from it, in prepared order:
    `colour=red` (one-hot), `colour[missing]` (flag), `sold.year` (a date's part)."""
    from pipeline.prepare import load_preprocessor

    dates = {d["name"] for d in load_preprocessor(prepared).get("dates", [])}
    out: dict[str, list[int]] = {}
    for j, name in enumerate(prepared.feature_names):
        column = name.split("=", 1)[0].removesuffix("[missing]")
        head = column.rsplit(".", 1)[0]
        out.setdefault(head if head in dates else column, []).append(j)
    return out


def submitted_trial(exp: Experiment) -> int | None:
    """The trial of the experiment's newest standing submission (an ensemble's best member),
    or None without one."""
    from pipeline.submission import ledger

    mine = [r for r in ledger.current(ledger.read()) if r.get("experiment") == exp.name]
    numbers = re.findall(r"\d+", mine[-1].get("trials", "")) if mine else []
    return int(numbers[0]) if numbers else None


def save(result: Importance, output: Path) -> Importance:
    """`output` (.png: the bar chart) and the table beside it as .csv; both written whole or
    not at all."""
    from pipeline.files import write_bytes_atomic

    if output.suffix != ".png":
        raise PipelineError(f"{output}: the chart is written as .png (the table beside it, .csv)")
    output.parent.mkdir(parents=True, exist_ok=True)
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["rank", "column", "importance_mean", "importance_std", "metric", "trial",
                     "repeats", "baseline"])
    for i, c in enumerate(result.columns, start=1):
        writer.writerow([i, c.column, f"{c.mean:.6g}", f"{c.std:.6g}", result.metric,
                         result.trial, result.repeats, f"{result.baseline:.6g}"])
    csv_path = output.with_suffix(".csv")
    write_bytes_atomic(csv_path, table.getvalue().encode())
    write_bytes_atomic(output, chart_png(result))
    return replace(result, paths=[csv_path, output])


def chart_png(result: Importance, top: int = 20) -> bytes:
    """Horizontal bars, most important on top, the spread over repeats as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = result.columns[:top][::-1]
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.32 * len(shown)))
    try:
        ax.barh([c.column for c in shown], [c.mean for c in shown],
                xerr=[c.std for c in shown], color="#2166ac", ecolor="#555555", capsize=3)
        ax.axvline(0.0, color="#999999", linewidth=0.8)
        ax.set_xlabel(f"drop in {result.metric} when the column is shuffled "
                      f"(mean ± sd of {result.repeats})")
        ax.set_title(f"{result.experiment}: permutation importance, trial {result.trial}")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
    finally:
        plt.close(fig)
    return buffer.getvalue()
