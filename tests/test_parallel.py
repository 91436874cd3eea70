"""Threads per worker follow what the process may really use: its CPU affinity and its cgroup quota."""

import os

import pytest

from harness.parallel import available_cores, cgroup_cpu_limit


@pytest.mark.parametrize(
    ("files", "limit"),
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1.0),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu.max": "garbage"}, None),
        ({}, None),
    ],
)
def test_cgroup_quota_is_read_from_v1_and_v2_files(files, limit, tmp_path):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_limit(tmp_path) == limit


def test_a_quota_caps_the_cores_and_the_threads(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    assert available_cores(tmp_path) == affinity  # no cgroup files: the affinity alone
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # half a core: still one thread
    assert available_cores(tmp_path) == 1
