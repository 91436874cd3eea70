#!/usr/bin/env bash
# Stop what slurm_up.sh started, by the PIDs it recorded.
SLURM_RUN=${SLURM_RUN:-/tmp/seam-slurm}
stop() {
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
}
for daemon in slurmd slurmctld; do
  pidfile="$SLURM_RUN/$daemon.bgpid"
  if [ -f "$pidfile" ]; then stop "$(cat "$pidfile")"; rm -f "$pidfile"; fi
done
if [ -f /run/munge/munged.pid ]; then stop "$(cat /run/munge/munged.pid)"; fi
exit 0
