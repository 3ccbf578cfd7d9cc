"""The prepared-arrays cache: the inputs' fingerprint, and data/<competition>/prepared/
<fingerprint>/ (one .npy file per array + preprocessor.json) read back, or written atomically
through a temporary directory so a failed run leaves nothing behind.

Arrays are read memory-mapped (``np.load(mmap_mode="r")``): every fold and every tuning worker
on this machine reads the same pages of the page cache, so a million-row matrix is held once,
not once per process (issue 21). A cache of the older layout (one ``arrays.npz``) is rebuilt."""

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


# fingerprints computed in this process, by the settings and each file's path, size and mtime:
# one `pipeline run` prepares several times, and hashing the raw CSVs again is the slow part
_SEEN: dict[tuple, str] = {}


def input_fingerprint(files: dict[str, Path], comp: Competition, fold_column: str | None,
                      feature_code: bytes | None = None) -> str:
    """The raw files' bytes, the settings that shape the arrays and the feature code's text:
    any change re-prepares, and a study tied to the old fingerprint refuses to resume."""
    settings: dict[str, Any] = {
        k: getattr(comp, k)
        for k in ("id", "target", "task", "drop", "categorical", "dates", "one_hot_max")}
    if fold_column is not None:  # group / time folds add an array; other kinds change nothing
        settings["folds"] = fold_column
    if feature_code is not None:  # absent otherwise: fingerprints from before stay valid
        settings["features"] = hashlib.sha256(feature_code).hexdigest()
    text = json.dumps(settings, sort_keys=True)
    stats = {name: path.stat() for name, path in files.items()}
    key = (PREP_VERSION, text, *sorted((name, str(path.resolve()), stats[name].st_size,
                                        stats[name].st_mtime_ns) for name, path in files.items()))
    if key not in _SEEN:
        _SEEN[key] = _fingerprint(files, text)
    return _SEEN[key]


def _fingerprint(files: dict[str, Path], settings: str) -> str:
    h = hashlib.sha256(f"prep-v{PREP_VERSION}\n".encode())
    h.update(settings.encode())
    for name, path in sorted(files.items()):
        h.update(f"\n{name}\n".encode())
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def load_cached(out: Path, fingerprint: str, extra: tuple[str, ...] = ()
                ) -> tuple[dict[str, np.ndarray], dict] | None:
    """(arrays, spec) of the cache at `out`, or None when absent, damaged or stale (or when a
    file of `extra`, such as the feature code's copy, is missing)."""
    if not all((out / name).is_file() for name in extra):
        return None
    try:
        spec = json.loads((out / "preprocessor.json").read_text(encoding="utf-8"))
        names = spec["arrays"]  # absent from the older .npz layout: rebuild
        arrays = {k: _mapped(out / f"{k}.npy") for k in names}
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or damaged: rebuild
    if spec.get("fingerprint") != fingerprint or spec.get("version") != PREP_VERSION:
        return None
    return arrays, spec


def _mapped(path: Path) -> np.ndarray:
    """A read-only memory map of a .npy file (never pickled objects: ValueError)."""
    return np.load(path, mmap_mode="r", allow_pickle=False)


def write_cache(out: Path, arrays: dict[str, np.ndarray], spec: dict[str, Any],
                extra: dict[str, bytes] | None = None) -> None:
    """Write into a temp dir beside `out`, then rename: a failed run leaves nothing behind,
    not even the (empty) folders it made for the cache. `extra`: more files by name (the
    feature code the arrays were made with)."""
    made = [p for p in (out.parent, *out.parent.parents) if not p.exists()]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _write(out, arrays, spec, extra or {})
    except BaseException:
        for folder in made:  # deepest first; a folder a parallel run filled stays
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _write(out: Path, arrays: dict[str, np.ndarray], spec: dict[str, Any],
           extra: dict[str, bytes]) -> None:
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache is ordinary project output
    try:
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", array, allow_pickle=False)
        spec = {**spec, "arrays": sorted(arrays)}
        (tmp / "preprocessor.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
        for name, data in extra.items():
            (tmp / name).write_bytes(data)
        if out.exists():  # --force, or a damaged cache
            shutil.rmtree(out)
        try:
            os.replace(tmp, out)
        except OSError:
            if not (out / "preprocessor.json").is_file():  # not a parallel run that won
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
