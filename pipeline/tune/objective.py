"""One trial: the parameters from the search space (`space`), pruning on per-epoch reports,
the budget slot check, and the trial's MLflow child run."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.identity import study_identity
from pipeline.metrics import METRICS
from pipeline.trials.store import ARTIFACT_PATH
from pipeline.tune.fidelity import (
    FIDELITY_ATTR,
    FOLD_ATTR,
    ROWS_ATTR,
    SUBSAMPLE_ATTR,
    first_fold_scores,
    promoted,
    subsample,
    subsample_scores,
)
from pipeline.tune.space import network_params, suggest, used
from pipeline.tune.study import HOST, HOST_ID, REPORT_EVERY, epoch_stride

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
    a small network. Complete trials don't change, so a snapshot per fold is enough for the
    median pruner. Hyperband and successive halving record each rung in the storage and
    compare against every trial that reached it (pruned ones too): they ask the trial itself,
    on the big data they are meant for an epoch takes seconds.
    """

    def __init__(self, trial: Any) -> None:
        from optuna.pruners import MedianPruner, NopPruner

        self.trial = trial
        self.study = trial.study
        self.direction = self.study.direction
        self.values: dict[int, float] = {}
        self._done: list = []
        self.native = not isinstance(self.study.pruner, MedianPruner | NopPruner)
        self.refresh()

    def refresh(self) -> None:
        from optuna.pruners import NopPruner
        from optuna.trial import TrialState

        if self.native or isinstance(self.study.pruner, NopPruner):
            return  # never prunes, or reads the study itself
        self._done = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))

    def get_trials(self, deepcopy: bool = False, states: Any = None) -> list:  # the pruner's view
        return [t for t in self._done if states is None or t.state in states]

    def __call__(self, step: int, value: float) -> bool:
        """Whether to prune, once `value` was reported at `step`."""
        from types import SimpleNamespace

        if self.native:
            return bool(self.trial.should_prune())
        self.values[step] = value
        me = SimpleNamespace(last_step=step, intermediate_values=self.values)
        return bool(self.study.pruner.prune(self, me))


