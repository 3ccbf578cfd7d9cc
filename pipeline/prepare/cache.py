"""The prepared-arrays cache: the inputs' fingerprint, and data/<competition>/prepared/
<fingerprint>/ (one .npy file per array + preprocessor.json) read back, or written atomically
through a temporary directory so a failed run leaves nothing behind.

Arrays are read memory-mapped (``np.load(mmap_mode="r")``): every fold and every tuning worker
on this machine reads the same pages of the page cache, so a million-row matrix is held once,
not once per process (issue 21). A cache of the older layout (one ``arrays.npz``) is rebuilt."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.experiment import Competition
from pipeline.prepare.features import PREP_VERSION, Blocks

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


def write_cache(out: Path, arrays: dict[str, np.ndarray | Blocks], spec: dict[str, Any],
                extra: dict[str, bytes] | None = None, *, replace: bool = False) -> None:
    """Write into a temp dir beside `out`, then rename: a failed run leaves nothing behind,
    not even the (empty) folders it made for the cache. `extra`: more files by name (the
    feature code the arrays were made with). A valid cache of the same fingerprint that a
    parallel run installed first is kept unless `replace` (--force)."""
    made = [p for p in (out.parent, *out.parent.parents) if not p.exists()]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _write(out, arrays, spec, extra or {}, replace)
    except BaseException:
        for folder in made:  # deepest first; a folder a parallel run filled stays
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _write(out: Path, arrays: dict[str, np.ndarray | Blocks], spec: dict[str, Any],
           extra: dict[str, bytes], replace: bool) -> None:
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache is ordinary project output
    try:
        for name, array in arrays.items():
            if isinstance(array, Blocks):
                _stream(tmp / f"{name}.npy", array)
            else:
                np.save(tmp / f"{name}.npy", array, allow_pickle=False)
        spec = {**spec, "arrays": sorted(arrays)}
        (tmp / "preprocessor.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
        for name, data in extra.items():
            (tmp / name).write_bytes(data)
        _install(tmp, out, spec.get("fingerprint", ""), tuple(extra), replace)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _stream(path: Path, array: Blocks) -> None:
    """A .npy file written a block of rows at a time (the header first, as np.save writes
    it): the file's pages go to the page cache, not to this process's memory."""
    header = {"descr": np.lib.format.dtype_to_descr(array.dtype), "fortran_order": False,
              "shape": array.shape}
    rows = 0
    with path.open("wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for block in array.make():
            block = np.ascontiguousarray(block, dtype=array.dtype)
            if block.ndim != 2 or block.shape[1] != array.shape[1]:
                raise ValueError(f"{path.name}: a block of shape {block.shape}, expected "
                                 f"{array.shape[1]} columns")
            f.write(memoryview(block).cast("B"))
            rows += len(block)
    if rows != array.shape[0]:
        raise ValueError(f"{path.name}: {rows} rows written, expected {array.shape[0]}")


def _install(tmp: Path, out: Path, fingerprint: str, extra: tuple[str, ...],
             replace: bool) -> None:
    """Rename the finished `tmp` to `out`. What stands there (--force, a damaged or stale
    cache) is renamed aside first, never deleted in place: workers started together all
    build the same cache, and one deleting files another is reading or replacing crashed it."""
    for _ in range(5):
        if out.exists():
            if not replace and load_cached(out, fingerprint, extra) is not None:
                return  # a parallel run installed these same arrays first: keep them
            _move_aside(out)
        try:
            os.rename(tmp, out)
            return
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        replace = False  # another run installed one meanwhile: a valid one is as good
    raise OSError(errno.EBUSY, f"{out}: other runs keep replacing this cache")


def _move_aside(out: Path) -> None:
    aside = out.with_name(f".{out.name}.old.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    try:
        os.rename(out, aside)
    except FileNotFoundError:
        return  # another run moved it first
    shutil.rmtree(aside, ignore_errors=True)
