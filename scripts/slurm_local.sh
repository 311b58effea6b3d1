#!/usr/bin/env bash
# A one-node Slurm on this machine, for the `slurm` tests and for trying hydra/launcher=slurm without a cluster:
#   bash scripts/slurm_local.sh install   # apt-get install slurm-wlm munge (as root; once per machine)
#   bash scripts/slurm_local.sh start     # munged, slurmctld and slurmd; waits until the node is idle
#   bash scripts/slurm_local.sh status    # sinfo
#   bash scripts/slurm_local.sh stop      # cancels every job, stops the daemons, leaves nothing running
# Idempotent: `start` on a running cluster and `stop` on a stopped one do nothing. No accounting daemon
# (slurmdbd) runs, so `sacct` answers "accounting storage is disabled"; docs/slurm.md says what that changes.
# Settings: SLURM_STATE (default /var/tmp/fire_rl_slurm) holds the spool, state, logs and slurm.conf's copy.
set -euo pipefail
STATE=${SLURM_STATE:-/var/tmp/fire_rl_slurm}
CONF=/etc/slurm/slurm.conf
HOST=$(hostname -s)

need_root() { [ "$(id -u)" -eq 0 ] || { echo "slurm_local.sh: $1 needs root" >&2; exit 2; }; }

install() {
  need_root install
  if command -v slurmctld >/dev/null && command -v munged >/dev/null; then return 0; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null 2>&1 || {
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null; }
}

write_config() {
  local cpus mem
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))  # MiB, leaving 1 GiB to the system
  mkdir -p "$STATE/spool" "$STATE/state" "$STATE/log" /etc/slurm
  cat >"$CONF" <<EOF
# Written by fire_rl's scripts/slurm_local.sh: a one-node test cluster.
ClusterName=fire_rl_local
SlurmctldHost=${HOST}
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation=${STATE}/state
SlurmdSpoolDir=${STATE}/spool
SlurmctldPidFile=${STATE}/slurmctld.pid
SlurmdPidFile=${STATE}/slurmd.pid
SlurmctldLogFile=${STATE}/log/slurmctld.log
SlurmdLogFile=${STATE}/log/slurmd.log
ReturnToService=2
KillWait=30
MinJobAge=300
NodeName=${HOST} CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=debug Nodes=${HOST} Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
  fi
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge && chown munge:munge /run/munge
  pgrep -x munged >/dev/null || runuser -u munge -- munged --force
}

running() { pgrep -x slurmctld >/dev/null && pgrep -x slurmd >/dev/null; }

start() {
  need_root start
  command -v slurmctld >/dev/null || { echo "slurm_local.sh: Slurm is not installed (run: $0 install)" >&2; exit 3; }
  if running && sinfo -h -o %T 2>/dev/null | grep -qE 'idle|mix|alloc'; then return 0; fi
  write_config
  start_munge
  pgrep -x slurmctld >/dev/null || slurmctld -c -i
  pgrep -x slurmd >/dev/null || slurmd
  for _ in $(seq 60); do
    state=$(sinfo -h -o %T 2>/dev/null || true)
    case "$state" in
      idle* | mix* | alloc*) return 0 ;;
      down* | drain*) scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;;
    esac
    sleep 1
  done
  echo "slurm_local.sh: the node did not come up; see $STATE/log/" >&2
  exit 4
}

stop() {
  if pgrep -x slurmctld >/dev/null; then scancel --full --quiet --user=root 2>/dev/null || true; fi
  for daemon in slurmstepd slurmd slurmctld munged; do
    pkill -x "$daemon" 2>/dev/null || true
  done
  for _ in $(seq 30); do
    pgrep -x slurmd >/dev/null || pgrep -x slurmctld >/dev/null || pgrep -x munged >/dev/null || return 0
    sleep 1
  done
  pkill -9 -x slurmd slurmctld munged 2>/dev/null || true
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  status) sinfo ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|status|stop" >&2; exit 2 ;;
esac
