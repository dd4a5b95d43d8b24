#!/usr/bin/env bash
# A real single-node SLURM cluster on localhost, for tests/test_slurm.py (CI runs it from .ci/run; developers can too).
#
# Installs Debian's slurmctld, slurmd, slurm-client and munge when missing (apt, as root), writes
# /etc/slurm/slurm.conf + gres.conf (one node "localhost" with all CPUs, most of the memory and one fake GPU gres,
# partition "debug", no accounting, job completions logged to a text file), starts munged, slurmctld and slurmd, and
# waits until the node is idle. State, spool and logs live in $PORTRAIT_SLURM_DIR (default /tmp/portrait-slurm).
# Idempotent: a second call restarts the daemons on a fresh config. Stop everything with .ci/slurm_teardown.sh.
#
# Refuses to overwrite a slurm.conf it did not write (a real cluster's), unless PORTRAIT_SLURM_FORCE=1.
set -euo pipefail

STATE_DIR=${PORTRAIT_SLURM_DIR:-/tmp/portrait-slurm}
CONF_DIR=/etc/slurm
MARKER="# written by portrait-pipeline .ci/slurm_setup.sh"
NODE=localhost
PARTITION=debug

log() { printf 'slurm_setup: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (installs packages, starts daemons)"

# --- packages --------------------------------------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
    || ! command -v munged >/dev/null; then
    start=$(date +%s)
    # The daemons are started below with our config; keep the packages' init scripts from starting them at install.
    own_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
    [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d
    log "installed slurmctld slurmd slurm-client munge in $(($(date +%s) - start)) s"
fi

# --- stop what a previous call started -------------------------------------------------------------------------------
"$(dirname "$0")/slurm_teardown.sh" --quiet || true

# --- config ----------------------------------------------------------------------------------------------------------
if [ -f "$CONF_DIR/slurm.conf" ] && ! grep -qF "$MARKER" "$CONF_DIR/slurm.conf" && [ "${PORTRAIT_SLURM_FORCE:-0}" != 1 ]; then
    die "$CONF_DIR/slurm.conf exists and was not written by this script (set PORTRAIT_SLURM_FORCE=1 to replace it)"
fi
mkdir -p "$CONF_DIR" "$STATE_DIR"/{state,spool,log}
cpus=$(nproc)
mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)  # leave a fifth for the OS and the tests

cat >"$CONF_DIR/slurm.conf" <<EOF
$MARKER
# Single-node test cluster on localhost: no accounting database, a fake GPU so GPU rules can be scheduled.
ClusterName=portrait-ci
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
StateSaveLocation=$STATE_DIR/state
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# every finished job (id, name, state, partition, nodes) as one line: a record of what ran, without slurmdbd
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE_DIR/log/jobcomp.log
# finished jobs stay visible to squeue this long (the executor plugin polls squeue when sacct has no database; the
# tests read every job of a run of eight videos, which can take longer than 10 minutes on a loaded 2-core machine)
MinJobAge=3600
KillWait=5
InactiveLimit=0
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:fake:1 State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF

cat >"$CONF_DIR/gres.conf" <<EOF
$MARKER
NodeName=$NODE Name=gpu Type=fake File=/dev/null
EOF

# --- munge -----------------------------------------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
runuser -u munge -- /usr/sbin/munged
for _ in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.1; done
munge -n | unmunge >/dev/null || die "munged does not answer"

# --- slurm daemons ---------------------------------------------------------------------------------------------------
slurmctld -i   # -i: ignore state from an earlier run
slurmd -N "$NODE"
for i in $(seq 60); do
    state=$(sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 1
done
if [ "$state" != idle ]; then
    tail -n 20 "$STATE_DIR"/log/slurmctld.log "$STATE_DIR"/log/slurmd.log >&2 || true
    die "node $NODE is '${state:-unknown}', not idle, after 60 s"
fi
log "cluster up: $(sinfo -h -o '%P %D %c cpus %m MB %G %T')"
