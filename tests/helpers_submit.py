"""Tiny synthetic competitions for the submission tests, and stand-ins for prepare / evaluate.

The stand-ins (a least-squares "network") let the submission logic be tested on its own, in
milliseconds; tests marked `real_stages` run the same paths through the real modules.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd

import pipeline
from pipeline.experiment import Experiment, load

N_TRAIN, N_TEST = 36, 14


def write_competition(
    root: Path,
    name: str,
    *,
    task: str = "binary",
    metric: str = "roc_auc",
    labels: tuple = (0, 1),
    sample_columns: list[str] | None = None,
    seed: int = 0,
    targets: tuple[str, ...] = (),
) -> Experiment:
    """data/<name>/{train,test,sample_submission,solution}.csv and experiments/<name>.toml.

    Ids are zero-padded strings ("0007") so that any int parsing would show; the sample lists
    the test ids in a shuffled order, which every submission must follow. `targets`: several
    target columns (0/1 for binary), the sample's columns in reverse order; a map@k sample
    lists k labels per row.
    """
    if targets:
        return _several_targets(root, name, task, metric, targets, seed)
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_TEST
    x1, x2 = rng.normal(size=n).round(3), rng.normal(size=n).round(3)
    if task == "regression":
        y = (2 * x1 - x2 + rng.normal(0, 0.1, n)).round(3)
    elif task == "binary":
        y = np.array(labels, dtype=object)[(x1 + x2 > 0).astype(int)]
    else:
        y = np.array(labels, dtype=object)[np.column_stack([x1, x2, -x1 - x2]).argmax(axis=1)]
    ids = np.array([f"{i:04d}" for i in range(n)])
    data = pd.DataFrame({"id": ids, "x1": x1, "x2": x2})
    folder = root / "data" / name
    folder.mkdir(parents=True)
    data.iloc[:N_TRAIN].assign(y=y[:N_TRAIN]).to_csv(folder / "train.csv", index=False)
    test = data.iloc[N_TRAIN:].reset_index(drop=True)
    test.to_csv(folder / "test.csv", index=False)

    order = rng.permutation(N_TEST)
    sample = pd.DataFrame({"id": test["id"].to_numpy()[order]})
    value_columns = sample_columns or ["y"]
    for column in value_columns:
        sample[column] = 0.5 if metric != "accuracy" else str(labels[0])
    if metric.startswith("map@"):
        sample["y"] = " ".join(str(v) for v in labels[:int(metric[4:])])
    sample.to_csv(folder / "sample_submission.csv", index=False)

    usage = np.where(np.arange(N_TEST) % 3 == 0, "Public", "Private")
    pd.DataFrame({"id": test["id"], "y": y[N_TRAIN:], "Usage": usage}).to_csv(
        folder / "solution.csv", index=False
    )
    return _experiment(root, name, task, metric, '"y"')


def _experiment(root: Path, name: str, task: str, metric: str, target: str) -> Experiment:
    (root / "experiments").mkdir(exist_ok=True)
    (root / "experiments" / f"{name}.toml").write_text(
        f'[competition]\ndata_dir = "data/{name}"\nid = "id"\ntarget = {target}\n'
        f'task = "{task}"\nmetric = "{metric}"\n\n'
        "[model]\nhidden_layer_sizes = [4]\nmax_iter = 8\nbatch_size = 16\n"
        "learning_rate_init = 0.05\n\n[cv]\nfolds = 3\nseed = 0\n"
    )
    return load(name)


def _several_targets(root: Path, name: str, task: str, metric: str, targets: tuple[str, ...],
                     seed: int) -> Experiment:
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_TEST
    x1, x2 = rng.normal(size=n).round(3), rng.normal(size=n).round(3)
    ids = np.array([f"{i:04d}" for i in range(n)])
    data = pd.DataFrame({"id": ids, "x1": x1, "x2": x2})
    for j, t in enumerate(targets):
        value = x1 + (j - 1) * x2
        data[t] = (value > 0).astype(int) if task == "binary" else value.round(3)
    folder = root / "data" / name
    folder.mkdir(parents=True)
    data.iloc[:N_TRAIN].to_csv(folder / "train.csv", index=False)
    test = data.iloc[N_TRAIN:].reset_index(drop=True)
    test[["id", "x1", "x2"]].to_csv(folder / "test.csv", index=False)
    order = rng.permutation(N_TEST)
    sample = pd.DataFrame({"id": test["id"].to_numpy()[order]})
    for t in reversed(targets):
        sample[t] = 0.5
    sample.to_csv(folder / "sample_submission.csv", index=False)
    usage = np.where(np.arange(N_TEST) % 3 == 0, "Public", "Private")
    test[["id", *targets]].assign(Usage=usage).to_csv(folder / "solution.csv", index=False)
    return _experiment(root, name, task, metric, "[" + ", ".join(f'"{t}"' for t in targets) + "]")


# --- stand-ins for pipeline.prepare / pipeline.evaluate ------------------------------------


class FakeModel:
    """Least squares on one-hot targets: deterministic, instant, good enough to rank."""

    def __init__(self, task: str, params: dict) -> None:
        self.task, self.params = task, params

    def fit(self, X: np.ndarray, y: np.ndarray) -> FakeModel:
        A = np.column_stack([X, np.ones(len(X))])
        Y = y[:, None].astype(float) if self.task == "regression" else np.eye(self.k)[y]
        ridge = float(self.params.get("alpha", 0.0)) * len(X)  # different trials, different fits
        self.W = np.linalg.solve(A.T @ A + ridge * np.eye(A.shape[1]), A.T @ Y)
        self.n_iter_ = self.params.get("max_iter", 1)
        return self

    @property
    def k(self) -> int:
        return 3 if self.task == "multiclass" else 2

    def predict_metric(self, X: np.ndarray) -> np.ndarray:
        out = np.column_stack([X, np.ones(len(X))]) @ self.W
        if self.task == "regression":
            return out[:, 0]
        e = np.exp(4 * out)
        p = e / e.sum(axis=1, keepdims=True)
        return p[:, 1] if self.task == "binary" else p

    def save(self, path: Path, metadata: dict) -> None:
        with open(path, "wb") as handle:  # like the network: exactly the path it is given
            np.savez(handle, W=self.W, metadata=np.array(json.dumps(metadata)))


def fake_prepare(exp: Experiment, *, force: bool = False) -> types.SimpleNamespace:
    comp = exp.competition
    train = pd.read_csv(comp.data_dir / "train.csv", dtype={comp.id: str})
    test = pd.read_csv(comp.data_dir / "test.csv", dtype={comp.id: str})
    features = ("x1", "x2")
    if comp.task == "regression":
        y, classes = train[comp.target].to_numpy(float), None
    else:
        classes = tuple(sorted(pd.unique(train[comp.target]).tolist()))
        y = np.array([classes.index(v) for v in train[comp.target]], dtype=np.int64)
    return types.SimpleNamespace(
        X_train=train[list(features)].to_numpy(float),
        y=y,
        train_ids=train[comp.id].to_numpy(str),
        X_test=test[list(features)].to_numpy(float),
        test_ids=test[comp.id].to_numpy(str),
        feature_names=features,
        classes=classes,
        fingerprint="f" * 16,
        path=Path("data") / "prepared" / ("f" * 16),
    )


def _folds(prepared, exp):
    from sklearn.model_selection import KFold

    splitter = KFold(exp.cv.folds, shuffle=True, random_state=exp.cv.seed)
    return list(splitter.split(prepared.X_train))


def _cross_validate(prepared, exp, params, *, on_epoch=None, keep_models=False):
    from pipeline.metrics import METRICS

    metric = METRICS[exp.competition.metric]
    oof, scores, models = None, [], []
    for train_idx, val_idx in _folds(prepared, exp):
        model = FakeModel(exp.competition.task, params).fit(
            prepared.X_train[train_idx], prepared.y[train_idx]
        )
        pred = model.predict_metric(prepared.X_train[val_idx])
        if oof is None:
            oof = np.zeros((len(prepared.y),) + pred.shape[1:])
        oof[val_idx] = pred
        scores.append(metric(prepared.y[val_idx], pred))
        models.append(model)
    return types.SimpleNamespace(
        scores=scores, mean=float(np.mean(scores)), std=float(np.std(scores)), oof=oof,
        curves=[], n_iters=[params.get("max_iter", 1)] * len(scores),
        models=models if keep_models else [],
    )


def install_fake_stages(monkeypatch) -> types.SimpleNamespace:
    """Make `pipeline.prepare` / `pipeline.evaluate` the stand-ins for one test."""
    calls = types.SimpleNamespace(fit=0, cross_validate=0)
    prepare_mod = types.ModuleType("pipeline.prepare")
    prepare_mod.prepare = fake_prepare
    prepare_mod.fingerprint = lambda exp: fake_prepare(exp).fingerprint
    evaluate_mod = types.ModuleType("pipeline.evaluate")

    def build_estimator(task, params):
        calls.fit += 1
        calls.last_params = params
        return FakeModel(task, params)

    def cross_validate(*args, **kwargs):
        calls.cross_validate += 1
        return _cross_validate(*args, **kwargs)

    evaluate_mod.build_estimator = build_estimator
    evaluate_mod.cross_validate = cross_validate
    evaluate_mod.folds = _folds
    evaluate_mod.check_target = lambda prepared, exp, params: None
    evaluate_mod.network_params = lambda prepared, params: params  # no level-code columns
    evaluate_mod.predict = lambda model, X: model.predict_metric(X)
    for name, module in (("prepare", prepare_mod), ("evaluate", evaluate_mod)):
        monkeypatch.setitem(sys.modules, f"pipeline.{name}", module)
        monkeypatch.setattr(pipeline, name, module, raising=False)
    return calls
