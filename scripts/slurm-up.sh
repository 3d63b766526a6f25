#!/usr/bin/env bash
# Brings up a real single-node Slurm on this machine for the Slurm end-to-end test
# (tests/tests/slurm.rs): installs Debian's slurm-wlm (22.05) and munge if missing, writes a minimal
# localhost slurm.conf, starts munged, slurmctld and slurmd as plain daemons (no systemd needed),
# and waits until `sinfo` shows the node idle. Idempotent: when Slurm already answers with this
# configuration it changes nothing. Needs root (apt, daemons running as root).
#
#   scripts/slurm-up.sh          # bring it up (or check that it is up)
#   scripts/slurm-up.sh --down   # stop the daemons it started
set -euo pipefail
source "$(dirname "$0")/apt.sh"

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
NODE=$(hostname -s)
LOG_DIR=/var/log/slurm
SPOOL=/var/spool/slurm

log() { echo "slurm-up: $*"; }
die() { echo "slurm-up: $*" >&2; exit 1; }

# Pids of a daemon by its exact process name (never a pattern match on command lines); reads
# /proc, so it needs no procps.
pids_of() {
  local f
  for f in /proc/[0-9]*/comm; do
    [[ $(cat "$f" 2>/dev/null) == "$1" ]] && { f=${f#/proc/}; echo "${f%/comm}"; }
  done
  return 0
}

stop_daemons() {
  for d in slurmd slurmctld; do
    for pid in $(pids_of "$d"); do kill "$pid" 2>/dev/null || true; done
  done
  for _ in $(seq 50); do
    [[ -z $(pids_of slurmd)$(pids_of slurmctld) ]] && return 0
    sleep 0.1
  done
  die "slurmd/slurmctld did not stop"
}

if [[ ${1:-} == --down ]]; then
  stop_daemons
  log "stopped slurmd and slurmctld"
  exit 0
fi

[[ $(id -u) == 0 ]] || die "needs root (apt-get, /etc/slurm, daemons); run it as root or with sudo"

# 1. Packages. slurm-wlm pulls slurmctld, slurmd, slurm-client and munge.
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
  || ! command -v munged >/dev/null; then
  log "installing slurm-wlm and munge (apt-get)"
  apt_get update -qq
  # Package scripts try to start services through invoke-rc.d; without an init system that fails
  # harmlessly, and this script starts the daemons itself below.
  apt_get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

# 2. Configuration. Memory is not a consumable resource here (CR_Core), so RealMemory only has to
# stay below what slurmd finds, or the node is refused: 90% of MemTotal is stable from run to run.
cpus=$(nproc)
mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
want=$(cat <<EOF
# Written by scripts/slurm-up.sh: a one-node Slurm on localhost for the sweep tests.
ClusterName=sweep-test
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$SPOOL/ctld
SlurmdSpoolDir=$SPOOL/d
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
# No cgroups: processes are tracked by parentage, tasks are not bound to CPUs.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
# A node that went down (daemon restart) comes back by itself once slurmd registers again.
ReturnToService=2
# Quick turnaround for tests: forget finished jobs after 5 minutes, kill 5 s after SIGTERM.
MinJobAge=300
KillWait=5
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
)

node_state() { sinfo -h -N -n "$NODE" -o '%t' 2>/dev/null | head -n1 || true; }
is_up() {
  case $(node_state) in
    idle | mix | alloc | comp) return 0 ;;
    *) return 1 ;;
  esac
}

if [[ -f $CONF && $(cat "$CONF") == "$want" ]] && [[ -n $(pids_of munged) && -n $(pids_of slurmctld) && -n $(pids_of slurmd) ]] && is_up; then
  log "already up: node $NODE is $(node_state)"
  exit 0
fi

mkdir -p "$CONF_DIR" "$LOG_DIR" "$SPOOL/ctld" "$SPOOL/d"
if [[ ! -f $CONF || $(cat "$CONF") != "$want" ]]; then
  log "writing $CONF (node $NODE, $cpus CPUs, ${mem_mb} MB)"
  printf '%s\n' "$want" >"$CONF.tmp" && mv "$CONF.tmp" "$CONF"
  # Daemons started with another configuration must read this one.
  stop_daemons
fi

# 3. munge: a key (the package makes one; make it if missing) and the daemon, as user munge.
if [[ ! -s /etc/munge/munge.key ]]; then
  log "creating /etc/munge/munge.key"
  mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
fi
if [[ -z $(pids_of munged) ]]; then
  log "starting munged"
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  runuser -u munge -- /usr/sbin/munged
fi
for _ in $(seq 50); do
  munge -n </dev/null >/dev/null 2>&1 && break
  sleep 0.1
done
munge -n </dev/null | unmunge >/dev/null || die "munge does not work; see /var/log/munge/munged.log"

# 4. Slurm daemons (each forks into the background; logs under $LOG_DIR).
if [[ -z $(pids_of slurmctld) ]]; then
  log "starting slurmctld"
  slurmctld || die "slurmctld failed to start; see $LOG_DIR/slurmctld.log"
fi
if [[ -z $(pids_of slurmd) ]]; then
  log "starting slurmd"
  slurmd -N "$NODE" || die "slurmd failed to start; see $LOG_DIR/slurmd.log"
fi

# 5. Wait for the node. A node left down or drained by an earlier run is resumed once.
resumed=0
for i in $(seq 300); do
  if is_up; then
    log "up: node $NODE is $(node_state) ($(sinfo -h -o '%P %D %C' | head -n1))"
    exit 0
  fi
  state=$(node_state)
  if ((!resumed)) && [[ $state == down* || $state == drain* ]] && ((i > 20)); then
    log "node $NODE is $state; resuming it"
    scontrol update NodeName="$NODE" State=RESUME || true
    resumed=1
  fi
  sleep 0.2
done
echo "slurm-up: node $NODE did not become idle (state: '$(node_state)'). Last log lines:" >&2
tail -n 20 "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" >&2 || true
exit 1
