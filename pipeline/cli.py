"""The `pipeline` command line: parse options, call one stage, turn known errors into one line.

Heavy libraries (mlflow, optuna, matplotlib, even pandas) are imported inside the commands
that need them, so `pipeline --help` answers at once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.errors import PipelineError

app = typer.Typer(
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
        help="Optuna storage URL [default: sqlite:///optuna.db].",
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
    float | None, typer.Option(help="Stop starting trials after this many seconds.")
]
Jobs = Annotated[int, typer.Option(min=1, help="Worker processes on the same study.")]
Fresh = Annotated[bool, typer.Option(help="Delete the study and start again.")]


def fail(message: str) -> None:
    """One line on stderr, exit code 2: the contract for every bad input."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Known errors become one line and exit 2; interrupts exit 130 without a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PipelineError as e:
            fail(str(e))
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


def load_experiment(name: str):  # -> pipeline.experiment.Experiment
    from pipeline.experiment import load

    return load(name)


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

    written = generate(competition, out or Path("data") / competition, seed=seed, rows=rows)
    for path in written:
        typer.echo(f"wrote {path}")


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
    from pipeline.infer import init_experiment
    from pipeline.submission.format import load_format

    # the sample must fit test.csv and the classes: found now, not after a whole study
    path = init_experiment(data_dir, name=name, force=force, check=load_format)
    typer.echo(f"wrote {path}")
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#   "):  # the guesses and their reasons: check them before tuning
            typer.echo("  " + line.lstrip("# "))


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

    prepared = run_prepare(load_experiment(experiment), force=force)
    typer.echo(
        f"{prepared.X_train.shape[0]} train x {prepared.X_train.shape[1]} features, "
        f"{prepared.X_test.shape[0]} test rows -> {prepared.path}"
    )


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
    from pipeline.tune import train_once

    train_once(load_experiment(experiment), overrides=set_ or [], tracking_uri=tracking_uri)


@app.command()
@user_errors
def tune(
    experiment: Experiment,
    trials: Trials = None,
    timeout: Timeout = None,
    jobs: Jobs = 1,
    storage: Storage = None,
    study: StudyName = None,
    fresh: Fresh = False,
    tracking_uri: TrackingUri = None,
    quiet: Annotated[bool, typer.Option(help="Plain log lines instead of a progress bar.")] = False,
) -> None:
    """Tune the network with Optuna; resumable: run it again to continue the same study."""
    from pipeline.tune import tune as run_tune

    run_tune(
        load_experiment(experiment),
        trials=trials,
        timeout=timeout,
        jobs=jobs,
        storage=storage,
        study_name=study,
        fresh=fresh,
        tracking_uri=tracking_uri,
        quiet=quiet,
    )


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
        bool, typer.Option(help="Refit on all rows (else average the fold models).")
    ] = True,
    message: Annotated[
        str, typer.Option(help="Submission message for the ledger and Kaggle.")
    ] = "",
    storage: Storage = None,
    study: StudyName = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Write the best model's submission CSV, validated, and record it in the ledger."""
    from pipeline.tune import submit_best

    submit_best(
        load_experiment(experiment),
        trial=trial,
        top_k=top_k,
        refit=refit,
        message=message,
        storage=storage,
        study_name=study,
        tracking_uri=tracking_uri,
    )


@app.command()
@user_errors
def validate(
    experiment: Experiment,
    file: Annotated[Path, typer.Argument(help="Submission CSV to check.")],
) -> None:
    """Check any submission CSV against the competition's format rules."""
    from pipeline.submit import validate_file

    validate_file(load_experiment(experiment), file)
    typer.echo(f"{file}: valid submission")


@app.command()
@user_errors
def leaderboard(
    experiment: Experiment,
    csv: Annotated[bool, typer.Option("--csv", help="Machine-readable CSV on stdout.")] = False,
) -> None:
    """Every submission in the ledger: CV score and local Public / Private scores."""
    from pipeline.submit import leaderboard as show

    show(load_experiment(experiment), as_csv=csv)


@app.command()
@user_errors
def run(
    experiment: Experiment,
    trials: Trials = None,
    timeout: Timeout = None,
    jobs: Jobs = 1,
    storage: Storage = None,
    study: StudyName = None,
    fresh: Fresh = False,
    tracking_uri: TrackingUri = None,
    quiet: Annotated[bool, typer.Option(help="Plain log lines instead of a progress bar.")] = False,
) -> None:
    """Chain every stage: prepare -> tune -> submit -> leaderboard."""
    from pipeline.prepare import prepare as run_prepare
    from pipeline.submit import leaderboard as show
    from pipeline.tune import submit_best
    from pipeline.tune import tune as run_tune

    exp = load_experiment(experiment)
    run_prepare(exp)
    run_tune(
        exp,
        trials=trials,
        timeout=timeout,
        jobs=jobs,
        storage=storage,
        study_name=study,
        fresh=fresh,
        tracking_uri=tracking_uri,
        quiet=quiet,
    )
    submit_best(exp, storage=storage, study_name=study, tracking_uri=tracking_uri)
    show(exp, as_csv=False)


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

    serve_ui(host=host, port=port, tracking_uri=tracking_uri)


@app.command()
@user_errors
def gradcheck(
    tolerance: Annotated[float, typer.Option(help="Largest relative error accepted.")] = 1e-6,
) -> None:
    """Compare backpropagation with central finite differences for every activation x task."""
    from pipeline.network.gradcheck import run_gradcheck

    worst = 0.0
    for case, err in run_gradcheck():
        typer.echo(f"{case:<28} {err:.2e}")
        worst = max(worst, err)
    if worst > tolerance:
        fail(f"gradient check failed: worst relative error {worst:.2e} > {tolerance:.0e}")
    typer.echo(f"ok: worst relative error {worst:.2e} <= {tolerance:.0e}")


def main() -> None:
    app(prog_name="pipeline")


if __name__ == "__main__":
    sys.exit(main())
