"""Everything the terminal shows: progress, tables, summaries, one-line results.

Stages return data (dataclasses, paths); the CLI hands them to these functions. rich is
imported inside the functions that draw with it, so `pipeline --help` stays fast. Plain lines
go through `print` rather than rich, which would wrap long ones (the kaggle command) at 80
columns when the output is piped.
"""

from __future__ import annotations

import csv
import math
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from pipeline.blend import BlendResult
    from pipeline.drift import DriftReport
    from pipeline.importance import Importance
    from pipeline.predict import Predictions
    from pipeline.prepare import Prepared
    from pipeline.submission.leaderboard import Board, Entry
    from pipeline.submit import SubmissionResult, Submitted
    from pipeline.tracking.links import StudyLinks
    from pipeline.tracking.registry import Registered
    from pipeline.train import CvRun
    from pipeline.tune.progress import TrialRow, TuneProgress, TuneResult

# `pipeline leaderboard --csv`: the machine-readable columns, in this order
LEADERBOARD_COLUMNS = (
    "public_rank", "private_rank", "public", "private", "cv_score", "metric", "trials", "file",
    "status", "time", "message", "experiment",
)


def line(text: str = "") -> None:
    print(text, flush=True)


def warning(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr, flush=True)


def submitted(out: Submitted) -> None:
    """`pipeline submit`: what trained again, the submission, MLflow's side of it."""
    for note in out.result.notes:
        warning(note)
    submission(out.result)
    for text in out.warnings:
        warning(text)
    if out.registered is not None:
        registered(out.registered)


def interrupted(message: str) -> None:
    """Ctrl-C: what the interrupted stage says about resuming (if anything), then one line."""
    if message:
        line(message)
    print("interrupted", file=sys.stderr, flush=True)


def _rich(**kwargs: Any) -> Console:
    from rich.console import Console

    return Console(highlight=False, **kwargs)


# --- data, init, prepare, validate, ui, gradcheck ------------------------------------------


def wrote(paths: Iterable[Path]) -> None:
    for path in paths:
        line(f"wrote {path}")


def experiment_written(path: Path) -> None:
    """`pipeline init`: the file, then its guesses and their reasons: check them before tuning."""
    line(f"wrote {path}")
    for text in path.read_text(encoding="utf-8").splitlines():
        if text.startswith("#   "):
            line("  " + text.lstrip("# "))


def prepared(p: Prepared) -> None:
    line(f"{p.X_train.shape[0]} train x {p.X_train.shape[1]} features, "
         f"{p.X_test.shape[0]} test rows -> {p.path}")


def valid_submission(file: Path) -> None:
    line(f"{file}: valid submission")


def proxy_started(address: str, storage: str) -> None:
    """`pipeline storage-proxy`: where it listens and what workers pass."""
    line(f"Optuna storage proxy for {storage} on {address}  (Ctrl-C to stop)")
    line(f"workers: pipeline tune EXPERIMENT --storage {address}")


def ui_started(url: str, links: Iterable[StudyLinks] = ()) -> None:
    """The URL, then per study its links (and its registered model's), each alone on its line
    so terminals keep it whole."""
    line(f"MLflow UI: {url}  (Ctrl-C to stop)")
    for study in links:
        line(f"{study.experiment}: trials by {study.metric}, best first:")
        line(study.runs)
        line(f"{study.experiment}: val_loss of the 10 best trials, fold mean first:")
        line(study.chart)
        line(f"{study.experiment}: trials with score, std, state and parameters as columns:")
        line(study.columns)
        if study.model is not None:
            line(f"{study.experiment}: the registered model, its versions and the champion:")
            line(study.model)


def gradcheck_case(case: str, error: float) -> None:
    line(f"{case:<28} {error:.2e}")


def gradcheck_passed(worst: float, tolerance: float) -> None:
    line(f"ok: worst relative error {worst:.2e} <= {tolerance:.0e}")


# --- tune ----------------------------------------------------------------------------------


