"""Process pools with a progress bar (joblib + tqdm), shared by the batch runner and the generators."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator

from joblib import Parallel, delayed
from tqdm import tqdm


def run_parallel(
    function: Callable, arguments: Iterable[tuple], n_jobs: int, threads: int, description: str, total: int
) -> Iterator:
    """Yield function(*args) for each args as results finish (any order), with a progress bar.

    n_jobs == 1 runs in this process: no worker start-up, plain tracebacks. `threads` is the torch
    threads each call uses; more in flight than usable cores is said on stderr.
    """
    if (message := oversubscription(n_jobs, threads, usable_cores())) is not None:
        print(message, file=sys.stderr)
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


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask, as taskset and Slurm set it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def oversubscription(n_jobs: int, threads: int, cores: int) -> str | None:
    """A warning when the models in flight ask for more threads than there are cores: spinning threads
    then slow each other far beyond a fair share (docs/performance.md)."""
    if n_jobs * threads <= cores:
        return None
    return (
        f"seam-harness: warning: {n_jobs} models at a time x {threads} threads each on {cores} usable cores: "
        "they will slow each other down; lower --n_jobs or --threads"
    )
