"""A study's identity: what its trials were measured on, checked wherever their scores are used.

A trial's CV score holds only for the data, feature columns, folds, metric and task it was
measured on. `tune` records them in the study when it creates it and refuses to resume on
anything else; `submit`, `show --trial` and `blend` read the same record through
`check_study_identity` before they trust a trial's score, so an edited train.csv, a new `drop`
or another metric is one line, never a submission carrying a stale score. The experiment file's
resolved path is recorded too: experiment names key studies, submissions and registered models,
so a second file with the same name and other data is told apart from an edit of the first.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from pipeline.experiment import Experiment

# compared key by key; a study from before a key was recorded has None there and passes it
KEYS = ("data_fingerprint", "features", "folds", "metric", "task")
SOURCE = "experiment_file"  # the experiment file's resolved path: which file claimed the name


def feature_columns(exp: Experiment) -> list[str]:
    """train.csv's columns the model reads: all but the id, the target(s) and `drop`."""
    comp = exp.competition
    train = comp.data_dir / "train.csv"
    try:
        with train.open(encoding="utf-8-sig", newline="") as f:
            header = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError) as e:
        raise PipelineError(f"{train}: cannot read its header ({e})") from None
    skip = {comp.id, *comp.targets, *comp.drop}
    return [c.strip() for c in header if c.strip() not in skip]


def study_identity(exp: Experiment, fingerprint: str) -> dict[str, str]:
    """What a study's trials are measured on; `folds` is the scheme evaluate.folds builds
    (`stratified/5/seed42`, `group(store)/5/seed42`, `time(date)/5`)."""
    return {"data_fingerprint": fingerprint, "features": ",".join(feature_columns(exp)),
            "folds": exp.fold_scheme(), "metric": exp.competition.metric,
            "task": exp.competition.task, SOURCE: current_source(exp)}


def _change(key: str, old: str, new: str) -> str:
    if key == "features":
        before, after = old.split(","), new.split(",")
        gone = [c for c in before if c not in after]
        added = [c for c in after if c not in before]
        parts = ([f"no longer reads {', '.join(gone)}"] if gone else []) + (
            [f"now also reads {', '.join(added)}"] if added else [])
        return "features: " + ("; ".join(parts) or "reordered")
    if key == "data_fingerprint":
        return f"data_fingerprint {old} -> {new} (the CSVs or [competition] changed)"
    return f"{key} {old} -> {new}"


def differences(stored: Mapping[str, Any], current: Mapping[str, str]) -> list[str]:
    """What changed between a recorded identity and the current one, readable, in KEYS order;
    keys the record lacks (older studies) are not compared."""
    return [_change(k, str(stored[k]), current[k]) for k in KEYS
            if stored.get(k) is not None and str(stored[k]) != current[k]]


def check_name_owner(
    exp: Experiment, rows: list[dict[str, str]], fingerprint: str, where: str
) -> None:
    """Refuse `exp` when ledger `rows` (at `where`) hold submissions of its name from another
    experiment file on other data: the name keys submissions/<name>/ and the registered
    model, so a second file must take another name."""
    mine = current_source(exp)
    for row in rows:
        other = row.get(SOURCE)
        if (row.get("experiment") == exp.name and other and other != mine
                and row.get("fingerprint") not in ("", None, fingerprint)):
            raise PipelineError(
                f"{exp.path}: experiment name {exp.name!r} is taken by {other}, whose "
                f"submissions in {where} are on other data (fingerprint {row['fingerprint']} "
                f"-> {fingerprint}); experiment names key studies, submissions and registered "
                f"models: rename this file (e.g. {Path(exp.path).with_stem(exp.name + '-2').name})"
            )


def current_source(exp: Experiment) -> str:
    return str(Path(exp.path).resolve())


def check_study_identity(
    exp: Experiment, attrs: Mapping[str, Any], fingerprint: str, *, study: str, where: str,
) -> dict[str, str]:
    """Refuse, in one line, to use study `study` (in store `where`, user attrs `attrs`) for
    `exp` when its trials were measured on other data, features, folds, metric or task.

    Returns the current identity (what `tune` records in a new study). The way on is to tune
    again: `--fresh` measures the study anew, `--study` keeps the old one beside a new one.
    """
    current = study_identity(exp, fingerprint)
    changed = differences(attrs, current)
    if not changed:
        return current
    other = attrs.get(SOURCE)
    if other and other != current[SOURCE]:
        raise PipelineError(
            f"{exp.path}: experiment name {exp.name!r} is taken by {other}, whose study "
            f"{study!r} in {where} was measured on other data ({'; '.join(changed)}); experiment "
            "names key studies, submissions and registered models: rename this file "
            f"(e.g. {Path(exp.path).with_stem(exp.name + '-2').name})"
        )
    raise PipelineError(
        f"study {study!r} in {where} was measured on other data or settings than "
        f"{exp.path} has now ({'; '.join(changed)}); its scores do not hold: re-run "
        f"`pipeline tune {exp.name} --fresh` (or tune a new study with --study {study}-2), "
        "or undo the change"
    )
