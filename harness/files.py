"""Atomic file writes shared by records and saved models."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def _temp_prefix(path: Path) -> str:
    # The temp name carries the final name, so a later run can find what a killed writer left behind.
    return f".tmp-{path.name}-"


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call `write(temp_path)`, then rename onto `path`: a crash leaves the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path))
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are shared (HPC groups, containers)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def remove_stale_temp_files(path: str | Path) -> int:
    """Delete temp files a killed writer of `path` left behind; returns how many."""
    path = Path(path)
    if not path.parent.is_dir():
        return 0
    stale = list(path.parent.glob(_temp_prefix(path) + "*"))
    for temp in stale:
        temp.unlink(missing_ok=True)
    return len(stale)
