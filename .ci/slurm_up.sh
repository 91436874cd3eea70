#!/usr/bin/env bash
# Bring up a single-node Slurm (munge + slurmctld + slurmd) on a Debian host without systemd, as root.
# Used by the test suite's Slurm fixture; stop it with slurm_down.sh (by PID, never by name).
#   SLURM_RUN   state, spool, logs and PID files (default /tmp/seam-slurm)
#   SLURM_CPUS  CPU slots the node advertises; more than the cores lets more array tasks start at once
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SLURM_RUN=${SLURM_RUN:-/tmp/seam-slurm}
SLURM_CPUS=${SLURM_CPUS:-$(nproc)}
NODE=$(hostname -s)
MEM_MB=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) * 8 / 10 ))

[ "$(id -u)" = 0 ] || { echo "needs root (installs packages, starts daemons)" >&2; exit 2; }
packages=(slurmctld slurmd slurm-client munge)
if ! dpkg -s "${packages[@]}" >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

for daemon in slurmctld slurmd; do  # a second start would clash on the ports
  pidfile="$SLURM_RUN/$daemon.bgpid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "$daemon is already running (pid $(cat "$pidfile")); run slurm_down.sh first" >&2; exit 1
  fi
done
rm -rf "$SLURM_RUN/state" "$SLURM_RUN/spool"
mkdir -p "$SLURM_RUN/state" "$SLURM_RUN/spool" "$SLURM_RUN/log"

retry() {  # retry N COMMAND...: up to N tries, 0.2 s apart
  local tries=$1; shift
  for _ in $(seq "$tries"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}

# munge: /run/munge is normally made by systemd; munged daemonizes and records its own PID
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
if ! retry 1 sh -c 'munge -n | unmunge'; then
  runuser -u munge -- /usr/sbin/munged
  retry 50 sh -c 'munge -n | unmunge' || { echo "munged did not start" >&2; exit 1; }
fi

# linuxproc + task/none: no cgroup plugin, so no cgroup.conf; scheduler tuned to start tasks at once
cat >/etc/slurm/slurm.conf <<CONF
ClusterName=seamci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SlurmdParameters=config_overrides
ReturnToService=2
MaxArraySize=100001
MaxJobCount=200000
MinJobAge=600
KillWait=5
MailProg=/bin/true
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
StateSaveLocation=$SLURM_RUN/state
SlurmdSpoolDir=$SLURM_RUN/spool
SlurmctldPidFile=$SLURM_RUN/slurmctld.pid
SlurmdPidFile=$SLURM_RUN/slurmd.pid
SlurmctldLogFile=$SLURM_RUN/log/slurmctld.log
SlurmdLogFile=$SLURM_RUN/log/slurmd.log
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$SLURM_CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

# foreground daemons (-D) put in the background here, so their PIDs are known exactly
/usr/sbin/slurmctld -D >>"$SLURM_RUN/log/slurmctld.out" 2>&1 &
echo $! >"$SLURM_RUN/slurmctld.bgpid"
/usr/sbin/slurmd -D -N "$NODE" >>"$SLURM_RUN/log/slurmd.out" 2>&1 &
echo $! >"$SLURM_RUN/slurmd.bgpid"

if retry 100 sh -c "sinfo -h -n '$NODE' -o %T | grep -qx idle"; then
  echo "slurm up: node $NODE, $SLURM_CPUS cpus"
else
  echo "slurm did not come up" >&2; tail -n 20 "$SLURM_RUN"/log/* >&2; exit 1
fi
