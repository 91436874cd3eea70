"""Atomic file writes shared by records, tables and saved models."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


class OutputError(Exception):
    """An output that cannot be written (full disk, read-only folder, a file where a folder should be).

    Not a fault of the model being processed: the batch stops with this one-line message, and a rerun
    after the fault is cleared recomputes what was lost.
    """


def ensure_folder(folder: str | Path) -> Path:
    """mkdir -p, as an OutputError naming the folder if it cannot be made."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create the folder {folder}: {error.strerror or error}") from None
    return folder


def _temp_prefix(path: Path) -> str:
    # The temp name carries the final name, so a later run can find what a killed writer left behind.
    return f".tmp-{path.name}-"


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call `write(temp_path)`, then rename onto `path`: a crash leaves the old file or the new one.

    A write the system refuses (no space, read-only, ...) raises OutputError naming `path`.
    """
    path = Path(path)
    ensure_folder(path.parent)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path))
        os.close(fd)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are shared (HPC groups, containers)
        write(tmp)
        os.replace(tmp, path)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
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
