"""The report's per-group work on a Dask cluster (``report --engine dask`` / ``--scheduler``).

Each group's summary (counts, balance, its worker-clustered and note-level intervals) and each
month's interval in the trend depend only on that group's rows, so they are independent tasks.
The report hands them to a *mapper*: :func:`local_map` runs them here, one after another;
:class:`DaskMap` submits them to a dask.distributed ``Client`` (a scheduler's address, or a
local cluster it starts) and gathers the results in submission order. The tasks carry their own
data (the group's slices, never the whole table) and draw no random numbers, so the report is
the same on either engine and for any number of workers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Mapper = Callable[[Callable[..., Any], Sequence[tuple]], list[Any]]


def local_map(fn: Callable[..., Any], args: Sequence[tuple]) -> list[Any]:
    """Run ``fn(*a)`` for each ``a`` here, in order."""
    return [fn(*a) for a in args]


class DaskMap:
    """Run ``fn(*a)`` for each ``a`` as Dask tasks; results in the order of ``args``.

    ``scheduler``: an address to connect to; None starts a local cluster (``processes=False``
    keeps it in this process, for tests and small inputs). Use as a context manager.
    """

    def __init__(self, scheduler: str | None = None, processes: bool = True, n_workers: int = 2) -> None:
        from dask.distributed import Client, LocalCluster

        self.cluster = None
        if scheduler:
            self.client = Client(scheduler)
        else:
            self.cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=processes,
                                        dashboard_address=None)
            self.client = Client(self.cluster)
        self.tasks = 0

    def __call__(self, fn: Callable[..., Any], args: Sequence[tuple]) -> list[Any]:
        if not args:
            return []
        futures = [self.client.submit(fn, *a, pure=False) for a in args]
        self.tasks += len(futures)
        return self.client.gather(futures)

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def __enter__(self) -> DaskMap:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