class Objective:
    """One trial: sample, cross-validate with pruning, log the child run, record the seed."""

    def __init__(self, exp: Experiment, prepared: Any, tracker: Tracker, args: WorkerArgs):
        self.exp, self.prepared, self.tracker, self.args = exp, prepared, tracker, args
        self.metric = METRICS[exp.competition.metric]
        self.stride = epoch_stride(exp)
        self.warmup = exp.tune.pruner_warmup_epochs
        self.sign = 1.0 if self.metric.direction == "minimize" else -1.0
        # ~10 reports per fold; every epoch when early stopping keeps folds short
        self.every = 1 if exp.model.early_stopping else max(1, min(REPORT_EVERY,
                                                                   self.stride // 10))
        self._sub: Any = None  # the subsample's arrays, made at the first trial that needs them

    def __call__(self, trial: Any) -> float:
        from pipeline.train import logged_cv, refit_epochs

        if not _admitted(trial.study, trial, self.args.budget):
            trial.set_user_attr("skipped", "budget reached by other workers")
            raise BudgetReached
        params, run = self._start(trial)
        where: dict[str, int] = {}  # the fold and epoch reached, for the stop reason
        extra: dict[str, float] = {}
        staged = self.exp.tune.subsample < 1
        if staged:  # the full rows only once promoted
            extra = {f"subsample_cv_{self.metric.key}": self._subsample_stage(trial, params, run)}
        res = logged_cv(self.prepared, self.exp, params, run,
                        config=trial_config(self.exp, params), keep_models=True,
                        on_epoch=self._epoch_reporter(trial, where, full=True),
                        on_fold=self._first_fold_rung(trial) if staged else None,
                        stopped=lambda e: stopped(trial, where, e), metrics=extra,
                        tags=lambda res: {**saturated_tag(health_attrs(res.curves)),
                                          FIDELITY_ATTR: "full"})
        n_iter = refit_epochs(res)
        for key, value in {"n_iter": n_iter, "n_iters": res.n_iters, "cv_std": res.std,
                           "fold_scores": res.scores, "stop_reasons": res.stop_reasons,
                           FIDELITY_ATTR: "full", **health_attrs(res.curves)}.items():
            trial.set_user_attr(key, value)
        self._store(trial, res, run.run_id, n_iter)
        if self.tracker.enabled and self._best_so_far(trial, res.mean):
            self.tracker.log_network(
                run.run_id, res.models[0], self.prepared.feature_names,
                f"trial {trial.number}, fold 0 ({self.metric.name} {res.mean:.4f})",
                classes=self.prepared.classes)
        return res.mean

    def _subsample_stage(self, trial: Any, params: dict[str, Any], run: RunLog) -> float:
        """Cross-validate on the subsample (pruned along its epochs like a full trial);
        return its score when the trial is promoted to all rows, else end its run and the
        trial as pruned: its score is never a full CV score (`fidelity`)."""
        import optuna

        from pipeline.evaluate import cross_validate
        from pipeline.train import reached_score

        if self._sub is None:
            self._sub = subsample(self.prepared, self.exp)
        name = f"subsample_cv_{self.metric.key}"
        tags = {FIDELITY_ATTR: f"subsample ({len(self._sub.y):,} of {len(self.prepared.y):,} "
                               "rows)"}
        where: dict[str, int] = {}
        reached: list[float] = []
        try:
            res = cross_validate(self._sub, self.exp, params, on_stop=reached.extend,
                                 on_epoch=self._epoch_reporter(trial, where, full=False))
        except BaseException as e:
            state, stop = stopped(trial, where, e)
            scored = reached_score(name, self.metric.key, reached, self.exp.cv.folds)
            trial.set_user_attr(FIDELITY_ATTR, "subsample")
            run.end(state, metrics=scored.get("metrics"), config=trial_config(self.exp, params),
                    tags={**stop, **scored.get("tags", {}), **tags})
            raise
        value = res.mean
        # where pruners never look; TPE ranks the trials it prunes by their last report
        trial.report(value, step=self.exp.cv.folds * self.stride + 1)
        rows = len(self._sub.y)
        others = subsample_scores(trial.study, trial.number, rows)
        trial.set_user_attr(SUBSAMPLE_ATTR, value)
        trial.set_user_attr(ROWS_ATTR, rows)
        share = self.exp.tune.promote
        if promoted(value, others, share, self.metric.direction == "maximize"):
            return value
        reason = (f"not promoted: subsample {self.metric.name} {value:.4f} outside the best "
                  f"{share:.0%} of {len(others) + 1}")
        for key, attr in {FIDELITY_ATTR: "subsample", "stop_reasons": [reason],
                          "cv_std": res.std, "fold_scores": res.scores}.items():
            trial.set_user_attr(key, attr)
        run.end("pruned", metrics={name: value}, config=trial_config(self.exp, params),
                tags={**tags, "stop_reason": reason, "pruned": "true"})
        raise optuna.TrialPruned(reason)

    def _first_fold_rung(self, trial: Any) -> Callable[[int, float], None]:
        """After the first fold on all rows: go on to the other folds only when its score ranks
        in the best `promote` share of the first folds so far (`fidelity`), else end pruned."""
        import optuna

        share, maximize = self.exp.tune.promote, self.metric.direction == "maximize"

        def on_fold(fold: int, score: float) -> None:
            if fold != 0:
                return
            others = first_fold_scores(trial.study, trial.number)
            trial.set_user_attr(FOLD_ATTR, score)
            if promoted(score, others, share, maximize):
                return
            trial.set_user_attr(FIDELITY_ATTR, "first fold")
            held = optuna.TrialPruned(
                f"not promoted: first fold {self.metric.name} {score:.4f} on all rows outside "
                f"the best {share:.0%} of {len(others) + 1}")
            held.rung = "first fold"  # `stopped` keeps this reason, not an epoch's
            raise held

        return on_fold

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
                "classes": list(self.prepared.classes or []) or None,  # output labels, drawn
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
        values = suggest(trial, self.exp.tune.space, self.exp.model.params())
        random_state = (self.exp.tune.seed * 1_000_003 + trial.number) % 2**31
        params = network_params(self.exp, values, random_state)
        for key, value in {
            "params": _jsonable(params), "random_state": random_state, "error": None,
            "sampler_seed": self.args.seed, "worker": self.args.worker, "host": HOST,
            "host_id": HOST_ID, "pid": os.getpid(),
        }.items():
            trial.set_user_attr(key, value)
        # a second study of the experiment (--study) shares its MLflow experiment: its runs
        # say whose trial they are
        name = f"trial-{trial.number:04d}"
        if self.args.study != self.exp.name:
            name = f"{self.args.study}/{name}"
        run = self.tracker.start_run(
            self.exp, name, params=used(values, params),
            tags={"optuna.study": self.args.study, "optuna.trial": trial.number,
                  "data_fingerprint": self.prepared.fingerprint, "kind": "trial",
                  "folds": self.exp.fold_scheme()},
            parent_id=self.args.parent_run,
        )
        trial.set_user_attr("mlflow_run_id", run.run_id)
        return params, run

    def _epoch_reporter(self, trial: Any, where: dict[str, int], full: bool) -> FoldEpochCallback:
        """Per epoch: the pruner's reports and checks, an orphan check; `where` keeps the
        fold and epoch reached. With [tune] subsample, the subsample stage (`full` False) is
        pruned and the all-rows stage only reports, after the promotion step."""
        import optuna

        parent_pid = self.args.parent_pid
        prune = PruneCheck(trial)
        staged = self.exp.tune.subsample < 1
        offset = (self.exp.cv.folds * self.stride + 1) if staged and full else 0  # past promotion
        checks = not (staged and full)

        def on_epoch(fold: int, epoch: int, m: dict[str, float]) -> None:
            where.update(fold=fold, epoch=epoch)
            if parent_pid is not None and os.getppid() != parent_pid:
                raise KeyboardInterrupt("the tune process is gone")
            if epoch == 1 and checks:
                prune.refresh()  # trials other workers completed meanwhile
            if epoch % self.every:
                return
            # pruners read "higher is better" in a maximize study: report -loss there
            step, value = offset + fold * self.stride + epoch, self.sign * m["val_loss"]
            trial.report(value, step=step)
            if checks and fold == 0 and epoch > self.warmup and prune(step, value):
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

    if isinstance(e, optuna.TrialPruned):  # a normal outcome: the run ends FINISHED
        if (rung := getattr(e, "rung", None)) is not None:  # a multi-fidelity rung held it
            trial.set_user_attr("stop_reasons", [str(e)])
            return "pruned", {"stop_reason": str(e), "pruned": "true", FIDELITY_ATTR: rung}
        return "pruned", {**stop_tags(trial, where, "pruned"), "pruned": "true"}
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
