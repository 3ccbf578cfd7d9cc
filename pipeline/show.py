"""`pipeline show`: the network drawn, for the submitted model or a trial's first fold.

The submitted model is the model of the ledger's last standing submission of the experiment
(withdrawn ones skipped; an ensemble's or fold-average's first member, said in the title). A
trial's is its kept fold-0 model from the trials store; a trial whose models are not kept is
rebuilt (its first fold's network, trained as `evaluate.cross_validate` trains it: same rows,
same seed), with one line saying so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from pipeline.experiment import Experiment
    from pipeline.trials import Fetch, TrialSpec


@dataclass(frozen=True)
class Drawn:
    paths: list[Path]
    title: str
    notes: list[str] = field(default_factory=list)  # e.g. the trial's fold trained again


def show(exp: Experiment, output: Path | None, *, trial: int | None = None,
         storage: str | None = None, study: str | None = None,
         tracking_uri: str | None = None) -> Drawn:
    """The `show` stage: trial `trial`'s fold 0, else the submitted model, else the best
    trial's fold 0."""
    if trial is None and submitted_files(exp):
        return draw(exp, output)
    if trial is not None and (kept := draw_kept(exp, output, study or exp.name, trial)):
        return kept
    # not kept here: the study names the trial (and its run, where the files may be)
    from pipeline.tracking.artifacts import trial_fetcher
    from pipeline.tune import best_trials

    chosen = best_trials(exp, trial=trial, storage=storage, study_name=study)
    if not chosen:
        raise PipelineError(f"no saved weights for {exp.name}: no submission and no complete "
                            f"trial; run `pipeline tune {exp.name}` first")
    return draw(exp, output, chosen[0], fetch=trial_fetcher(tracking_uri))


def draw_kept(exp: Experiment, output: Path | None, study: str, number: int) -> Drawn | None:
    """Trial `number`'s kept fold-0 model drawn straight from the trials store (no study, no
    prepared arrays to open: its trial.json names the inputs); None when it is not kept."""
    from pipeline.identity import check_study_identity
    from pipeline.prepare import fingerprint
    from pipeline.trials import TrialKey, load

    key = TrialKey(exp.name, study, number)
    stored = load(key)
    if stored is None or not stored.model_paths or "feature_names" not in stored.info:
        return None
    from pipeline.network import ModelFileError, load_model

    try:  # fold 0 alone: the figure draws one model
        model = load_model(stored.model_paths[0])
    except (OSError, ModelFileError):
        return None
    # what the trial measured must still be what the experiment says, as for every stage
    check_study_identity(exp, stored.info.get("identity", {}), fingerprint(exp), study=study,
                         where=str(key.folder))
    title = f"{exp.name}: trial {number}, fold 0 (cv {stored.info['score']:.4f})"
    return figure(model, output, exp, list(stored.info["feature_names"]), title,
                  classes=stored.info.get("classes"))


def figure(model: Any, output: Path | None, exp: Experiment, names: list[str],
           title: str, notes: list[str] | None = None, classes: Any = None) -> Drawn:
    """`model` drawn to `output` (.png / .svg / .pdf; default <experiment>-network.png)."""
    from pipeline.drawing import save_network

    out = checked_output(output, exp)
    paths = save_network(model, out, names if model.n_features_in_ == len(names) else None,
                         title, classes=classes)
    return Drawn(paths, title, notes or [])


def checked_output(output: Path | None, exp: Experiment) -> Path:
    out = output or Path(f"{exp.name}-network.png")
    if out.suffix not in (".png", ".svg", ".pdf"):
        raise PipelineError(f"{out}: the figure is written as .png, .svg or .pdf")
    return out


def submitted_files(exp: Experiment) -> list[Path]:
    """The model files (one, or an ensemble's members) of the ledger's last standing
    submission of `exp`, else []. PipelineError when that submission's models are gone."""
    from pipeline.submission import ledger

    rows = [r for r in ledger.current(ledger.read()) if r.get("experiment") == exp.name]
    if not rows:
        return []
    csv = Path(rows[-1]["file"])
    if csv.with_suffix(".npz").is_file():
        return [csv.with_suffix(".npz")]
    members = [p for p in csv.parent.glob(f"{csv.stem}.m*.npz")
               if re.fullmatch(rf"{re.escape(csv.stem)}\.m\d+\.npz", p.name)]
    if not members:
        raise PipelineError(f"{csv.with_suffix('.npz')}: the model of the last submission "
                            f"({csv.name}) is gone; withdraw it or submit again")
    return sorted(members, key=lambda p: int(p.suffixes[-2][2:]))


def submitted_model(exp: Experiment) -> tuple[Any, str] | None:
    """(model, title) of the last submission's (first) model file, or None."""
    from pipeline.network import ModelFileError, load_model

    members = submitted_files(exp)
    if not members:
        return None
    try:
        model = load_model(members[0])
    except ModelFileError as e:
        raise PipelineError(str(e)) from None
    first = f", first of {len(members)} models" if len(members) > 1 else ""
    return model, f"{exp.name}: submitted model {members[0].name}{first}"


def trial_model(exp: Experiment, prepared: Any, trial: TrialSpec, fetch: Fetch | None = None,
                notes: list[str] | None = None) -> tuple[Any, str]:
    """(model, title): the trial's first-fold network, kept by the trials store or (not
    kept: a line in `notes`) trained again exactly as its cross-validation trained it."""
    import warnings

    from pipeline.submission.members import stored_trial

    title = f"{exp.name}: trial {trial.number}, fold 0 (cv {trial.score:.4f})"
    stored = stored_trial(exp, prepared, trial, fetch, [] if notes is None else notes,
                          need_models=True, doing="fold 0 trains again")
    if stored is not None:

        return stored.models[0], title
    from sklearn.exceptions import ConvergenceWarning

    from pipeline.evaluate import build_estimator, folds, network_params

    tr, _ = folds(prepared, exp)[0]
    seed = int(trial.params.get("random_state") or 0)
    est = build_estimator(exp.competition.task,
                          network_params(prepared, {**trial.params, "random_state": seed}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(prepared.X_train[tr], prepared.y[tr])
    return est, title


def draw(exp: Experiment, output: Path | None, trial: TrialSpec | None = None,
         fetch: Fetch | None = None) -> Drawn:
    """Write the figure of the trial's model (or, without one, the submitted model) to
    `output` (.png / .svg by its suffix; default <experiment>-network.png)."""
    from pipeline.prepare import prepare

    checked_output(output, exp)  # before any work
    prepared = prepare(exp)
    notes: list[str] = []
    found = (submitted_model(exp) if trial is None
             else trial_model(exp, prepared, trial, fetch, notes))
    if found is None:
        raise PipelineError(f"no saved weights for {exp.name}: no model file under "
                            f"submissions/{exp.name}/ and no trial given")
    model, title = found
    return figure(model, output, exp, list(prepared.feature_names), title, notes,
                  prepared.classes)
