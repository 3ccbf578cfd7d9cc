"""The model file codec: a JSON header plus named arrays in one .npz, never pickle.

File layout: ``header`` (0-d unicode array holding JSON) and any number of numeric or unicode
arrays. Reading uses ``np.load(allow_pickle=False)``, so it executes no code; what the header and
arrays must hold is the estimators' business (``estimators.load_model``). Every problem raises
``ModelFileError`` with one line naming the file.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from importlib import metadata as _md
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelFileError

FORMAT = "pipeline.network"
# 2: regression target scaling moved from metadata into the header (version 1 still loads).
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


def package_version() -> str:
    try:
        return _md.version("avocado-pipeline")
    except _md.PackageNotFoundError:
        return "unknown"


def bad_file(path: str | os.PathLike, what: str) -> ModelFileError:
    return ModelFileError(f"{path}: {what}".replace("\n", " "))


def write(path: str | os.PathLike, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Write header + arrays to ``path`` atomically (temp file + rename)."""
    header = {"format": FORMAT, "format_version": FORMAT_VERSION,
              "package_version": package_version(), **header}
    try:
        text = json.dumps(header, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"metadata must be JSON-serialisable: {e}") from None
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, header=np.array(text), **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(header, arrays) of a model file whose format and version this code reads."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise bad_file(path, "no such file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise bad_file(path, f"not a readable .npz model file ({type(e).__name__}: {e})") from None
    if "header" not in arrays:
        raise bad_file(path, "not a model file: no 'header' array")
    try:
        header = json.loads(str(arrays.pop("header")[()]))
    except (ValueError, TypeError) as e:
        raise bad_file(path, f"header is not valid JSON ({e})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise bad_file(path, f"header does not describe a {FORMAT} model")
    if header.get("format_version") not in READABLE_VERSIONS:
        raise bad_file(path, f"format_version {header.get('format_version')!r} is not supported "
                             f"(this code reads {', '.join(map(str, READABLE_VERSIONS))}); "
                             "re-create it with `pipeline submit` under this version")
    return header, arrays
