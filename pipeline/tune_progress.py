"""What tuning shows the user: a rich progress bar (or plain lines), the result tables.

Works on plain `TrialRow`s so it needs no optuna import; tune.py converts trials to rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str  # complete | pruned | failed | running | waiting
    value: float | None
    params: dict[str, Any] = field(default_factory=dict)  # the searched values
    attrs: dict[str, Any] = field(default_factory=dict)  # trial.user_attrs


def counts(rows: list[TrialRow]) -> dict[str, int]:
    out = {"complete": 0, "pruned": 0, "failed": 0, "running": 0, "waiting": 0}
    for r in rows:
        out[r.state] = out.get(r.state, 0) + 1
    return out


def ranked(rows: list[TrialRow], direction: str) -> list[TrialRow]:
    done = [r for r in rows if r.state == "complete" and r.value is not None]
    return sorted(done, key=lambda r: r.value, reverse=direction == "maximize")


class TuneDisplay:
    """Progress bar of finished trials (complete + pruned) against the study's budget."""

    def __init__(self, budget: int, metric: str, direction: str, quiet: bool) -> None:
        self.budget = budget
        self.metric = metric
        self.direction = direction
        self.quiet = quiet
        self.console = Console(highlight=False)
        self.start = time.monotonic()
        self._seen: set[tuple[int, str]] = set()
        self._progress: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> TuneDisplay:
        if not self.quiet:
            self._progress = Progress(
                TextColumn("[bold]tuning"),
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                console=self.console,
            )
            self._progress.start()
            self._task = self._progress.add_task("tune", total=self.budget, info="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def resume(self, rows: list[TrialRow]) -> None:
        """Trials of earlier runs: counted in the bar, not printed again by --quiet."""
        c = counts(rows)
        self._seen.update((r.number, r.state) for r in rows)
        if self.quiet and rows:
            print(f"resuming: {c['complete'] + c['pruned']}/{self.budget} finished trials "
                  f"({c['failed']} failed) in the study", flush=True)
        self.update(rows)

    def update(self, rows: list[TrialRow]) -> None:
        c = counts(rows)
        best = ranked(rows, self.direction)
        best_text = f"best {best[0].value:.4f} (#{best[0].number})" if best else "best -"
        finished = c["complete"] + c["pruned"]
        if self._progress is not None:
            info = f"complete {c['complete']} pruned {c['pruned']} failed {c['failed']} {best_text}"
            self._progress.update(self._task, completed=min(finished, self.budget), info=info)
            return
        for r in rows:  # --quiet: one line per trial as it ends
            ended = r.state in ("complete", "pruned", "failed")
            if ended and (r.number, r.state) not in self._seen:
                self._seen.add((r.number, r.state))
                score = f" {self.metric}={r.value:.4f}" if r.value is not None else ""
                error = r.attrs.get("error") if r.state == "failed" else None
                reason = f" ({error})" if error else ""
                elapsed = time.monotonic() - self.start
                print(
                    f"trial {r.number} {r.state}{score}{reason}  [{finished}/{self.budget} "
                    f"finished, {c['failed']} failed, {best_text}, {elapsed:.0f}s]",
                    flush=True,
                )


def print_summary(
    rows: list[TrialRow], metric: str, direction: str, top: int = 10,
    console: Console | None = None,
) -> None:
    """The best trial's parameters and a ranked table of the top trials."""
    console = console or Console(highlight=False)
    order = ranked(rows, direction)
    c = counts(rows)
    console.print(
        f"trials: {c['complete']} complete, {c['pruned']} pruned, {c['failed']} failed"
    )
    if not order:
        console.print("no complete trial yet")
        return
    best = order[0]
    console.print(f"best trial #{best.number}: {metric} = {best.value:.5f} "
                  f"± {best.attrs.get('cv_std', float('nan')):.5f}")
    for key, value in best.params.items():
        console.print(f"  {key} = {value!r}")
    table = Table(title=f"top {min(top, len(order))} trials by {metric}")
    for col in ("rank", "trial", metric, "std", "epochs"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("parameters", overflow="fold")
    for i, r in enumerate(order[:top], start=1):
        table.add_row(
            str(i), str(r.number), f"{r.value:.5f}", f"{r.attrs.get('cv_std', float('nan')):.4f}",
            str(r.attrs.get("n_iter", "")),
            " ".join(f"{k}={_fmt(v)}" for k, v in r.params.items()),
        )
    console.print(table)


def print_cv(scores: list[float], n_iters: list[int], mean: float, std: float, metric: str,
             seconds: float, console: Console | None = None) -> None:
    """`pipeline train`'s result: one row per fold and the mean."""
    console = console or Console(highlight=False)
    table = Table(title=f"{len(scores)}-fold cross-validation ({seconds:.2f}s)")
    for col in ("fold", metric, "epochs"):
        table.add_column(col, justify="right")
    for f, (s, n) in enumerate(zip(scores, n_iters, strict=True)):
        table.add_row(str(f), f"{s:.5f}", str(n))
    table.add_row("mean", f"{mean:.5f} ± {std:.5f}", f"{sum(n_iters) / len(n_iters):.0f}")
    console.print(table)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
