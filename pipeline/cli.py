"""The `pipeline` command line: parse options, compose the stages, show what they return.

Stages return data and print nothing; `pipeline.console` renders it. Known errors become one
line and exit code 2. Heavy libraries (mlflow, optuna, matplotlib, even pandas) are imported
inside the commands that need them, so `pipeline --help` answers at once.
"""

from __future__ import annotations

import errno
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
from typer.core import TyperGroup

from pipeline import console
from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from pipeline.experiment import Experiment as ExperimentFile

class WholeSummaries(TyperGroup):
    """`pipeline --help` lists each command's first docstring sentence whole, wrapped to the
    terminal, instead of cutting it to one line with "..." (Click's default)."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, cmd.get_short_help_str(limit=10_000))
                for name in self.list_commands(ctx)
                if (cmd := self.get_command(ctx, name)) is not None and not cmd.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


app = typer.Typer(
    cls=WholeSummaries,
    name="pipeline",
    help="Kaggle-style competitions with a from-scratch NumPy sigmoid network.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

Experiment = Annotated[
    str, typer.Argument(help="Experiment name (experiments/NAME.toml) or path to a .toml file.")
]
Storage = Annotated[
    str | None,
    typer.Option(
        "--storage",
        envvar="OPTUNA_STORAGE",
        help="Optuna storage URL, or grpc://HOST:PORT of a storage-proxy [default: [tune] "
        "storage, else sqlite:///optuna.db].",
        show_default=False,
    ),
]
TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        envvar="MLFLOW_TRACKING_URI",
        help="MLflow tracking URI [default: sqlite:///mlflow.db].",
        show_default=False,
    ),
]
StudyName = Annotated[
    str | None, typer.Option("--study", help="Study name [default: the experiment's name].")
]
Trials = Annotated[
    int | None,
    typer.Option(min=1, help="Total finished trials for the study [default: [tune] trials]."),
]
Timeout = Annotated[
    float | None, typer.Option(min=1, help="Stop starting trials after this many seconds.")
]
Jobs = Annotated[int, typer.Option(min=1, help="Worker processes on the same study.")]
Fresh = Annotated[bool, typer.Option(help="Delete the study and start again.")]
Quiet = Annotated[bool, typer.Option(help="Plain log lines instead of a progress bar.")]


@dataclass(frozen=True)
class TuneOptions:
    """The options of `tune`, and of `run`, which tunes the same way before it submits."""

    experiment: Experiment
    trials: Trials = None
    timeout: Timeout = None
    jobs: Jobs = 1
    storage: Storage = None
    study: StudyName = None
    fresh: Fresh = False
    tracking_uri: TrackingUri = None
    quiet: Quiet = False


def fail(message: str) -> None:
    """One line on stderr, exit code 2: the contract for every bad input."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


# a full disk or quota: the stages write through temporary files and renames, so nothing that
# was there is damaged; the user frees space and runs again
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def disk_full(e: OSError) -> str:
    where = e.filename or "the project folder"
    return (f"{where}: {e.strerror or 'no space left on device'} while writing; nothing was "
            "half-written: free some space and run the same command again")


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Known errors become one line and exit 2; interrupts exit 130 without a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PipelineError as e:
            fail(str(e))
        except OSError as e:
            if e.errno not in DISK_FULL:
                raise
            fail(disk_full(e))
        except KeyboardInterrupt as e:  # the stage may say how to go on (tune: resume)
            console.interrupted(str(e))
            raise typer.Exit(130) from None

    return wrapper


def options_of(cls: type) -> Callable[[Callable[[Any], None]], Callable[..., None]]:
    """A command whose options are the fields of dataclass `cls`, called with one instance.

    Typer reads a command's options from its signature, so the command gets `cls`'s; commands
    that share options (`tune`, `run`) share the dataclass instead of two copies of them.
    """

    def decorate(fn: Callable[[Any], None]) -> Callable[..., None]:
        @wraps(fn)
        def command(**options: Any) -> None:
            fn(cls(**options))

        command.__signature__ = inspect.signature(cls, eval_str=True)
        return command

    return decorate


def load_experiment(name: str) -> ExperimentFile:
    from pipeline.experiment import load

    return load(name)


