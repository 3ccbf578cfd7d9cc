"""The prepared-arrays cache: the inputs' fingerprint, and data/<competition>/prepared/
<fingerprint>/ (arrays.npz + preprocessor.json) read back, or written atomically through a
temporary directory so a failed run leaves nothing behind."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.experiment import Competition
from pipeline.prepare.features import PREP_VERSION

DATA_DIR = Path("data")


def cache_root(comp: Competition) -> Path:
    """data/<basename of data_dir>/prepared, relative to the project root (the cwd)."""
    return DATA_DIR / comp.data_dir.resolve().name / "prepared"


def input_fingerprint(files: dict[str, Path], comp: Competition, fold_column: str | None) -> str:
    h = hashlib.sha256(f"prep-v{PREP_VERSION}\n".encode())
    settings: dict[str, Any] = {
        k: getattr(comp, k) for k in ("id", "target", "task", "drop", "categorical", "dates")}
    if fold_column is not None:  # group / time folds add an array; other kinds change nothing
        settings["folds"] = fold_column
    h.update(json.dumps(settings, sort_keys=True).encode())
    for name, path in sorted(files.items()):
        h.update(f"\n{name}\n".encode())
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def load_cached(out: Path, fingerprint: str) -> tuple[dict[str, np.ndarray], dict] | None:
    """(arrays, spec) of the cache at `out`, or None when absent, damaged or stale."""
    try:
        spec = json.loads((out / "preprocessor.json").read_text(encoding="utf-8"))
        with np.load(out / "arrays.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, KeyError):
        return None  # absent or damaged: rebuild
    if spec.get("fingerprint") != fingerprint or spec.get("version") != PREP_VERSION:
        return None
    return arrays, spec


def write_cache(out: Path, arrays: dict[str, np.ndarray], spec: dict[str, Any]) -> None:
    """Write into a temp dir beside `out`, then rename: a failed run leaves nothing behind,
    not even the (empty) folders it made for the cache."""
    made = [p for p in (out.parent, *out.parent.parents) if not p.exists()]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _write(out, arrays, spec)
    except BaseException:
        for folder in made:  # deepest first; a folder a parallel run filled stays
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _write(out: Path, arrays: dict[str, np.ndarray], spec: dict[str, Any]) -> None:
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache is ordinary project output
    try:
        np.savez(tmp / "arrays.npz", **arrays)
        (tmp / "preprocessor.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
        if out.exists():  # --force, or a damaged cache
            shutil.rmtree(out)
        try:
            os.replace(tmp, out)
        except OSError:
            if not (out / "preprocessor.json").is_file():  # not a parallel run that won
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
