"""Tracking stores: URIs, the schema lock for racing workers, tag and parameter helpers."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# MLflow logs a store error with its traceback before raising it; our callers name it in one
# line (a warning, or the error that ends the command)
logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
SCHEMA_LOCK_KEY = 0x6D6C666C6F77  # pg_advisory_lock key of MLflow's schema set-up ("mlflow")
ARTIFACT_DIR = "mlartifacts"
SETUP_ATTEMPTS = 6  # tries (back-off 0.25 s .. 4 s) to set up a store raced by other workers
LOCK_WAIT = 120.0  # seconds to wait for another worker that is creating MLflow's schema


def resolve_uri(tracking_uri: str | None) -> str:
    """The URI to use; a relative SQLite path is made absolute (MLflow caches engines by URI,
    so `sqlite:///mlflow.db` must not mean another file after a chdir)."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    path = sqlite_path(uri)
    if path is not None and not Path(path).is_absolute():
        uri = "sqlite:///" + str(Path.cwd() / path)
    return uri


@contextmanager
def schema_lock(uri: str) -> Iterator[None]:
    """Hold a PostgreSQL advisory lock (session level) while MLflow may create its schema.

    Other databases (SQLite: MLflow's own file lock; MySQL; an HTTP server that creates the
    schema itself) get no lock: the retry in `setup` covers them.
    """
    if not uri.startswith("postgresql"):
        yield
        return
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(uri, poolclass=NullPool)
    try:
        with engine.connect() as con:
            deadline = time.monotonic() + LOCK_WAIT
            got = False
            while not got and time.monotonic() < deadline:
                got = bool(con.execute(sqlalchemy.text("SELECT pg_try_advisory_lock(:k)"),
                                       {"k": SCHEMA_LOCK_KEY}).scalar())
                con.commit()
                if not got:
                    time.sleep(0.2)
            try:
                yield  # (no lock after LOCK_WAIT: go on, the retry still covers the race)
            finally:
                if got:
                    con.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"),
                                {"k": SCHEMA_LOCK_KEY})
                    con.commit()
    finally:
        engine.dispose()


SERVER_TIMEOUT = 5.0  # seconds for an MLflow server to answer at start


def check_server(uri: str, timeout: float = SERVER_TIMEOUT) -> None:
    """An http(s) tracking URI must answer MLflow's /health now: MLflow's own client retries
    a dead address with back-off for many minutes, silently. Other URIs pass."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    from pipeline.errors import PipelineError

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as reply:
            reply.read(64)
    except urllib.error.HTTPError:
        return  # something answers (an older server, a proxy): MLflow's calls will tell
    except (OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise PipelineError(
            f"--tracking-uri {redact_url(uri)}: no MLflow server answers ({reason}); start "
            "it (`make mlflow-server`) or check the URL"
        ) from None


def redact_url(uri: str) -> str:
    """A storage or tracking URL without its password, for messages and tags."""
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return uri


def sqlite_path(uri: str) -> str | None:
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///")
    return None if path in ("", ":memory:") else path


def is_local(uri: str) -> bool:
    return not uri.startswith(("http://", "https://", "databricks"))


def param_str(v: Any) -> str:
    if isinstance(v, tuple | list):
        return json.dumps(list(v))
    return str(v)


def str_tags(tags: dict) -> dict[str, str]:
    return {str(k): str(v) for k, v in tags.items() if v is not None}
