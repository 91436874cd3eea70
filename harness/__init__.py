"""seam-harness: SEAM backdoor removal over TrojAI-style rounds."""

import os
import sys

from harness.kernels import apply_kernel_choice

__version__ = "0.1.0"

# OpenMP threads that wait by spinning take the cores from anything else running there. Beside one busy
# 2-thread torch process on 2 cores, SEAM on a round-3 model took 76.6 s under libgomp's default policy
# (10.4 s alone), 15.6 s with passive waiting (10.0 s alone), 13.0 s with both processes passive. A later
# run of benchmarks/contention.sh: both ACTIVE 19.0 s, SEAM PASSIVE 12.8 s, both PASSIVE 12.5 s (8.7-9.1 s
# alone). Set before torch is imported, inherited by worker and child processes; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# SEAM_HARNESS_KERNELS=portable: the same float sums on any x86 CPU with AVX2 (harness/kernels.py).
_kernel_warning = apply_kernel_choice()
if _kernel_warning:
    print(f"seam-harness: warning: {_kernel_warning}", file=sys.stderr)
