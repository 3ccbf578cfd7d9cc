"""The `submit` stage: the chosen trial(s) -> a Kaggle-valid submission CSV, its model(s), a
ledger row; then (`submit_best`) its files, drawing and registered model on the study's MLflow
parent run.

What a trial measured comes from the trials store (`pipeline.trials`, `submission.members`):
only what the store does not hold trains (extra seeds, a refit, a trial whose models are not
kept, each said in one line).
- refit (default): retrain on every training row with the trial's parameters for the epochs its
  folds trained on average, with no early stopping (there is no held-out row left to stop on);
- no refit: average the predictions of the trial's fold models (the stored ones; rebuilt, when
  not kept, by `evaluate.cross_validate(..., keep_models=True)`: same seeds -> same models);
- several trials: a top-k ensemble, the mean of the members' metric-form predictions. Its CV
  score is computed from the mean of the members' out-of-fold predictions on the same folds, so
  the ledger never credits an ensemble with a single member's score;
- seeds > 1 (bagging): each member is trained that many times with other seeds and every model
  is averaged; its CV score is the out-of-fold score of the averaged out-of-fold predictions.

Out-of-fold and test predictions of what was submitted are kept for stacking under
submissions/<experiment>/predictions/ (`submission.predictions`).

A label metric's submission applies the decision (`pipeline.decision`: a threshold, class
weights, ordinal cuts) chosen on the out-of-fold predictions of what is submitted (the member,
bag or ensemble mean); it is saved in every model's metadata and in the MLflow model's
scoring.json, so `pipeline predict` decides as the submission did. Its CV score is the decided
one, each fold scored with the decision chosen on the other folds.

The CSV is checked with the same rules `validate_file` applies to any file, on the exact text
that will be written, before anything touches the disk.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.decision import Decision
from pipeline.errors import PipelineError
from pipeline.experiment import Experiment
from pipeline.files import write_bytes_atomic
from pipeline.identity import check_name_owner, current_source
from pipeline.metrics import METRICS
from pipeline.provenance import git_commit
from pipeline.submission import ledger, predictions
from pipeline.submission.format import (
    LABEL,
    Format,
    check,
    check_file,
    decided,
    header_of,
    load_format,
    parse_text,
    to_csv_text,
    to_frame,
)
from pipeline.submission.members import (
    SEED_STRIDE,
    EnsembleScore,
    Member,
    bag_score,
    ensemble_score,
    json_safe,
    member,
    refit_params,
)
from pipeline.trials import Fetch, TrialSpec

__all__ = ["SEED_STRIDE", "SubmissionResult", "Submitted", "refit_params", "submit",
           "submit_best", "validate_file"]


@dataclass(frozen=True)
class SubmissionResult:
    path: Path
    model_paths: list[Path]
    sha256: str
    cv_score: float
    kaggle_command: str
    metric: str = ""
    trials: list[int] = field(default_factory=list)  # trial numbers, best first
    refit: bool = True
    ensemble: EnsembleScore | None = None  # top-k only
    labels_from: Path | None = None  # the sample that makes a proba metric's submission labels
    seeds: int = 1  # models trained per member (bagging)
    prediction_paths: list[Path] = field(default_factory=list)  # OOF and test predictions
    existing: bool = False  # an identical CSV was already submitted: nothing was written
    decision: Decision = field(default_factory=Decision)  # chosen on OOF, applied to the test
    notes: list[str] = field(default_factory=list)  # e.g. a trial whose folds trained again
    feature_names: tuple[str, ...] = ()  # the models' inputs (to draw them)


# --- public entry points -------------------------------------------------------------------


def validate_file(exp: Experiment, file: Path) -> None:
    """Check any CSV against the competition's submission rules; PipelineError if it fails."""
    check_file(load_format(exp), Path(file))


