#!/usr/bin/env bash
# SEAM on one model through `seam-harness model`, alone and beside a busy 2-thread torch process on the same
# cores, under the default (spinning) and the passive OpenMP wait policy. Prints wall seconds per case.
#   bash benchmarks/contention.sh MODEL_FOLDER     (e.g. demo/round3/id-00000000 from the README demo)
set -euo pipefail
model_dir=${1:?usage: contention.sh MODEL_FOLDER}
cli=${SEAM_HARNESS:-.venv/bin/seam-harness}
python=${PYTHON:-.venv/bin/python}
seam=(--seam.forget_max_epochs 3 --seam.forget_epochs_below_alpha 3 --seam.recover_max_epochs 6
      --seam.recover_epochs_after_goal 0)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"; kill $(jobs -p) 2>/dev/null || true' EXIT

seam_seconds() {  # label, OMP_WAIT_POLICY for SEAM
  local start
  start=$(date +%s.%N)
  OMP_WAIT_POLICY=$2 "$cli" model --model_filepath "$model_dir/model.pt" --result_filepath "$scratch/r.json" \
    --scratch_dirpath "$scratch" --examples_dirpath "$model_dir/clean_example_data" "${seam[@]}" > /dev/null 2>&1
  echo "$1 $(echo "$(date +%s.%N) - $start" | bc)"
}
busy_loop() {  # OMP_WAIT_POLICY for the competing process; prints its pid
  OMP_WAIT_POLICY=$1 "$python" -c "
import torch
torch.set_num_threads(2)
a = torch.randn(1500, 1500)
while True:
    a @ a
" > /dev/null 2>&1 &
  echo $!
}

seam_seconds alone-active ACTIVE
seam_seconds alone-passive PASSIVE
for policies in "ACTIVE ACTIVE" "ACTIVE PASSIVE" "PASSIVE PASSIVE"; do
  read -r other ours <<< "$policies"
  pid=$(busy_loop "$other")
  sleep 3
  seam_seconds "busy-other-$other-seam-$ours" "$ours"
  kill "$pid"
done