def board_experiment(name: str) -> ExperimentFile:
    """An experiment, or a blend (`pipeline blend`: its first member's competition, its own
    name) for the commands that read submissions: leaderboard, withdraw, predict."""
    from pipeline.submission.ledger import experiment_named

    return experiment_named(name)


@app.command()
@user_errors
def data(
    competition: Annotated[
        str, typer.Argument(help="Built-in competition to generate.")
    ] = "avocado",
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same bytes.")] = 0,
    rows: Annotated[
        int | None, typer.Option(min=10, help="Training rows (test gets half as many).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output folder [default: data/COMPETITION].")
    ] = None,
) -> None:
    """Generate a built-in competition (train, test, sample submission, solution, oracle)."""
    from pipeline.competitions import generate

    console.wrote(generate(competition, out or Path("data") / competition, seed=seed, rows=rows))


@app.command()
@user_errors
def init(
    data_dir: Annotated[
        Path,
        typer.Argument(help="Kaggle-layout folder: train.csv, test.csv, sample_submission.csv."),
    ],
    name: Annotated[
        str | None, typer.Option(help="Experiment name [default: the folder's name].")
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing experiment file.")] = False,
) -> None:
    """Infer id, target, task and metric from a competition folder -> experiments/NAME.toml."""
    from pipeline.init import init_experiment
    from pipeline.submission.format import load_format

    # the sample must fit test.csv and the classes: found now, not after a whole study
    console.experiment_written(init_experiment(data_dir, name=name, force=force, check=load_format))


@app.command()
@user_errors
def prepare(
    experiment: Experiment,
    force: Annotated[
        bool, typer.Option(help="Rebuild the cache even if it is up to date.")
    ] = False,
) -> None:
    """Raw CSVs -> numeric arrays and a fitted preprocessor, cached by fingerprint."""
    from pipeline.prepare import prepare as run_prepare

    console.prepared(run_prepare(load_experiment(experiment), force=force))


@app.command()
@user_errors
def train(
    experiment: Experiment,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a [model] value, e.g. --set learning_rate_init=0.01."),
    ] = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Cross-validate one parameter set ([model] plus --set overrides) and log it to MLflow."""
    from pipeline.train import cross_validate_and_log

    exp = load_experiment(experiment)
    console.cv_run(cross_validate_and_log(exp, overrides=set_ or [], tracking_uri=tracking_uri))


@app.command()
@user_errors
@options_of(TuneOptions)
def tune(options: TuneOptions) -> None:
    """Tune the network with Optuna; resumable: run it again to continue the same study."""
    tune_study(load_experiment(options.experiment), options)


@app.command()
@user_errors
def submit(
    experiment: Experiment,
    trial: Annotated[
        int | None, typer.Option(help="Trial number [default: the best trial].")
    ] = None,
    top_k: Annotated[
        int, typer.Option(min=1, help="Average the predictions of the K best trials.")
    ] = 1,
    refit: Annotated[
        bool | None,
        typer.Option("--refit/--no-refit", show_default=False,
                     help="Refit on all rows, or average the fold models [default: [submit]].")
    ] = None,
    seeds: Annotated[
        int | None, typer.Option(min=1, show_default=False,
                                 help="Bag: train with N seeds, average [default: [submit]].")
    ] = None,
    message: Annotated[
        str, typer.Option(help="Submission message for the ledger and Kaggle.")
    ] = "",
    storage: Storage = None,
    study: StudyName = None,
    tracking_uri: TrackingUri = None,
    promote: Annotated[
        bool, typer.Option(help="Make this model the registry's champion whatever its score.")
    ] = False,
) -> None:
    """Write the best model's submission CSV, validated, and record it in the ledger."""
    from pipeline.submit import submit_best

    console.submitted(submit_best(
        load_experiment(experiment), trial=trial, top_k=top_k, refit=refit, seeds=seeds,
        message=message, storage=storage, study=study, tracking_uri=tracking_uri,
        promote=promote,
    ))


@app.command()
@user_errors
def predict(
    experiment: Experiment,
    input_csv: Annotated[Path, typer.Argument(help="Raw rows with test.csv's columns.")],
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="Output CSV [default: stdout].")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="MLflow model URI or folder [default: models:/EXPERIMENT@champion]."),
    ] = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Score raw rows with the registry's champion; the sample submission's columns out."""
    from pipeline.predict import predict_csv

    result = predict_csv(board_experiment(experiment), input_csv, out=out, model_uri=model,
                         tracking_uri=tracking_uri)
    console.predictions(result)


@app.command()
@user_errors
def validate(
    experiment: Experiment,
    file: Annotated[Path, typer.Argument(help="Submission CSV to check.")],
) -> None:
    """Check any submission CSV against the competition's format rules."""
    from pipeline.submit import validate_file

    validate_file(load_experiment(experiment), file)
    console.valid_submission(file)


