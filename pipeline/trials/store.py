"""The trials store: what a complete trial leaves for the later stages, written once.

trials/<experiment>/<study>/<number>/ at the project root holds
    trial.json       score, params, decision (chosen on OOF), stop reasons, data fingerprint and
                     study identity; written last, so a folder without it is not a result
    predictions.npz  `oof` (metric form, train order, NaN where no fold validated) and `test`
                     (the mean of the fold models' test predictions, test.csv order)
    fold<f>.npz      the fold models (the network's .npz format), kept for the best `[tune]
                     keep` trials only: `prune` deletes the others' (their predictions stay,
                     they are what blending needs)
Pruned or failed trials write nothing. With tracking on, the same files are logged on the
trial's MLflow child run (artifact path `trial`): a reader on another machine gets them from
there through `fetch` when its own folder lacks them.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.files import write_bytes_atomic

ROOT = Path("trials")  # at the project root, beside submissions/ (make clean removes it)
INFO, PREDICTIONS = "trial.json", "predictions.npz"
ARTIFACT_PATH = "trial"  # where the files sit on the trial's MLflow run

# (run_id, folder): copy the run's `trial` artifacts into folder; raises OSError if it can't
Fetch = Callable[[str, Path], None]


@dataclass(frozen=True)
class TrialKey:
    experiment: str
    study: str
    number: int

    @property
    def folder(self) -> Path:
        return ROOT / self.experiment / self.study / f"{self.number:04d}"


@dataclass(frozen=True)
class StoredTrial:
    key: TrialKey
    info: dict[str, Any]
    oof: np.ndarray
    test: np.ndarray

    @property
    def model_paths(self) -> list[Path]:
        """The fold models, in fold order, or [] when any of them is gone (pruned, deleted)."""
        paths = [self.key.folder / f"fold{f}.npz" for f in range(int(self.info["folds"]))]
        return paths if all(p.is_file() for p in paths) else []

    @cached_property
    def models(self) -> list:
        """The fold models, loaded once (no code runs: the network's own format); [] when
        any of them is gone or damaged."""
        from pipeline.network import load_model

        try:
            return [load_model(p) for p in self.model_paths]
        except (OSError, ValueError):  # ModelFileError is a ValueError
            return []


def save(key: TrialKey, *, models: list, oof: np.ndarray, test: np.ndarray,
         info: dict[str, Any]) -> list[Path]:
    """Write one complete trial's files; trial.json last. Returns the paths written."""
    folder = key.folder
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for f, model in enumerate(models):
        model.save(folder / f"fold{f}.npz", metadata={
            "experiment": key.experiment, "study": key.study, "trial": key.number, "fold": f,
            "fingerprint": info.get("fingerprint")})
        written.append(folder / f"fold{f}.npz")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, oof=oof, test=test)
    write_bytes_atomic(folder / PREDICTIONS, buffer.getvalue())
    text = json.dumps({**info, "trial": key.number, "study": key.study,
                       "experiment": key.experiment, "folds": len(models)}, indent=1)
    write_bytes_atomic(folder / INFO, text.encode("utf-8"))
    return [*written, folder / PREDICTIONS, folder / INFO]


def load(key: TrialKey, *, run_id: str | None = None, fetch: Fetch | None = None
         ) -> StoredTrial | None:
    """The stored trial, or None when it has no result here (and none on its run)."""
    folder = key.folder
    if not (folder / INFO).is_file() and run_id and fetch is not None:
        try:
            fetch(run_id, folder)
        except OSError:
            return None
    try:
        info = json.loads((folder / INFO).read_text(encoding="utf-8"))
        with np.load(folder / PREDICTIONS) as arrays:
            oof, test = arrays["oof"], arrays["test"]
    except (OSError, ValueError, KeyError):
        return None  # never written, or damaged: the caller retrains and says so
    return StoredTrial(key, info, oof, test)


def prune(experiment: str, study: str, keep: int, direction: str) -> list[int]:
    """Delete the fold models of every trial outside the `keep` best of the study; their
    predictions stay. Returns the trial numbers whose models are kept."""
    scored = []
    for info_path in (ROOT / experiment / study).glob(f"*/{INFO}"):
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
            scored.append((float(info["score"]), int(info["trial"]), info_path.parent))
        except (OSError, ValueError, KeyError):
            continue  # another worker is writing it
    scored = [s for s in scored if np.isfinite(s[0])]
    scored.sort(key=lambda s: (s[0] if direction == "minimize" else -s[0], s[1]))
    for _, _, folder in scored[keep:]:
        for path in folder.glob("fold*.npz"):
            path.unlink(missing_ok=True)
    return [number for _, number, _ in scored[:keep]]


def remove_study(experiment: str, study: str) -> None:
    """A study started afresh (--fresh): its stored trials go with it."""
    shutil.rmtree(ROOT / experiment / study, ignore_errors=True)