def submit(
    exp: Experiment, trials: list[TrialSpec], *, refit: bool | None = None,
    seeds: int | None = None, message: str = "", fetch: Fetch | None = None,
) -> SubmissionResult:
    """None for refit / seeds: the experiment's [submit] settings. Each trial's stored result
    (`pipeline.trials`; `fetch` gets it from its MLflow run when this machine lacks it) is
    reused: only what it does not hold trains."""
    refit = exp.submit.refit if refit is None else refit
    seeds = exp.submit.seeds if seeds is None else seeds
    if not trials:
        raise PipelineError(f"no finished trial yet; run `pipeline tune {exp.name}` first")
    # every check on the raw files comes before the (slow) training
    fmt = load_format(exp)
    check_test_columns(exp)
    labels_only = fmt.kind == LABEL and METRICS[exp.competition.metric].needs == "proba"

    from pipeline import evaluate  # imported here: `pipeline validate` stays light
    from pipeline.prepare import prepare

    prepared = prepare(exp)
    _check_prepared(prepared, fmt)
    check_name_owner(exp, ledger.read(), prepared.fingerprint, str(ledger.LEDGER))
    notes: list[str] = []
    members = [member(evaluate, prepared, exp, t, refit=refit, seeds=seeds, fetch=fetch,
                       notes=notes) for t in trials]
    pred = np.mean([m.test_pred for m in members], axis=0)
    oof = np.mean([m.oof for m in members], axis=0)
    scored = ensemble_score(evaluate, prepared, exp, members) if len(trials) > 1 else None
    cv_score, decision = bag_score(evaluate, prepared, exp, members, oof)
    if scored is not None:
        cv_score = scored.score
    elif refit and seeds == 1:  # a single refit: the trial's own score
        cv_score = trials[0].score

    written_pred = decided(fmt.kind, decision, pred)
    text = to_csv_text(to_frame(fmt, written_pred, prepared.test_ids, prepared.classes))
    check(parse_text(text), fmt, "the new submission")  # the exact text that will be written
    data = text.encode("utf-8")
    if (same := ledger.find_sha(hashlib.sha256(data).hexdigest(), exp.name)) is not None:
        return already_submitted(exp, same, trials, refit, tuple(prepared.feature_names))
    path = _target(exp, trials, cv_score)
    message = message or f"{exp.name} {_tag(trials)} cv {_score_text(cv_score)}"
    written: list[Path] = []
    try:
        model_paths = _save_models(path, members, exp, prepared, refit, written, decision)
        kept = _save_predictions(path, prepared, oof, pred, written,
                                 exp.competition.targets if exp.competition.multi_target else (),
                                 predictions.fold_of(len(oof), evaluate.folds(prepared, exp)))
        write_bytes_atomic(path, data)
        written.append(path)
        sha = hashlib.sha256(data).hexdigest()
        ledger.append({
            "file": path.as_posix(),
            "sha256": sha,
            "experiment": exp.name,
            "trials": " ".join(str(t.number) for t in trials),
            "cv_score": _score_text(cv_score),
            "metric": exp.competition.metric,
            "git_commit": git_commit(),
            "fingerprint": prepared.fingerprint,
            "message": message,
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "experiment_file": current_source(exp),
        })
    except BaseException:
        for p in written:  # a failed run leaves no orphan file behind
            p.unlink(missing_ok=True)
        raise
    return SubmissionResult(
        path, model_paths, sha, cv_score, kaggle_command(exp, path, message),
        metric=exp.competition.metric, trials=[t.number for t in trials], refit=refit,
        ensemble=scored, labels_from=fmt.sample if labels_only else None, seeds=seeds,
        prediction_paths=kept, decision=decision, notes=notes,
        feature_names=tuple(prepared.feature_names),
    )


def already_submitted(
    exp: Experiment, row: dict[str, str], trials: list[TrialSpec], refit: bool,
    feature_names: tuple[str, ...] = (),
) -> SubmissionResult:
    """The ledger row of an identical CSV: a re-run writes no second file and no second row."""
    path = Path(row["file"])
    cv = float(row["cv_score"]) if row.get("cv_score") not in (None, "", "nan") else math.nan
    models, kept, decision = saved_files(path)  # what a re-run may still log and register
    return SubmissionResult(
        path, models, row["sha256"], cv, kaggle_command(exp, path, row.get("message", "")),
        metric=exp.competition.metric, trials=[t.number for t in trials], refit=refit,
        existing=True, prediction_paths=kept, decision=decision, feature_names=feature_names,
    )


@dataclass(frozen=True)
class Submitted:
    """`pipeline submit`'s answer: the submission, its registry version, and what went wrong
    on the MLflow side (the submission stands regardless)."""

    result: SubmissionResult
    registered: Any = None  # tracking.registry.Registered, when the model was registered
    warnings: list[str] = field(default_factory=list)