@app.command()
@user_errors
def leaderboard(
    experiment: Experiment,
    csv: Annotated[bool, typer.Option("--csv", help="Machine-readable CSV on stdout.")] = False,
    every: Annotated[bool, typer.Option(
        "--all", help="With every experiment and blend on the same competition and metric.",
    )] = False,
) -> None:
    """Every submission in the ledger: CV score and local Public / Private scores."""
    from pipeline.submission.leaderboard import board

    console.leaderboard(board(board_experiment(experiment), every=every), as_csv=csv)


@app.command()
@user_errors
def withdraw(
    experiment: Experiment,
    file: Annotated[str, typer.Argument(help="Submission file (path or name) to withdraw.")],
    message: Annotated[str, typer.Option(help="Why, for the ledger.")] = "withdrawn",
) -> None:
    """Withdraw a submission: a ledger row says so; the file and its history stay."""
    from datetime import UTC, datetime

    from pipeline.submission.ledger import withdraw as withdraw_row

    row = withdraw_row(board_experiment(experiment).name, file, message,
                       datetime.now(UTC).isoformat(timespec="seconds"))
    console.line(f"withdrew {row['file']}; the leaderboard no longer lists it")


@app.command()
@user_errors
def blend(
    name: Annotated[str, typer.Argument(help="The blend's name: ledger, submissions/NAME/.")],
    from_: Annotated[list[str] | None, typer.Option(
        "--from", help="Experiment whose latest submission joins (repeatable; the first sets "
        "the competition and folds).")] = None,
    oof: Annotated[list[Path] | None, typer.Option(
        "--oof", help="Outside model's out-of-fold CSV, our layout (repeatable).")] = None,
    test: Annotated[list[Path] | None, typer.Option(
        "--test", help="Its test CSV, paired with --oof in order (repeatable).")] = None,
    message: Annotated[str, typer.Option(help="Submission message for the ledger.")] = "",
    tracking_uri: TrackingUri = None,
) -> None:
    """Blend submissions and outside models, weights fitted on out-of-fold predictions."""
    from pipeline.blend import blend as run_blend

    console.blend_result(run_blend(name, from_ or [], oof or [], test or [], message=message,
                                   tracking_uri=tracking_uri))


@app.command()
@user_errors
def drift(
    experiment: Experiment,
    folds: Annotated[int, typer.Option(min=2, help="Cross-validation folds.")] = 5,
    top: Annotated[int, typer.Option(min=1, help="Columns listed.")] = 10,
) -> None:
    """Adversarial validation: how well a classifier tells train rows from test rows, and why."""
    from pipeline.drift import drift as run_drift

    console.drift_report(run_drift(load_experiment(experiment), folds=folds, top=top))


@app.command()
@user_errors
@options_of(TuneOptions)
def run(options: TuneOptions) -> None:
    """Chain every stage: prepare -> tune -> submit -> leaderboard."""
    from pipeline.prepare import prepare as run_prepare
    from pipeline.submission.leaderboard import board
    from pipeline.submit import submit_best

    exp = load_experiment(options.experiment)
    run_prepare(exp)
    tune_study(exp, options)
    console.submitted(submit_best(exp, storage=options.storage, study=options.study,
                                  tracking_uri=options.tracking_uri))
    console.leaderboard(board(exp))


