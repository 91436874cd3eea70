#!/bin/bash
# Does SEAM's outcome on one round depend on the thread count? Runs `run` on the same round files with
# 1 thread per model (--n_jobs 2 on 2 cores) and with 2 threads (--n_jobs 1), then prints both summaries.
#   benchmarks/thread_stability.sh ROUND_DIR OUT_DIR [extra run flags]
set -euo pipefail
round=$1; out=$2; shift 2
harness=${HARNESS:-.venv/bin/seam-harness}
for jobs in 2 1; do
  "$harness" run --round_dir "$round" --output_dir "$out/n_jobs-$jobs" --n_jobs "$jobs" --save_models false "$@" > /dev/null
done
python3 - "$out" <<'PY'
import csv, sys
for jobs in (2, 1):
    rows = list(csv.DictReader(open(f"{sys.argv[1]}/n_jobs-{jobs}/summary.csv")))
    row = next(r for r in rows if r["group_by"] == "all")
    print(f"n_jobs {jobs}: mean Fidelity {float(row['mean_fidelity']):.3f}, min {float(row['min_fidelity']):.3f},"
          f" share cleaned {float(row['share_cleaned']):.2f}")
PY
