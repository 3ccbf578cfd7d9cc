"""One trial: the search space from `[tune.space]`, pruning on per-epoch reports, the
budget slot check, and the trial's MLflow child run."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.errors import PipelineError
from pipeline.identity import study_identity
from pipeline.metrics import METRICS
from pipeline.trials.store import ARTIFACT_PATH
from pipeline.tune.study import HOST, HOST_ID, REPORT_EVERY

if TYPE_CHECKING:
    from pipeline.evaluate import CVResult, FoldEpochCallback
    from pipeline.experiment import Experiment
    from pipeline.tracking import RunLog, Tracker


class BudgetReached(Exception):
    """This trial lost the race for the last slot of the budget (another worker got it)."""


@dataclass(frozen=True)
class WorkerArgs:
    exp_path: str
    storage: str
    study: str
    budget: int
    deadline: float | None  # time.time() after which no new trial starts
    tracking_uri: str | None
    track: bool
    parent_run: str
    seed: int  # sampler seed of this worker
    worker: int
    parent_pid: int | None  # spawned workers stop when the tune process is gone


def suggest(trial: Any, space: dict) -> dict[str, Any]:
    """Searched values; `n_layers` + `units` become `hidden_layer_sizes`."""
    from pipeline.experiment import Choice

    values: dict[str, Any] = {}
    for key, dim in space.items():
        if isinstance(dim, Choice):
            # categorical choices must be plain scalars: layer tuples travel as strings
            options = [_choice_key(c) for c in dim.choices]
            picked = trial.suggest_categorical(key, options)
            values[key] = dim.choices[options.index(picked)]
        elif dim.integer:
            step = int(dim.step) if dim.step else 1
            low, high = int(dim.low), int(dim.high)
            values[key] = trial.suggest_int(key, low, high, log=dim.log, step=step)
        else:
            values[key] = trial.suggest_float(key, dim.low, dim.high, log=dim.log, step=dim.step)
    return values


def check_space(study: Any, space: dict, url: str) -> None:
    """Optuna fixes a parameter's kind (and a categorical's choices) at its first trial in a
    study; a [tune.space] that changed them would fail every trial. One line says what changed."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
        check_distribution_compatibility,
    )

    from pipeline.experiment import Choice
    from pipeline.tracking.store import redact_url

    stored: dict[str, Any] = {}
    for t in study.get_trials(deepcopy=False):
        for name, dist in t.distributions.items():
            stored.setdefault(name, dist)
    for key, dim in space.items():
        if key not in stored:
            continue
        if isinstance(dim, Choice):
            new: Any = CategoricalDistribution([_choice_key(c) for c in dim.choices])
        elif dim.integer:
            new = IntDistribution(int(dim.low), int(dim.high), log=dim.log,
                                  step=int(dim.step) if dim.step else 1)
        else:
            new = FloatDistribution(dim.low, dim.high, log=dim.log, step=dim.step)
        try:
            check_distribution_compatibility(stored[key], new)
        except ValueError:
            old = stored[key]
            was = list(old.choices) if isinstance(old, CategoricalDistribution) else old
            now = list(new.choices) if isinstance(new, CategoricalDistribution) else new
            name = study.study_name
            raise PipelineError(
                f"[tune.space] {key} changed from {was} to {now}, and study {name!r} in "
                f"{redact_url(url)} keeps a parameter's choices for good: put them back, start "
                f"it again with --fresh, or tune a new study with --study {name}-2") from None


def network_params(exp: Experiment, values: dict[str, Any], random_state: int) -> dict[str, Any]:
    params = {**exp.model.params(), **values, "random_state": random_state}
    if "n_layers" in params:
        params["hidden_layer_sizes"] = (int(params.pop("units")),) * int(params.pop("n_layers"))
    params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    return params


def _choice_key(c: Any) -> Any:
    if isinstance(c, tuple):
        return "-".join(map(str, c)) or "none"  # () is the linear model
    return c


