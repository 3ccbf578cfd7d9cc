"""What tuning reports: plain rows of the study's trials, live progress and the final result.

Plain data with no optuna import: the CLI hands it to `pipeline.console`, which draws it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENDED = ("complete", "pruned", "failed")


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str  # complete | pruned | failed | skipped | running | waiting
    value: float | None
    params: dict[str, Any] = field(default_factory=dict)  # the searched values
    attrs: dict[str, Any] = field(default_factory=dict)  # trial.user_attrs

    @property
    def ended(self) -> bool:
        return self.state in ENDED


def counts(rows: list[TrialRow]) -> dict[str, int]:
    out = {"complete": 0, "pruned": 0, "failed": 0, "running": 0, "waiting": 0}
    for r in rows:
        out[r.state] = out.get(r.state, 0) + 1
    return out


def ranked(rows: list[TrialRow], direction: str) -> list[TrialRow]:
    """Complete trials, best first."""
    done = [r for r in rows if r.state == "complete" and r.value is not None]
    return sorted(done, key=lambda r: r.value, reverse=direction == "maximize")


@dataclass(frozen=True)
class TuneProgress:
    """The study now: sent to `tune(on_progress=...)` once at the start and after each trial."""

    rows: list[TrialRow]
    budget: int  # finished trials (complete + pruned) the study is to hold
    metric: str
    direction: str

    @property
    def counts(self) -> dict[str, int]:
        return counts(self.rows)

    @property
    def finished(self) -> int:
        c = self.counts
        return c["complete"] + c["pruned"]

    @property
    def ranked(self) -> list[TrialRow]:
        return ranked(self.rows, self.direction)

    @property
    def best(self) -> TrialRow | None:
        order = self.ranked
        return order[0] if order else None


@dataclass(frozen=True)
class TuneResult(TuneProgress):
    """The study when `tune` returns, where its best parameters went, what the workers said."""

    best_path: Path | None = None  # experiments/<name>.best.json, once a trial is complete
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class GaveUp:
    """A worker stopped asking for trials: too many failed in this run."""

    worker: int
    failures: int

    def __str__(self) -> str:
        return (f"worker {self.worker}: {self.failures} trials failed in this run; stopping "
                "(check the search space: learning rates too high?)")
