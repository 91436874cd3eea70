#!/usr/bin/env bash
# SEAM on one model through `seam-harness model`, alone and beside a busy 2-thread torch process on the same
# cores, under the default (spinning) and the passive OpenMP wait policy; then the generator (`make-round`
# of one round-3 model at its defaults) alone and beside the same process left at torch's own default.
# Prints wall seconds per case and each beside/alone speed ratio (a fair share of 2 cores is 0.5).
#   bash benchmarks/contention.sh MODEL_FOLDER     (e.g. demo/round3/id-00000000 from the README demo)
set -euo pipefail
model_dir=${1:?usage: contention.sh MODEL_FOLDER}
cli=${SEAM_HARNESS:-.venv/bin/seam-harness}
python=${PYTHON:-.venv/bin/python}
seam=(--seam.forget_max_epochs 3 --seam.forget_epochs_below_alpha 3 --seam.recover_max_epochs 6
      --seam.recover_epochs_after_goal 0)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"; kill $(jobs -p) 2>/dev/null || true' EXIT

seam_seconds() {  # label, OMP_WAIT_POLICY for SEAM ("": the harness default)
  local start
  start=$(date +%s.%N)
  env -u OMP_WAIT_POLICY ${2:+OMP_WAIT_POLICY=$2} "$cli" model --model_filepath "$model_dir/model.pt" --result_filepath "$scratch/r.json" \
    --scratch_dirpath "$scratch" --examples_dirpath "$model_dir/clean_example_data" "${seam[@]}" > /dev/null 2>&1
  echo "$1 $(echo "$(date +%s.%N) - $start" | bc)"
}
busy_loop() {  # OMP_WAIT_POLICY for the competing process ("": torch's default); prints its pid
  env -u OMP_WAIT_POLICY ${1:+OMP_WAIT_POLICY=$1} "$python" -c "
import torch
torch.set_num_threads(2)
a = torch.randn(1500, 1500)
while True:
    a @ a
" > /dev/null 2>&1 &
  echo $!
}

generator_seconds() {  # label; the harness's own wait policy (passive unless the environment sets one)
  local start
  rm -rf "$scratch/round"
  start=$(date +%s.%N)
  "$cli" make-round --round 3 --num_models 1 --seed 0 --n_jobs 1 --output_dir "$scratch/round" > /dev/null 2>&1
  echo "$1 $(echo "$(date +%s.%N) - $start" | bc)"
}
ratio() {  # label, alone line, beside line: alone seconds / beside seconds = share of the alone speed kept
  echo "$1 $(echo "scale=2; $(cut -d' ' -f2 <<< "$2") / $(cut -d' ' -f2 <<< "$3")" | bc)"
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

alone=$(seam_seconds seam-alone-harness-default "")
echo "$alone"
pid=$(busy_loop "")
sleep 3
beside=$(seam_seconds seam-beside-torch-default "")
kill "$pid"
echo "$beside"
ratio seam-speed-kept "$alone" "$beside"
alone=$(generator_seconds generator-alone)
echo "$alone"
pid=$(busy_loop "")
sleep 3
beside=$(generator_seconds generator-beside-torch-default)
kill "$pid"
echo "$beside"
ratio generator-speed-kept "$alone" "$beside"