def baseline_trials(exp: Experiment) -> list[dict[str, Any]]:
    """The first trials of every new study, as Optuna parameters: [model]'s defaults with no
    hidden layer and no numeric encoding (the linear model: logistic / softmax / linear
    regression), then [model]'s defaults. Keys the defaults do not fit (a value outside the
    searched range) are left to the sampler; without a zero-layer option in the space there is
    no linear baseline."""
    from pipeline.experiment import Choice

    space, model = exp.tune.space, exp.model.params()
    defaults: dict[str, Any] = {}
    for key, dim in space.items():
        if key in ("n_layers", "units"):
            sizes = tuple(model["hidden_layer_sizes"])
            value = len(sizes) if key == "n_layers" else (sizes[0] if sizes else None)
            if key == "units" and len(set(sizes)) > 1:
                value = None  # unequal widths are not n_layers x units
        else:
            value = model.get(key)
        if isinstance(dim, Choice):
            if value in dim.choices:
                defaults[key] = _choice_key(value)
        elif value is not None and dim.low <= value <= dim.high:
            defaults[key] = int(value) if dim.integer else float(value)
    linear = None
    if "n_layers" in space and not isinstance(space["n_layers"], Choice):
        linear = {"n_layers": 0} if space["n_layers"].low <= 0 else None
    elif "n_layers" in space and 0 in space["n_layers"].choices:
        linear = {"n_layers": 0}
    elif "hidden_layer_sizes" in space and () in space["hidden_layer_sizes"].choices:
        linear = {"hidden_layer_sizes": _choice_key(())}
    encoding = space.get("numeric_encoding")
    if linear is not None and isinstance(encoding, Choice) and "none" in encoding.choices:
        linear["numeric_encoding"] = "none"  # periodic inputs would make it an additive model
    trials = [{**defaults, **linear}] if linear is not None else []
    return trials + ([defaults] if defaults else [])


def _epoch_stride(exp: Experiment) -> int:
    """Epochs reserved per fold in the pruner's step axis: step = fold * stride + epoch."""
    from pipeline.experiment import Choice

    dim = exp.tune.space.get("max_iter")
    if dim is None:
        return exp.model.max_iter
    return int(max(dim.choices) if isinstance(dim, Choice) else dim.high)


def trial_config(exp: Experiment, params: dict[str, Any]) -> dict[str, Any]:
    """The child run's config.json: the experiment with [model] = what this trial trained."""
    config = exp.as_dict()
    config["model"] = _jsonable(params)
    return config


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


class PruneCheck:
    """`study.pruner.prune` on a snapshot of the complete trials and this trial's reports.

    Same decision as `trial.should_prune()`, which re-reads every running trial with all its
    intermediate values from the storage on each call: ~20 ms on SQLite, more than an epoch of
    a small network. Complete trials don't change, so a snapshot per fold is enough.
    """

    def __init__(self, study: Any) -> None:
        self.study = study
        self.direction = study.direction
        self.values: dict[int, float] = {}
        self._done: list = []
        self.refresh()

    def refresh(self) -> None:
        from optuna.pruners import NopPruner
        from optuna.trial import TrialState

        if isinstance(self.study.pruner, NopPruner):
            return  # never prunes: no need to read the study
        self._done = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))

    def get_trials(self, deepcopy: bool = False, states: Any = None) -> list:  # the pruner's view
        return [t for t in self._done if states is None or t.state in states]

    def __call__(self, step: int, value: float) -> bool:
        from types import SimpleNamespace

        self.values[step] = value
        me = SimpleNamespace(last_step=step, intermediate_values=self.values)
        return bool(self.study.pruner.prune(self, me))


