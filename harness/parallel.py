"""Process pools with a progress bar (joblib + tqdm), shared by the batch runner and the generators."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from joblib import Parallel, delayed
from tqdm import tqdm


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
