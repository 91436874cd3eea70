"""One model in a child process, for `run --model_timeout_s`: `python -m harness.child RESULT_FILE`.

Reads `(threads, args, kwargs)` for `process_model`, pickled by the parent on stdin (the harness's own
objects, never a round's files), and writes `("record", record)` or `("output_error", message)` to
RESULT_FILE. A child can be killed at its time limit, which a model running in the worker itself cannot.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path


def main() -> None:
    import torch

    from harness.files import OutputError, atomic_write
    from harness.pipeline import process_model

    threads, args, kwargs = pickle.load(sys.stdin.buffer)
    torch.set_num_threads(threads)
    try:
        outcome = ("record", process_model(*args, **kwargs))
    except OutputError as error:
        outcome = ("output_error", str(error))
    atomic_write(Path(sys.argv[1]), lambda tmp: Path(tmp).write_bytes(pickle.dumps(outcome)))


if __name__ == "__main__":
    main()