class TuneDisplay:
    """Live progress of a study: a bar of finished trials (complete + pruned) against the
    budget, or with `quiet` one plain line per trial as it ends.

    `update` is the `on_progress` callback the CLI passes to `tune`; its first report is the
    study as found (a resumed study's earlier trials are counted, not printed again).
    """

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.start = 0.0  # the first report: the trials' clock, not the set-up's
        self._seen: set[tuple[int, str]] | None = None  # None until the first report
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> TuneDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, progress: TuneProgress) -> None:
        if self._seen is None:
            self._resume(progress)
        c = progress.counts
        best = progress.best
        best_text = f"best {best.value:.4f} (#{best.number})" if best else "best -"
        if self._progress is not None:
            info = f"complete {c['complete']} pruned {c['pruned']} failed {c['failed']} {best_text}"
            finished = min(progress.finished, progress.budget)
            self._progress.update(self._task, completed=finished, info=info)
            return
        for r in progress.rows:  # --quiet: one line per trial as it ends
            if r.ended and (r.number, r.state) not in self._seen:
                self._seen.add((r.number, r.state))
                line(_trial_line(r, progress, best_text, time.monotonic() - self.start))

    def _resume(self, progress: TuneProgress) -> None:
        self.start = time.monotonic()
        self._seen = {(r.number, r.state) for r in progress.rows}
        if not self.quiet:
            self._start_bar(progress.budget)
        elif any(r.state != "waiting" for r in progress.rows):  # enqueued trials are not a resume
            c = progress.counts
            line(f"resuming: {progress.finished}/{progress.budget} finished trials "
                 f"({c['failed']} failed) in the study")

    def _start_bar(self, budget: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]tuning"), BarColumn(bar_width=24), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=_rich(),
        )
        self._progress.start()
        self._task = self._progress.add_task("tune", total=budget, info="")


def _trial_line(r: TrialRow, progress: TuneProgress, best_text: str, elapsed: float) -> str:
    score = f" {progress.metric}={r.value:.4f}" if r.value is not None else ""
    error = r.attrs.get("error") if r.state == "failed" else None
    reason = f" ({error})" if error else ""
    return (f"trial {r.number} {r.state}{score}{reason}  [{progress.finished}/{progress.budget} "
            f"finished, {progress.counts['failed']} failed, {best_text}, {elapsed:.0f}s]")


def tune_summary(result: TuneResult, top: int = 10) -> None:
    """The best trial's parameters, a ranked table of the top trials, where best.json went."""
    for note in result.notes:
        line(note)
    console = _rich()
    order = result.ranked
    c = result.counts
    held = {where: sum(r.attrs.get("fidelity") == where and r.state == "pruned"
                       for r in result.rows) for where in ("subsample", "first fold")}
    # [tune] subsample: the trials the multi-fidelity rungs held back
    rungs = ", ".join(f"{n} {'on the subsample' if where == 'subsample' else 'after one fold'}"
                      for where, n in held.items() if n)
    pruned = f"{c['pruned']} pruned ({rungs})" if rungs else f"{c['pruned']} pruned"
    console.print(f"trials: {c['complete']} complete, {pruned}, {c['failed']} failed")
    if not order:
        console.print("no complete trial yet")
    else:
        _best_trials_table(console, order, result.metric, top)
    if result.best_path is not None:
        line(f"best parameters -> {result.best_path}")
    if result.finished < result.budget:
        line(f"{result.finished}/{result.budget} finished trials; run the same command to continue")