@app.command()
@user_errors
def show(
    experiment: Experiment,
    trial: Annotated[
        int | None, typer.Option(help="Trial number (its first fold's network) "
                                 "[default: the submitted model, else the best trial].")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o",
                                  help="File to write (.png / .svg) [default: EXP-network.png].")
    ] = None,
    storage: Storage = None,
    study: StudyName = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Draw the network: edges as thick as their weights, inputs named by their columns."""
    from pipeline.show import show as draw

    drawn = draw(load_experiment(experiment), output, trial=trial, storage=storage, study=study,
                 tracking_uri=tracking_uri)
    for note in drawn.notes:
        console.warning(note)
    console.wrote(drawn.paths)


@app.command()
@user_errors
def importance(
    experiment: Experiment,
    trial: Annotated[
        int | None, typer.Option(help="Trial number [default: the newest submission's trial, "
                                 "else the best trial].")
    ] = None,
    repeats: Annotated[int, typer.Option(min=1, help="Shuffles per column.")] = 5,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Bar chart to write (.png; the table "
                                  "beside it as .csv) [default: EXP-importance.png].")
    ] = None,
    storage: Storage = None,
    study: StudyName = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Permutation importance: how much the metric drops when each column is shuffled."""
    from pipeline.importance import importance as run_importance

    result = run_importance(load_experiment(experiment), trial=trial, repeats=repeats,
                            output=output, storage=storage, study=study,
                            tracking_uri=tracking_uri)
    console.importance(result, result.because)
    console.wrote(result.paths)
    for line in [*result.notes, *result.warnings]:
        console.warning(line)


@app.command()
@user_errors
def ui(
    port: Annotated[
        int | None, typer.Option(envvar="PORT", help="Port [default: a free one].")
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    tracking_uri: TrackingUri = None,
) -> None:
    """Start the MLflow UI on the project's stores and print its URL."""
    from pipeline.tracking import serve_ui
    from pipeline.tracking.links import study_links

    def started(url: str) -> None:
        console.ui_started(url, study_links(url, tracking_uri))

    serve_ui(host=host, port=port, tracking_uri=tracking_uri, on_start=started)


@app.command("storage-proxy")
@user_errors
def storage_proxy(
    storage: Annotated[
        str, typer.Option(envvar="OPTUNA_STORAGE",
                          help="The study database the proxy serves (postgresql://...).")
    ],
    host: Annotated[str, typer.Option(help="Interface to bind (0.0.0.0: every one).")] = (
        "127.0.0.1"),
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 13000,
    threads: Annotated[
        int, typer.Option(min=1, help="Serving threads = most database connections held.")
    ] = 16,
) -> None:
    """Serve one Optuna database to many tune workers over gRPC (--storage grpc://HOST:PORT)."""
    from pipeline.tracking.store import redact_url
    from pipeline.tune.proxy import serve

    serve(storage, host=host, port=port, threads=threads,
          on_ready=lambda address: console.proxy_started(address, redact_url(storage)),
          on_warning=console.warning)


@app.command()
@user_errors
def gradcheck(
    tolerance: Annotated[float, typer.Option(help="Largest relative error accepted.")] = 1e-6,
) -> None:
    """Compare backpropagation with central finite differences for every activation x task."""
    from pipeline.network.gradcheck import run_gradcheck

    worst = 0.0
    for case, err in run_gradcheck():
        console.gradcheck_case(case, err)
        worst = max(worst, err)
    if worst > tolerance:
        fail(f"gradient check failed: worst relative error {worst:.2e} > {tolerance:.0e}")
    console.gradcheck_passed(worst, tolerance)


# --- stages composed by more than one command ----------------------------------------------


def tune_study(exp: ExperimentFile, options: TuneOptions) -> None:
    """The study, with live progress, then its summary."""
    from pipeline.tune import tune as run_tune

    with console.TuneDisplay(quiet=options.quiet) as display:
        result = run_tune(
            exp, trials=options.trials, timeout=options.timeout, jobs=options.jobs,
            storage=options.storage, study_name=options.study, fresh=options.fresh,
            tracking_uri=options.tracking_uri, on_progress=display.update,
        )
    console.tune_summary(result)


def main() -> None:
    app(prog_name="pipeline")


if __name__ == "__main__":
    sys.exit(main())
