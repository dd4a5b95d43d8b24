#!/usr/bin/env bash
# Stop the single-node test cluster started by .ci/slurm_setup.sh: cancel its jobs, stop slurmd, slurmctld and munged.
# Safe to call when nothing runs. --quiet: say nothing (used by slurm_setup.sh before a restart).
set -uo pipefail

STATE_DIR=${PORTRAIT_SLURM_DIR:-/tmp/portrait-slurm}
quiet=0
[ "${1:-}" = --quiet ] && quiet=1
log() { [ "$quiet" = 1 ] || printf 'slurm_teardown: %s\n' "$*" >&2; }

# Waits for the process in a pid file to end (SIGTERM, then SIGKILL after 10 s); removes the pid file.
stop_pidfile() {
    local name=$1 pidfile=$2 pid
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name ($pid) ignored SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null
        fi
        log "stopped $name ($pid)"
    fi
    rm -f "$pidfile"
}

# Only our own cluster's jobs: never touch a real cluster's (its slurm.conf lacks the marker).
if grep -qF "# written by portrait-pipeline .ci/slurm_setup.sh" /etc/slurm/slurm.conf 2>/dev/null \
    && [ -s "$STATE_DIR/slurmctld.pid" ] && scontrol ping >/dev/null 2>&1; then
    scancel --full --quiet 2>/dev/null || true
fi
stop_pidfile slurmd "$STATE_DIR/slurmd.pid"
stop_pidfile slurmctld "$STATE_DIR/slurmctld.pid"
stop_pidfile munged /run/munge/munged.pid
exit 0