def _best_trials_table(console: Console, order: list[TrialRow], metric: str, top: int) -> None:
    from rich import box
    from rich.table import Table

    best = order[0]
    console.print(f"best trial #{best.number}: {metric} = {best.value:.5f} "
                  f"± {best.attrs.get('cv_std', float('nan')):.5f}")
    for key, value in best.params.items():
        console.print(f"  {key} = {value!r}")
    # no vertical rules and one space between columns: at 80 columns the parameters keep ~37
    # characters, so `learning_rate_init=0.00433` stays whole; a blank line between trials
    table = Table(title=f"top {min(top, len(order))} trials by {metric}", box=box.SIMPLE_HEAD,
                  padding=(0, 1, 0, 0), pad_edge=False, show_lines=True)
    table.caption = "epochs: kept / run (folds' mean)"
    for col in ("rank", "trial", metric, "std", "epochs", "stop"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("parameters", overflow="fold")
    for i, r in enumerate(order[:top], start=1):
        table.add_row(
            str(i), str(r.number), f"{r.value:.5f}", f"{r.attrs.get('cv_std', float('nan')):.4f}",
            epochs_cell(r.attrs.get("n_iter"), r.attrs.get("n_iters")),
            stop_cell(r.attrs.get("stop_reasons")),
            " ".join(f"{k}={_short(v)}" for k, v in r.params.items()),
        )
    console.print(table)
    for r in order[:top]:
        if r.attrs.get("saturated"):
            console.print(f"warning: trial {r.number}: {r.attrs['saturated']} (units stuck "
                          "at their limits pass almost no gradient back; scale the inputs or "
                          "lower the learning rate)")


def epochs_cell(kept: float | None, run: list[int] | None) -> str:
    """`17/28`: the epochs whose weights the folds kept / the epochs they trained (means)."""
    if kept is None:
        return ""
    if not run:
        return str(kept)
    return f"{round(kept)}/{round(sum(run) / len(run))}"


STOP_SHORT = {"converged": "conv", "max_iter": "max", "diverged": "div"}


def stop_cell(reasons: list[str] | None) -> str:
    """Why the folds stopped in a few columns: `conv 5/5`, `max 3/5` (the commonest reason)."""
    if not reasons:
        return "-"
    common = max(set(reasons), key=reasons.count)
    short = STOP_SHORT.get(common, common.split(" at ")[0][:5])
    return f"{short} {reasons.count(common)}/{len(reasons)}"


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


# --- train (one cross-validated run) -------------------------------------------------------


def cv_run(run: CvRun) -> None:
    """`pipeline train`'s result: one row per fold and the mean, and where the run went."""
    from rich.table import Table

    res = run.result
    table = Table(title=f"{len(res.scores)}-fold cross-validation ({run.seconds:.2f}s)")
    for col in ("fold", run.metric, "epochs kept/run", "stopped"):
        table.add_column(col, justify="right")
    reasons = res.stop_reasons or ["-"] * len(res.scores)
    folds = zip(res.scores, res.best_epochs, res.n_iters, reasons, strict=True)
    for f, (s, kept, n, why) in enumerate(folds):
        table.add_row(str(f), f"{s:.5f}", f"{kept}/{n}", why)
    kept = sum(res.best_epochs) / len(res.best_epochs)
    table.add_row("mean", f"{res.mean:.5f} ± {res.std:.5f}", epochs_cell(kept, res.n_iters),
                  stop_cell(res.stop_reasons))
    _rich().print(table)
    if run.run_id is not None:
        line(f"logged MLflow run {run.run_id} (out-of-fold predictions: oof.csv); `make ui`")


# --- importance ----------------------------------------------------------------------------


def importance(result: Importance, chosen_because: str = "") -> None:
    """Columns by the drop in the metric when shuffled, with a bar; fits 80 columns (long
    column names fold, the numbers never do)."""
    from rich import box
    from rich.table import Table

    because = f" ({chosen_because})" if chosen_because else ""
    line(f"trial {result.trial}{because}: {result.metric} {_score(result.baseline)} out of "
         f"fold (study: {_score(result.cv_score)})")
    table = Table(title=f"drop in {result.metric} when a column is shuffled "
                        f"({result.repeats} times)",
                  box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False)
    table.add_column("rank", justify="right", no_wrap=True)
    table.add_column("column", overflow="fold", max_width=30)
    table.add_column("drop", justify="right", no_wrap=True)
    table.add_column("± sd", justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    top = max((c.mean for c in result.columns), default=0.0)
    for i, c in enumerate(result.columns, start=1):
        bar = "█" * round(20 * c.mean / top) if top > 0 and c.mean > 0 else ""
        table.add_row(str(i), c.column, f"{c.mean:.4f}", f"{c.std:.4f}", bar)
    _rich().print(table)


# --- submit --------------------------------------------------------------------------------


def submission(result: SubmissionResult) -> None:
    if result.existing:
        line(f"identical to {result.path} (sha256 {result.sha256[:12]}, already in the ledger); "
             "nothing written")
        line(f"upload: {result.kaggle_command}")
        return
    if result.labels_from is not None:
        line(f"note: {result.labels_from} has a single prediction column, so the submission "
             f"holds labels although the metric is {result.metric}")
    if result.ensemble is not None:
        e = result.ensemble
        line(f"ensemble of {e.members}: OOF {result.metric} {e.score:.5f} vs best member "
             f"{e.best_member:.5f} ({e.score - e.best_member:+.5f})")
    how = "refit on all rows" if result.refit else "fold models averaged"
    if result.seeds > 1:
        how += f", {result.seeds} seeds bagged"
    members = ", ".join(str(n) for n in result.trials)
    line(f"wrote {result.path}")
    if result.decision.kind != "none":
        line(f"decision chosen on out-of-fold predictions: {result.decision.describe()}")
    line(f"cv {result.metric} {_score(result.cv_score)} "
         f"(trial{'s' if len(result.trials) > 1 else ''} {members}, {how})")
    line(f"upload: {result.kaggle_command}")


def registered(reg: Registered) -> None:
    """Which registry version the submission became, and whether `champion` moved and why."""
    line(f"registered {reg.model_uri} in MLflow")
    if reg.promoted and reg.previous is None:
        line(f"champion: version {reg.version} (first registered)")
    elif reg.promoted:
        line(f"champion: version {reg.version} (was version {reg.previous}): {reg.reason}")
    else:
        line(f"champion stays version {reg.previous}: {reg.reason} "
             "(`pipeline submit --promote` moves it anyway)")


def predictions(result: Predictions) -> None:
    if result.path is None:
        sys.stdout.write(result.text)
        sys.stdout.flush()
    else:
        line(f"wrote {result.path} ({result.rows} rows, model {result.model_uri})")


def _score(value: float | None) -> str:
    return "nan" if value is None or not math.isfinite(value) else f"{value:.5f}"


# --- leaderboard ---------------------------------------------------------------------------


def leaderboard(board: Board, *, as_csv: bool = False) -> None:
    if as_csv:
        _leaderboard_csv(board)
    else:
        _leaderboard_table(board)


def _cell(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.5f}"


def _leaderboard_csv(board: Board) -> None:
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(LEADERBOARD_COLUMNS)
    for e in ([board.oracle] if board.oracle else []) + board.entries:
        out.writerow([
            e.public_rank or "", e.private_rank or "", _cell(e.public), _cell(e.private),
            _cell(e.cv), board.metric, e.trials, e.file, e.status, e.time, e.message,
            e.experiment,
        ])
    sys.stdout.flush()


def _leaderboard_table(board: Board) -> None:
    import os

    from rich.console import Console

    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=160)  # piped / captured: don't squeeze the table into 80 columns
    if not board.entries:
        console.print(f"no submissions yet for {board.experiment}; "
                      f"run `pipeline submit {board.experiment}`")
    if board.entries or board.oracle is not None:
        table, files = _board_table(board, wide=console.width >= 120)
        console.print(table)
        for ref, file in files:  # whole, one a line, never folded: they are copied from here
            line(f"{ref} {file}")
    for skipped in board.skipped:
        line(f"left out: {skipped}")


SCORE_WIDTH = len("-0.12345")  # a score column never narrower: scores are never elided


def _board_table(board: Board, *, wide: bool = True) -> tuple[Any, list[tuple[str, str]]]:
    """Scores first and whole; then the ledger name (with --all), trials, status, (time and
    message when wide: --csv has them); the file as a short reference `[n]` whose path is
    listed under the table. Narrow with several names, the name takes the place of the trials
    (a blend's weights would fold into a column of their own down the screen)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text  # `[1]` as text, not rich markup

    many = len(board.names) > 1
    more = f" and {len(board.names) - 1} more on its competition" if many else ""
    title = f"{board.experiment}{more}: {board.metric} ({board.direction})"
    scored = board.solution is not None
    if scored:
        title += f", Public / Private scored on {board.solution}"
    # no vertical rules and one space between columns when narrow: their width goes to the
    # columns
    table = (Table(title=title, box=box.HEAVY_HEAD) if wide else
             Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False))
    table.add_column("#", justify="right", no_wrap=True)
    for name in ["CV"] + (["Public", "Private"] if scored else []):
        table.add_column(name, justify="right", no_wrap=True, min_width=SCORE_WIDTH)
    if scored:
        table.add_column("Priv #", justify="right", no_wrap=True)
        table.add_column("Shake", justify="right", no_wrap=True)
    trials = wide or not many
    if many:
        table.add_column("Name", overflow="fold")
    if trials:
        table.add_column("Trial(s)", overflow="fold")
    table.add_column("Status", overflow="fold")
    if wide:
        table.add_column("Time", no_wrap=True)
        table.add_column("Message", overflow="fold")
    table.add_column("File", no_wrap=True)
    files: list[tuple[str, str]] = []
    if board.oracle is not None:
        o = board.oracle
        files.append(("[o]", o.file))
        cells = ["", ""] + ([_cell(o.public), _cell(o.private), "", ""] if scored else [])
        cells += ["oracle"] + [""] * (many + trials - 1)  # in the first of Name / Trial(s)
        cells += ["ceiling"] + (["", ""] if wide else [])
        table.add_row(*cells, Text("[o]"), style="bold yellow")
    for n, e in enumerate(board.entries, start=1):
        files.append((f"[{n}]", e.file))
        cells = [str(e.public_rank or "-"), _cell(e.cv)]
        if scored:
            cells += [_cell(e.public), _cell(e.private), str(e.private_rank or "-"), _shake(e)]
        cells += [e.experiment] * many + [e.trials] * trials + [e.status]
        if wide:  # minutes are enough on screen; --csv has it all
            cells += [e.time[:16].replace("T", " "), e.message]
        style = None if e.status == "ok" else "red"
        table.add_row(*cells, Text(f"[{n}]"), style=style)
    return table, files


def _shake(e: Entry) -> str:
    """Places gained (+) or lost (-) from the Public to the Private ranking."""
    if e.public_rank is None or e.private_rank is None:
        return ""
    moved = e.public_rank - e.private_rank
    return "=" if moved == 0 else f"{moved:+d}"


# --- blend and drift -----------------------------------------------------------------------


def blend_result(result: BlendResult) -> None:
    """Members with their weights and own CV on the blend's folds, the honest CV, the file."""
    for note in result.notes:
        line(f"note: {note}")
    width = max(len(m.label) for m in result.members)
    line(f"{'member':<{width}}  weight  cv {result.metric}")
    for m in result.members:
        line(f"{m.label:<{width}}  {m.weight:6.2f}  {_score(m.cv)}")
    line(f"{'blend':<{width}}  {1:6.2f}  {_score(result.cv_score)} "
         "(each fold weighted on the other folds)")
    if result.existing:
        line(f"identical to {result.path} (sha256 {result.sha256[:12]}, already in the "
             "ledger); nothing written")
        return
    if result.decision.kind != "none":
        line(f"decision chosen on the blend's out-of-fold predictions: "
             f"{result.decision.describe()}")
    line(f"wrote {result.path}")
    if result.registered is not None:
        registered(result.registered)
    elif result.not_registered:
        line(f"not registered: {result.not_registered}")


def drift_report(report: DriftReport) -> None:
    """AUC of train-vs-test, a verdict, the columns that drive it (fits 80 columns)."""
    line(f"{report.experiment}: train vs test AUC {report.auc:.3f} +- {report.auc_std:.3f} "
         f"({report.folds} folds; {report.train_rows} train, {report.test_rows} test rows)")
    line(report.verdict)
    if not report.columns:
        return
    width = min(40, max(len("column"), *(len(c.name) for c in report.columns)))
    line(f"{'column':<{width}}  {'AUC drop':>8}  {'+-':>6}  kind")
    for c in report.columns:
        name = c.name if len(c.name) <= width else c.name[:width - 3] + "..."
        line(f"{name:<{width}}  {c.importance:8.4f}  {c.std:6.4f}  {c.kind}")
    for c in report.columns:
        if c.later is not None and not report.time_split:
            line(f"{c.name}: every test.csv value is past train.csv's last ({c.later[0]} < "
                 f"{c.later[1]})")
            line(f'  so validate on later rows: [cv] kind = "time", time = "{c.name}"')
