"""Process pools with a progress bar (joblib + tqdm), shared by the batch runner and the generators."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from joblib import Parallel, delayed
from tqdm import tqdm

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota of this process's cgroup in cores (containers, Slurm), or None if there is none.

    cgroup v2 keeps it in `cpu.max` ("max 100000" or "<quota> <period>"), v1 in `cpu/cpu.cfs_quota_us` and
    `cpu/cpu.cfs_period_us` (quota -1: none).
    """
    try:
        if (root / "cpu.max").is_file():
            quota, period = (root / "cpu.max").read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        quota_file, period_file = root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us"
        if quota_file.is_file() and period_file.is_file():
            quota = int(quota_file.read_text())
            return None if quota <= 0 else quota / int(period_file.read_text())
    except (OSError, ValueError):  # unreadable or unexpected: no limit known
        return None
    return None


def available_cores(cgroup_root: Path = CGROUP_ROOT) -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup quota (at least 1).

    More torch threads than the quota allows make them wait on each other and run far slower.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit(cgroup_root)
    return max(1, min(cores, int(limit))) if limit is not None else cores


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
