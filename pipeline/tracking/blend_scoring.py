"""A blend's scoring from files only: each member's `Scorer` (its networks, preprocessor and
scoring.json under `m<i>_` artifact keys), their metric-form predictions weighted as
`pipeline blend` weighted the OOF files, then the blend's decision and the sample's columns."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.tracking.scoring import FEATURES, PREPROCESSOR, SCORING, Scorer


def member_keys(i: int) -> tuple[str, str, str]:
    """Artifact keys of member i: its preprocessor, its scoring.json, its networks' prefix."""
    return f"m{i}_{PREPROCESSOR}", f"m{i}_{SCORING}", f"m{i}_model"


def member_features_key(i: int) -> str:
    """Artifact key of member i's feature code, when its experiment has some."""
    return f"m{i}_{FEATURES}"


@dataclass
class BlendScorer(Scorer):
    parts: list[Scorer] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)

    @classmethod
    def from_blend_artifacts(cls, artifacts: dict[str, str]) -> BlendScorer:
        out = json.loads(Path(artifacts[SCORING]).read_text(encoding="utf-8"))
        parts = []
        for i in range(len(out["weights"])):
            pre, scoring, _ = member_keys(i)
            own = {PREPROCESSOR: artifacts[pre], SCORING: artifacts[scoring]}
            if member_features_key(i) in artifacts:  # each member runs its own feature code
                own[FEATURES] = artifacts[member_features_key(i)]
            base = {k: v for k, v in artifacts.items() if k != FEATURES}
            parts.append(Scorer.from_artifacts({**base, **own}))
        return cls({}, out, [], parts=parts, weights=[float(w) for w in out["weights"]])

    def metric_form(self, df: pd.DataFrame) -> np.ndarray:
        return sum(w * p.metric_form(df) for w, p in zip(self.weights, self.parts, strict=True))
