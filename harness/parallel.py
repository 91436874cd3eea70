"""Process pools with a progress bar (joblib + tqdm), shared by the batch runner and the generators."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator

from joblib import Parallel, delayed
from tqdm import tqdm


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_worker(n_jobs: int) -> int:
    """torch threads for each of n_jobs workers: together never more than the cores."""
    return max(1, available_cores() // max(1, n_jobs))


def run_parallel(
    function: Callable, arguments: Iterable[tuple], n_jobs: int, description: str, total: int
) -> Iterator:
    """Yield function(*args) for each args as results finish (any order), with a progress bar.

    n_jobs == 1 runs in this process: no worker start-up, plain tracebacks.
    """
    with tqdm(total=total, desc=description, unit="model") as progress:
        if n_jobs <= 1:
            results = (function(*args) for args in arguments)
        else:
            results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
                delayed(function)(*args) for args in arguments
            )
        for result in results:
            progress.update()
            yield result
