"""`pipeline show`: the network drawn, for the submitted model or a trial's first fold.

The submitted model is the newest submission's model file under submissions/<experiment>/ (an
ensemble's or fold-average's first member, said in the title). A trial is rebuilt: its first
fold's network, trained exactly as `evaluate.cross_validate` trains it (same rows, same seed;
the held-out rows only ever feed the curves), so only that one fold is trained.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from pipeline.experiment import Experiment
    from pipeline.trials import TrialSpec


@dataclass(frozen=True)
class Drawn:
    paths: list[Path]
    title: str


def submitted_files(exp: Experiment) -> list[Path]:
    """The newest submission's model files (one, or an ensemble's members), else []."""
    from pipeline.submission.ledger import SUBMISSIONS

    files = sorted((SUBMISSIONS / exp.name).glob("*.npz"),
                   key=lambda p: (p.stat().st_mtime, p.name))
    if not files:
        return []
    stem = re.sub(r"(\.m\d+)?\.npz$", "", files[-1].name)  # <stem>.npz or <stem>.m<i>.npz
    members = [p for p in files if re.fullmatch(rf"{re.escape(stem)}(\.m\d+)?\.npz", p.name)]
    return sorted(members, key=lambda p: int(p.suffixes[-2][2:]) if len(members) > 1 else 0)


def submitted_model(exp: Experiment) -> tuple[Any, str] | None:
    """(model, title) of the newest submission's (first) model file, or None."""
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


def trial_model(exp: Experiment, prepared: Any, trial: TrialSpec) -> tuple[Any, str]:
    """(model, title): the trial's first-fold network, as its cross-validation trained it."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from pipeline.evaluate import build_estimator, folds, network_params

    tr, _ = folds(prepared, exp)[0]
    seed = int(trial.params.get("random_state") or 0)
    est = build_estimator(exp.competition.task,
                          network_params(prepared, {**trial.params, "random_state": seed}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(prepared.X_train[tr], prepared.y[tr])
    return est, f"{exp.name}: trial {trial.number}, fold 0 (cv {trial.score:.4f})"


def draw(exp: Experiment, output: Path | None, trial: TrialSpec | None = None) -> Drawn:
    """Write the figure of the trial's model (or, without one, the submitted model) to
    `output` (.png / .svg by its suffix; default <experiment>-network.png)."""
    from pipeline.drawing import save_network
    from pipeline.prepare import prepare

    prepared = prepare(exp)
    found = submitted_model(exp) if trial is None else trial_model(exp, prepared, trial)
    if found is None:
        raise PipelineError(f"no saved weights for {exp.name}: no model file under "
                            f"submissions/{exp.name}/ and no trial given")
    model, title = found
    out = output or Path(f"{exp.name}-network.png")
    if out.suffix not in (".png", ".svg", ".pdf"):
        raise PipelineError(f"{out}: the figure is written as .png, .svg or .pdf")
    names = list(prepared.feature_names)
    paths = save_network(model, out, names if model.n_features_in_ == len(names) else None,
                         title)
    return Drawn(paths, title)
