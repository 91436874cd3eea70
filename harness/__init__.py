"""seam-harness: SEAM backdoor removal over TrojAI-style rounds."""

import os

__version__ = "0.1.0"

# OpenMP threads that wait by spinning take the cores from anything else running there. Beside one busy
# 2-thread torch process on 2 cores, SEAM on a round-3 model took 76.6 s under libgomp's default policy
# (10.4 s alone), 15.6 s with passive waiting (10.0 s alone), 13.0 s with both processes passive
# (benchmarks/contention.sh compares the policies). Set before torch is imported, inherited by worker and
# child processes; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
