"""BLAS threads while training (threadpoolctl, a scikit-learn dependency).

A fit holds BLAS to one thread, whatever the process's own limit (a tuning worker's share of
the cores, `tune.worker.blas_threads`). Our GEMMs are small (batch x width x width), so a
second thread gains little, while on a busy machine (parallel tuning workers, other jobs) a
descheduled BLAS thread stalls every call. Measured on this project's 2-core machine with other
jobs running: a 10-epoch fit went from 0.8 s to 16-36 s; one epoch of init's [model] network
on 240,000 rows (issue 21) from 3.5-3.7 s on one thread to 16.9-17.0 s on two. One thread also
makes results independent of the machine's thread settings, so ``random_state`` alone fixes
them bit for bit.
"""

from __future__ import annotations

from typing import Any


def training_threads() -> Any:
    """A context holding BLAS to one thread for a fit."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")