def submit_best(
    exp: Experiment, *, trial: int | None = None, top_k: int = 1, refit: bool | None = None,
    seeds: int | None = None, message: str = "", storage: str | None = None,
    study: str | None = None, tracking_uri: str | None = None, promote: bool = False,
) -> Submitted:
    """The `submit` stage: the study's best trial(s) (or `trial`) -> `submit`; the files, the
    model drawn and the registered model go on the study's MLflow parent run."""
    from pipeline.tracking.artifacts import trial_fetcher
    from pipeline.tune import best_trials, study_run_id

    chosen = best_trials(exp, trial=trial, top_k=top_k, storage=storage, study_name=study)
    result = submit(exp, chosen, refit=refit, seeds=seeds, message=message,
                    fetch=trial_fetcher(tracking_uri))
    parent = study_run_id(exp, storage=storage, study_name=study)
    if not parent or (result.existing and logged(exp, result.path, tracking_uri)):
        return Submitted(result)  # an identical earlier submission is logged already
    return log_submission(exp, result, parent, tracking_uri, promote)


def log_submission(exp: Experiment, result: SubmissionResult, parent: str,
                   tracking_uri: str | None, promote: bool) -> Submitted:
    """The submission's files and drawing on the parent run, then the registry."""
    from pipeline.network import load_model
    from pipeline.tracking import make_tracker
    from pipeline.tracking.registry import log_and_register

    first = result.model_paths[0]
    many = f", first of {len(result.model_paths)} models" if len(result.model_paths) > 1 else ""
    try:
        tracker = make_tracker(tracking_uri)
        tracker.log_files(parent, [result.path, *result.model_paths], "submission")
        tracker.log_files(parent, result.prediction_paths, "predictions")
        tracker.log_network(parent, load_model(first), result.feature_names,
                            f"{exp.name}: submitted model {first.name}{many}", "submission")
    except Exception as e:  # the submission is written; a tracking hiccup must not undo it
        return Submitted(result, None, [f"could not log the submission to MLflow ({e})"])
    try:
        registered = log_and_register(exp, result, parent, tracking_uri=tracking_uri,
                                      promote=promote)
    except Exception as e:  # the submission is written; a registry hiccup must not undo it
        return Submitted(result, None, [f"could not register the model in MLflow ({e})"])
    return Submitted(result, registered)


def logged(exp: Experiment, path: Path, tracking_uri: str | None) -> bool:
    """An identical earlier submission is logged and registered already, unless its MLflow
    logging failed (the re-run then finishes it)."""
    from pipeline.tracking.registry import is_registered

    try:
        return is_registered(exp, path, tracking_uri)
    except Exception:  # the store is unreachable: the logging that follows says so
        return False


def saved_files(path: Path) -> tuple[list[Path], list[Path], Decision]:
    """A written submission's model files (in `_save_models`' order), its kept predictions
    and the decision its models' metadata records."""
    from pipeline.network import load_model

    numbered = path.parent.glob(f"{path.stem}.m*.npz")
    models = [*path.parent.glob(f"{path.stem}.npz"),
              *sorted(numbered, key=lambda p: int(p.name.rsplit(".m", 1)[1].split(".")[0]))]
    folder = path.parent / "predictions"
    kept = [p for kind in ("oof", "test") if (p := folder / f"{path.stem}.{kind}.csv").is_file()]
    meta = (getattr(load_model(models[0]), "metadata_", None) or {}) if models else {}
    return models, kept, Decision.from_dict(meta.get("decision"))


# --- checks on the inputs ------------------------------------------------------------------


def check_test_columns(exp: Experiment) -> None:
    """test.csv must still have every feature column of train.csv.

    prepare() fingerprints the raw bytes, so an edited test.csv is re-prepared anyway; this
    check turns a renamed or dropped column into one clear line before any training starts.
    """
    comp = exp.competition
    train, test = comp.data_dir / "train.csv", comp.data_dir / "test.csv"
    skip = {comp.id, *comp.targets, *comp.drop}
    features = [c for c in header_of(train) if c not in skip]
    have = set(header_of(test))
    missing = [c for c in features if c not in have]
    if missing:
        raise PipelineError(
            f"{test}: missing feature column(s) {', '.join(missing)} that {train} has "
            "(test.csv's columns changed since prepare; the model needs the training columns)"
        )