class Objective:
    """One trial: sample, cross-validate with pruning, log the child run, record the seed."""

    def __init__(self, exp: Experiment, prepared: Any, tracker: Tracker, args: WorkerArgs):
        self.exp, self.prepared, self.tracker, self.args = exp, prepared, tracker, args
        self.metric = METRICS[exp.competition.metric]
        self.stride = _epoch_stride(exp)
        self.warmup = exp.tune.pruner_warmup_epochs
        self.sign = 1.0 if self.metric.direction == "minimize" else -1.0
        # ~10 reports per fold; every epoch when early stopping keeps folds short
        self.every = 1 if exp.model.early_stopping else max(1, min(REPORT_EVERY,
                                                                   self.stride // 10))

    def __call__(self, trial: Any) -> float:
        from pipeline.train import logged_cv, refit_epochs

        if not _admitted(trial.study, trial, self.args.budget):
            trial.set_user_attr("skipped", "budget reached by other workers")
            raise BudgetReached
        params, run = self._start(trial)
        where: dict[str, int] = {}  # the fold and epoch reached, for the stop reason
        res = logged_cv(self.prepared, self.exp, params, run,
                        config=trial_config(self.exp, params), keep_models=True,
                        on_epoch=self._epoch_reporter(trial, where),
                        stopped=lambda e: stopped(trial, where, e),
                        tags=lambda res: saturated_tag(health_attrs(res.curves)))
        n_iter = refit_epochs(res)
        for key, value in {"n_iter": n_iter, "n_iters": res.n_iters, "cv_std": res.std,
                           "fold_scores": res.scores, "stop_reasons": res.stop_reasons,
                           **health_attrs(res.curves)}.items():
            trial.set_user_attr(key, value)
        self._store(trial, res, run.run_id, n_iter)
        if self.tracker.enabled and self._best_so_far(trial, res.mean):
            self.tracker.log_network(
                run.run_id, res.models[0], self.prepared.feature_names,
                f"trial {trial.number}, fold 0 ({self.metric.name} {res.mean:.4f})")
        return res.mean

    def _store(self, trial: Any, res: CVResult, run_id: str, n_iter: int) -> None:
        """The trial's result, once, in the trials store (and on its run, tracking on): the
        later stages reuse it instead of training again. Only the best `[tune] keep` trials
        keep their fold models."""
        import numpy as np

        from pipeline.evaluate import predict
        from pipeline.trials import TrialKey, prune, save

        key = TrialKey(self.exp.name, self.args.study, trial.number)
        test = np.mean([predict(m, self.prepared.X_test) for m in res.models], axis=0)
        info = {"score": res.mean, "params": trial.user_attrs["params"], "n_iter": n_iter,
                "decision": res.decision.as_dict(), "stop_reasons": res.stop_reasons,
                "fingerprint": self.prepared.fingerprint, "run_id": run_id,
                "feature_names": list(self.prepared.feature_names),
                "identity": study_identity(self.exp, self.prepared.fingerprint)}
        paths = save(key, models=res.models, oof=res.oof, test=test, info=info)
        prune(self.exp.name, self.args.study, self.exp.tune.keep, self.metric.direction)
        if self.tracker.enabled:  # the pruned models are gone already: only kept ones go up
            self.tracker.log_files(run_id, [p for p in paths if p.exists()], ARTIFACT_PATH)

    def _best_so_far(self, trial: Any, score: float) -> bool:
        """Better than every complete trial: the best trial always gets its drawing, and
        drawing stays rare (a few times per study)."""
        try:
            best = trial.study.best_value
        except ValueError:  # no complete trial yet
            return True
        return score < best if self.metric.direction == "minimize" else score > best

    def _start(self, trial: Any) -> tuple[dict[str, Any], RunLog]:
        """Sample the parameters, record how to re-run them exactly, open the child run."""
        values = suggest(trial, self.exp.tune.space)
        random_state = (self.exp.tune.seed * 1_000_003 + trial.number) % 2**31
        params = network_params(self.exp, values, random_state)
        for key, value in {
            "params": _jsonable(params), "random_state": random_state, "error": None,
            "sampler_seed": self.args.seed, "worker": self.args.worker, "host": HOST,
            "host_id": HOST_ID, "pid": os.getpid(),
        }.items():
            trial.set_user_attr(key, value)
        run = self.tracker.start_run(
            self.exp, f"trial-{trial.number:04d}", params={**values, **params},
            tags={"optuna.study": self.args.study, "optuna.trial": trial.number,
                  "data_fingerprint": self.prepared.fingerprint, "kind": "trial",
                  "folds": self.exp.fold_scheme()},
            parent_id=self.args.parent_run,
        )
        trial.set_user_attr("mlflow_run_id", run.run_id)
        return params, run

    def _epoch_reporter(self, trial: Any, where: dict[str, int]) -> FoldEpochCallback:
        """Per epoch: the pruner's reports and checks, an orphan check; `where` keeps the
        fold and epoch reached."""
        import optuna

        parent_pid = self.args.parent_pid
        prune = PruneCheck(trial.study)

        def on_epoch(fold: int, epoch: int, m: dict[str, float]) -> None:
            where.update(fold=fold, epoch=epoch)
            if parent_pid is not None and os.getppid() != parent_pid:
                raise KeyboardInterrupt("the tune process is gone")
            if epoch == 1:
                prune.refresh()  # trials other workers completed meanwhile
            if epoch % self.every:
                return
            # pruners read "higher is better" in a maximize study: report -loss there
            step, value = fold * self.stride + epoch, self.sign * m["val_loss"]
            trial.report(value, step=step)
            if fold == 0 and epoch > self.warmup and prune(step, value):
                raise optuna.TrialPruned(f"fold {fold} epoch {epoch}: val_loss {m['val_loss']:.4f}")

        return on_epoch


SATURATED = 0.5  # a first hidden layer more saturated than this gets the `saturated` tag


def health_attrs(curves: list) -> dict[str, Any]:
    """`saturation`: the first hidden layer's saturation at the folds' last epochs (mean), and
    `saturated` when it is over SATURATED; {} without a hidden layer."""
    last = [c["saturation/layer_1"][-1] for c in curves if c.get("saturation/layer_1")]
    if not last:
        return {}
    share = sum(last) / len(last)
    out: dict[str, Any] = {"saturation": round(share, 4)}
    if share > SATURATED:
        out["saturated"] = f"layer_1 {share:.0%} saturated"
    return out


def saturated_tag(attrs: dict[str, Any]) -> dict[str, str]:
    """The run's `saturated` warning, when the trial has one."""
    return {"saturated": attrs["saturated"]} if attrs.get("saturated") else {}


def stopped(trial: Any, where: dict[str, int], e: BaseException) -> tuple[str, dict[str, str]]:
    """The run's state and tags for a trial that did not complete: pruned, diverged (its
    error recorded), or interrupted / a bug (failed)."""
    import optuna

    from pipeline.network import DivergenceError

    if isinstance(e, optuna.TrialPruned):
        return "pruned", stop_tags(trial, where, "pruned")
    if isinstance(e, DivergenceError):
        trial.set_user_attr("error", f"diverged: {e}")
        return "failed", stop_tags(trial, where, "diverged")
    return "failed", {}


def stop_tags(trial: Any, where: dict[str, int], how: str) -> dict[str, str]:
    """A pruned or diverged trial's stop reason, in its user attributes and as the run's tag."""
    epoch, fold = where.get("epoch", 0), where.get("fold", 0)
    reason = f"{how} at epoch {epoch}" if how == "pruned" else how
    reason += f" (fold {fold + 1})" if fold else ""
    trial.set_user_attr("stop_reasons", [reason])
    return {"stop_reason": reason}


def _admitted(study: Any, trial: Any, budget: int) -> bool:
    """Finished trials plus running ones asked before this one leave a slot for it."""
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    ahead = sum(
        1 for t in study.get_trials(deepcopy=False, states=states)
        if t.state != TrialState.RUNNING or t.number < trial.number
    )
    return ahead < budget
