"""BLAS threads while training (threadpoolctl, a scikit-learn dependency).

By default a fit holds BLAS to one thread. Our GEMMs are small (batch x width x width), so a
second thread gains little, while on a busy machine (parallel tuning workers, other jobs) a
descheduled BLAS thread stalls every call: we measured a 10-epoch fit going from 0.8 s to
16-36 s. One thread also makes results independent of the machine's thread settings, so
``random_state`` alone fixes them bit for bit.

A process that owns some cores (a tuning worker: the machine's cores over ``--jobs``) says so
with ``set_training_threads``; its fits then use that many.
"""

from __future__ import annotations

from typing import Any

_threads = 1


def set_training_threads(n: int) -> None:
    """BLAS threads of every later fit in this process (at least 1)."""
    global _threads
    _threads = max(1, int(n))


def training_threads() -> Any:
    """A context holding BLAS to the training thread count."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=_threads, user_api="blas")