def _check_prepared(prepared: Any, fmt: Format) -> None:
    ids = [str(i) for i in prepared.test_ids]
    if sorted(ids) != sorted(fmt.test_ids):
        extra = sorted(set(ids) - set(fmt.test_ids))[:5]
        raise PipelineError(
            f"{prepared.path}: prepared test ids differ from {fmt.test} (e.g. {extra}); "
            "run `pipeline prepare --force`"
        )
    if prepared.X_test.shape[1] != prepared.X_train.shape[1]:
        raise PipelineError(
            f"{prepared.path}: X_test has {prepared.X_test.shape[1]} features, X_train "
            f"{prepared.X_train.shape[1]}; run `pipeline prepare --force`"
        )


# --- models --------------------------------------------------------------------------------


def _save_models(
    csv_path: Path,
    members: list[Member],
    exp: Experiment,
    prepared: Any,
    refit: bool,
    written: list[Path],
    decision: Decision,
) -> list[Path]:
    """One refit model -> <stem>.npz; fold models / ensembles -> <stem>.m<i>.npz each."""
    models = [(m, fold, est) for m in members for fold, est in enumerate(m.models)]
    paths = []
    for i, (owner, fold, est) in enumerate(models, start=1):
        suffix = ".npz" if len(models) == 1 else f".m{i}.npz"
        path = csv_path.with_name(csv_path.stem + suffix)
        metadata = json_safe({
            "experiment": exp.name,
            "trial": owner.trial.number,
            "params": owner.trial.params,
            "cv_score": owner.trial.score,
            "fingerprint": prepared.fingerprint,
            "refit": refit,
            "fold": fold if owner.folds else None,
            "classes": list(prepared.classes) if prepared.classes is not None else None,
            "submission": csv_path.name,
            "decision": decision.as_dict(),  # chosen on OOF, applied to what was submitted
        })
        est.save(path, metadata=metadata)  # the network writes atomically (temp + rename)
        written.append(path)
        paths.append(path)
    return paths


def _save_predictions(csv_path: Path, prepared: Any, oof: np.ndarray, test: np.ndarray,
                      written: list[Path], targets: tuple[str, ...] = (),
                      fold: np.ndarray | None = None) -> list[Path]:
    """predictions/<stem>.oof.csv (train ids, fold, target, OOF) and <stem>.test.csv (test
    ids)."""
    folder = csv_path.parent / "predictions"
    out = []
    for kind, text in (
        ("oof", predictions.to_csv(prepared.train_ids, oof, prepared.classes, prepared.y,
                                   targets, fold)),
        ("test", predictions.to_csv(prepared.test_ids, test, prepared.classes, targets=targets)),
    ):
        path = folder / f"{csv_path.stem}.{kind}.csv"
        write_bytes_atomic(path, text.encode("utf-8"))
        written.append(path)
        out.append(path)
    return out


# --- files and messages --------------------------------------------------------------------


def _tag(trials: list[TrialSpec]) -> str:
    """`t4` for one trial, `top13` for an ensemble: its members are in the ledger's trials
    column, so file names stay short enough to read."""
    return f"t{trials[0].number}" if len(trials) == 1 else f"top{len(trials)}"


def _score_text(score: float) -> str:
    return f"{score:.5f}" if math.isfinite(score) else "nan"


def _target(exp: Experiment, trials: list[TrialSpec], cv_score: float) -> Path:
    folder = ledger.SUBMISSIONS / exp.name
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    stem = f"{stamp}-{_tag(trials)}-cv{_score_text(cv_score)}"
    path, n = folder / f"{stem}.csv", 1
    while path.exists() or list(folder.glob(f"{path.stem}.*npz")):  # same second: never overwrite
        n += 1
        path = folder / f"{stem}-{n}.csv"
    return path


def kaggle_command(exp: Experiment, path: Path, message: str) -> str:
    slug = exp.competition.kaggle or exp.name
    quoted = "".join("\\" + ch if ch in '"\\$`' else ch for ch in " ".join(message.split()))
    return f'kaggle competitions submit -c {slug} -f {path.as_posix()} -m "{quoted}"'

