"""The Optuna study: storage, sampler, pruner, search space, resume, workers.

The only package that imports optuna (inside functions, so `pipeline --help` stays fast):
`study` (storage, sampler, pruner, stale-trial callback), `space` (the search space,
conditional: a parameter is suggested only when it applies), `objective` (one trial),
`worker` (the trial loop, worker processes, recovery), `fidelity` (big data: trials on a
row subsample first, only the promising ones promoted to all rows), `plots` (the study
plots), `progress` (what tuning reports, as plain data), `optuna_internals` (the two Optuna
internals we use);
`stage` (the `tune` stage, and `best_trials`: the study's answer to submit and show);
this module only re-exports.
It prints nothing: progress goes to the caller's `on_progress`, results are returned.

Budget. `--trials N` is the study's total of *finished* trials: complete + pruned. Failed
trials (diverged, interrupted, or left behind by a dead worker) do not count: a new trial takes
their place, so a resumed study always ends with exactly N finished trials. A worker only asks
for a trial while finished + running < N, and a trial that still lost the race to a worker on
another machine is failed at once with `user_attrs["skipped"]` (rare; never counted).

Pruning. Every few epochs the objective reports the running fold's validation loss at step
`fold * max_epochs + epoch` (negated for metrics to maximise: Optuna's pruners read "higher is
better" in a maximize study) and raises TrialPruned when the MedianPruner says so; the check runs
the pruner on a snapshot of the complete trials (`PruneCheck`) instead of `should_prune()`, which
re-reads the storage each time. Pruning is decided in the first fold only, after the warm-up
epochs: there every trial is compared on the same rows at the same epoch; checks in later folds
mostly gave noise more chances to prune merely average trials (on adult 70% were pruned and TPE
learnt little), while a bad trial already shows in fold 0. Later folds still report their
curves (intermediate-values plot). `[tune] pruner = "hyperband"` / `"halving"` use Optuna's
HyperbandPruner / SuccessiveHalvingPruner on the same fold-0 steps (they ask the trial itself:
their rungs live in the storage). With `[tune] subsample` (`fidelity`) the subsample stage is
pruned this way; its score is reported one step past its folds, and a promoted trial's
all-rows folds report after it, unpruned.

Workers. `--jobs N` spawns N processes; each runs the same loop as a lone `pipeline tune` on
another machine would (`run_worker`), with its own sampler seed (recorded per trial), and sends
its MLflow writes through a writer process (tracking.MlflowTracker(background=True)).

Crash recovery. On one host a RUNNING trial whose worker pid is gone is failed at once; on
several machines Optuna's heartbeat (RDB storages) fails it after the grace period. Both close
its MLflow run as failed and re-queue it with the same parameters (StaleTrialCallback, which
delegates to RetryHeartbeatStaleTrialCallback: bounded retries). The study plots for the parent
run are drawn by the MLflow writer process (jobs=1), not on the tune process's path.
"""

from pipeline.identity import study_identity
from pipeline.tune.progress import TuneProgress, TuneResult
from pipeline.tune.space import baseline_trials
from pipeline.tune.stage import best_trials, study_run_id, tune
from pipeline.tune.study import HOST, HOST_ID, PARENT_ATTR, make_storage, open_study, storage_url

__all__ = [
    "HOST", "HOST_ID", "PARENT_ATTR", "TuneProgress", "TuneResult", "baseline_trials",
    "best_trials", "make_storage", "open_study", "storage_url", "study_identity",
    "study_run_id", "tune",
]
