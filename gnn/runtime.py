"""Process-wide state, in one place: environment defaults, torch threads, and starting Ray.

Nothing else in ringwatch changes process-wide state. What is changed, and when:

- :func:`configure_process` — called once by the command line at start (and by :func:`init_ray` before Ray
  starts): sets, *only when unset*, ``MLFLOW_DISABLE_TELEMETRY=true`` (no usage pings from a risk system)
  and ``RAY_AUTH_MODE=disabled`` (a local single-user Ray writes no token files). The MLflow tracking URI is
  never set globally (:mod:`gnn.tracking` passes it to its client); pictures are drawn on figures of their
  own, so no matplotlib backend is chosen.
- :func:`torch_threads` — a block that runs with a given number of torch CPU threads and restores the
  caller's number afterwards (training in this process; Ray workers and actors are processes of their own).
- :func:`init_ray` — the one place Ray is started or joined: the cluster at ``RAY_ADDRESS`` (from
  :class:`~graph.settings.Settings`) when given, else a local Ray sized to this machine. Training
  (:mod:`gnn.ray_train`) and Ray Data scoring (:mod:`gnn.batch_inference`) both call it.
- :func:`release_ray` — the training job is done with Ray once the epochs are: the connection
  :func:`init_ray` made is closed, and a local Ray it started stops (its raylet, object store and idle workers
  held 2.7 GB beside the job's finish at 1M accounts). A Ray the caller started is left alone.
- :func:`release_memory` — hand freed memory back to the operating system: the training job's driver reads the
  snapshot before the epochs and lets it go while a Ray worker trains, and Arrow's pool and glibc's heap keep
  what was freed otherwise (measured at 300k accounts: 1,893 MiB after the read, 1,391 after ``del``, 842
  after this; ≈ 0.8 of the 1.1 GB the read took).
"""

from __future__ import annotations

import ctypes
import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from graph.logs import logger

#: Environment defaults set by :func:`configure_process` (a value already set is kept).
ENV_DEFAULTS: Final = {"MLFLOW_DISABLE_TELEMETRY": "true", "RAY_AUTH_MODE": "disabled"}

log = logger(__name__)

#: Whether :func:`init_ray` started or joined the Ray this process is connected to (:func:`release_ray`).
_ray_ours = False


def configure_process() -> None:
    """Set the environment defaults of :data:`ENV_DEFAULTS` that are not set yet (idempotent)."""
    for name, value in ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)


def default_threads() -> int:
    """Torch CPU threads when none are configured: all cores but one (at least one).

    On a small, shared machine OpenMP threads that outnumber the free cores spin against each other and run
    10-30x slower than one thread (measured), hence one core is left free.
    """
    return max(1, (os.cpu_count() or 2) - 1)


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads; the caller's setting is restored afterwards.

    Raises:
        ValueError: ``threads`` is not positive.
    """
    import torch

    if threads < 1:
        raise ValueError(f"threads must be positive, got {threads}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def init_ray(address: str | None) -> None:
    """Join the Ray cluster at ``address`` when given, else start a local Ray sized to this machine (once).

    Args:
        address: ``Settings.ray_address`` (``RAY_ADDRESS``), or None for a local Ray.
    """
    import ray

    global _ray_ours
    if ray.is_initialized():
        return
    configure_process()
    if address:
        log.info("joining the Ray cluster at %s", address)
        ray.init(address=address, log_to_driver=False)
    else:
        log.info("starting a local Ray with %s CPUs", os.cpu_count())
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    _ray_ours = True


def release_memory() -> None:
    """Hand freed memory back to the OS (Arrow's pool and glibc's heap keep it otherwise): garbage collection,
    then both released. Best effort: a platform without glibc keeps its heap."""
    gc.collect()
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def release_ray() -> None:
    """Disconnect from the Ray :func:`init_ray` started or joined — a local one stops with it; a cluster goes on —
    so its processes hold no memory while the job goes on without it. A Ray the caller started is left
    connected. The next :func:`init_ray` starts or joins again."""
    import ray

    global _ray_ours
    if _ray_ours and ray.is_initialized():
        log.info("releasing Ray")
        ray.shutdown()
    _ray_ours = False
